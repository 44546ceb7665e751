/**
 * The agent's settings: the agent argument, then the {@code surgery.*} system properties, then the
 * {@code SURGERY_*} environment variables.
 *
 * <p><b>Defined by the agent's loader</b> (the system class loader), used at start-up only; links
 * against the JDK only.
 */
package dev.surgery.agent.settings;
