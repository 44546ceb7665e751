package dev.surgery.agent.testapp;

import java.util.Arrays;

/**
 * A program that configures its own logging first thing in {@code main} (slf4j-simple's log file, a
 * system property), then trains {@link CnnApp}'s network.
 */
public final class LogFileApp {

  private LogFileApp() {}

  /**
   * Runs the app.
   *
   * @param args the log file, then {@link CnnApp}'s options
   * @throws Exception when training fails
   */
  public static void main(String[] args) throws Exception {
    System.setProperty("org.slf4j.simpleLogger.logFile", args[0]);
    CnnApp.main(Arrays.copyOfRange(args, 1, args.length));
  }
}
