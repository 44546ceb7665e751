package dev.surgery.core.testing;

import static org.junit.jupiter.api.Assertions.assertAll;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.nn.pooling.Pool;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.ParameterTracker;
import ai.djl.training.tracker.Tracker;
import ai.djl.util.Pair;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

/**
 * A plain-Java, double-precision oracle of DJL 0.36.0's Adam, AdamW and SGD-momentum updates for
 * any model (convolutions, batch norms, the built-in algorithms' layers), fed the gradients DJL
 * computed (read after backward, before {@code step}), with weight decay taken on DJL's weights
 * before the step. It grew out of an outside probe's {@code LongTrajectoryPlainJavaOracleTest},
 * which uses it now (formulas from DJL's {@code Adam}, {@code Sgd}, {@code Optimizer.updateCount}
 * and the PyTorch engine's {@code adamUpdate} / {@code sgdUpdate} kernels: rescale, one-sided
 * clamp_max, Adam's L2 decay on the gradient, AdamW's {@code w -= w lr wd} with the undistorted
 * rate, SGD's {@code s = mu s + lr (g + wd w)}).
 *
 * <p>It can follow several trainers of one model ("books"): the weights are shared (a trainer's
 * parameter store on one CPU device holds the parameter's own array), each trainer's optimizer
 * state and update position are its own.
 *
 * <p>What it learns of a surgery it learns from the model alone ({@link #reconcile}), as the
 * promise says it must be (or a test states what it expects of each parameter, {@link #born},
 * {@link #carry}, {@link #drop}, {@link #freeze}, {@link #unfreeze}, and {@link #checkStructure}
 * asserts the model agrees): a Parameter object already known keeps its slot (state and count); a
 * new Parameter around the array of one that left carries the old slot on (fresh if the old one was
 * frozen); any other new Parameter is born (zero state, own count from 1, the learning rate of the
 * model's position) if it trains, else born frozen (never changes); a known one that stopped
 * training is frozen (state dropped); one that started training is fresh. The test then compares
 * the {@link Delta} with what the docs say the algorithm does. Batch-norm running statistics are
 * not followed (no optimizer updates them).
 *
 * <p>Tolerance (after every step): the trajectory {@code |djl - oracle| <= 1e-4 (|oracle| + 0.01
 * max|tensor| + 0.1 path)}, where path is the sum of the sizes of the element's updates so far (the
 * earlier probe's bound plus 1e-5 of the path: a convolution's bias before a batch norm gets only
 * rounding noise as gradient, and its tiny net value is the sum of updates that cancel, whose
 * float32 roundings, a few 1e-7 of each update, add up against it); and the step alone within 4
 * ulps of the weight + 1e-4 of the change + 1e-6 of the tensor's largest change. The gradients and
 * the decayed weights are DJL's, so only float32 rounding of each update separates the two ({@link
 * #pathRoom} 0 drops the path term, as the earlier probe's bound had it); any wrong reading of the
 * promise (a born parameter on the global count, state reset at a surgery) moves a step by far more
 * than the room (the tests check that such mutants are caught).
 */
public final class TrajectoryOracle {

  /** Relative trajectory tolerance. */
  public static final double RTOL = 1e-4;

  /** The optimizers the oracle knows. */
  public enum Optim {
    ADAM,
    ADAMW,
    SGD_MOMENTUM
  }

  /** A learning-rate schedule: DJL's tracker for the trainer, and the oracle's own formula. */
  public interface Schedule {
    /**
     * DJL's tracker.
     *
     * @return the tracker
     */
    Tracker djl();

    /**
     * The rate at an update number.
     *
     * @param numUpdate the update number (1 for the first step)
     * @return the rate
     */
    double at(int numUpdate);
  }

  /**
   * DJL's linear warm-up from {@code start} over {@code warm} steps to the main schedule's first
   * value, then the main schedule.
   */
  public interface WarmedUp extends Schedule {
    /**
     * The warm-up's first value.
     *
     * @return the value
     */
    float start();

    /**
     * The warm-up steps.
     *
     * @return the steps
     */
    int warm();

    /**
     * DJL's main tracker.
     *
     * @return the tracker
     */
    Tracker mainTracker();

    /**
     * The main schedule's value {@code k} updates after the warm-up.
     *
     * @param k the updates after the warm-up
     * @return the rate
     */
    double mainAt(int k);

    @Override
    default Tracker djl() {
      return Tracker.warmUp()
          .optWarmUpBeginValue(start())
          .optWarmUpSteps(warm())
          .setMainTracker(mainTracker())
          .build();
    }

    @Override
    default double at(int n) {
      if (n < warm()) {
        double first = mainAt(0);
        return start() + (first - start()) * n / warm();
      }
      return mainAt(n - warm());
    }
  }

  /**
   * DJL's linear warm-up followed by its cosine tracker; changes at every step.
   *
   * @param start warm-up start
   * @param warm warm-up steps
   * @param base cosine base
   * @param fin cosine final value
   * @param max cosine max updates
   */
  public record WarmupCosine(float start, int warm, float base, float fin, int max)
      implements WarmedUp {
    @Override
    public Tracker mainTracker() {
      return Tracker.cosine().setBaseValue(base).optFinalValue(fin).setMaxUpdates(max).build();
    }

    @Override
    public double mainAt(int k) {
      if (k > max) {
        return fin;
      }
      return fin + ((double) base - fin) / 2 * (1 + Math.cos(Math.PI * k / max));
    }
  }

  /**
   * DJL's linear warm-up followed by its multi-factor tracker.
   *
   * @param start warm-up start
   * @param warm warm-up steps
   * @param base base value
   * @param steps the steps after which the rate is multiplied by {@code factor}
   * @param factor the factor
   */
  public record WarmupMultiFactor(float start, int warm, float base, int[] steps, float factor)
      implements WarmedUp {
    @Override
    public Tracker mainTracker() {
      return Tracker.multiFactor().setBaseValue(base).setSteps(steps).optFactor(factor).build();
    }

    @Override
    public double mainAt(int k) {
      double value = base;
      for (int s : steps) {
        if (k > s) {
          value *= factor;
        }
      }
      return value;
    }
  }

  /**
   * Optimizer settings.
   *
   * @param optim which optimizer
   * @param weightDecay weight decay
   * @param clip one-sided gradient clip (negative: none)
   * @param rescale gradient rescale
   * @param momentum SGD momentum
   * @param begin optBeginNumUpdate
   * @param schedule learning-rate schedule
   * @param halfRateIds rates by parameter id (a tracker of the program's own): the ids, as the
   *     model was built, whose rate is half the schedule's (rounded to float, as a tracker returns
   *     it); a parameter keeps the first id it had through moves. Empty: DJL's tracker, one rate
   */
  public record Settings(
      Optim optim,
      float weightDecay,
      float clip,
      float rescale,
      float momentum,
      int begin,
      Schedule schedule,
      Set<String> halfRateIds) {

    /**
     * Settings with one rate for every parameter.
     *
     * @param optim which optimizer
     * @param weightDecay weight decay
     * @param clip one-sided gradient clip (negative: none)
     * @param rescale gradient rescale
     * @param momentum SGD momentum
     * @param begin optBeginNumUpdate
     * @param schedule learning-rate schedule
     */
    public Settings(
        Optim optim,
        float weightDecay,
        float clip,
        float rescale,
        float momentum,
        int begin,
        Schedule schedule) {
      this(optim, weightDecay, clip, rescale, momentum, begin, schedule, Set.of());
    }

    /**
     * The settings used by the probe's tests for one optimizer.
     *
     * @param o the optimizer
     * @return settings with decay, clip, rescale and a warm-up + cosine schedule
     */
    public static Settings preset(Optim o) {
      switch (o) {
        case ADAM:
          return new Settings(
              o, 1e-3f, 0.5f, 0.5f, 0f, 0, new WarmupCosine(1e-4f, 25, 0.005f, 1e-4f, 400));
        case ADAMW:
          return new Settings(
              o, 0.05f, 1f, 1f, 0f, 0, new WarmupCosine(1e-4f, 20, 0.004f, 1e-4f, 350));
        default:
          return new Settings(
              o, 1e-3f, 0.5f, 0.8f, 0.9f, 0, new WarmupCosine(1e-3f, 25, 0.03f, 1e-3f, 400));
      }
    }

    /**
     * The same settings resumed at a step.
     *
     * @param beginNumUpdate the step
     * @return the settings with {@code begin} set
     */
    public Settings resumedAt(int beginNumUpdate) {
      return new Settings(
          optim, weightDecay, clip, rescale, momentum, beginNumUpdate, schedule, halfRateIds);
    }

    /**
     * The same settings with rates by parameter id.
     *
     * @param ids the ids whose rate is half the schedule's
     * @return the settings
     */
    public Settings halvingRatesOf(Set<String> ids) {
      return new Settings(
          optim, weightDecay, clip, rescale, momentum, begin, schedule, Set.copyOf(ids));
    }

    /**
     * The settings of the float16 runs: SGD with momentum (DJL's Adam is NaN in float16 without
     * surgery), decay, clip, rescale and a warm-up + cosine schedule.
     *
     * @return the settings
     */
    public static Settings float16() {
      return new Settings(
          Optim.SGD_MOMENTUM,
          1e-3f,
          0.5f,
          0.8f,
          0.9f,
          0,
          new WarmupCosine(1e-2f, 20, 0.05f, 5e-3f, 300));
    }

    /**
     * The rate the oracle uses for a parameter.
     *
     * @param numUpdate the update number the schedule is read at
     * @param rateId the first id of the parameter
     * @return the rate
     */
    double rate(int numUpdate, String rateId) {
      double lr = schedule.at(numUpdate);
      if (!halfRateIds.isEmpty()) {
        lr = (float) (lr * (halfRateIds.contains(rateId) ? 0.5 : 1));
      }
      return lr;
    }

    private ParameterTracker tracker() {
      if (halfRateIds.isEmpty()) {
        return schedule.djl();
      }
      return (id, numUpdate) ->
          (float) (schedule.at(numUpdate) * (halfRateIds.contains(id) ? 0.5 : 1));
    }

    /**
     * DJL's optimizer for these settings.
     *
     * @return the optimizer
     */
    public Optimizer build() {
      ParameterTracker tracker = tracker();
      switch (optim) {
        case ADAM:
          return Optimizer.adam()
              .optLearningRateTracker(tracker)
              .optWeightDecays(weightDecay)
              .optClipGrad(clip)
              .setRescaleGrad(rescale)
              .optBeginNumUpdate(begin)
              .build();
        case ADAMW:
          return Optimizer.adamW()
              .optLearningRateTracker(tracker)
              .optWeightDecays(weightDecay)
              .optClipGrad(clip)
              .setRescaleGrad(rescale)
              .optBeginNumUpdate(begin)
              .build();
        default:
          return Optimizer.sgd()
              .setLearningRateTracker(tracker)
              .optMomentum(momentum)
              .optWeightDecays(weightDecay)
              .optClipGrad(clip)
              .setRescaleGrad(rescale)
              .optBeginNumUpdate(begin)
              .build();
      }
    }
  }

  /**
   * What a reconcile found, in parameters.
   *
   * @param born new trainable parameters (fresh state)
   * @param bornFrozen new parameters that do not train
   * @param moved new Parameters around the array of one that left (state carried)
   * @param removed parameters that left without a successor
   * @param frozen known parameters that stopped training
   * @param unfrozen known parameters that started training (fresh)
   */
  public record Delta(int born, int bornFrozen, int moved, int removed, int frozen, int unfrozen) {

    /** Nothing changed. */
    public static final Delta NONE = new Delta(0, 0, 0, 0, 0, 0);

    /**
     * Only born and removed parameters.
     *
     * @param born born
     * @param removed removed
     * @return the delta
     */
    public static Delta bornRemoved(int born, int removed) {
      return new Delta(born, 0, 0, removed, 0, 0);
    }

    /**
     * Only frozen parameters.
     *
     * @param frozen frozen
     * @return the delta
     */
    public static Delta frozen(int frozen) {
      return new Delta(0, 0, 0, 0, frozen, 0);
    }
  }

  private static final class State {
    double[] m;
    double[] v;
    double[] err;
    boolean born;
    int birth;
    int own;

    void startFresh(int position) {
      m = null;
      v = null;
      err = null;
      born = true;
      birth = position;
      own = 0;
    }
  }

  private static final class Slot {
    final String origin;

    /** The id a tracker by parameter id is asked with: the first one, kept through moves. */
    final String rateId;

    double[] w;
    double[] path;
    boolean frozen;
    NDArray array;
    final State[] states;

    Slot(String origin, Parameter p, int books) {
      this.origin = origin;
      this.rateId = p.getId();
      this.w = values(p);
      this.array = p.getArray();
      this.path = new double[w.length];
      states = new State[books];
      for (int i = 0; i < books; i++) {
        states[i] = new State();
      }
    }
  }

  private final String name;
  private final Block root;
  private final Settings[] books;
  private final int[] positions;
  private final Map<Parameter, Slot> slots = new IdentityHashMap<>();

  private int pendingBook = -1;
  private Map<Parameter, Boolean> live;
  private Map<Parameter, float[]> grads;
  private Map<Parameter, float[]> before;
  private Map<Parameter, double[]> oracleBefore;

  private double worst;
  private String worstWhere = "";
  private double worstStep;
  private String worstStepWhere = "";
  private int steps;

  /** A wrong reading of the promise: born parameters on the trainer's global count. */
  public boolean mutantBornOnGlobalCount;

  /** A wrong reading: a born parameter's schedule restarts at its birth. */
  public boolean mutantScheduleRestartsAtBirth;

  /** A wrong reading: a surgery resets the optimizer state of the parameters it adopts. */
  public boolean mutantResetSurvivors;

  /**
   * Float16 mode (SGD with momentum): DJL's kernel runs in float16 (each of its operations rounds
   * to 11 significant bits; the momentum buffer is float16 too), so a double-precision trajectory
   * cannot be followed: the weight itself is rounded to float16 at every step, often by more than
   * the step. Instead each step alone is checked from DJL's weight before it, and the oracle is
   * then put on DJL's weight. The room: twice a running bound on the float16 momentum buffer's
   * error (its error times mu, plus half an ulp of each rounding of the step: of {@code mu s}, 1.5
   * ulps of the gradient's rescale, decay and rate, of the sum; in ulps of each operand, so a
   * buffer whose two terms cancel, or one below float16's normal range, gets the absolute error its
   * operands carry), plus 2 float16 ulps of the weight (the final subtraction), plus 0.5 % of the
   * step. A wrong reading of the promise (momentum dropped or carried wrongly, the schedule
   * restarted) moves a step by 10 % or more. Frozen parameters must stay bit for bit.
   */
  public boolean half;

  /**
   * The share of an element's path (the sum of its updates' sizes) the trajectory check adds to its
   * room (see the class comment): 0.1 by default; 0 holds the trajectory to {@code 1e-4 (|oracle| +
   * 0.01 max|tensor|)} alone, as the earlier probe's small MLPs are (no element there whose updates
   * cancel).
   */
  public double pathRoom = 0.1;

  /**
   * Starts following a model whose parameters are initialized.
   *
   * @param name the run's name for messages
   * @param root the model's root block
   * @param books the settings of each trainer, in the order the test numbers them
   */
  public TrajectoryOracle(String name, Block root, Settings... books) {
    this.name = name;
    this.root = root;
    this.books = books.clone();
    this.positions = new int[books.length];
    for (int i = 0; i < books.length; i++) {
      positions[i] = books[i].begin();
    }
    for (Pair<String, Parameter> p : root.getParameters()) {
      if (tracked(p.getValue())) {
        Slot slot = new Slot(p.getKey(), p.getValue(), books.length);
        slot.frozen = !p.getValue().requiresGradient();
        slots.put(p.getValue(), slot);
      }
    }
  }

  /**
   * A new oracle for a model loaded from a checkpoint of the model {@code saved} followed: the
   * parameters are matched by name (the replay must rebuild the same names), the loaded values must
   * be the saved ones, and every parameter starts with no optimizer state under the new trainer
   * (DJL saves no optimizer state), at the position {@code begin} of the new settings
   * (optBeginNumUpdate), as a survivor.
   *
   * @param name the run's name
   * @param loaded the loaded model's root block
   * @param saved the oracle of the saved model, at the save
   * @param books the new trainers' settings
   * @return the oracle
   */
  public static TrajectoryOracle afterLoad(
      String name, Block loaded, TrajectoryOracle saved, Settings... books) {
    Map<String, Slot> byName = new LinkedHashMap<>();
    for (Pair<String, Parameter> p : saved.root.getParameters()) {
      Slot slot = saved.slots.get(p.getValue());
      if (slot != null) {
        byName.put(p.getKey(), slot);
      }
    }
    TrajectoryOracle fresh = new TrajectoryOracle(name, loaded, books);
    List<String> names = new ArrayList<>();
    for (Pair<String, Parameter> p : loaded.getParameters()) {
      if (!tracked(p.getValue())) {
        continue;
      }
      names.add(p.getKey());
      Slot old = byName.get(p.getKey());
      assertNotNull(old, name + ": the loaded model has " + p.getKey() + ", the saved one not");
      Slot slot = fresh.slots.get(p.getValue());
      assertEquals(old.w.length, slot.w.length, name + ": size of " + p.getKey());
      slot.w = old.w.clone(); // the oracle's values go on; compare() checks the loaded ones
      slot.path = old.path.clone();
    }
    assertEquals(
        byName.keySet().stream().sorted().toList(),
        names.stream().sorted().toList(),
        name + ": the loaded model's parameter names are the saved model's");
    return fresh;
  }

  /**
   * Whether the oracle follows a parameter (not a batch norm's running statistics).
   *
   * @param p the parameter
   * @return true for a parameter an optimizer may update
   */
  public static boolean tracked(Parameter p) {
    return p.getType() != Parameter.Type.RUNNING_MEAN && p.getType() != Parameter.Type.RUNNING_VAR;
  }

  /**
   * The position (optBeginNumUpdate + steps) of a trainer.
   *
   * @param book the trainer's number
   * @return its position
   */
  public int position(int book) {
    return positions[book];
  }

  /**
   * The names of the frozen parameters the oracle holds.
   *
   * @return the model's parameter names of frozen slots, in model order
   */
  public List<String> frozenNames() {
    List<String> list = new ArrayList<>();
    for (Pair<String, Parameter> p : root.getParameters()) {
      Slot slot = slots.get(p.getValue());
      if (slot != null && slot.frozen) {
        list.add(p.getKey());
      }
    }
    return list;
  }

  /**
   * Reads DJL's gradients and weights before a trainer's {@code step()}.
   *
   * @param book the trainer about to step
   */
  public void beforeStep(int book) {
    assertEquals(-1, pendingBook, name + ": a step was captured and never finished");
    pendingBook = book;
    grads = new IdentityHashMap<>();
    before = new IdentityHashMap<>();
    oracleBefore = new IdentityHashMap<>();
    for (Map.Entry<Parameter, Slot> e : slots.entrySet()) {
      if (!e.getValue().frozen) {
        NDArray g = e.getKey().getArray().getGradient();
        grads.put(e.getKey(), floats(g));
        g.close();
        before.put(e.getKey(), floats(e.getKey().getArray()));
        oracleBefore.put(e.getKey(), e.getValue().w.clone());
      }
    }
  }

  /**
   * Whether a step was captured and not finished.
   *
   * @return true between {@link #beforeStep} and {@link #afterStep}
   */
  public boolean pending() {
    return pendingBook >= 0;
  }

  /**
   * Updates the oracle for the step captured by {@link #beforeStep} and compares, after DJL's
   * {@code step()}.
   *
   * @param when the step's name for messages
   */
  public void afterStep(String when) {
    assertTrue(pendingBook >= 0, name + ": no step captured");
    int book = pendingBook;
    pendingBook = -1;
    steps++;
    oracleStep(book);
    // A driver that reports the step only after a surgery that followed it (SurgeryTrain.fit's
    // BATCH_END entries run before the next onTrainingBatch) compares the parameters still in the
    // model; those that left have freed arrays, and reconcile() takes them out.
    live = new IdentityHashMap<>();
    for (Pair<String, Parameter> p : root.getParameters()) {
      live.put(p.getValue(), Boolean.TRUE);
    }
    String at = when + " (trainer " + book + " position " + positions[book] + ")";
    compareStep(at, book);
    if (half) {
      for (Map.Entry<Parameter, float[]> e : before.entrySet()) {
        if (!live.containsKey(e.getKey())) {
          continue;
        }
        float[] now = floats(e.getKey().getArray());
        double[] w = slots.get(e.getKey()).w;
        for (int i = 0; i < w.length; i++) {
          w[i] = now[i];
        }
      }
    }
    compare(at);
    live = null;
  }

  /**
   * Learns from the model what a surgery changed (see the class comment) and compares the values.
   *
   * @param when the moment, for messages
   * @return what changed
   */
  public Delta reconcile(String when) {
    Map<Parameter, Parameter> live = new IdentityHashMap<>();
    List<Parameter> added = new ArrayList<>();
    for (Pair<String, Parameter> p : root.getParameters()) {
      if (!tracked(p.getValue())) {
        continue;
      }
      live.put(p.getValue(), p.getValue());
      if (!slots.containsKey(p.getValue())) {
        added.add(p.getValue());
      }
    }
    Map<NDArray, Slot> leftByArray = new IdentityHashMap<>();
    int left = 0;
    for (Parameter p : new ArrayList<>(slots.keySet())) {
      if (!live.containsKey(p)) {
        Slot slot = slots.remove(p);
        leftByArray.put(slot.array, slot);
        left++;
      }
    }
    int born = 0;
    int bornFrozen = 0;
    int moved = 0;
    int frozen = 0;
    int unfrozen = 0;
    for (Parameter p : added) {
      Slot old = leftByArray.remove(p.getArray());
      Slot slot;
      if (old != null) {
        slot = old;
        moved++;
        if (slot.frozen && p.requiresGradient()) {
          startFresh(slot);
        }
        slot.frozen = !p.requiresGradient();
      } else {
        slot = new Slot(p.getName() + "@" + when, p, books.length);
        if (p.requiresGradient()) {
          startFresh(slot);
          born++;
        } else {
          slot.frozen = true;
          bornFrozen++;
        }
      }
      slot.array = p.getArray();
      slots.put(p, slot);
    }
    int removed = left - moved;
    boolean changed = born + bornFrozen + moved + removed > 0;
    for (Map.Entry<Parameter, Slot> e : slots.entrySet()) {
      Slot slot = e.getValue();
      boolean trains = e.getKey().requiresGradient();
      if (!trains && !slot.frozen) {
        slot.frozen = true;
        dropState(slot);
        frozen++;
      } else if (trains && slot.frozen) {
        startFresh(slot);
        slot.frozen = false;
        unfrozen++;
      }
      slot.array = e.getKey().getArray();
    }
    if (mutantResetSurvivors && changed) {
      for (Slot slot : slots.values()) {
        for (State s : slot.states) {
          if (!s.born) {
            s.m = null;
            s.v = null;
            s.err = null;
          }
        }
      }
    }
    compare("after the surgery at " + when);
    return new Delta(born, bornFrozen, moved, removed, frozen, unfrozen);
  }

  private void startFresh(Slot slot) {
    for (int i = 0; i < books.length; i++) {
      slot.states[i].startFresh(positions[i]);
    }
  }

  private static void dropState(Slot slot) {
    for (State s : slot.states) {
      s.m = null;
      s.v = null;
      s.err = null;
    }
  }

  // ------------------------------------------------------------ a test's own expectations
  // Instead of learning a surgery from the model (reconcile), a test may state what it expects
  // of each parameter; checkStructure then asserts the model agrees.

  /**
   * Expects a new parameter to be born now (zero state, own count from 1, trainable).
   *
   * @param p the new parameter
   * @param origin its name for messages
   */
  public void born(Parameter p, String origin) {
    Slot slot = new Slot(origin, p, books.length);
    startFresh(slot);
    slots.put(p, slot);
  }

  /**
   * Expects a new parameter to carry on the training of an old one (state, count and first id), and
   * to train: if the old one was frozen it has no state to carry, and the new one starts fresh.
   *
   * @param from the old parameter
   * @param to the new parameter
   */
  public void carry(Parameter from, Parameter to) {
    Slot slot = slots.remove(from);
    assertNotNull(slot, name + ": the oracle does not know " + from.getName());
    if (slot.frozen) {
      startFresh(slot);
      slot.frozen = false;
    }
    slot.array = to.getArray();
    slots.put(to, slot);
  }

  /**
   * Expects a parameter to leave the model.
   *
   * @param p the parameter
   */
  public void drop(Parameter p) {
    slots.remove(p);
  }

  /**
   * Expects a parameter to stop training (its state dropped).
   *
   * @param p the parameter
   */
  public void freeze(Parameter p) {
    Slot slot = slots.get(p);
    slot.frozen = true;
    dropState(slot);
  }

  /**
   * Expects a frozen parameter to train again, fresh.
   *
   * @param p the parameter
   */
  public void unfreeze(Parameter p) {
    Slot slot = slots.get(p);
    assertTrue(slot.frozen, name + ": unfreezing a frozen parameter");
    startFresh(slot);
    slot.frozen = false;
  }

  /**
   * Asserts the model's parameters are exactly the oracle's, with the same frozen flags.
   *
   * @param when the moment, for messages
   */
  public void checkStructure(String when) {
    Map<Parameter, Boolean> live = new IdentityHashMap<>();
    for (Pair<String, Parameter> p : root.getParameters()) {
      if (!tracked(p.getValue())) {
        continue;
      }
      live.put(p.getValue(), Boolean.TRUE);
      Slot slot = slots.get(p.getValue());
      assertNotNull(slot, name + " " + when + ": the oracle does not know " + p.getKey());
      assertEquals(
          !slot.frozen,
          p.getValue().requiresGradient(),
          name + " " + when + ": trainable flag of " + p.getKey());
    }
    assertEquals(live.size(), slots.size(), name + " " + when + ": parameter count");
  }

  private void oracleStep(int book) {
    positions[book]++;
    int position = positions[book];
    Settings s = books[book];
    for (Map.Entry<Parameter, Slot> e : slots.entrySet()) {
      Slot slot = e.getValue();
      if (slot.frozen) {
        continue;
      }
      float[] g = grads.get(e.getKey());
      assertNotNull(g, name + ": no gradient captured for " + slot.origin);
      float[] decayed = before.get(e.getKey());
      State state = slot.states[book];
      int t = position;
      if (state.born) {
        state.own++;
        assertEquals(position, state.birth + state.own, "oracle bookkeeping");
        t = mutantBornOnGlobalCount ? position : state.own;
      }
      double lr =
          s.rate(state.born && mutantScheduleRestartsAtBirth ? state.own : position, slot.rateId);
      double[] w = slot.w;
      double wd = s.weightDecay();
      if (state.m == null) {
        state.m = new double[w.length];
        state.v = new double[w.length];
        state.err = new double[w.length];
      }
      if (s.optim() == Optim.SGD_MOMENTUM) {
        double mu = s.momentum();
        for (int i = 0; i < w.length; i++) {
          double gi = clip(s, g[i]);
          double step = (gi + wd * decayed[i]) * lr;
          double kept = mu * state.m[i];
          state.m[i] = kept + step;
          w[i] -= state.m[i];
          if (half) {
            // A bound on the float16 momentum buffer's error: the error it had, times mu, plus
            // half an ulp for each rounding of this step (mu s; rescale, decay and rate of the
            // gradient, counted as 1.5 ulps of the step; the sum).
            state.err[i] =
                mu * state.err[i]
                    + 0.5 * halfUlp(Math.abs(kept))
                    + 1.5 * halfUlp(Math.abs(step))
                    + 0.5 * halfUlp(Math.abs(state.m[i]));
          }
        }
      } else {
        double b1 = 0.9f;
        double b2 = 0.999f;
        double eps = 1e-8f;
        double corrected = lr * Math.sqrt(1 - Math.pow(b2, t)) / (1 - Math.pow(b1, t));
        boolean decoupled = s.optim() == Optim.ADAMW;
        for (int i = 0; i < w.length; i++) {
          double gi = clip(s, g[i]);
          if (decoupled) {
            w[i] -= decayed[i] * lr * wd;
          } else {
            gi += wd * decayed[i];
          }
          state.m[i] = b1 * state.m[i] + (1 - b1) * gi;
          state.v[i] = b2 * state.v[i] + (1 - b2) * gi * gi;
          w[i] -= state.m[i] * corrected / (Math.sqrt(state.v[i]) + eps);
        }
      }
    }
  }

  private static double clip(Settings s, float raw) {
    double g = raw;
    if (s.rescale() != 1f) {
      g *= s.rescale();
    }
    if (s.clip() >= 0) {
      g = Math.min(g, s.clip());
    }
    return g;
  }

  /**
   * Compares every followed parameter with the oracle (the trajectory check).
   *
   * @param when the moment, for messages
   */
  public void compare(String when) {
    for (Map.Entry<Parameter, Slot> e : slots.entrySet()) {
      if (live != null && !live.containsKey(e.getKey())) {
        continue;
      }
      Slot slot = e.getValue();
      float[] actual = floats(e.getKey().getArray());
      double[] expected = slot.w;
      assertEquals(expected.length, actual.length, name + " " + when + ": " + slot.origin);
      double scale = 0;
      for (double x : expected) {
        scale = Math.max(scale, Math.abs(x));
      }
      for (int i = 0; i < actual.length; i++) {
        // The room: 1e-4 of the value (plus 1e-6 of the tensor's largest), and (pathRoom 0.1)
        // 1e-5 of the path the element travelled (the sum of its updates' sizes), so that an
        // element whose updates cancel (a convolution's bias before a batch norm, whose gradient
        // is rounding noise) is held to the rounding of its updates, not of its tiny net value.
        double denominator = Math.abs(expected[i]) + 0.01 * scale + pathRoom * slot.path[i];
        double ratio =
            denominator == 0
                ? Math.abs(actual[i])
                : Math.abs(actual[i] - expected[i]) / denominator;
        if (ratio > worst) {
          worst = ratio;
          worstWhere = when + " " + slot.origin + "[" + i + "]";
        }
        if (!(ratio <= RTOL) || !Float.isFinite(actual[i])) {
          fail(
              String.format(
                  "%s %s: %s[%d] djl=%.9g oracle=%.9g (relative %.3g > %.0e); %s",
                  name, when, slot.origin, i, actual[i], expected[i], ratio, RTOL, describe(slot)));
        }
      }
    }
  }

  private void compareStep(String when, int book) {
    for (Map.Entry<Parameter, float[]> e : before.entrySet()) {
      if (!live.containsKey(e.getKey())) {
        continue;
      }
      Slot slot = slots.get(e.getKey());
      float[] w0 = e.getValue();
      float[] w1 = floats(e.getKey().getArray());
      double[] o0 = oracleBefore.get(e.getKey());
      double largest = 0;
      for (int i = 0; i < w0.length; i++) {
        largest = Math.max(largest, Math.abs(slot.w[i] - o0[i]));
      }
      for (int i = 0; i < w0.length; i++) {
        double delta = slot.w[i] - o0[i];
        slot.path[i] += Math.abs(delta);
        double error = Math.abs(w1[i] - (w0[i] + delta));
        double room =
            half
                ? 2 * slot.states[book].err[i]
                    + 2 * halfUlp(Math.max(Math.abs(w0[i]), Math.abs(w1[i])))
                    + 0.005 * Math.abs(delta)
                : 4 * Math.ulp(Math.max(Math.abs(w0[i]), Math.abs(w1[i])))
                    + 1e-4 * Math.abs(delta)
                    + 1e-6 * largest;
        double ratio = error / room;
        if (ratio > worstStep) {
          worstStep = ratio;
          worstStepWhere = when + " " + slot.origin + "[" + i + "]";
        }
        if (!(ratio <= 1)) {
          fail(
              String.format(
                  "%s %s: the step of %s[%d] was %.9g in DJL, %.9g in the oracle (from %.9g;"
                      + " error %.3g > room %.3g); %s",
                  name,
                  when,
                  slot.origin,
                  i,
                  w1[i] - w0[i],
                  delta,
                  w0[i],
                  error,
                  room,
                  describe(slot)));
        }
      }
    }
  }

  private String describe(Slot slot) {
    if (slot.frozen) {
      return "frozen";
    }
    StringBuilder b = new StringBuilder();
    for (int i = 0; i < slot.states.length; i++) {
      State s = slot.states[i];
      b.append(i == 0 ? "" : "; ")
          .append("trainer ")
          .append(i)
          .append(s.born ? ": born at " + s.birth + ", own count " + s.own : ": survivor");
    }
    return b.toString();
  }

  /**
   * One line on the worst errors seen.
   *
   * @return the summary
   */
  public String summary() {
    return String.format(
        "%s: %d steps, worst |djl - oracle| / (|oracle| + 0.01 max|tensor|) %.3g (limit 1e-4) at"
            + " %s; worst step error / room %.3g at %s",
        name, steps, worst, worstWhere, worstStep, worstStepWhere);
  }

  /**
   * The worst trajectory ratio seen.
   *
   * @return the ratio (against RTOL 1e-4)
   */
  public double worst() {
    return worst;
  }

  /**
   * The spacing of float16 values at a magnitude (2^-24 below the normal range).
   *
   * @param x the magnitude
   * @return the float16 ulp there
   */
  public static double halfUlp(double x) {
    if (x < 0x1p-14) {
      return 0x1p-24;
    }
    int e = Math.getExponent(x);
    return Math.scalb(1.0, e - 10);
  }

  // ------------------------------------------------------------------------------ fixtures

  /**
   * A float array of any floating array (float16 converted exactly).
   *
   * @param a the array
   * @return its values
   */
  public static float[] floats(NDArray a) {
    if (a.getDataType() == DataType.FLOAT32) {
      return a.toFloatArray();
    }
    try (NDArray c = a.toType(DataType.FLOAT32, true)) {
      return c.toFloatArray();
    }
  }

  private static double[] values(Parameter p) {
    float[] f = floats(p.getArray());
    double[] d = new double[f.length];
    for (int i = 0; i < f.length; i++) {
      d[i] = f[i];
    }
    return d;
  }

  /**
   * A 3 x 3 convolution with padding 1.
   *
   * @param filters output channels
   * @param stride stride
   * @return the convolution
   */
  public static Conv2d conv(int filters, int stride) {
    return TinyModels.conv3x3(filters, stride);
  }

  /**
   * A residual unit as DJL's ResNetV1 builds one: conv-BN-ReLU-conv-BN plus the identity.
   *
   * @param channels channels
   * @return the unit
   */
  public static ParallelBlock residualUnit(int channels) {
    return new ParallelBlock(
        TrajectoryOracle::addAndRelu,
        List.of(
            new SequentialBlock()
                .add(conv(channels, 1))
                .add(BatchNorm.builder().build())
                .add(Activation.reluBlock())
                .add(conv(channels, 1))
                .add(BatchNorm.builder().build()),
            new SequentialBlock().add(Blocks.identityBlock())));
  }

  /**
   * A residual unit's join: the sum of its two outputs through a ReLU.
   *
   * @param outputs the branch's and the shortcut's outputs
   * @return the joined output
   */
  public static NDList addAndRelu(List<NDList> outputs) {
    return new NDList(
        Activation.relu(outputs.get(0).singletonOrThrow().add(outputs.get(1).singletonOrThrow())));
  }

  /**
   * The probe's small CNN, input (N, 3, 8, 8), 4 classes: conv(8) BN relu, a residual unit of 8, a
   * strided conv(16) BN relu, a 2 x 2 max pool, a residual unit of 16, global average pool,
   * flatten, linear(16) relu linear(4). Leaf layers with parameters, in order: conv, BN, unit 1's
   * conv BN conv BN, the strided conv, BN, unit 2's conv BN conv BN, linear, linear (14).
   *
   * @return the block
   */
  public static SequentialBlock cnn() {
    return new SequentialBlock()
        .add(conv(8, 1))
        .add(BatchNorm.builder().build())
        .add(Activation.reluBlock())
        .add(residualUnit(8))
        .add(conv(16, 2))
        .add(BatchNorm.builder().build())
        .add(Activation.reluBlock())
        .add(Pool.maxPool2dBlock(new Shape(2, 2), new Shape(2, 2)))
        .add(residualUnit(16))
        .add(Pool.globalAvgPool2dBlock())
        .add(Blocks.batchFlattenBlock())
        .add(Linear.builder().setUnits(16).build())
        .add(Activation.reluBlock())
        .add(Linear.builder().setUnits(4).build());
  }

  /**
   * The earlier probe's MLP: Linear(hidden) relu Linear(hidden) relu Linear(hidden) relu
   * Linear(out); its Linears are children 0, 2, 4 and 6.
   *
   * @param hidden the hidden units
   * @param out the output units
   * @return the block
   */
  public static SequentialBlock mlp(int hidden, int out) {
    return new SequentialBlock()
        .add(Linear.builder().setUnits(hidden).build())
        .add(Activation.reluBlock())
        .add(Linear.builder().setUnits(hidden).build())
        .add(Activation.reluBlock())
        .add(Linear.builder().setUnits(hidden).build())
        .add(Activation.reluBlock())
        .add(Linear.builder().setUnits(out).build());
  }

  /**
   * Generated regression data for {@link #mlp}, drawn with java.util.Random (independent of the
   * engine): Gaussian inputs, targets {@code tanh(sum_i x_i sin(1 + i + 2 o))} plus noise.
   *
   * @param manager where the arrays live
   * @param seed the seed
   * @param count how many batches
   * @param batch batch size
   * @param in input features
   * @param out outputs
   * @return batches of {data, labels}
   */
  public static List<NDList[]> regression(
      NDManager manager, long seed, int count, int batch, int in, int out) {
    Random random = new Random(seed);
    List<NDList[]> list = new ArrayList<>();
    for (int b = 0; b < count; b++) {
      float[] x = new float[batch * in];
      float[] y = new float[batch * out];
      for (int i = 0; i < x.length; i++) {
        x[i] = (float) random.nextGaussian();
      }
      for (int r = 0; r < batch; r++) {
        for (int o = 0; o < out; o++) {
          double sum = 0;
          for (int i = 0; i < in; i++) {
            sum += x[r * in + i] * Math.sin(1 + i + 2 * o);
          }
          y[r * out + o] = (float) (Math.tanh(sum) + 0.1 * random.nextGaussian());
        }
      }
      list.add(
          new NDList[] {
            new NDList(manager.create(x, new Shape(batch, in))),
            new NDList(manager.create(y, new Shape(batch, out)))
          });
    }
    return list;
  }

  /** A run of a test under one optimizer. */
  public interface OptimRun {
    /**
     * Runs.
     *
     * @param optim the optimizer
     * @throws Throwable whatever the run throws
     */
    void run(Optim optim) throws Throwable;
  }

  /**
   * Runs a test under each optimizer the oracle knows and reports every failure.
   *
   * @param run the run
   */
  public static void forEachOptim(OptimRun run) {
    assertAll(Arrays.stream(Optim.values()).map(o -> () -> run.run(o)));
  }

  /**
   * Generated 4-class images, drawn with java.util.Random (independent of the engine).
   *
   * @param manager where the arrays live
   * @param seed the seed
   * @param count how many batches
   * @param batch batch size
   * @param type the data type of the images
   * @return batches of {data, labels}
   */
  public static List<NDList[]> batches(
      NDManager manager, long seed, int count, int batch, DataType type) {
    Random random = new Random(seed);
    List<NDList[]> list = new ArrayList<>();
    for (int b = 0; b < count; b++) {
      float[] x = new float[batch * 3 * 8 * 8];
      float[] y = new float[batch];
      for (int r = 0; r < batch; r++) {
        int label = random.nextInt(4);
        y[r] = label;
        for (int c = 0; c < 3; c++) {
          for (int h = 0; h < 8; h++) {
            for (int w = 0; w < 8; w++) {
              double pattern =
                  label % 2 == 0 ? Math.sin(h * (1 + label) * 0.7) : Math.cos(w * label * 0.6);
              x[((r * 3 + c) * 8 + h) * 8 + w] =
                  (float) (pattern * (c + 1) / 3 + 0.5 * random.nextGaussian());
            }
          }
        }
      }
      NDArray data = manager.create(x, new Shape(batch, 3, 8, 8));
      if (type != DataType.FLOAT32) {
        data = data.toType(type, false);
      }
      list.add(new NDList[] {new NDList(data), new NDList(manager.create(y, new Shape(batch)))});
    }
    return list;
  }

  /**
   * One forward and backward of a batch with a trainer (no step).
   *
   * @param trainer the trainer
   * @param batch {data, labels}
   */
  public static void forwardBackward(Trainer trainer, NDList[] batch) {
    try (GradientCollector collector = trainer.newGradientCollector()) {
      NDList prediction = trainer.forward(batch[0]);
      collector.backward(trainer.getLoss().evaluate(batch[1], prediction));
    }
  }
}
