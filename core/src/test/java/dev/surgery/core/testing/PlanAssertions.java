package dev.surgery.core.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.surgery.core.SurgeryPlan;
import dev.surgery.core.algorithms.SurgeryChanges;
import java.util.ArrayList;
import java.util.List;

/** Checks that an apply did what its plan said, for the plan tests of every module. */
public final class PlanAssertions {

  private PlanAssertions() {}

  /**
   * Asserts that the applied changes are the planned steps (path, old and new type, in order) and
   * that the parameter counts before and after agree.
   *
   * @param plan the plan made before the apply
   * @param report what the apply returned
   * @return the planned steps as {@code "path old -> new"} lines, for further checks
   */
  public static List<String> assertAppliedAsPlanned(SurgeryPlan plan, SurgeryChanges report) {
    List<String> planned = new ArrayList<>();
    for (SurgeryPlan.Step s : plan.steps()) {
      planned.add(s.path() + " " + s.oldType() + " -> " + s.newType());
    }
    List<String> applied = new ArrayList<>();
    for (SurgeryChanges.Change c : report.changes()) {
      applied.add(c.path() + " " + c.oldType() + " -> " + c.newType());
    }
    assertEquals(applied, planned);
    assertEquals(report.parametersBefore(), plan.parametersBefore());
    assertEquals(report.parametersAfter(), plan.parametersAfter());
    return planned;
  }
}
