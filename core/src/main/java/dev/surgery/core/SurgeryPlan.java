package dev.surgery.core;

import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.Trainer;
import ai.djl.util.Pair;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * What a surgery would do, computed without changing anything: one step per block it would replace,
 * with the parameters each step removes from and adds to the model.
 *
 * @param steps one step per replaced block, in replacement order
 * @param parametersBefore the number of parameter values (scalars) in the model now, or {@link
 *     #UNKNOWN_PARAMETERS} when a parameter has no shape yet (the model is not initialized)
 * @param parametersAfter the number the model would have after the surgery, or {@link
 *     #UNKNOWN_PARAMETERS}
 * @param inputShape the model input the steps' multiply-accumulate counts are for (batch axis
 *     first, counts per sample), or null when the plan was made without one
 */
public record SurgeryPlan(
    List<Step> steps, long parametersBefore, long parametersAfter, Shape inputShape) {

  /**
   * The parameter total of a model whose parameters have no shapes yet: unknown, as {@code
   * SurgeryChanges.UNKNOWN_PARAMETERS} in an apply's report.
   */
  public static final long UNKNOWN_PARAMETERS = -1;

  /**
   * Copies the steps.
   *
   * @param steps one step per replaced block, in replacement order
   * @param parametersBefore the number of parameter values (scalars) in the model now, or {@link
   *     #UNKNOWN_PARAMETERS} when a parameter has no shape yet (the model is not initialized)
   * @param parametersAfter the number the model would have after the surgery, or {@link
   *     #UNKNOWN_PARAMETERS}
   * @param inputShape the model input the steps' multiply-accumulate counts are for (batch axis
   *     first, counts per sample), or null when the plan was made without one
   */
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
   * @param kept parameters of the block that would stay in the model: adopted by the replacement,
   *     or changed in place (frozen by layer freezing)
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
      List<PlannedParameter> kept,
      Long macsBefore,
      Long macsAfter) {

    /**
     * Copies the lists.
     *
     * @param path the block's stable path before surgery, as {@link BlockPaths#display} shows it
     * @param oldType the block's display type
     * @param newType the replacement's display type
     * @param removed parameters of the block that would leave the model
     * @param added parameters of the replacement that would join the model
     * @param kept parameters of the block that would stay in the model: adopted by the replacement,
     *     or changed in place (frozen by layer freezing)
     * @param macsBefore multiply-accumulates of one forward of the block per sample, or null when
     *     unknown (no input shape, or a type whose cost is not counted)
     * @param macsAfter the same for the replacement, or null when unknown
     */
    public Step {
      removed = List.copyOf(removed);
      added = List.copyOf(added);
      kept = List.copyOf(kept);
    }

    /**
     * Creates a step that keeps no parameter of the block.
     *
     * @param path the block's stable path before surgery
     * @param oldType the block's display type
     * @param newType the replacement's display type
     * @param removed parameters of the block that would leave the model
     * @param added parameters of the replacement that would join the model
     * @param macsBefore multiply-accumulates of the block per sample, or null when unknown
     * @param macsAfter the same for the replacement, or null when unknown
     */
    public Step(
        String path,
        String oldType,
        String newType,
        List<PlannedParameter> removed,
        List<PlannedParameter> added,
        Long macsBefore,
        Long macsAfter) {
      this(path, oldType, newType, removed, added, List.of(), macsBefore, macsAfter);
    }

    /**
     * Creates a step whose multiply-accumulates are unknown.
     *
     * @param path the block's stable path before surgery
     * @param oldType the block's display type
     * @param newType the replacement's display type
     * @param removed parameters of the block that would leave the model
     * @param added parameters of the replacement that would join the model
     * @param kept parameters of the block that would stay in the model
     */
    public Step(
        String path,
        String oldType,
        String newType,
        List<PlannedParameter> removed,
        List<PlannedParameter> added,
        List<PlannedParameter> kept) {
      this(path, oldType, newType, removed, added, kept, null, null);
    }

    /**
     * Creates a step whose multiply-accumulates are unknown and that keeps no parameter.
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
      this(path, oldType, newType, removed, added, List.of(), null, null);
    }

    /**
     * Returns the change in multiply-accumulates per sample, null when either side is unknown.
     *
     * @return {@code macsAfter - macsBefore}, or null
     */
    public Long macsChange() {
      return macsBefore == null || macsAfter == null ? null : macsAfter - macsBefore;
    }

    /**
     * Returns every parameter of the step: removed, added, then kept.
     *
     * @return a new list
     */
    public List<PlannedParameter> parameters() {
      List<PlannedParameter> all = new ArrayList<>(removed);
      all.addAll(added);
      all.addAll(kept);
      return all;
    }
  }

  /**
   * What the surgery would do to a parameter's optimizer state (moments, momentum, update count),
   * as the engine decides it for the trainers given to the plan.
   */
  public enum StateFate {
    /**
     * The state carries over: the replacement adopts the parameter, or a new parameter around the
     * same array takes over its store entry and state; training continues exactly.
     */
    MOVED,
    /** A parameter that leaves the model (or is frozen) and has state: the state is closed. */
    DROPPED,
    /**
     * An added trainable parameter: it starts with no state, as with a fresh optimizer (see {@link
     * PlannedParameter#bornExact()}).
     */
    FRESH,
    /**
     * No optimizer state is involved: the plan has no trainer (or none registered parameters yet),
     * or the parameter does not train and has no state.
     */
    NONE;

    /**
     * Returns the lower-case name used in tables and JSON, for example {@code moved}.
     *
     * @return the label
     */
    public String label() {
      return name().toLowerCase(Locale.ROOT);
    }
  }

  /**
   * A parameter that a step removes, adds or keeps, and what happens to its optimizer state.
   *
   * @param name its name relative to its block, for example {@code weight}
   * @param shape its shape, or null when the model is not initialized
   * @param state what the surgery does to its optimizer state
   * @param bornExact for a {@link StateFate#FRESH} parameter under DJL's Sgd, Adam or AdamW: the
   *     engine updates it exactly as a fresh optimizer started at step 0 would (Adam's bias
   *     correction of its own step count, the learning rate of the model's position; DJL alone
   *     would use the global step count for both); false otherwise
   */
  public record PlannedParameter(String name, Shape shape, StateFate state, boolean bornExact) {

    /**
     * Checks that only a fresh parameter is born exact.
     *
     * @param name its name relative to its block, for example {@code weight}
     * @param shape its shape, or null when the model is not initialized
     * @param state what the surgery does to its optimizer state
     * @param bornExact for a {@link StateFate#FRESH} parameter under DJL's Sgd, Adam or AdamW: the
     *     engine updates it exactly as a fresh optimizer started at step 0 would (Adam's bias
     *     correction of its own step count, the learning rate of the model's position; DJL alone
     *     would use the global step count for both); false otherwise
     */
    public PlannedParameter {
      if (state == null) {
        throw new IllegalArgumentException("state must not be null, use StateFate.NONE");
      }
      if (bornExact && state != StateFate.FRESH) {
        throw new IllegalArgumentException("only a FRESH parameter can be born exact");
      }
    }

    /**
     * Creates a parameter without optimizer state involved ({@link StateFate#NONE}).
     *
     * @param name its name relative to its block
     * @param shape its shape, or null when the model is not initialized
     */
    public PlannedParameter(String name, Shape shape) {
      this(name, shape, StateFate.NONE, false);
    }

    /**
     * Returns the number of values, 0 when the shape is unknown.
     *
     * @return the size
     */
    public long size() {
      return shape == null ? 0 : shape.size();
    }

    /**
     * Returns the state's label, {@code fresh exact} for a parameter born exact.
     *
     * @return for example {@code moved}
     */
    public String stateLabel() {
      return bornExact ? "fresh exact" : state.label();
    }

    /**
     * Shows the name and shape, and the state unless it is {@link StateFate#NONE}, for example
     * {@code weight(16, 16, 3, 3) moved}.
     *
     * @return the description
     */
    @Override
    public String toString() {
      return name
          + (shape == null ? "(?)" : shape.toString())
          + (state == StateFate.NONE ? "" : " " + stateLabel());
    }
  }

  /**
   * Counts the parameters of all steps by what happens to their optimizer state.
   *
   * @return state to count, every state present (0 where none)
   */
  public Map<StateFate, Integer> stateCounts() {
    Map<StateFate, Integer> counts = new EnumMap<>(StateFate.class);
    for (StateFate f : StateFate.values()) {
      counts.put(f, 0);
    }
    for (Step s : steps) {
      for (PlannedParameter p : s.parameters()) {
        counts.merge(p.state(), 1, Integer::sum);
      }
    }
    return counts;
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
   * parameters removed ({@code -[...]}), added ({@code +[...]}) and kept ({@code =[...]}), each
   * with what happens to its optimizer state unless none is involved ({@code weight(16, 16, 3, 3)
   * dropped}; see {@link PlannedParameter#toString}), and, for a plan made with an input shape, the
   * multiply-accumulates per sample before and after ({@code unknown} where not counted); then the
   * totals, with a count per optimizer-state fate when a trainer is involved.
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
    String format = "  %-" + width + "s  %s -> %s%s\n";
    int exact = 0;
    if (steps.isEmpty()) {
      sb.append("  (no block would change)\n");
    }
    for (Step s : steps) {
      String params =
          (s.removed().isEmpty() ? "" : "  -" + s.removed())
              + (s.added().isEmpty() ? "" : "  +" + s.added())
              + (s.kept().isEmpty() ? "" : "  =" + s.kept());
      for (PlannedParameter p : s.added()) {
        exact += p.bornExact() ? 1 : 0;
      }
      if (inputShape != null) {
        params += "  MACs " + count(s.macsBefore()) + " -> " + count(s.macsAfter());
      }
      sb.append(String.format(Locale.ROOT, format, s.path(), s.oldType(), s.newType(), params));
    }
    sb.append(
        parametersKnown()
            ? String.format(
                Locale.ROOT,
                "  parameters: %d -> %d (%+d)",
                parametersBefore,
                parametersAfter,
                parametersAfter - parametersBefore)
            : "  parameters: unknown (parameters without shapes: the model is not initialized)");
    Map<StateFate, Integer> counts = stateCounts();
    if (counts.get(StateFate.NONE) < counts.values().stream().mapToInt(Integer::intValue).sum()) {
      sb.append(
          String.format(
              Locale.ROOT,
              "\n  optimizer state: %d moved, %d dropped, %d fresh (%d born exact), %d none",
              counts.get(StateFate.MOVED),
              counts.get(StateFate.DROPPED),
              counts.get(StateFate.FRESH),
              exact,
              counts.get(StateFate.NONE)));
    }
    if (inputShape != null) {
      Long change = macsChange();
      sb.append(
          String.format(
              Locale.ROOT,
              "\n  MACs per sample for input %s: %s",
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
  SurgeryPlan withMacs(Map<Block, Block> replaced, MacCounter.Reached inputs, Shape inputShape) {
    List<Step> counted = new ArrayList<>(steps.size());
    int i = 0;
    for (Map.Entry<Block, Block> e : replaced.entrySet()) {
      Step s = steps.get(i++);
      // A replacement runs where the block ran, on the same input, at every place it was held.
      counted.add(
          new Step(
              s.path(),
              s.oldType(),
              s.newType(),
              s.removed(),
              s.added(),
              s.kept(),
              MacCounter.macsAtEveryPlace(e.getKey(), inputs, e.getKey()),
              MacCounter.macsAtEveryPlace(e.getValue(), inputs, e.getKey())));
    }
    return new SurgeryPlan(counted, parametersBefore, parametersAfter, inputShape);
  }

  /**
   * Describes a surgery that has just been made (and is about to be undone), with what an apply
   * would do to each parameter's optimizer state in the given trainers ({@link StateFates}).
   *
   * @param root the root, in its changed state
   * @param replaced old block to new block
   * @param before the parameters before the surgery
   * @param pathsBefore block to path before the surgery
   * @param owners each replacement parameter's block path, as the apply's errors name it
   * @param trainers the trainers an apply would update; only read
   * @return the plan
   */
  static SurgeryPlan describe(
      Block root,
      Map<Block, Block> replaced,
      Set<Parameter> before,
      Map<Block, String> pathsBefore,
      Map<Parameter, String> owners,
      List<Trainer> trainers) {
    Set<Parameter> after = BlockTrees.parametersOf(root);
    // The engine's removed and added lists: the differences of the parameters before and after.
    // Under recursion a replacement may be replaced again (by one that adopts its parameters, or
    // by another): a parameter joins the model once, at the last step whose replacement holds it
    // (an earlier wrapper that holds the later replacement lists it no more), and one the model
    // had leaves it, or stays, once: at the first step whose old block holds it.
    int count = replaced.size();
    List<Set<Parameter>> removedAt = new ArrayList<>(count);
    List<Set<Parameter>> addedAt = new ArrayList<>(count);
    List<Set<Parameter>> keptAt = new ArrayList<>(count);
    Set<Parameter> removed = new LinkedHashSet<>();
    Set<Parameter> added = new LinkedHashSet<>();
    Set<Parameter> kept = new LinkedHashSet<>();
    Map<Parameter, Integer> lastHolder = new IdentityHashMap<>();
    Map<Parameter, Integer> firstHolder = new IdentityHashMap<>();
    for (Map.Entry<Block, Block> e : replaced.entrySet()) {
      int step = removedAt.size();
      Set<Parameter> leaving = parameters(e.getKey(), before, after);
      Set<Parameter> joining = parameters(e.getValue(), after, before);
      Set<Parameter> staying = keptParameters(e.getKey(), e.getValue(), before, after);
      removedAt.add(leaving);
      addedAt.add(joining);
      keptAt.add(staying);
      removed.addAll(leaving);
      added.addAll(joining);
      kept.addAll(staying);
      joining.forEach(p -> lastHolder.put(p, step));
      leaving.forEach(p -> firstHolder.putIfAbsent(p, step));
      staying.forEach(p -> firstHolder.putIfAbsent(p, step));
    }
    StillUsed elsewhere = StillUsed.of(root, trainers, removed, added);
    Map<Parameter, StateFates.Fate> fates =
        StateFates.of(
            new ArrayList<>(removed), new ArrayList<>(added), kept, trainers, owners, elsewhere);
    Map<Block, String> pathsAfter = null;
    List<Step> steps = new ArrayList<>(count);
    int stepIndex = -1;
    for (Map.Entry<Block, Block> e : replaced.entrySet()) {
      int here = ++stepIndex;
      String path = pathsBefore.get(e.getKey());
      if (path == null) {
        // An intermediate replacement (recursion on replacements): it has only a path after.
        if (pathsAfter == null) {
          pathsAfter = BlockPaths.index(root);
        }
        path = pathsAfter.get(e.getValue());
      }
      // (The per-step sets are this loop's own: the unions above were taken already.)
      Set<Parameter> keptHere = keptAt.get(here);
      Set<Parameter> addedHere = addedAt.get(here);
      Set<Parameter> removedHere = removedAt.get(here);
      addedHere.removeIf(p -> lastHolder.get(p) != here);
      removedHere.removeIf(p -> firstHolder.get(p) != here);
      keptHere.removeIf(p -> firstHolder.get(p) != here);
      steps.add(
          new Step(
              BlockPaths.display(path),
              BlockPaths.typeName(e.getKey()),
              BlockPaths.typeName(e.getValue()),
              planned(e.getKey(), removedHere, fates),
              planned(e.getValue(), addedHere, fates),
              planned(e.getKey(), keptHere, fates)));
    }
    return new SurgeryPlan(steps, scalars(before), scalars(after));
  }

  /**
   * The parameters of {@code block} that are in {@code in} but not in {@code notIn}, each once, in
   * the block's order.
   */
  private static Set<Parameter> parameters(Block block, Set<Parameter> in, Set<Parameter> notIn) {
    Set<Parameter> out = new LinkedHashSet<>();
    for (Pair<String, Parameter> p : block.getParameters()) {
      Parameter parameter = p.getValue();
      if (in.contains(parameter) && !notIn.contains(parameter)) {
        out.add(parameter);
      }
    }
    return out;
  }

  /**
   * The parameters of a replaced block that stay in the model; none when the block changed in place
   * (a policy that returned the block itself keeps everything, and says nothing new).
   */
  private static Set<Parameter> keptParameters(
      Block old, Block replacement, Set<Parameter> before, Set<Parameter> after) {
    if (old == replacement) {
      return new LinkedHashSet<>();
    }
    Set<Parameter> out = new LinkedHashSet<>();
    for (Pair<String, Parameter> p : old.getParameters()) {
      if (before.contains(p.getValue()) && after.contains(p.getValue())) {
        out.add(p.getValue());
      }
    }
    return out;
  }

  /** The planned form of some parameters of a block, named as the block names them. */
  private static List<PlannedParameter> planned(
      Block block, Set<Parameter> chosen, Map<Parameter, StateFates.Fate> fates) {
    List<PlannedParameter> out = new ArrayList<>();
    Set<Parameter> seen = Collections.newSetFromMap(new IdentityHashMap<>());
    for (Pair<String, Parameter> p : block.getParameters()) {
      Parameter parameter = p.getValue();
      if (chosen.contains(parameter) && seen.add(parameter)) {
        StateFates.Fate fate = fates.getOrDefault(parameter, StateFates.Fate.NONE);
        out.add(
            new PlannedParameter(p.getKey(), shapeOf(parameter), fate.state(), fate.bornExact()));
      }
    }
    return out;
  }

  /**
   * A parameter's shape: DJL's, or its array's for a parameter given an array without a shape (a
   * new {@code Parameter} set around an existing array); null when it has neither.
   */
  private static Shape shapeOf(Parameter p) {
    return BlockInspector.shapeOf(p);
  }

  /** The parameter values of a model, or unknown when a parameter has no shape yet. */
  private static long scalars(Set<Parameter> parameters) {
    long total = 0;
    for (Parameter p : parameters) {
      Shape shape = shapeOf(p);
      if (shape == null) {
        return UNKNOWN_PARAMETERS; // not initialized: unknown, not 0, as an apply reports it
      }
      total += shape.size();
    }
    return total;
  }

  /**
   * Tells whether both parameter totals are known: a plan of a model that is not initialized has
   * parameters without shapes, whose number of values is unknown ({@link #UNKNOWN_PARAMETERS}).
   *
   * @return true when {@code parametersBefore} and {@code parametersAfter} are counts
   */
  public boolean parametersKnown() {
    return parametersBefore != UNKNOWN_PARAMETERS && parametersAfter != UNKNOWN_PARAMETERS;
  }
}
