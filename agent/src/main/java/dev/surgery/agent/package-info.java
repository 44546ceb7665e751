/**
 * The {@code -javaagent} entry point ({@link dev.surgery.agent.SurgeryAgent}): reads the settings,
 * checks the config and installs the instrumentation before the program's {@code main}.
 *
 * <p>Defined by the system class loader (the agent jar is on the system class path). It links
 * against the JDK, the agent's {@code settings}, {@code install} and {@code bridge} packages and
 * the relocated ByteBuddy only, never against DJL, which may not be visible from this loader.
 */
package dev.surgery.agent;
