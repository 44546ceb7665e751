/**
 * The agent's settings: the agent argument, then the {@code surgery.*} system properties, then the
 * {@code SURGERY_*} environment variables.
 *
 * <p>Defined by the system class loader; links against the JDK only.
 */
package dev.surgery.agent.settings;
