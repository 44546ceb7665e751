package dev.surgery.agent.testapp;

import dev.surgery.core.internal.DjlInternals;
import dev.surgery.core.internal.DjlInternalsException;

/** Calls {@link DjlInternals#verify()} and prints its outcome, for a forked JVM to report. */
public final class DjlInternalsProbe {

  private DjlInternalsProbe() {}

  /**
   * Runs the probe.
   *
   * @param args unused
   */
  public static void main(String[] args) {
    try {
      DjlInternals.verify();
      System.out.println("PROBE: verified");
    } catch (DjlInternalsException e) {
      System.out.println("PROBE: " + e.getMessage());
    }
  }
}
