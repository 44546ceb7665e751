package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.basicmodelzoo.cv.classification.ResNetV1;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.BlockList;
import ai.djl.nn.LambdaBlock;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import dev.surgery.core.BlockInspector;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.internal.DjlOptimizers;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.layers.AdoptingConv2d;
import dev.surgery.core.layers.BlurConv2d;
import dev.surgery.core.layers.FactorizedConv2d;
import dev.surgery.core.layers.GhostBatchNormBlock;
import dev.surgery.core.layers.SqueezeExciteConv2d;
import dev.surgery.core.layers.WeightStandardizedConv2d;
import dev.surgery.trainer.config.Trigger;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Predicate;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every ordered pair of the seven built-in algorithms, and all seven together, on DJL's ResNetV1-20
 * trained in library mode: each algorithm changes exactly the blocks its own rule selects at the
 * moment it runs (computed here from the documented rule, on the model as it is then), the trainer
 * stays exact, and a checkpoint loads through {@link SurgeryCheckpoint#load} into a fresh model
 * with bit-identical outputs. Pairs that cannot compose are refused when the schedule is built, and
 * the refusal is checked against what the pair would really do.
 */
@ExtendWith(OneIntraOpThread.class)
class CompositionMatrixTest {

  static final String BP = "blurpool";
  static final String SE = "squeeze_excite";
  static final String GBN = "ghost_batchnorm";
  static final String FACT = "factorize";
  static final String SD = "stochastic_depth";
  static final String LF = "layer_freezing";
  static final String WS = "weight_standardization";
  static final List<String> ALL = List.of(BP, SE, GBN, FACT, SD, LF, WS);

  static final int BATCH = 4;
  static final Shape INPUT = new Shape(BATCH, 1, 28, 28);
  static final int BP_MIN = 16;
  static final int SE_MIN = 32;
  static final int FACT_MIN = 32;
  static final double FACT_LATENT = 0.25;

  /** The hyperparameters used here: small thresholds, so that every algorithm changes blocks. */
  static final Map<String, Map<String, Object>> SETTINGS =
      Map.of(
          BP, Map.of("min_channels", BP_MIN),
          SE, Map.of("min_channels", SE_MIN, "latent_channels", 4),
          GBN, Map.of("ghost_batch_size", 2),
          FACT,
              Map.of(
                  "min_channels", FACT_MIN,
                  "latent_channels", FACT_LATENT,
                  "factorize_linears", false),
          SD, Map.of("drop_rate", 0.5),
          LF, Map.of("freeze_start", 0.0, "freeze_level", 1.0),
          WS, Map.of());

  /** Pairs that cannot compose: every repeat but layer freezing (it freezes more later). */
  static boolean refused(String first, String second) {
    return first.equals(second) && !first.equals(LF);
  }

  @TempDir Path dir;

  static Algorithm algorithm(String name) {
    return Algorithms.spec(name).create(SETTINGS.get(name));
  }

  static Block resNet20() {
    return ResNetV1.builder()
        .setImageShape(new Shape(1, 28, 28))
        .setNumLayers(20)
        .setOutSize(4)
        .build();
  }

  @TestFactory
  Stream<DynamicTest> everyOrderedPairAndAllSeven() {
    List<DynamicTest> tests = new ArrayList<>();
    for (String first : ALL) {
      for (String second : ALL) {
        List<String> schedule = List.of(first, second);
        tests.add(
            DynamicTest.dynamicTest(
                first + " then " + second,
                () -> {
                  if (refused(first, second)) {
                    checkRefusal(first, second);
                  } else {
                    run(schedule);
                  }
                }));
      }
    }
    tests.add(
        DynamicTest.dynamicTest("all seven", () -> run(List.of(SD, WS, BP, SE, FACT, GBN, LF))));
    return tests.stream();
  }

  @Test
  void weightStandardizationThenBlurPoolBlursTheStandardizedConvolutions() throws Exception {
    // The user's report: WS at epoch 0, BlurPool at epoch 1 replaced nothing.
    SurgeryListener listener =
        SurgeryListener.builder().add(algorithm(WS), 0).add(algorithm(BP), 1).build();
    try (Model model = Model.newInstance("ws-bp");
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(resNet20());
      try (Trainer trainer = model.newTrainer(config(listener))) {
        trainer.initialize(INPUT);
        EasyTrain.fit(trainer, 2, dataset(data), null);
      }
      List<SurgeryOutcome> applied = listener.getOutcomes();
      assertEquals(4, applied.get(1).changes().changes().size(), applied.toString());
      long blurredAndStandardized =
          BlockPaths.index(model.getBlock()).keySet().stream()
              .filter(b -> b instanceof BlurConv2d c && c.isWeightStandardized())
              .count();
      assertEquals(4, blurredAndStandardized);
    }
  }

  /**
   * A step entry and an epoch entry of ghost batch norm: whichever runs first leaves the other
   * nothing, so the builder refuses them as a config file does; two blurpool entries of which one
   * order works are accepted.
   */
  @Test
  void theBuilderRefusesAStepEntryThatConflictsInEitherOrder() {
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                SurgeryListener.builder()
                    .add(algorithm(GBN), 1)
                    .add(algorithm(GBN), Trigger.atStep(3))
                    .optObservableEvents(SurgeryTrain.EVENTS)
                    .optTotalEpochs(3)
                    .build());
    assertTrue(
        e.getMessage()
            .startsWith(
                GBN
                    + " at step 3 (builder entry 2) cannot run with "
                    + GBN
                    + " at epoch 1 (builder entry 1), whichever runs first: "),
        e.getMessage());
    SurgeryListener.builder()
        .add(Algorithms.spec(BP).create(Map.of("min_channels", 0)), 1)
        .add(Algorithms.spec(BP).create(Map.of("min_channels", 16)), Trigger.atStep(3))
        .optObservableEvents(SurgeryTrain.EVENTS)
        .optTotalEpochs(3)
        .build();
  }

  // ------------------------------------------------------------------ one schedule

  /**
   * Runs {@code names} in order after the first epoch (layer freezing twice: the second after the
   * second epoch, since it freezes by elapsed training) and checks everything the class comment
   * promises.
   */
  private void run(List<String> names) throws Exception {
    boolean freezeTwice = names.equals(List.of(LF, LF));
    int total = freezeTwice ? 3 : 2;
    SurgeryListener.Builder builder = SurgeryListener.builder().optTotalEpochs(total);
    List<Observed> observed = new ArrayList<>();
    for (int i = 0; i < names.size(); i++) {
      Observed o = new Observed(algorithm(names.get(i)));
      observed.add(o);
      builder.add(o, freezeTwice ? i + 1 : 1);
    }
    SurgeryListener listener = builder.build();
    try (Model model = Model.newInstance("m");
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(resNet20());
      NDArray probe;
      try (Trainer trainer = model.newTrainer(config(listener))) {
        trainer.initialize(INPUT);
        ArrayDataset dataset = dataset(data);
        probe = data.randomNormal(INPUT);
        EasyTrain.fit(trainer, total, dataset, null);

        List<SurgeryOutcome> applied = listener.getOutcomes();
        assertEquals(names.size(), applied.size(), applied.toString());
        for (int i = 0; i < names.size(); i++) {
          SurgeryOutcome a = applied.get(i);
          assertEquals(SurgeryOutcome.Status.APPLIED, a.status(), a.toString());
          Set<String> changed =
              a.changes().changes().stream()
                  .map(SurgeryChanges.Change::path)
                  .collect(Collectors.toCollection(TreeSet::new));
          Set<String> expected = observed.get(i).expected;
          assertFalse(expected.isEmpty(), names.get(i) + " must have something to change");
          assertEquals(expected, changed, names.get(i) + " changed other blocks");
        }
        assertNothingLeftUndone(names, model.getBlock(), total);
        assertTrainerExact(trainer);
        // Layers frozen by layer freezing stay frozen through later surgery that keeps them.
        Set<String> frozen = new TreeSet<>();
        observed.forEach(o -> frozen.addAll(o.frozenAfter));
        for (Parameter p : model.getBlock().getParameters().values()) {
          assertFalse(frozen.contains(p.getId()) && p.requiresGradient(), p.getName() + " thawed");
        }
      }
      float[] saved = outputs(model, probe);
      for (float v : saved) {
        assertTrue(Float.isFinite(v), "outputs must be finite");
      }
      String structure = TestModels.structure(model.getBlock());
      model.save(dir, "m");

      try (Model restored = Model.newInstance("m")) {
        restored.setBlock(resNet20());
        SurgeryCheckpoint.load(restored, dir, "m");
        assertEquals(structure, TestModels.structure(restored.getBlock()));
        assertArrayEquals(saved, outputs(restored, probe), "outputs after load must be identical");
      }
    }
  }

  /**
   * An algorithm that computes, just before it runs, what its rule selects on the model as it is
   * then ({@link #expected}); records and replays name the algorithm it wraps.
   */
  private static final class Observed implements Algorithm {
    private final Algorithm algorithm;
    private Set<String> expected;
    private final Set<String> frozenAfter = new TreeSet<>();

    Observed(Algorithm algorithm) {
      this.algorithm = algorithm;
    }

    @Override
    public String name() {
      return algorithm.name();
    }

    @Override
    public Map<String, Object> hyperparameters() {
      return algorithm.hyperparameters();
    }

    @Override
    public boolean needsInitializedModel() {
      return algorithm.needsInitializedModel();
    }

    @Override
    public SurgeryChanges apply(SurgeryContext context) {
      expected =
          expected(name(), context.model(), context.completedEpochs(), context.totalEpochs());
      SurgeryChanges report = algorithm.apply(context);
      for (Parameter p : context.model().getParameters().values()) {
        if (!p.requiresGradient()) {
          frozenAfter.add(p.getId());
        }
      }
      return report;
    }
  }

  /** Every algorithm of the schedule (but layer freezing) finds nothing left to do at the end. */
  private static void assertNothingLeftUndone(List<String> names, Block root, int total) {
    Map<Block, String> paths = BlockPaths.index(root);
    // Factorizing a standardized convolution keeps what it computes: the first layer standardizes
    // and the 1 x 1 layer is plain by design (see FactorizedConv2d).
    Set<Block> plainByDesign = Collections.newSetFromMap(new IdentityHashMap<>());
    if (names.contains(WS) && names.indexOf(WS) < names.lastIndexOf(FACT)) {
      for (Block b : paths.keySet()) {
        if (b instanceof FactorizedConv2d f) {
          plainByDesign.add(f.getChildren().valueAt(1));
        }
      }
    }
    Set<String> plainPaths =
        plainByDesign.stream().map(paths::get).collect(Collectors.toCollection(TreeSet::new));
    for (String name : names) {
      if (!name.equals(LF)) {
        Set<String> undone = new TreeSet<>(expected(name, root, total, total));
        if (name.equals(WS)) {
          undone.removeAll(plainPaths);
        }
        assertEquals(Set.of(), undone, name + " left blocks undone");
      }
    }
    if (names.contains(WS)) {
      for (Block b : paths.keySet()) {
        if (b instanceof Conv2d && !plainByDesign.contains(b)) {
          assertTrue(AdoptingConv2d.isWeightStandardized(b), b + " must standardize its weight");
        }
      }
    }
  }

  /** The store holds exactly the live parameters; optimizer state exists only for live ones. */
  private static void assertTrainerExact(Trainer trainer) {
    Set<String> live =
        trainer.getModel().getBlock().getParameters().values().stream()
            .map(Parameter::getId)
            .collect(Collectors.toCollection(TreeSet::new));
    Set<String> store =
        new TreeSet<>(DjlTrainers.storeEntries(DjlTrainers.parameterStore(trainer)).keySet());
    assertEquals(live, store, "parameter store ids must equal the model's parameter ids");
    Optimizer optimizer = DjlTrainers.optimizer(trainer);
    for (Map.Entry<String, Map<String, Map<ai.djl.Device, NDArray>>> state :
        DjlOptimizers.optimizerStates(optimizer).entrySet()) {
      Set<String> stale = new TreeSet<>(state.getValue().keySet());
      stale.removeAll(live);
      assertEquals(Set.of(), stale, state.getKey() + " holds state of parameters gone");
    }
  }

  // ------------------------------------------------------------------ refused pairs

  /**
   * The builder refuses the pair naming both entries; applied directly, the pair shows why: the
   * second changes nothing.
   */
  private static void checkRefusal(String first, String second) {
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                SurgeryListener.builder()
                    .add(algorithm(first), 1)
                    .add(algorithm(second), 2)
                    .optTotalEpochs(3)
                    .build());
    String m = e.getMessage();
    assertTrue(m.contains(second + " at epoch 2 (builder entry 2)"), m);
    assertTrue(m.contains(first + " at epoch 1 (builder entry 1)"), m);

    try (NDManager manager = NDManager.newBaseManager()) {
      Block plain = resNet20();
      plain.initialize(manager, DataType.FLOAT32, INPUT);
      int alone =
          algorithm(second).apply(new SurgeryContext(plain, List.of(), 2, 3)).changes().size();
      Block net = resNet20();
      net.initialize(manager, DataType.FLOAT32, INPUT);
      algorithm(first).apply(new SurgeryContext(net, List.of(), 1, 3));
      int after =
          algorithm(second).apply(new SurgeryContext(net, List.of(), 2, 3)).changes().size();
      assertTrue(alone > 0, second + " alone must change blocks");
      if (first.equals(second)) {
        assertEquals(0, after, second + " twice: the second must change nothing");
      } else {
        assertTrue(after < alone, second + " after " + first + ": " + after + " of " + alone);
      }
    }
  }

  // ------------------------------------------------------------------ the oracle

  /**
   * The display paths of the blocks an algorithm selects on {@code root} as it is, from the rule
   * its documentation states (written here independently of its code).
   */
  static Set<String> expected(String name, Block root, int completed, int total) {
    Map<Block, String> paths = BlockPaths.index(root);
    Set<Block> selected = Collections.newSetFromMap(new IdentityHashMap<>());
    switch (name) {
      case BP -> {
        for (Block b : paths.keySet()) {
          boolean rebuildable =
              b.getClass() == Conv2d.class || b.getClass() == WeightStandardizedConv2d.class;
          if (rebuildable
              && ((Conv2d) b).getStride().get(0) > 1
              && BlockInspector.inputChannels((Conv2d) b) >= BP_MIN) {
            selected.add(b);
          }
        }
      }
      case SE -> {
        // Convolutions and factorized convolutions (as a whole), not already gated.
        Set<Block> skip = inside(paths, SqueezeExciteConv2d.class, true);
        skip.addAll(inside(paths, FactorizedConv2d.class, false));
        for (Block b : paths.keySet()) {
          long in;
          long out;
          if (b instanceof Conv2d c) {
            in = BlockInspector.inputChannels(c);
            out = c.getFilters();
          } else if (b instanceof FactorizedConv2d f) {
            Shape first = f.getChildren().valueAt(0).getParameters().get("weight").getShape();
            Shape last = f.getChildren().valueAt(1).getParameters().get("weight").getShape();
            in = first.get(1);
            out = last.get(0);
          } else {
            continue;
          }
          if (!skip.contains(b) && Math.min(in, out) >= SE_MIN) {
            selected.add(b);
          }
        }
      }
      case GBN ->
          paths.keySet().stream().filter(BatchNorm.class::isInstance).forEach(selected::add);
      case FACT -> {
        Set<Block> factorized = inside(paths, FactorizedConv2d.class, false);
        for (Block b : paths.keySet()) {
          Class<?> type = b.getClass();
          boolean rebuildable =
              type == Conv2d.class
                  || type == WeightStandardizedConv2d.class
                  || type == BlurConv2d.class;
          if (!rebuildable || factorized.contains(b)) {
            continue;
          }
          Conv2d c = (Conv2d) b;
          long in = BlockInspector.inputChannels(c);
          long out = c.getFilters();
          long latent = Math.max(1, (long) (FACT_LATENT * Math.min(in, out)));
          long fanIn = in * c.getKernelShape().size();
          long maxRank = (long) Math.ceil((double) fanIn * out / (fanIn + out) - 1);
          if (c.getGroups() == 1 && Math.min(in, out) >= FACT_MIN && latent <= maxRank) {
            selected.add(b);
          }
        }
      }
      case SD -> {
        for (Block b : paths.keySet()) {
          if (b instanceof ParallelBlock unit && isResidualUnit(unit)) {
            selected.add(unit.getChildren().valueAt(0));
          }
        }
      }
      case LF -> {
        List<Block> layers = new ArrayList<>();
        for (Block b : paths.keySet()) {
          if (b != root && b.getChildren().isEmpty() && !b.getDirectParameters().isEmpty()) {
            layers.add(b);
          }
        }
        int depth = (int) ((double) completed / total * (layers.size() - 1));
        for (Block b : layers.subList(0, depth)) {
          if (b.getDirectParameters().values().stream().anyMatch(Parameter::requiresGradient)) {
            selected.add(b);
          }
        }
      }
      case WS -> {
        for (Block b : paths.keySet()) {
          boolean plain = b.getClass() == Conv2d.class;
          boolean own = b instanceof AdoptingConv2d && !AdoptingConv2d.isWeightStandardized(b);
          if (b != root && (plain || own)) {
            selected.add(b);
          }
        }
      }
      default -> throw new IllegalArgumentException(name);
    }
    return selected.stream()
        .map(b -> BlockPaths.display(paths.get(b)))
        .collect(Collectors.toCollection(TreeSet::new));
  }

  /** The blocks under every block of {@code type}: its whole subtree, or only its descendants. */
  private static Set<Block> inside(
      Map<Block, String> paths, Class<? extends Block> type, boolean gatedLayerOnly) {
    Set<Block> inside = Collections.newSetFromMap(new IdentityHashMap<>());
    for (Block b : paths.keySet()) {
      if (type.isInstance(b)) {
        Block from = gatedLayerOnly ? ((SqueezeExciteConv2d) b).getConv() : b;
        Map<Block, String> sub = BlockPaths.index(from);
        sub.keySet().stream().filter(x -> gatedLayerOnly || x != b).forEach(inside::add);
      }
    }
    return inside;
  }

  /** A ResNetV1 unit: a branch with a plain Conv2d, and an identity or Conv2d + BatchNorm cut. */
  private static boolean isResidualUnit(ParallelBlock unit) {
    BlockList children = unit.getChildren();
    if (children.size() != 2
        || !(children.valueAt(0) instanceof SequentialBlock branch)
        || !(children.valueAt(1) instanceof SequentialBlock cut)) {
      return false;
    }
    // A convolution and a batch norm in whatever form the other algorithms left them.
    Predicate<Block> convolution =
        b ->
            b instanceof Conv2d
                || b instanceof SqueezeExciteConv2d
                || b instanceof FactorizedConv2d;
    Predicate<Block> norm = b -> b instanceof BatchNorm || b instanceof GhostBatchNormBlock;
    boolean conv = branch.getChildren().values().stream().anyMatch(convolution);
    List<Block> c = cut.getChildren().values();
    boolean identity =
        c.size() == 1 && c.get(0) instanceof LambdaBlock l && "identity".equals(l.getName());
    boolean projection = c.size() == 2 && convolution.test(c.get(0)) && norm.test(c.get(1));
    return conv && (identity || projection);
  }

  // ------------------------------------------------------------------ helpers

  static DefaultTrainingConfig config(ai.djl.training.listener.TrainingListener... listeners) {
    return new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
        .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build())
        .addTrainingListeners(listeners);
  }

  /** One batch of four 1x28x28 images of four classes (brightness by class, plus noise). */
  static ArrayDataset dataset(NDManager manager) {
    Engine.getInstance().setRandomSeed(11);
    NDArray labels = manager.arange(BATCH).toType(DataType.FLOAT32, false);
    NDArray images =
        manager.randomNormal(INPUT).mul(0.3f).add(labels.reshape(BATCH, 1, 1, 1).sub(1.5f));
    return new ArrayDataset.Builder()
        .setData(images)
        .optLabels(labels)
        .setSampling(BATCH, false)
        .build();
  }

  /** Forward pass in inference mode on a fixed batch. */
  static float[] outputs(Model model, NDArray batch) {
    try (NDManager scratch = model.getNDManager().newSubManager()) {
      NDList out =
          model.getBlock().forward(new ParameterStore(scratch, false), new NDList(batch), false);
      return out.singletonOrThrow().toFloatArray();
    }
  }
}
