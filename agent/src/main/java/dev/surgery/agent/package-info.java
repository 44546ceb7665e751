/**
 * The {@code -javaagent} entry point ({@link dev.surgery.agent.SurgeryAgent}) and the weaving
 * ({@link dev.surgery.agent.TrainerInstrumentation}): reads the settings, checks the config and
 * installs the advice before the program's {@code main}.
 *
 * <p><b>Defined by the agent's loader</b> (the system class loader: the agent jar is on the system
 * class path), and used only there, at start-up. It links against the JDK, the relocated ByteBuddy
 * and the agent's {@code settings}, {@code advice} and {@code shared} packages, never against DJL,
 * which may not be visible from this loader: DJL's classes are matched by name and described by
 * ByteBuddy. Nothing on DJL's side links against this package.
 */
package dev.surgery.agent;
