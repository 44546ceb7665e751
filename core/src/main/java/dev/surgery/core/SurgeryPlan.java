package dev.surgery.core;

import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.util.Pair;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * What a surgery would do, computed without changing anything: one step per block it would replace,
 * with the parameters each step removes from and adds to the model.
 *
 * @param steps one step per replaced block, in replacement order
 * @param parametersBefore the number of parameter values (scalars) in the model now
 * @param parametersAfter the number the model would have after the surgery
 * @param inputShape the model input the steps' multiply-accumulate counts are for (batch axis
 *     first, counts per sample), or null when the plan was made without one
 */
public record SurgeryPlan(
    List<Step> steps, long parametersBefore, long parametersAfter, Shape inputShape) {

  /** Copies the steps. */
  public SurgeryPlan {
    steps = List.copyOf(steps);
  }

  /**
   * Creates a plan made without an input shape: every step's multiply-accumulates are unknown.
   *
   * @param steps one step per replaced block, in replacement order
   * @param parametersBefore the number of parameter values (scalars) in the model now
   * @param parametersAfter the number the model would have after the surgery
   */
  public SurgeryPlan(List<Step> steps, long parametersBefore, long parametersAfter) {
    this(steps, parametersBefore, parametersAfter, null);
  }

  /**
   * One block the surgery would replace (or, for an algorithm that changes blocks in place such as
   * layer freezing, change).
   *
   * @param path the block's stable path before surgery, as {@link BlockPaths#display} shows it
   * @param oldType the block's display type
   * @param newType the replacement's display type
   * @param removed parameters of the block that would leave the model
   * @param added parameters of the replacement that would join the model
   * @param macsBefore multiply-accumulates of one forward of the block per sample, or null when
   *     unknown (no input shape, or a type whose cost is not counted)
   * @param macsAfter the same for the replacement, or null when unknown
   */
  public record Step(
      String path,
      String oldType,
      String newType,
      List<PlannedParameter> removed,
      List<PlannedParameter> added,
      Long macsBefore,
      Long macsAfter) {

    /** Copies the lists. */
    public Step {
      removed = List.copyOf(removed);
      added = List.copyOf(added);
    }

    /**
     * Creates a step whose multiply-accumulates are unknown.
     *
     * @param path the block's stable path before surgery
     * @param oldType the block's display type
     * @param newType the replacement's display type
     * @param removed parameters of the block that would leave the model
     * @param added parameters of the replacement that would join the model
     */
    public Step(
        String path,
        String oldType,
        String newType,
        List<PlannedParameter> removed,
        List<PlannedParameter> added) {
      this(path, oldType, newType, removed, added, null, null);
    }

    /**
     * Returns the change in multiply-accumulates per sample, null when either side is unknown.
     *
     * @return {@code macsAfter - macsBefore}, or null
     */
    public Long macsChange() {
      return macsBefore == null || macsAfter == null ? null : macsAfter - macsBefore;
    }
  }

  /**
   * A parameter that a step removes or adds.
   *
   * @param name its name relative to its block, for example {@code weight}
   * @param shape its shape, or null when the model is not initialized
   */
  public record PlannedParameter(String name, Shape shape) {

    /**
     * Returns the number of values, 0 when the shape is unknown.
     *
     * @return the size
     */
    public long size() {
      return shape == null ? 0 : shape.size();
    }

    @Override
    public String toString() {
      return name + (shape == null ? "(?)" : shape.toString());
    }
  }

  /**
   * Tells whether the surgery would change nothing.
   *
   * @return true without steps
   */
  public boolean isEmpty() {
    return steps.isEmpty();
  }

  /**
   * Returns the change in multiply-accumulates per sample summed over the steps, null when the plan
   * has no input shape or any step's count is unknown.
   *
   * @return the total change, or null
   */
  public Long macsChange() {
    if (inputShape == null) {
      return null;
    }
    long total = 0;
    for (Step s : steps) {
      Long change = s.macsChange();
      if (change == null) {
        return null;
      }
      total += change;
    }
    return total;
  }

  /**
   * Formats the plan as a text table: one line per step with path, {@code old -> new} and the
   * parameters removed and added (and, for a plan made with an input shape, the
   * multiply-accumulates per sample before and after, {@code unknown} where not counted), then the
   * totals.
   *
   * @param title the first line, for example the algorithm and its settings
   * @return the table, lines separated by {@code \n}
   */
  public String toTable(String title) {
    StringBuilder sb = new StringBuilder(title).append('\n');
    int width = 4;
    for (Step s : steps) {
      width = Math.max(width, s.path().length());
    }
    String format = "  %-" + width + "s  %s -> %s%s%n";
    if (steps.isEmpty()) {
      sb.append("  (no block would change)\n");
    }
    for (Step s : steps) {
      String params =
          (s.removed().isEmpty() ? "" : "  -" + s.removed())
              + (s.added().isEmpty() ? "" : "  +" + s.added());
      if (inputShape != null) {
        params += "  MACs " + count(s.macsBefore()) + " -> " + count(s.macsAfter());
      }
      sb.append(String.format(Locale.ROOT, format, s.path(), s.oldType(), s.newType(), params));
    }
    sb.append(
        String.format(
            Locale.ROOT,
            "  parameters: %d -> %d (%+d)",
            parametersBefore,
            parametersAfter,
            parametersAfter - parametersBefore));
    if (inputShape != null) {
      Long change = macsChange();
      sb.append(
          String.format(
              Locale.ROOT,
              "%n  MACs per sample for input %s: %s",
              inputShape,
              change == null ? "unknown" : String.format(Locale.ROOT, "%+d", change)));
    }
    return sb.toString();
  }

  private static String count(Long macs) {
    return macs == null ? "unknown" : macs.toString();
  }

  /**
   * Returns this plan with each step's multiply-accumulates counted for a model input.
   *
   * @param replaced old block to new block, in the order of the steps
   * @param inputs block to its input shapes before the surgery ({@link MacCounter#inputShapes})
   * @param inputShape the model input the counts are for
   * @return the plan with counts, null where not computable
   */
  SurgeryPlan withMacs(Map<Block, Block> replaced, Map<Block, Shape[]> inputs, Shape inputShape) {
    List<Step> counted = new ArrayList<>(steps.size());
    int i = 0;
    for (Map.Entry<Block, Block> e : replaced.entrySet()) {
      Step s = steps.get(i++);
      // A replacement runs where the block ran, on the same input.
      Shape[] in = inputs.get(e.getKey());
      counted.add(
          new Step(
              s.path(),
              s.oldType(),
              s.newType(),
              s.removed(),
              s.added(),
              MacCounter.macs(e.getKey(), in),
              MacCounter.macs(e.getValue(), in)));
    }
    return new SurgeryPlan(counted, parametersBefore, parametersAfter, inputShape);
  }

  /**
   * Describes a surgery that has just been made (and is about to be undone).
   *
   * @param root the root, in its changed state
   * @param replaced old block to new block
   * @param before the parameters before the surgery
   * @param pathsBefore block to path before the surgery
   * @return the plan
   */
  static SurgeryPlan describe(
      Block root,
      Map<Block, Block> replaced,
      Set<Parameter> before,
      Map<Block, String> pathsBefore) {
    Set<Parameter> after = TreeSurgery.parametersOf(root);
    Map<Block, String> pathsAfter = null;
    List<Step> steps = new ArrayList<>(replaced.size());
    for (Map.Entry<Block, Block> e : replaced.entrySet()) {
      String path = pathsBefore.get(e.getKey());
      if (path == null) {
        // An intermediate replacement (recursion on replacements): it has only a path after.
        if (pathsAfter == null) {
          pathsAfter = BlockPaths.index(root);
        }
        path = pathsAfter.get(e.getValue());
      }
      steps.add(
          new Step(
              BlockPaths.display(path),
              BlockPaths.typeName(e.getKey()),
              BlockPaths.typeName(e.getValue()),
              parameters(e.getKey(), before, after),
              parameters(e.getValue(), after, before)));
    }
    return new SurgeryPlan(steps, scalars(before), scalars(after));
  }

  /** The parameters of {@code block} that are in {@code in} but not in {@code notIn}. */
  private static List<PlannedParameter> parameters(
      Block block, Set<Parameter> in, Set<Parameter> notIn) {
    List<PlannedParameter> out = new ArrayList<>();
    Set<Parameter> seen = Collections.newSetFromMap(new IdentityHashMap<>());
    for (Pair<String, Parameter> p : block.getParameters()) {
      Parameter parameter = p.getValue();
      if (seen.add(parameter) && in.contains(parameter) && !notIn.contains(parameter)) {
        out.add(new PlannedParameter(p.getKey(), parameter.getShape()));
      }
    }
    return out;
  }

  private static long scalars(Set<Parameter> parameters) {
    long total = 0;
    for (Parameter p : parameters) {
      Shape shape = p.getShape();
      if (shape != null) {
        total += shape.size();
      }
    }
    return total;
  }
}
