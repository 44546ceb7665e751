package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import dev.surgery.core.SurgeryPlan.PlannedParameter;
import dev.surgery.core.SurgeryPlan.StateFate;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * A plan as its reader sees it: the table {@link SurgeryPlan#toTable} documents, written out by
 * hand from that documentation for plans built by hand, and the kept parameters of a step.
 */
class PlanTableTest {

  private static final Shape WEIGHT = new Shape(8, 3, 3, 3);

  /** A path padded to the width of the longest one, as the table's first column is. */
  private static String column(String path, int width) {
    return path + " ".repeat(width - path.length());
  }

  @Test
  void theTableListsEachStepsParametersWithTheirStateThenTheTotals() {
    SurgeryPlan.Step conv =
        new SurgeryPlan.Step(
            "01Conv2d",
            "Conv2d",
            "BlurConv2d",
            List.of(new PlannedParameter("weight", WEIGHT, StateFate.DROPPED, false)),
            List.of(new PlannedParameter("weight", WEIGHT, StateFate.FRESH, true)),
            List.of(new PlannedParameter("bias", new Shape(8), StateFate.MOVED, false)),
            100L,
            150L);
    String longPath = "02SequentialBlock/01Linear";
    SurgeryPlan.Step linear =
        new SurgeryPlan.Step(
            longPath,
            "Linear",
            "Linear",
            List.of(),
            List.of(new PlannedParameter("weight", null), new PlannedParameter("bias", null)),
            List.of(),
            40L,
            30L);
    SurgeryPlan plan = new SurgeryPlan(List.of(conv, linear), 1000, 1010, new Shape(1, 3, 8, 8));
    int width = longPath.length();
    String expected =
        String.join(
            "\n",
            "title",
            "  "
                + column("01Conv2d", width)
                + "  Conv2d -> BlurConv2d  -[weight(8, 3, 3, 3) dropped]"
                + "  +[weight(8, 3, 3, 3) fresh exact]  =[bias(8) moved]  MACs 100 -> 150",
            "  " + longPath + "  Linear -> Linear  +[weight(?), bias(?)]  MACs 40 -> 30",
            "  parameters: 1000 -> 1010 (+10)",
            "  optimizer state: 1 moved, 1 dropped, 1 fresh (1 born exact), 2 none",
            "  MACs per sample for input (1, 3, 8, 8): +40");
    assertEquals(expected, plan.toTable("title"));
    assertFalse(plan.isEmpty());
  }

  @Test
  void anEmptyPlanSaysSoAndUnknownTotalsAreSaidUnknown() {
    SurgeryPlan empty = new SurgeryPlan(List.of(), 5, 3);
    assertTrue(empty.isEmpty());
    assertEquals(
        "none\n  (no block would change)\n  parameters: 5 -> 3 (-2)", empty.toTable("none"));
    String unknown =
        "  parameters: unknown (parameters without shapes: the model is not initialized)";
    for (SurgeryPlan plan :
        List.of(
            new SurgeryPlan(List.of(), SurgeryPlan.UNKNOWN_PARAMETERS, 3),
            new SurgeryPlan(List.of(), 5, SurgeryPlan.UNKNOWN_PARAMETERS))) {
      assertFalse(plan.parametersKnown());
      assertEquals("t\n  (no block would change)\n" + unknown, plan.toTable("t"));
    }
    assertTrue(empty.parametersKnown());
  }

  @Test
  void aPlannedParameterShowsItsStateUnlessNoneIsInvolved() {
    assertEquals("moved", StateFate.MOVED.label());
    assertEquals(8 * 3 * 3 * 3, new PlannedParameter("weight", WEIGHT).size());
    assertEquals(0, new PlannedParameter("weight", null).size(), "unknown shape: no values");
    assertEquals("weight(8, 3, 3, 3)", new PlannedParameter("weight", WEIGHT).toString());
    assertEquals(
        "weight(?) dropped",
        new PlannedParameter("weight", null, StateFate.DROPPED, false).toString());
    assertEquals("fresh", new PlannedParameter("w", WEIGHT, StateFate.FRESH, false).stateLabel());
    assertEquals(
        "fresh exact", new PlannedParameter("w", WEIGHT, StateFate.FRESH, true).stateLabel());
  }

  /**
   * A replacement that keeps the old block as its child keeps its parameters: the step lists them
   * as kept, under the step whose old block held them, and neither removed nor added.
   */
  @Test
  void aWrapperKeepingTheOldBlockListsItsParametersAsKept() {
    Linear layer = Linear.builder().setUnits(2).build();
    SequentialBlock root = new SequentialBlock().add(layer);
    Map<BlockMatcher, ReplacementFunction> policies =
        Fixtures.replacing(
            layer,
            (block, index) ->
                new SequentialBlock().add(block).add(Linear.builder().setUnits(2).build()));

    SurgeryPlan plan = ModuleSurgery.plan(root, policies, SurgeryOptions.defaults());

    assertEquals(1, plan.steps().size());
    SurgeryPlan.Step step = plan.steps().get(0);
    List<String> ownNames = layer.getParameters().keys();
    assertEquals(ownNames, step.kept().stream().map(PlannedParameter::name).toList());
    assertEquals(List.of(), step.removed());
    assertEquals(2, step.added().size(), "the new layer's weight and bias");
    Block stillThere = root.getChildren().valueAt(0);
    assertEquals(layer, stillThere, "a plan changes nothing");
  }
}
