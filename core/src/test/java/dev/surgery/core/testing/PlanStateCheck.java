package dev.surgery.core.testing;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.util.Pair;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.SurgeryPlan;
import dev.surgery.core.SurgeryPlan.PlannedParameter;
import dev.surgery.core.SurgeryPlan.StateFate;
import dev.surgery.core.internal.BirthAwareOptimizer;
import dev.surgery.core.internal.DjlOptimizers;
import dev.surgery.core.internal.DjlTrainers;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.function.Supplier;

/**
 * Checks that the optimizer-state column of a plan is what the apply does, on a model and its live
 * trainer. {@link #plan} copies the model and the trainer ({@link Snapshot}), plans, checks that
 * the plan changed neither, and finds every parameter the plan removes or keeps in the model;
 * {@link #applied} (after the apply) finds the added ones in the replacements and checks each
 * parameter's fate; {@link #nextStep} trains one more step and checks how the fresh ones start.
 *
 * <p>A parameter's state is its optimizer arrays (every field and device, bit for bit) and its
 * update count. MOVED: the state is where the parameter now is (under the id of the parameter that
 * takes over the array, for a removed one); DROPPED: gone; FRESH: none yet, a birth mark exactly
 * when the plan says "born exact", and after the next step the state of a first step from zero and,
 * born exact, the weight of a fresh optimizer's first update; NONE: none before, after, nor after
 * the next step. A trainable parameter that no step has updated since its trainer registered it (or
 * since a surgery added it) has no state yet: MOVED and DROPPED move or drop that nothing. The ids
 * holding state after the apply are exactly those the plan accounts for, and every state the plan
 * does not name is untouched; birth marks move and go with the state.
 */
public final class PlanStateCheck {

  /** A parameter the plan names, found in the model. */
  private record Claim(
      String role, String step, String where, Parameter parameter, PlannedParameter planned) {}

  private final String title;
  private final Block model;
  private final Trainer trainer;
  private final Optimizer optimizer;
  private final SurgeryPlan plan;
  private final OptimizerCopy before;
  private final Map<String, Integer> birthsBefore;
  private final Set<String> storeBefore;
  private final Set<String> trainedBefore = new HashSet<>();
  private final List<Claim> claims = new ArrayList<>();
  private final Map<SurgeryPlan.Step, Block> parents = new LinkedHashMap<>();
  private final Map<SurgeryPlan.Step, Integer> positions = new HashMap<>();
  private int fresh;
  private int rekeyed;
  private int notYetUpdated;
  private boolean applied;

  private PlanStateCheck(
      String title, Block model, Trainer trainer, SurgeryPlan plan, Snapshot snapshot) {
    this.title = title;
    this.model = model;
    this.trainer = trainer;
    this.optimizer = DjlTrainers.optimizer(trainer);
    this.plan = plan;
    this.before = snapshot.optimizer;
    this.birthsBefore = snapshot.births;
    this.storeBefore = snapshot.store.keySet();
    for (int i = 0; i < snapshot.parameters.size(); i++) {
      if (snapshot.trains.get(i)) {
        trainedBefore.add(snapshot.parameters.get(i).getValue().getId());
      }
    }
  }

  /**
   * Plans, checks that the plan left the model and the trainer as they were, and finds every
   * parameter the plan removes or keeps in the model. A plan that throws leaves them as they were
   * too.
   *
   * @param title names the surgery in messages
   * @param model the model (the root block the plan's paths start from)
   * @param trainer the model's trainer, which registered its parameters
   * @param planner makes the plan
   * @return the check, to call {@link #applied} on once the surgery applied
   */
  public static PlanStateCheck plan(
      String title, Block model, Trainer trainer, Supplier<SurgeryPlan> planner) {
    Snapshot snapshot = Snapshot.of(model, trainer);
    SurgeryPlan plan;
    try {
      plan = planner.get();
    } finally {
      snapshot.assertUnchanged("the plan of " + title);
    }
    PlanStateCheck check = new PlanStateCheck(title, model, trainer, plan, snapshot);
    check.findRemovedAndKept();
    return check;
  }

  /**
   * The plan.
   *
   * @return what {@link #plan} planned
   */
  public SurgeryPlan plan() {
    return plan;
  }

  /**
   * The plan as a table, titled.
   *
   * @return the table
   */
  public String table() {
    return plan.toTable(title);
  }

  /**
   * The added parameters that start fresh.
   *
   * @return how many the plan names FRESH
   */
  public int fresh() {
    return fresh;
  }

  /**
   * The removed parameters whose state moved to a new parameter around the same array.
   *
   * @return how many moved to a new id
   */
  public int rekeyed() {
    return rekeyed;
  }

  /**
   * The parameters the plan says MOVED or DROPPED that had no state to move or drop: trainable ones
   * no step has updated yet.
   *
   * @return how many
   */
  public int notYetUpdated() {
    return notYetUpdated;
  }

  private void findRemovedAndKept() {
    // Where each step's block sits, to find its replacement after the apply.
    Map<String, Block> byPath = new HashMap<>();
    BlockPaths.index(model).forEach((b, p) -> byPath.put(BlockPaths.display(p), b));
    for (SurgeryPlan.Step s : plan.steps()) {
      Block old = byPath.get(s.path());
      assertNotNull(old, s.path() + " in\n" + table());
      Map<String, Parameter> params = named(old);
      for (PlannedParameter p : s.removed()) {
        claims.add(claim("removed", s, params, p));
      }
      for (PlannedParameter p : s.kept()) {
        claims.add(claim("kept", s, params, p));
      }
      int slash = s.path().lastIndexOf('/');
      Block parent = slash < 0 ? model : byPath.get(s.path().substring(0, slash));
      parents.put(s, parent);
      positions.put(s, BlockPaths.children(parent).values().indexOf(old));
    }
  }

  /** After the apply: each parameter's state is what the plan says, and nothing else changed. */
  public void applied() {
    applied = true;
    for (SurgeryPlan.Step s : plan.steps()) {
      if (s.added().isEmpty()) {
        continue;
      }
      Block replacement = BlockPaths.children(parents.get(s)).values().get(positions.get(s));
      Map<String, Parameter> params = named(replacement);
      for (PlannedParameter p : s.added()) {
        claims.add(claim("added", s, params, p));
      }
    }
    OptimizerCopy after = OptimizerCopy.of(optimizer);
    BirthAwareOptimizer births = DjlTrainers.birthAwareOptimizer(trainer, false);
    Set<String> expectedIds = before.ids();
    Map<String, Integer> expectedBirths = new TreeMap<>(birthsBefore);
    Map<String, String> movedTo = new HashMap<>(); // old id -> id now holding its state
    for (Claim c : claims) {
      String id = c.parameter().getId();
      StateFate fate = c.planned().state();
      String what = c.role() + " " + c.where() + " " + fate + " in\n" + table();
      switch (c.role() + "/" + fate) {
        case "kept/MOVED":
          assertTrue(before.has(id) || excusedAsUnstepped(c), what);
          carried(id, after, id, what);
          movedTo.put(id, id);
          break;
        case "removed/MOVED":
          {
            Claim heir = heirOf(c);
            assertNotNull(heir, "no added parameter of the step takes over " + what);
            String newId = heir.parameter().getId();
            assertTrue(before.has(id) || excusedAsUnstepped(c), what);
            carried(id, after, newId, what);
            assertFalse(after.has(id), what);
            expectedIds.remove(id);
            expectedIds.add(newId);
            Integer mark = expectedBirths.remove(id);
            if (mark != null) {
              expectedBirths.put(newId, mark);
            }
            movedTo.put(id, newId);
            rekeyed++;
            break;
          }
        case "added/MOVED":
          assertNotNull(heirOf(c), "nothing moves into " + what);
          break;
        case "removed/DROPPED":
        case "kept/DROPPED":
          assertTrue(before.has(id) || excusedAsUnstepped(c), "nothing to drop: " + what);
          assertFalse(after.arrays.containsKey(id), what);
          assertFalse(after.counts.containsKey(id), what);
          expectedIds.remove(id);
          expectedBirths.remove(id);
          break;
        case "added/FRESH":
          fresh++;
          assertTrue(c.parameter().requiresGradient(), what);
          assertFalse(after.arrays.containsKey(id), what);
          assertFalse(after.counts.containsKey(id), what);
          Integer birth = births == null ? null : births.birthOf(id);
          assertEquals(c.planned().bornExact(), birth != null, "birth mark of " + what);
          if (birth != null) {
            expectedBirths.put(id, birth);
          }
          break;
        case "removed/NONE":
        case "kept/NONE":
        case "added/NONE":
          assertFalse(before.has(id), what);
          assertFalse(after.has(id), what);
          assertTrue(births == null || births.birthOf(id) == null, what);
          break;
        default:
          throw new AssertionError("a plan cannot say " + what);
      }
    }
    // Nothing the plan does not name changed: the same ids hold state, untouched.
    assertEquals(new TreeSet<>(expectedIds), after.ids(), "ids with state after\n" + table());
    for (String id : before.ids()) {
      String now = movedTo.getOrDefault(id, id);
      if (after.has(now)) {
        before.assertSameAs(id, after, now, id + " untouched by\n" + table());
      }
    }
    // Birth marks move with the state and go with it; the born exact get theirs.
    Set<String> ids = new TreeSet<>(birthsBefore.keySet());
    ids.addAll(after.ids());
    ids.addAll(DjlTrainers.storeEntries(DjlTrainers.parameterStore(trainer)).keySet());
    claims.forEach(c -> ids.add(c.parameter().getId()));
    assertEquals(expectedBirths, marks(births, ids), "birth marks after\n" + table());
  }

  /**
   * Whether a parameter the plan says MOVED or DROPPED may have no state: it trained and its
   * trainer held it, but no step has updated it yet (none since the trainer registered it, or since
   * a surgery added it): its empty state is what moves or goes. Asked only where the state is
   * missing (after {@code before.has(id) ||}); each excuse is counted in {@link #notYetUpdated}.
   */
  private boolean excusedAsUnstepped(Claim c) {
    String id = c.parameter().getId();
    boolean unstepped = trainedBefore.contains(id) && storeBefore.contains(id) && !before.has(id);
    notYetUpdated += unstepped ? 1 : 0;
    return unstepped;
  }

  /** The state of {@code id} before is that of {@code now} after, none where there was none. */
  private void carried(String id, OptimizerCopy after, String now, String what) {
    if (before.has(id)) {
      before.assertSameAs(id, after, now, what);
    } else {
      assertFalse(after.has(now), "state from nowhere: " + what);
    }
  }

  private static Map<String, Integer> marks(BirthAwareOptimizer births, Set<String> ids) {
    Map<String, Integer> marks = new TreeMap<>();
    for (String id : ids) {
      Integer birth = births == null ? null : births.birthOf(id);
      if (birth != null) {
        marks.put(id, birth);
      }
    }
    return marks;
  }

  /**
   * One more training step on a batch: a fresh parameter starts from zero state (after the step its
   * update count is 1 and its moments or momentum those of a first step from zero; a born exact one
   * moves as under a fresh optimizer), a moved one that trains is updated where its state now is
   * (one more update counted), a NONE one and a frozen one get none, a removed one none under its
   * id.
   *
   * @param x the batch's input
   * @param y its labels
   * @param kind the optimizer's kind; SGD's momentum and Adam's (AdamW's) moments are checked
   */
  public void nextStep(NDArray x, NDArray y, OptimizerKind kind) {
    assertTrue(applied, "applied() first");
    Map<String, float[]> gradients = new HashMap<>();
    Map<String, float[]> weights = new HashMap<>();
    try (GradientCollector gc = trainer.newGradientCollector()) {
      NDList out = trainer.forward(new NDList(x));
      gc.backward(trainer.getLoss().evaluate(new NDList(y), out));
    }
    for (Claim c : claims) {
      if (c.planned().state() == StateFate.FRESH) {
        NDArray array = c.parameter().getArray();
        gradients.put(c.parameter().getId(), array.getGradient().toFloatArray());
        weights.put(c.parameter().getId(), array.toFloatArray());
      }
    }
    OptimizerCopy beforeStep = OptimizerCopy.of(optimizer);
    trainer.step();
    OptimizerCopy next = OptimizerCopy.of(optimizer);
    Set<String> inModel = new HashSet<>();
    for (Pair<String, Parameter> p : model.getParameters()) {
      inModel.add(p.getValue().getId());
    }
    for (Claim c : claims) {
      String id = c.parameter().getId();
      StateFate fate = c.planned().state();
      String what = "state after the next step: " + c + " in\n" + table();
      if (fate == StateFate.NONE || c.role().equals("kept") && fate == StateFate.DROPPED) {
        assertFalse(next.has(id), what);
      }
      if (c.role().equals("removed") && !inModel.contains(id)) {
        assertFalse(next.has(id), what);
      }
      if (fate == StateFate.MOVED
          && !c.role().equals("removed")
          && inModel.contains(id)
          && c.parameter().requiresGradient()) {
        // Where the state moved to, the trainer goes on updating it: one more update counted.
        int counted = beforeStep.counts.getOrDefault(id, 0);
        assertEquals(counted + 1, next.counts.get(id), "update count " + what);
      }
      if (fate == StateFate.FRESH) {
        assertEquals(1, next.counts.get(id), "update count " + what);
        firstStepState(kind, gradients.get(id), weights.get(id), next.arrays.get(id), what);
        if (c.planned().bornExact()) {
          float[] now = c.parameter().getArray().toFloatArray();
          firstStep(
              kind, gradients.get(id), weights.get(id), now, "weight of the born exact " + what);
        }
      }
    }
  }

  /**
   * A born exact parameter's first update is that of a fresh optimizer at step 1: Adam's bias
   * correction of step 1, {@code w - lr m / (sqrt(v) + eps)} with {@code m = g}, {@code v = g^2}
   * (AdamW first decays {@code w} by {@code lr wd}); SGD's {@code w - lr (g + wd w)}. At DJL's
   * global step instead, Adam's step would be a fraction of the learning rate.
   */
  private static void firstStep(
      OptimizerKind kind, float[] g, float[] w, float[] now, String what) {
    for (int i = 0; i < g.length; i++) {
      double expected =
          switch (kind) {
            case ADAM -> w[i] - 0.01 * g[i] / (Math.abs(g[i]) + 1e-8 / Math.sqrt(0.001));
            case ADAM_RATE_PER_ID ->
                w[i] - RatesById.DEFAULT * g[i] / (Math.abs(g[i]) + 1e-8 / Math.sqrt(0.001));
            case ADAMW ->
                w[i] * (1 - 0.01 * 0.05) - 0.01 * g[i] / (Math.abs(g[i]) + 1e-8 / Math.sqrt(0.001));
            case SGD -> w[i] - 0.05 * g[i];
            case SGD_MOMENTUM -> w[i] - 0.05 * (g[i] + 1e-3 * w[i]);
            case SGD_MOMENTUM_RATE_PER_ID -> w[i] - RatesById.DEFAULT * g[i];
            case USER -> throw new AssertionError("the user optimizer has no stand-in: " + what);
          };
      assertEquals(expected, now[i], 1e-6 + 1e-5 * Math.abs(expected), i + ": " + what);
    }
  }

  /**
   * DJL's kernels on zero state: Adam's and AdamW's moments {@code (1 - beta1) g} and {@code (1 -
   * beta2) g^2} (AdamW decays the weight, not the gradient); SGD's momentum {@code lr (g + wd w)}
   * (a new id's rate under a per-id tracker); plain SGD keeps no arrays; the user optimizer's
   * velocity {@code g}.
   */
  private static void firstStepState(
      OptimizerKind kind, float[] g, float[] w, Map<String, float[]> state, String what) {
    switch (kind) {
      case ADAM, ADAMW, ADAM_RATE_PER_ID -> {
        float[] m = only(state, "means");
        float[] v = only(state, "variances");
        for (int i = 0; i < g.length; i++) {
          assertEquals(0.1f * g[i], m[i], 1e-6f + 1e-5f * Math.abs(g[i]), what);
          assertEquals(0.001f * g[i] * g[i], v[i], 1e-9f + 1e-5f * g[i] * g[i], what);
        }
      }
      case SGD_MOMENTUM -> momentum(0.05f, 1e-3f, g, w, only(state, "momentumStates"), what);
      case SGD_MOMENTUM_RATE_PER_ID ->
          momentum(RatesById.DEFAULT, 0, g, w, only(state, "momentumStates"), what);
      case USER -> assertArrayEquals(g, only(state, "velocities"), what);
      case SGD -> assertTrue(state == null || state.isEmpty(), what);
    }
  }

  /** SGD's momentum after one step from zero: {@code lr (g + wd w)} (a new id's rate). */
  private static void momentum(
      float lr, float wd, float[] g, float[] w, float[] momentum, String what) {
    for (int i = 0; i < g.length; i++) {
      float expected = lr * (g[i] + wd * w[i]);
      assertEquals(expected, momentum[i], 1e-7f + 1e-5f * Math.abs(expected), what);
    }
  }

  /** The added parameter of the same step around the same array as a removed one, or back. */
  private Claim heirOf(Claim c) {
    for (Claim other : claims) {
      if (other != c
          && other.step().equals(c.step())
          && !other.role().equals(c.role())
          && !other.role().equals("kept")
          && other.planned().state() == StateFate.MOVED
          && other.parameter().getArray() == c.parameter().getArray()) {
        return other;
      }
    }
    return null;
  }

  private Claim claim(
      String role, SurgeryPlan.Step s, Map<String, Parameter> params, PlannedParameter p) {
    Parameter parameter = params.get(p.name());
    assertNotNull(
        parameter,
        role + " " + s.path() + " " + p.name() + " not in " + params.keySet() + " of\n" + table());
    assertEquals(String.valueOf(parameter.getShape()), String.valueOf(p.shape()), table());
    return new Claim(role, s.path(), s.path() + " " + p.name(), parameter, p);
  }

  private static Map<String, Parameter> named(Block block) {
    Map<String, Parameter> out = new LinkedHashMap<>();
    for (Pair<String, Parameter> p : block.getParameters()) {
      out.putIfAbsent(p.getKey(), p.getValue());
    }
    return out;
  }

  private static float[] only(Map<String, float[]> state, String field) {
    assertNotNull(state, "no state");
    for (Map.Entry<String, float[]> e : state.entrySet()) {
      if (e.getKey().contains("." + field + "@")) {
        return e.getValue();
      }
    }
    throw new AssertionError("no " + field + " in " + state.keySet());
  }

  /**
   * An optimizer's per-parameter state, copied: parameter id to state field and device to a bitwise
   * copy, and the update counts.
   */
  private record OptimizerCopy(
      Map<String, Map<String, float[]>> arrays, Map<String, Integer> counts, int global) {

    static OptimizerCopy of(Optimizer optimizer) {
      Map<String, Map<String, float[]>> arrays = new TreeMap<>();
      for (Map.Entry<String, Map<String, Map<Device, NDArray>>> field :
          DjlOptimizers.optimizerStates(optimizer).entrySet()) {
        for (Map.Entry<String, Map<Device, NDArray>> e : field.getValue().entrySet()) {
          for (Map.Entry<Device, NDArray> d : e.getValue().entrySet()) {
            arrays
                .computeIfAbsent(e.getKey(), k -> new TreeMap<>())
                .put(field.getKey() + "@" + d.getKey(), d.getValue().toFloatArray());
          }
        }
      }
      return new OptimizerCopy(
          arrays,
          new TreeMap<>(DjlOptimizers.updateCounts(optimizer)),
          DjlOptimizers.globalUpdateCount(optimizer));
    }

    /** Every id with state arrays or an update count. */
    TreeSet<String> ids() {
      TreeSet<String> ids = new TreeSet<>(arrays.keySet());
      ids.addAll(counts.keySet());
      return ids;
    }

    boolean has(String id) {
      return arrays.containsKey(id) || counts.containsKey(id);
    }

    /** The state of {@code id} here is, bit for bit, that of {@code otherId} in {@code other}. */
    void assertSameAs(String id, OptimizerCopy other, String otherId, String what) {
      assertTrue(other.has(otherId), "state gone: " + what);
      assertEquals(counts.get(id), other.counts.get(otherId), "update count " + what);
      Map<String, float[]> expected = arrays.getOrDefault(id, Map.of());
      Map<String, float[]> actual = other.arrays.getOrDefault(otherId, Map.of());
      assertEquals(expected.keySet(), actual.keySet(), what);
      for (Map.Entry<String, float[]> e : expected.entrySet()) {
        assertArrayEquals(e.getValue(), actual.get(e.getKey()), e.getKey() + " " + what);
      }
    }

    void assertSameAs(OptimizerCopy other, String what) {
      assertEquals(ids(), other.ids(), "ids with state: " + what);
      for (String id : ids()) {
        assertSameAs(id, other, id, what);
      }
      assertEquals(global, other.global, "global update count: " + what);
    }
  }

  /**
   * A model and its trainer as they are: the structure; every parameter object, whether it trains
   * and its values, bit for bit; the optimizer's state and counts; the parameter store's entries
   * (entry, parameter and device arrays, by identity); the birth-aware stand-in and its marks.
   */
  public static final class Snapshot {
    private final Block model;
    private final Trainer trainer;
    private final String structure;
    private final List<Pair<String, Parameter>> parameters = new ArrayList<>();
    private final List<Boolean> trains = new ArrayList<>();
    private final List<float[]> values = new ArrayList<>();
    private final OptimizerCopy optimizer;
    private final Map<String, List<Object>> store = new TreeMap<>();
    private final BirthAwareOptimizer standIn;
    private final Map<String, Integer> births;

    private Snapshot(Block model, Trainer trainer) {
      this.model = model;
      this.trainer = trainer;
      this.structure = model.toString();
      for (Pair<String, Parameter> p : model.getParameters()) {
        parameters.add(p);
        trains.add(p.getValue().requiresGradient());
        values.add(p.getValue().getArray().toFloatArray());
      }
      this.optimizer = OptimizerCopy.of(DjlTrainers.optimizer(trainer));
      for (Map.Entry<String, Object> e :
          DjlTrainers.storeEntries(DjlTrainers.parameterStore(trainer)).entrySet()) {
        List<Object> held = new ArrayList<>();
        held.add(e.getValue());
        held.add(DjlTrainers.entryParameter(e.getValue()));
        held.addAll(DjlTrainers.mirrors(e.getValue()));
        store.put(e.getKey(), held);
      }
      this.standIn = DjlTrainers.birthAwareOptimizer(trainer, false);
      Set<String> ids = new TreeSet<>(store.keySet());
      ids.addAll(optimizer.ids());
      this.births = marks(standIn, ids);
    }

    /**
     * Copies a model and its trainer.
     *
     * @param model the model
     * @param trainer its trainer
     * @return the copy
     */
    public static Snapshot of(Block model, Trainer trainer) {
      return new Snapshot(model, trainer);
    }

    /**
     * Checks that the model and the trainer are as they were.
     *
     * @param what names what must have left them so, in messages
     */
    public void assertUnchanged(String what) {
      Snapshot now = new Snapshot(model, trainer);
      assertEquals(structure, now.structure, "structure after " + what);
      assertEquals(parameters.size(), now.parameters.size(), "parameters after " + what);
      for (int i = 0; i < parameters.size(); i++) {
        String key = parameters.get(i).getKey();
        String where = key + " after " + what;
        assertEquals(key, now.parameters.get(i).getKey(), "parameter after " + what);
        assertSame(parameters.get(i).getValue(), now.parameters.get(i).getValue(), where);
        assertEquals(trains.get(i), now.trains.get(i), "trains: " + where);
        assertArrayEquals(values.get(i), now.values.get(i), where);
      }
      optimizer.assertSameAs(now.optimizer, "optimizer after " + what);
      assertEquals(store.keySet(), now.store.keySet(), "store after " + what);
      for (Map.Entry<String, List<Object>> e : store.entrySet()) {
        List<Object> held = now.store.get(e.getKey());
        assertEquals(e.getValue().size(), held.size(), "store entry " + e.getKey() + ": " + what);
        for (int i = 0; i < held.size(); i++) {
          assertSame(e.getValue().get(i), held.get(i), "store entry " + e.getKey() + ": " + what);
        }
      }
      assertSame(standIn, now.standIn, "birth-aware stand-in after " + what);
      assertEquals(births, now.births, "birth marks after " + what);
    }
  }
}
