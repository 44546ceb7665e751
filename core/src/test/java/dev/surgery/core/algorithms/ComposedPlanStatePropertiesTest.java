package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import dev.surgery.core.SurgeryException;
import dev.surgery.core.SurgeryPlan;
import dev.surgery.core.testing.BuiltinArbitraries;
import dev.surgery.core.testing.BuiltinArbitraries.Entry;
import dev.surgery.core.testing.OptimizerKind;
import dev.surgery.core.testing.PlanStateCheck;
import dev.surgery.core.testing.TinyModels;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.lifecycle.BeforeContainer;
import net.jqwik.api.statistics.Statistics;

/**
 * The optimizer-state column of a plan is what its apply does for composed schedules under a live
 * trainer: random accepted schedules of the built-ins (random settings, targets and epochs) applied
 * in order to {@link TinyModels#everyAlgorithmNet()} while a trainer of each optimizer kind trains
 * it, a step or two before each entry and one after it. Each entry is planned with the live context
 * just before it applies; the plan leaves the model and the trainer exactly as they were; and
 * {@link PlanStateCheck} holds the apply to the plan's fates (moved bit for bit, dropped, fresh
 * with its birth mark and a first step from zero, none) and every other state untouched. An entry
 * whose plan refuses is refused by its apply as well, which leaves the model and the trainer as
 * they were; an empty plan's apply leaves them as they were too.
 *
 * <p>No fixed seed: jqwik prints the seed and the shrunk schedule of a failure.
 */
class ComposedPlanStatePropertiesTest {

  /** The planned epochs of every schedule. */
  static final int EPOCHS = 3;

  /** The batch: four samples of {@link TinyModels#everyAlgorithmNet()}, one of each class. */
  static final Shape INPUT = new Shape(4, 8, 16, 16);

  @BeforeContainer
  static void register() {
    LiveTraining.registerBuiltins();
  }

  /**
   * Every entry of a composed schedule, planned just before it applies on the live model, does to
   * the optimizer's state what its plan says: two steps before the first entry, one or two before
   * each entry, one after each (the next-step check).
   */
  @Property(tries = 100)
  void everyComposedPlanTellsTheOptimizerStateItsApplyLeaves(
      @ForAll("schedules") List<Entry> schedule,
      @ForAll("optimizers") OptimizerKind kind,
      @ForAll("extraSteps") List<Integer> extraSteps,
      @ForAll boolean fixedBatchNorm) {
    run(schedule, kind, extraSteps, fixedBatchNorm, false);
  }

  /**
   * The same where schedules apply as training applies them: entries after the same epoch back to
   * back, with no step between (the next-step check after the last of them), and entries at epoch 0
   * right after {@code Trainer.initialize}, before any step. A trainable parameter that has not
   * been updated yet has no state to move or drop ({@link PlanStateCheck}).
   */
  @Property(tries = 60)
  void everyComposedPlanTellsTheOptimizerStateBackToBack(
      @ForAll("schedules") List<Entry> schedule,
      @ForAll("optimizers") OptimizerKind kind,
      @ForAll("extraSteps") List<Integer> extraSteps,
      @ForAll boolean fixedBatchNorm) {
    run(schedule, kind, extraSteps, fixedBatchNorm, true);
  }

  /**
   * Trains the net under the optimizer and applies the schedule in order, each entry checked by
   * {@link PlanStateCheck}.
   *
   * @param extraSteps per entry, the steps before it beyond one (none or one)
   * @param backToBack whether entries after the same epoch follow each other without a step, and
   *     epoch 0 is right after {@code Trainer.initialize}
   */
  private static void run(
      List<Entry> schedule,
      OptimizerKind kind,
      List<Integer> extraSteps,
      boolean fixedBatchNorm,
      boolean backToBack) {
    List<Entry> order = BuiltinArbitraries.applicationOrder(schedule);
    Block net = TinyModels.everyAlgorithmNet(fixedBatchNorm);
    DefaultTrainingConfig config =
        new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss()).optOptimizer(kind.create());
    Engine.getInstance().setRandomSeed(11);
    try (Model model = TinyModels.model("composed-plan-state", net);
        Trainer trainer = model.newTrainer(config);
        NDManager data = NDManager.newBaseManager()) {
      trainer.initialize(INPUT);
      NDArray x = data.randomNormal(INPUT);
      NDArray y = data.create(new float[] {0, 1, 2, 3});
      if (!backToBack || order.get(0).epoch() > 0) {
        step(trainer, x, y);
        step(trainer, x, y);
      }
      int refused = 0;
      int empty = 0;
      int rekeyed = 0;
      int notYetUpdated = 0;
      Map<SurgeryPlan.StateFate, Integer> fates = new EnumMap<>(SurgeryPlan.StateFate.class);
      for (int j = 0; j < order.size(); j++) {
        Entry e = order.get(j);
        String title =
            "entry "
                + j
                + " of "
                + order
                + " under "
                + kind
                + (fixedBatchNorm ? "" : ", no fixed BN")
                + (backToBack ? ", back to back" : "");
        boolean sameEpochAsLast = j > 0 && order.get(j - 1).epoch() == e.epoch();
        boolean lastOfEpoch = j == order.size() - 1 || order.get(j + 1).epoch() != e.epoch();
        boolean stepAfter = !backToBack || lastOfEpoch;
        boolean noStep = backToBack && (sameEpochAsLast || j == 0 && e.epoch() == 0);
        for (int s = 0; s < (noStep ? 0 : extraSteps.get(j)); s++) {
          step(trainer, x, y);
        }
        SurgeryContext context = SurgeryContext.live(net, trainer, e.epoch(), EPOCHS);
        PlanStateCheck check;
        try {
          check = PlanStateCheck.plan(title, net, trainer, () -> e.algorithm().plan(context));
        } catch (SurgeryException refusal) {
          PlanStateCheck.Snapshot snapshot = PlanStateCheck.Snapshot.of(net, trainer);
          assertThrows(refusal.getClass(), () -> e.algorithm().apply(context), title);
          snapshot.assertUnchanged("the refused apply of " + title);
          refused++;
          if (stepAfter) {
            step(trainer, x, y);
          }
          continue;
        }
        PlanStateCheck.Snapshot snapshot = PlanStateCheck.Snapshot.of(net, trainer);
        e.algorithm().apply(context);
        if (check.plan().isEmpty()) {
          snapshot.assertUnchanged("the apply of the empty plan of " + title);
          empty++;
        }
        check.applied();
        if (!noStep) {
          // A step ran since the last entry: every parameter it trained has state, so only an
          // entry with no step before it may meet a trainable parameter without any.
          assertEquals(0, check.notYetUpdated(), "not updated by the step before " + title);
        }
        if (stepAfter) {
          check.nextStep(x, y, kind);
        }
        check.plan().stateCounts().forEach((fate, n) -> fates.merge(fate, n, Integer::sum));
        rekeyed += check.rekeyed();
        notYetUpdated += check.notYetUpdated();
      }
      Statistics.label("refused entries").collect(refused);
      Statistics.label("empty plans").collect(empty);
      Statistics.label("fates seen")
          .collect(
              fates.entrySet().stream()
                      .filter(f -> f.getValue() > 0)
                      .map(f -> f.getKey().label())
                      .toList()
                  + (rekeyed > 0 ? " rekeyed" : "")
                  + (notYetUpdated > 0 ? " not yet updated" : ""));
      // Most tries check some fate, and each fate is met: a property whose plans all came out
      // empty or refused would pass having checked nothing.
      Statistics.label("fates seen")
          .coverage(
              checker -> {
                checker.checkQuery(seen(null)).percentage(p -> p >= 40);
                for (String fate : List.of("moved", "dropped", "fresh")) {
                  checker.checkQuery(seen(fate)).percentage(p -> p >= 5);
                }
              });
    }
  }

  /** A query of the "fates seen" label: any fate (for null), or that one. */
  private static java.util.function.Predicate<List<?>> seen(String fate) {
    return values -> {
      String seen = String.valueOf(values.get(0));
      return fate == null ? !seen.startsWith("[]") : seen.contains(fate);
    };
  }

  @Provide
  Arbitrary<List<Entry>> schedules() {
    return BuiltinArbitraries.acceptedSchedules(EPOCHS - 1);
  }

  /**
   * DJL's optimizers the PyTorch engine runs ({@link BuiltinArbitraries#optimizers()}), and as
   * often one the stand-in leaves alone or one with a rate per id: the user-written optimizer
   * (fresh parameters not born exact, no birth marks), Adam and SGD with momentum under {@link
   * dev.surgery.core.testing.RatesById}.
   */
  @Provide
  Arbitrary<OptimizerKind> optimizers() {
    return Arbitraries.oneOf(
        BuiltinArbitraries.optimizers(),
        Arbitraries.of(
            OptimizerKind.USER,
            OptimizerKind.ADAM_RATE_PER_ID,
            OptimizerKind.SGD_MOMENTUM_RATE_PER_ID));
  }

  /** The steps before each entry beyond the one after the last: none or one. */
  @Provide
  Arbitrary<List<Integer>> extraSteps() {
    return Arbitraries.integers()
        .between(0, 1)
        .list()
        .ofSize(BuiltinArbitraries.MOST_ACCEPTED_ENTRIES);
  }

  private static void step(Trainer trainer, NDArray x, NDArray y) {
    try (GradientCollector gc = trainer.newGradientCollector()) {
      NDList out = trainer.forward(new NDList(x));
      gc.backward(trainer.getLoss().evaluate(new NDList(y), out));
    }
    trainer.step();
  }
}
