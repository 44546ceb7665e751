package dev.surgery.agent.testapp;

import java.lang.instrument.Instrumentation;

/**
 * Another agent, listed before DJL Surgery's, whose {@code premain} loads a DJL class (as a
 * profiler or a custom system class loader may): that class is loaded before DJL Surgery's {@code
 * premain} runs.
 */
public final class EarlyDjlAgent {

  private EarlyDjlAgent() {}

  /**
   * Loads the DJL class named by the argument.
   *
   * @param argument the class name
   * @param instrumentation unused
   * @throws ClassNotFoundException when DJL is not on the class path
   */
  public static void premain(String argument, Instrumentation instrumentation)
      throws ClassNotFoundException {
    Class.forName(argument, false, ClassLoader.getSystemClassLoader());
  }
}
