package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import ai.djl.Model;
import ai.djl.basicmodelzoo.cv.classification.AlexNet;
import ai.djl.basicmodelzoo.cv.classification.GoogLeNet;
import ai.djl.basicmodelzoo.cv.classification.LeNet;
import ai.djl.basicmodelzoo.cv.classification.MobileNetV1;
import ai.djl.basicmodelzoo.cv.classification.MobileNetV2;
import ai.djl.basicmodelzoo.cv.classification.NiN;
import ai.djl.basicmodelzoo.cv.classification.SqueezeNet;
import ai.djl.basicmodelzoo.cv.classification.VGG;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.LambdaBlock;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.util.Pair;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.layers.BlurConv2d;
import dev.surgery.core.layers.WeightStandardizedConv2d;
import java.lang.reflect.Field;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Function;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The built-in algorithms on DJL's model-zoo classifiers other than ResNet (MobileNetV1 and V2 with
 * their depthwise convolutions, SqueezeNet's concatenating fire modules, GoogLeNet's inception
 * concatenations, VGG, AlexNet, NiN, LeNet), at small inputs and widths. Each model is trained two
 * Adam steps, the algorithm is applied live (after epoch 1 of 3), and then:
 *
 * <ul>
 *   <li>what it replaced is exactly what this test's own walk of the block tree finds by the rule
 *       of docs/algorithms.md (by identity, then path), and an algorithm with nothing to target
 *       says so in a warning;
 *   <li>every parameter of the blocks it kept is the same object with the same values and the same
 *       Adam state, bit for bit; frozen and factorized ones have none left;
 *   <li>a blurred convolution (grouped and depthwise ones included, blur before or after) computes
 *       {@code conv(blur(x))} or {@code blur(conv(x))} with the original weights and groups, a
 *       standardized one the convolution with each filter standardized, a squeeze-excited one the
 *       convolution scaled by its gate recomputed from the gate's linears, by this test's own
 *       arithmetic;
 *   <li>ghost batch norm and stochastic depth leave the evaluation output bit for bit as it was;
 *       stochastic depth wraps only DJL's ResNetV1 units (docs/algorithms.md): never SqueezeNet's
 *       or GoogLeNet's concatenations, nor MobileNetV2's adding inverted residuals, and says so;
 *   <li>five more steps are finite, and a second run from the same seed that collects garbage
 *       between every forward and backward is bit-identical (losses, every parameter);
 *   <li>layer freezing freezes the first {@code floor(1/3 (L - 1))} layers, and the first step
 *       after it moves the unfrozen parameters exactly as a twin without surgery moves them; ghost
 *       batch norm with chunks of the whole batch, and stochastic depth where it wraps nothing,
 *       give the twin's whole trajectory.
 * </ul>
 *
 * <p>Compositions (a recipe's order and its reverse) report a change from every algorithm that has
 * a target on the model when it runs, and train reproducibly. Weight standardization on a network
 * without batch norm is not asked to stay finite: docs/algorithms.md says it is meant for networks
 * that normalize after their convolutions, and here its loss reaches 6e4 (AlexNet) to 2e20
 * (GoogLeNet, trained with {@code -Pnightly}) at the first step after it, reproducibly. VGG (its
 * 4096-unit dense layers are fixed) is checked structurally on an initialized, untrained model, and
 * so is GoogLeNet in the default build (trained, with its composition, under {@code -Pnightly}).
 */
class ZooArchitecturesTest {

  private static final int BATCH = 4;
  private static final int PRE_STEPS = 2;
  private static final int POST_STEPS = 5;
  private static final int SEED = 23;

  /**
   * Whether the slowest network trained here (GoogLeNet: a third of this class's time) trains too,
   * or is checked structurally as VGG is: {@code -Pnightly} (or {@code
   * -Dsurgery.zoo.trainAll=true}) trains it.
   */
  private static final boolean TRAIN_ALL = Boolean.getBoolean("surgery.zoo.trainAll");

  /** One architecture: how to build it and its sample shape. */
  record Arch(String name, Supplier<Block> net, Shape sample, boolean structuralOnly) {
    @Override
    public String toString() {
      return name;
    }
  }

  static final Map<String, Arch> ARCHS = new LinkedHashMap<>();

  static {
    put(
        new Arch(
            "MobileNetV1",
            () -> MobileNetV1.builder().optWidthMultiplier(0.25f).setOutSize(4).build(),
            new Shape(3, 32, 32),
            false));
    put(
        new Arch(
            "MobileNetV2",
            () ->
                gcSafeRelu6(
                    MobileNetV2.builder()
                        .optFilters(new int[] {8, 8, 8, 16, 16, 24, 32, 64, 128})
                        .setOutSize(4)
                        .build()),
            new Shape(3, 32, 32),
            false));
    put(new Arch("SqueezeNet", () -> SqueezeNet.squeezenet(4), new Shape(3, 64, 64), false));
    put(
        new Arch(
            "GoogLeNet",
            () -> GoogLeNet.builder().setOutSize(4).build(),
            new Shape(3, 16, 16),
            !TRAIN_ALL));
    put(
        new Arch(
            "VGG",
            () ->
                VGG.builder()
                    .setNumLayers(7)
                    .setConvArch(new int[][] {{1, 8}, {1, 16}, {2, 32}})
                    .setOutSize(4)
                    .build(),
            new Shape(3, 32, 32),
            true));
    put(
        new Arch(
            "AlexNet",
            () ->
                AlexNet.builder()
                    .setNumChannels(new int[] {8, 16, 16, 16, 8, 64, 64})
                    .setOutSize(4)
                    .build(),
            new Shape(3, 67, 67),
            false));
    put(
        new Arch(
            "NiN",
            () -> NiN.builder().setNumChannels(new int[] {8, 16, 16, 4}).build(),
            new Shape(3, 67, 67),
            false));
    put(
        new Arch(
            "LeNet",
            () -> LeNet.builder().setNumChannels(new int[] {6, 16, 120, 84}).setOutSize(4).build(),
            new Shape(1, 28, 28),
            false));
  }

  /**
   * DJL's MobileNetV2 with its {@code relu6} lambdas replaced by the same function whose 6 is an
   * engine-owned array. DJL's {@code Activation.relu6} is {@code minimum(6, relu(x))} with a Java
   * number, which the PyTorch engine turns into a tensor over a direct buffer it does not own and
   * keeps for the backward: a garbage collection between forward and backward frees it, and the
   * backward reads whatever the memory holds (DJL 0.36.0; two runs of the plain model from one seed
   * then differ, with or without surgery). Same values otherwise.
   */
  static Block gcSafeRelu6(Block net) {
    dev.surgery.core.ModuleSurgery.replaceModules(
        net,
        Map.of(
            dev.surgery.core.BlockMatcher.lambdaNamed("ReLU6"),
            (block, index) ->
                LambdaBlock.singleton(
                    x ->
                        x.getNDArrayInternal()
                            .relu()
                            .minimum(x.getManager().full(new Shape(), 6f, x.getDataType())),
                    "ReLU6")),
        dev.surgery.core.SurgeryOptions.defaults());
    return net;
  }

  private static void put(Arch arch) {
    ARCHS.put(arch.name, arch);
  }

  @BeforeAll
  static void register() {
    LiveTraining.registerBuiltins();
  }

  // ---------------------------------------------------------------- settings

  static Map<String, Object> settings(String algorithm, Arch arch) {
    return switch (algorithm) {
      case BlurPool.NAME -> Map.of("min_channels", 8);
      case SqueezeExcite.NAME -> Map.of("min_channels", 16, "latent_channels", 0.25);
      case GhostBatchNorm.NAME -> Map.of("ghost_batch_size", 2);
      case Factorize.NAME ->
          arch.structuralOnly
              ? Map.of("min_channels", 16, "latent_channels", 0.25, "factorize_linears", false)
              : Map.of(
                  "min_channels",
                  16,
                  "latent_channels",
                  0.25,
                  "min_features",
                  32,
                  "latent_features",
                  0.25);
      case StochasticDepth.NAME -> Map.of();
      case LayerFreezing.NAME -> Map.of("freeze_start", 0.0);
      case WeightStandardization.NAME -> Map.of("n_last_layers_ignore", 1);
      default -> throw new IllegalArgumentException(algorithm);
    };
  }

  static Stream<Arguments> singleCases() {
    List<Arguments> cases = new ArrayList<>();
    for (String arch : ARCHS.keySet()) {
      for (String algorithm : LiveTraining.builtinNames()) {
        cases.add(Arguments.of(arch, algorithm));
      }
    }
    return cases.stream();
  }

  // ---------------------------------------------------------------- one live run

  /** What a run saw. */
  static final class Run {
    final List<SurgeryChanges> reports = new ArrayList<>();
    final List<Float> losses = new ArrayList<>();
    final Map<String, float[]> afterFirstPostStep = new LinkedHashMap<>();
    final Map<String, float[]> finalParameters = new LinkedHashMap<>();
    final Set<String> frozen = new TreeSet<>();

    /** Per algorithm applied: whether this test's own walk found something for it to change. */
    final List<Boolean> hadTarget = new ArrayList<>();

    float[] evalAfterTraining;

    /**
     * Whether finiteness was required: not for weight standardization on a network without batch
     * norm, which docs/algorithms.md documents as outside its use (its outputs grow by about
     * sqrt(fan-in) per standardized layer with nothing to normalize them).
     */
    boolean guarded;
  }

  /** Checks made on the model right before and right after the surgery. */
  interface Probe {
    /** Called before the surgery; returns what to check after it. */
    Consumer after(Model model, Trainer trainer, NDManager manager);
  }

  /** The after-half of a probe. */
  interface Consumer {
    void check(Model model, Trainer trainer, NDManager manager, List<SurgeryChanges> reports);
  }

  static Run run(Arch arch, List<Algorithm> algorithms, Probe probe) {
    return run(arch, algorithms, probe, false);
  }

  /**
   * Trains, applies and trains on; with {@code collect}, a garbage collection over-writes freed
   * memory between every forward and its backward (the second run of a same-seed pair does it, so
   * that a read of memory nobody owns shows up as a difference).
   */
  static Run run(Arch arch, List<Algorithm> algorithms, Probe probe, boolean collect) {
    Run run = new Run();
    Engine.getInstance().setRandomSeed(SEED);
    try (Model model = Model.newInstance("zoo-" + arch.name);
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(arch.net.get());
      run.guarded =
          hasBatchNorm(model.getBlock())
              || algorithms.stream().noneMatch(a -> WeightStandardization.NAME.equals(a.name()));
      int classes = 4;
      List<NDList[]> batches = new ArrayList<>();
      for (int b = 0; b < 3; b++) {
        NDArray labels = data.arange(b, b + BATCH).mod(classes).toType(DataType.FLOAT32, false);
        NDArray images =
            data.randomNormal(new Shape(BATCH).addAll(arch.sample))
                .add(labels.reshape(BATCH, 1, 1, 1).sub(1.5f));
        batches.add(new NDList[] {new NDList(images), new NDList(labels)});
      }
      Loss loss = Loss.softmaxCrossEntropyLoss();
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(loss)
              .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(1e-3f)).build());
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(new Shape(BATCH).addAll(arch.sample));
        int step = 0;
        int pre = arch.structuralOnly ? 0 : PRE_STEPS;
        int post = arch.structuralOnly ? 0 : POST_STEPS;
        for (; step < pre; step++) {
          step(trainer, loss, batches.get(step % batches.size()), run, collect);
        }
        Consumer after = probe == null ? null : probe.after(model, trainer, data);
        for (Algorithm algorithm : algorithms) {
          run.hadTarget.add(hasTarget(algorithm, model.getBlock()));
          SurgeryContext context = SurgeryContext.live(model.getBlock(), trainer, 1, 3);
          dev.surgery.core.SurgeryPlan plan;
          try {
            plan = algorithm.plan(context);
          } catch (PlanUnavailableException e) {
            plan = null;
          }
          SurgeryChanges report = algorithm.apply(context);
          run.reports.add(report);
          if (plan != null) {
            // The dry run named what the apply changed, in its order, and the parameter count.
            assertEquals(
                plan.steps().stream().map(dev.surgery.core.SurgeryPlan.Step::path).toList(),
                report.changes().stream().map(SurgeryChanges.Change::path).toList(),
                arch.name + ": " + algorithm.name() + "'s plan against its apply");
            assertEquals(
                plan.parametersAfter(),
                report.parametersAfter(),
                arch.name + ": " + algorithm.name() + "'s planned parameter count");
          }
          if (run.guarded) {
            FinitenessGuard.assertFinite(trainer, arch.name + " right after " + algorithm.name());
          }
        }
        if (after != null) {
          after.check(model, trainer, data, run.reports);
        }
        for (Pair<String, Parameter> p : model.getBlock().getParameters()) {
          if (!p.getValue().requiresGradient()) {
            run.frozen.add(p.getKey());
          }
        }
        for (int i = 0; i < post; i++, step++) {
          step(trainer, loss, batches.get(step % batches.size()), run, collect);
          if (run.guarded) {
            FinitenessGuard.assertFinite(trainer, arch.name + " after post step " + i);
          }
          if (i == 0) {
            snapshot(model, run.afterFirstPostStep);
          }
        }
        snapshot(model, run.finalParameters);
        run.evalAfterTraining =
            trainer
                .evaluate(new NDList(gaussian(data, new Shape(BATCH).addAll(arch.sample), 3)))
                .singletonOrThrow()
                .toFloatArray();
      }
    }
    return run;
  }

  private static void step(Trainer trainer, Loss loss, NDList[] batch, Run run, boolean collect) {
    try (GradientCollector gc = trainer.newGradientCollector()) {
      NDList predictions = trainer.forward(batch[0]);
      // A collection between forward and backward, over-writing what it freed: a backward that
      // reads memory nobody owns shows up as a difference between two runs of the same seed.
      if (collect) {
        dev.surgery.core.testing.FreedMemory.collectAndOverwrite();
      }
      NDArray l = loss.evaluate(batch[1], predictions);
      run.losses.add(l.getFloat());
      gc.backward(l);
    }
    trainer.step();
  }

  private static void snapshot(Model model, Map<String, float[]> into) {
    for (Pair<String, Parameter> p : model.getBlock().getParameters()) {
      into.put(p.getKey(), p.getValue().getArray().toFloatArray());
    }
  }

  private static void assertSameRun(Run first, Run second, String what) {
    assertEquals(first.losses, second.losses, what + ": losses of the same seed");
    assertEquals(first.finalParameters.keySet(), second.finalParameters.keySet(), what);
    for (Map.Entry<String, float[]> e : first.finalParameters.entrySet()) {
      assertArrayEquals(
          e.getValue(), second.finalParameters.get(e.getKey()), what + " " + e.getKey());
    }
  }

  /** The same losses and the same parameter values in traversal order (names may differ). */
  private static void assertSameTrajectory(Run twin, Run run, String what) {
    assertEquals(twin.losses, run.losses, what + ": losses");
    List<float[]> a = new ArrayList<>(twin.finalParameters.values());
    List<float[]> b = new ArrayList<>(run.finalParameters.values());
    assertEquals(a.size(), b.size(), what + ": parameter count");
    for (int i = 0; i < a.size(); i++) {
      assertArrayEquals(a.get(i), b.get(i), what + ": parameter " + i);
    }
  }

  static boolean hasBatchNorm(Block root) {
    return preOrder(root).stream().anyMatch(b -> b instanceof BatchNorm);
  }

  private static void assertFiniteLosses(Run run, String what) {
    if (!run.guarded) {
      return;
    }
    for (float l : run.losses) {
      assertTrue(Float.isFinite(l), what + ": loss " + run.losses);
    }
  }

  // ---------------------------------------------------------------- the tree walk (own oracle)

  /** Every block in pre-order (a block before its children, children in their order). */
  static List<Block> preOrder(Block root) {
    List<Block> out = new ArrayList<>();
    walk(root, out);
    return out;
  }

  private static void walk(Block block, List<Block> out) {
    out.add(block);
    for (Pair<String, Block> child : block.getChildren()) {
      walk(child.getValue(), out);
    }
  }

  static boolean isPlainConv(Block b) {
    return b.getClass() == Conv2d.class;
  }

  static long inChannels(Conv2d conv) {
    Parameter weight = conv.getParameters().get("weight");
    return weight.getArray().getShape().get(1) * conv.getGroups();
  }

  static long outChannels(Conv2d conv) {
    return conv.getParameters().get("weight").getArray().getShape().get(0);
  }

  static boolean strided(Conv2d conv) {
    return conv.getStride().get(0) > 1 || conv.getStride().get(1) > 1;
  }

  static boolean isMaxPool(Block b) {
    return b instanceof LambdaBlock lambda && "maxPool2d".equals(lambda.getName());
  }

  /** The blocks each algorithm must replace on an initialized model, by the documented rule. */
  static List<Block> expectedTargets(String algorithm, Block root, Map<String, Object> s) {
    List<Block> all = preOrder(root);
    List<Block> out = new ArrayList<>();
    switch (algorithm) {
      case BlurPool.NAME -> {
        int min = (Integer) s.get("min_channels");
        for (Block b : all) {
          if (isMaxPool(b)
              || (isPlainConv(b) && strided((Conv2d) b) && inChannels((Conv2d) b) >= min)) {
            out.add(b);
          }
        }
      }
      case SqueezeExcite.NAME -> {
        int min = (Integer) s.get("min_channels");
        for (Block b : all) {
          if (isPlainConv(b) && Math.min(inChannels((Conv2d) b), outChannels((Conv2d) b)) >= min) {
            out.add(b);
          }
        }
      }
      case GhostBatchNorm.NAME -> {
        for (Block b : all) {
          if (b.getClass() == BatchNorm.class) {
            out.add(b);
          }
        }
      }
      case WeightStandardization.NAME -> {
        List<Block> convs = all.stream().filter(ZooArchitecturesTest::isPlainConv).toList();
        int ignore = (Integer) s.get("n_last_layers_ignore");
        out.addAll(convs.subList(0, Math.max(0, convs.size() - ignore)));
      }
      case Factorize.NAME -> {
        int minC = (Integer) s.get("min_channels");
        double latC = (Double) s.get("latent_channels");
        boolean linears = !Boolean.FALSE.equals(s.get("factorize_linears"));
        for (Block b : all) {
          if (isPlainConv(b)) {
            Conv2d c = (Conv2d) b;
            if (c.getGroups() != 1) {
              continue;
            }
            long in = inChannels(c);
            long o = outChannels(c);
            long kernel = c.getKernelShape().get(0) * c.getKernelShape().get(1);
            if (Math.min(in, o) >= minC && cheaper(in * kernel, o, Math.min(in, o), latC)) {
              out.add(b);
            }
          } else if (linears && b.getClass() == Linear.class) {
            int minF = (Integer) s.get("min_features");
            double latF = (Double) s.get("latent_features");
            Shape w = b.getParameters().get("weight").getArray().getShape();
            long o = w.get(0);
            long in = w.get(1);
            if (Math.min(in, o) >= minF && cheaper(in, o, Math.min(in, o), latF)) {
              out.add(b);
            }
          }
        }
      }
      case StochasticDepth.NAME -> {
        for (Block b : all) {
          if (isResNetUnit(b)) {
            out.add(b);
          }
        }
      }
      default -> throw new IllegalArgumentException(algorithm);
    }
    return out;
  }

  /**
   * Whether the documented rule finds something for the algorithm on the current tree (layers
   * inside a factorized block left out: they are never factorized or gated again).
   */
  static boolean hasTarget(Algorithm algorithm, Block root) {
    if (LayerFreezing.NAME.equals(algorithm.name())) {
      List<Block> layers = layers(root);
      int k = (int) Math.floor((1.0 / 3) * (layers.size() - 1));
      return layers.subList(0, k).stream()
          .anyMatch(l -> l.getParameters().values().stream().anyMatch(Parameter::requiresGradient));
    }
    Set<Block> insideFactorized = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
    for (Block b : preOrder(root)) {
      if (b instanceof dev.surgery.core.layers.FactorizedBlock) {
        List<Block> under = preOrder(b);
        insideFactorized.addAll(under.subList(1, under.size()));
      }
    }
    return expectedTargets(algorithm.name(), root, algorithm.hyperparameters()).stream()
        .anyMatch(b -> !insideFactorized.contains(b));
  }

  private static boolean cheaper(long fanIn, long out, long min, double latent) {
    long rank = latent < 1 ? Math.max(1, (long) Math.floor(latent * min)) : (long) latent;
    return rank <= (long) Math.ceil((double) fanIn * out / (fanIn + out) - 1);
  }

  /**
   * A residual unit: a ParallelBlock of two children, one a branch with a convolution, the other a
   * parameterless identity or a projection with a convolution, whose join (read from the block and
   * run on two arrays) adds them, with or without a ReLU.
   */
  static boolean isAddingResidual(Block b) {
    if (!(b instanceof ParallelBlock) || b.getChildren().size() != 2) {
      return false;
    }
    Block first = b.getChildren().get(0).getValue();
    Block second = b.getChildren().get(1).getValue();
    boolean firstConv = preOrder(first).stream().anyMatch(c -> c instanceof Conv2d);
    boolean secondConv = preOrder(second).stream().anyMatch(c -> c instanceof Conv2d);
    boolean secondIdentity = second.getParameters().isEmpty();
    boolean firstIdentity = first.getParameters().isEmpty();
    if (!((firstConv && (secondIdentity || secondConv)) || (secondConv && firstIdentity))) {
      return false;
    }
    return joinAdds((ParallelBlock) b);
  }

  /**
   * An adding residual unit shaped as DJL's ResNetV1 builds them (the documented target): two
   * SequentialBlocks, a branch with a convolution and a shortcut holding DJL's identity lambda
   * alone or a convolution and a batch norm.
   */
  static boolean isResNetUnit(Block b) {
    if (!isAddingResidual(b)) {
      return false;
    }
    Block branch = b.getChildren().get(0).getValue();
    Block shortcut = b.getChildren().get(1).getValue();
    if (!(branch instanceof ai.djl.nn.SequentialBlock)
        || !(shortcut instanceof ai.djl.nn.SequentialBlock)) {
      return false;
    }
    List<Block> inner = shortcut.getChildren().values();
    boolean identity =
        inner.size() == 1
            && inner.get(0) instanceof LambdaBlock lambda
            && "identity".equals(lambda.getName());
    boolean projection =
        inner.size() == 2 && inner.get(0) instanceof Conv2d && inner.get(1) instanceof BatchNorm;
    return identity || projection;
  }

  @SuppressWarnings("unchecked")
  private static boolean joinAdds(ParallelBlock block) {
    try {
      Field f = ParallelBlock.class.getDeclaredField("function");
      f.setAccessible(true);
      Function<List<NDList>, NDList> join = (Function<List<NDList>, NDList>) f.get(block);
      try (NDManager m = NDManager.newBaseManager()) {
        NDArray a = m.create(new float[] {1f, -2f, 3f, 0.5f}, new Shape(1, 4, 1, 1));
        NDArray c = m.create(new float[] {2f, 1f, -4f, 0.25f}, new Shape(1, 4, 1, 1));
        NDList joined = join.apply(List.of(new NDList(a), new NDList(c)));
        float[] got = joined.singletonOrThrow().toFloatArray();
        float[] sum = {3f, -1f, -1f, 0.75f};
        float[] relu = {3f, 0f, 0f, 0.75f};
        return java.util.Arrays.equals(got, sum) || java.util.Arrays.equals(got, relu);
      }
    } catch (ReflectiveOperationException | RuntimeException e) {
      return false;
    }
  }

  /** Leaf blocks with learnable parameters, pre-order (layer_freezing's layers). */
  static List<Block> layers(Block root) {
    List<Block> out = new ArrayList<>();
    for (Block b : preOrder(root)) {
      if (b.getChildren().isEmpty()
          && b.getParameters().values().stream().anyMatch(p -> !isRunningStatistic(p))) {
        out.add(b);
      }
    }
    return out;
  }

  private static boolean isRunningStatistic(Parameter p) {
    return p.getType() == Parameter.Type.RUNNING_MEAN || p.getType() == Parameter.Type.RUNNING_VAR;
  }

  // ---------------------------------------------------------------- the single-algorithm cases

  @ParameterizedTest(name = "{1} on {0}")
  @MethodSource("singleCases")
  void algorithmOnZooArchitecture(String archName, String name) {
    Arch arch = ARCHS.get(archName);
    Map<String, Object> s = settings(name, arch);
    Algorithm algorithm = Algorithms.spec(name).create(s);
    String what = name + " on " + archName;
    Run first =
        run(
            arch,
            List.of(algorithm),
            (model, trainer, manager) ->
                before(what, name, s, arch.sample, model, trainer, manager));
    SurgeryChanges report = first.reports.get(0);
    if (report.isEmpty()) {
      assertFalse(report.warnings().isEmpty(), what + " changed nothing silently: " + report);
    }
    assertFiniteLosses(first, what);
    if (arch.structuralOnly) {
      return;
    }
    if (StochasticDepth.NAME.equals(name) && report.isEmpty()) {
      // Nothing wrapped: the run is the plain model's (collecting garbage in one of the two).
      Run twin = run(arch, List.of(), null, true);
      assertSameRun(twin, first, what + " (nothing wrapped) against no surgery");
      return;
    }
    Run second = run(arch, List.of(algorithm), null, true);
    assertSameRun(first, second, what);
    if (LayerFreezing.NAME.equals(name)) {
      Run twin = run(arch, List.of(), null);
      for (Map.Entry<String, float[]> e : twin.afterFirstPostStep.entrySet()) {
        if (!first.frozen.contains(e.getKey())) {
          assertArrayEquals(
              e.getValue(),
              first.afterFirstPostStep.get(e.getKey()),
              what + ": first step after the surgery of unfrozen " + e.getKey());
        }
      }
    }
  }

  @ParameterizedTest(name = "blurpool with blur_first false on {0}")
  @MethodSource("batchNormArchs")
  void blurAfterTheGroupedConvolution(String archName) {
    Arch arch = ARCHS.get(archName);
    Map<String, Object> s = Map.of("min_channels", 8, "blur_first", false);
    Algorithm algorithm = Algorithms.spec(BlurPool.NAME).create(s);
    String what = "blurpool (blur after) on " + archName;
    Run run =
        run(
            arch,
            List.of(algorithm),
            (model, trainer, manager) ->
                before(what, BlurPool.NAME, s, arch.sample, model, trainer, manager));
    assertFalse(run.reports.get(0).isEmpty(), what);
    assertFiniteLosses(run, what);
  }

  static Stream<Arguments> compositionCases() {
    List<Arguments> cases = new ArrayList<>();
    cases.add(Arguments.of("MobileNetV1", true));
    for (String arch : List.of("MobileNetV2", "SqueezeNet")) {
      cases.add(Arguments.of(arch, false));
      cases.add(Arguments.of(arch, true));
    }
    if (TRAIN_ALL) {
      cases.add(Arguments.of("GoogLeNet", false));
    }
    return cases.stream();
  }

  /** A recipe's order: the replacing algorithms, then the ones that wrap, then freezing. */
  static final List<String> RECIPE =
      List.of(
          BlurPool.NAME,
          SqueezeExcite.NAME,
          Factorize.NAME,
          WeightStandardization.NAME,
          GhostBatchNorm.NAME,
          StochasticDepth.NAME,
          LayerFreezing.NAME);

  @ParameterizedTest(name = "all seven on {0}, reversed {1}")
  @MethodSource("compositionCases")
  void compositionOnZooArchitecture(String archName, boolean reversed) {
    Arch arch = ARCHS.get(archName);
    List<String> names = new ArrayList<>(RECIPE);
    if (reversed) {
      java.util.Collections.reverse(names);
    }
    List<Algorithm> algorithms = new ArrayList<>();
    for (String name : names) {
      algorithms.add(Algorithms.spec(name).create(settings(name, arch)));
    }
    String what = names + " on " + archName;
    Run first = run(arch, algorithms, null);
    for (int i = 0; i < names.size(); i++) {
      SurgeryChanges report = first.reports.get(i);
      if (first.hadTarget.get(i)) {
        assertFalse(report.isEmpty(), what + ": " + names.get(i) + " dropped: " + report);
      }
      if (report.isEmpty()) {
        assertFalse(report.warnings().isEmpty(), what + ": " + names.get(i) + " silent");
      }
    }
    assertFiniteLosses(first, what);
    for (float v : first.evalAfterTraining) {
      assertTrue(!first.guarded || Float.isFinite(v), what + ": evaluation output");
    }
    Run second = run(arch, algorithms, null, true);
    assertSameRun(first, second, what);
  }

  @ParameterizedTest(name = "blurpool then layer_freezing on {0}")
  @MethodSource("archNames")
  void recipeOnZooArchitecture(String archName) {
    Arch arch = ARCHS.get(archName);
    Algorithm blur = Algorithms.spec(BlurPool.NAME).create(settings(BlurPool.NAME, arch));
    Algorithm freeze =
        Algorithms.spec(LayerFreezing.NAME).create(settings(LayerFreezing.NAME, arch));
    Run run = run(arch, List.of(blur, freeze), null);
    for (int i = 0; i < 2; i++) {
      if (run.hadTarget.get(i)) {
        assertFalse(run.reports.get(i).isEmpty(), archName + ": step " + i + " dropped");
      } else {
        assertFalse(run.reports.get(i).warnings().isEmpty(), archName + ": step " + i + " silent");
      }
    }
    assertFiniteLosses(run, archName);
  }

  static Stream<String> archNames() {
    return ARCHS.keySet().stream();
  }

  @ParameterizedTest(name = "ghost_batchnorm with chunks of the whole batch on {0}")
  @MethodSource("batchNormArchs")
  void ghostBatchNormOfTheWholeBatchIsTheTwin(String archName) {
    Arch arch = ARCHS.get(archName);
    Algorithm ghost =
        Algorithms.spec(GhostBatchNorm.NAME).create(Map.of("ghost_batch_size", BATCH));
    Run ghosted = run(arch, List.of(ghost), null);
    assertFalse(ghosted.reports.get(0).isEmpty(), archName);
    Run twin = run(arch, List.of(), null, true);
    assertSameTrajectory(twin, ghosted, "ghost_batchnorm (" + BATCH + ") on " + archName);
  }

  static Stream<String> batchNormArchs() {
    return Stream.of("MobileNetV1", "MobileNetV2");
  }

  private static Consumer before(
      String what,
      String name,
      Map<String, Object> s,
      Shape sample,
      Model model,
      Trainer trainer,
      NDManager manager) {
    Block root = model.getBlock();
    List<Block> targets =
        LayerFreezing.NAME.equals(name) ? List.of() : expectedTargets(name, root, s);
    Map<Block, String> paths = BlockPaths.index(root);
    Set<String> expectedPaths = new TreeSet<>();
    for (Block t : targets) {
      expectedPaths.add(paths.get(t));
    }
    // Every parameter of a kept block, with its values.
    Map<Parameter, float[]> kept = new IdentityHashMap<>();
    Set<Parameter> ofTargets = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
    for (Block t : targets) {
      ofTargets.addAll(t.getParameters().values());
    }
    for (Pair<String, Parameter> p : root.getParameters()) {
      kept.put(p.getValue(), p.getValue().getArray().toFloatArray());
    }
    // Convolutions to recompute by hand: their weights, bias and settings, by path.
    // Max pools: their parent and place, and their outputs on odd and even sizes.
    List<Object[]> pools = new ArrayList<>();
    if (BlurPool.NAME.equals(name)) {
      ParameterStore plain = new ParameterStore(manager, false);
      for (Block parent : preOrder(root)) {
        List<Block> children = parent.getChildren().values();
        for (int i = 0; i < children.size(); i++) {
          if (targets.contains(children.get(i)) && isMaxPool(children.get(i))) {
            Map<Long, Shape> shapes = new LinkedHashMap<>();
            for (long side = 7; side <= 10; side++) {
              NDArray x = gaussian(manager, new Shape(2, 3, side, side), side);
              shapes.put(
                  side,
                  children
                      .get(i)
                      .forward(plain, new NDList(x), false)
                      .singletonOrThrow()
                      .getShape());
            }
            pools.add(new Object[] {parent, i, shapes});
          }
        }
      }
    }
    Map<String, Conv2d> convs = new LinkedHashMap<>();
    Map<String, float[][]> convValues = new LinkedHashMap<>();
    if (BlurPool.NAME.equals(name)
        || WeightStandardization.NAME.equals(name)
        || SqueezeExcite.NAME.equals(name)) {
      for (Block t : targets) {
        if (t instanceof Conv2d c) {
          convs.put(paths.get(t), c);
        }
      }
    }
    if (what.contains("MobileNet")) {
      // The depthwise convolutions are among the recomputed ones.
      assertTrue(
          !convs.isEmpty()
                  == (BlurPool.NAME.equals(name)
                      || WeightStandardization.NAME.equals(name)
                      || SqueezeExcite.NAME.equals(name))
              && (convs.isEmpty() || convs.values().stream().anyMatch(c -> c.getGroups() > 1)),
          what + ": no grouped convolution to recompute");
    }
    List<Block> layersBefore = layers(root);
    Map<String, float[]> statesBefore = optimizerStates(trainer);
    String archName = what.substring(what.lastIndexOf(" on ") + " on ".length());
    assertTrue(
        statesBefore.isEmpty() == ARCHS.get(archName).structuralOnly,
        what + ": optimizer state after two Adam steps (none where not trained)");
    NDArray probe = gaussian(manager, new Shape(BATCH).addAll(sample), 5);
    float[] evalBefore = trainer.evaluate(new NDList(probe)).singletonOrThrow().toFloatArray();
    return (m, t, mm, reports) -> {
      SurgeryChanges report = reports.get(0);
      Set<String> reported = new TreeSet<>();
      for (SurgeryChanges.Change c : report.changes()) {
        reported.add(c.path());
      }
      if (LayerFreezing.NAME.equals(name)) {
        int k = (int) Math.floor((1.0 / 3) * (layersBefore.size() - 1));
        for (int i = 0; i < layersBefore.size(); i++) {
          for (Parameter p : layersBefore.get(i).getParameters().values()) {
            if (isRunningStatistic(p)) {
              continue;
            }
            assertEquals(
                i >= k,
                p.requiresGradient(),
                what
                    + ": layer "
                    + i
                    + " of "
                    + layersBefore.size()
                    + " ("
                    + k
                    + " frozen) "
                    + p.getName());
          }
        }
        assertEquals(k, report.changes().size(), what + ": " + report.changes());
        if (k == 0) {
          assertFalse(report.warnings().isEmpty(), what);
        }
      } else {
        assertEquals(expectedPaths, reported, what + ": replaced blocks");
      }
      // Kept parameters: same objects, same values.
      Map<Parameter, Boolean> present = new IdentityHashMap<>();
      for (Pair<String, Parameter> p : m.getBlock().getParameters()) {
        present.put(p.getValue(), true);
      }
      for (Map.Entry<Parameter, float[]> e : kept.entrySet()) {
        if (ofTargets.contains(e.getKey()) && Factorize.NAME.equals(name)) {
          continue;
        }
        assertTrue(present.containsKey(e.getKey()), what + ": lost " + e.getKey().getName());
        assertArrayEquals(
            e.getValue(),
            e.getKey().getArray().toFloatArray(),
            what + ": changed " + e.getKey().getName());
      }
      if (Factorize.NAME.equals(name)) {
        for (Block b : preOrder(m.getBlock())) {
          if (b instanceof Conv2d c && c.getGroups() > 1) {
            assertTrue(
                kept.containsKey(c.getParameters().get("weight")), what + ": grouped conv changed");
          }
        }
      }
      // Kept parameters keep their optimizer state bit for bit; frozen and replaced ones lose it.
      Map<String, float[]> statesAfter = optimizerStates(t);
      for (Map.Entry<Parameter, float[]> e : kept.entrySet()) {
        Parameter p = e.getKey();
        boolean gone =
            (ofTargets.contains(p) && Factorize.NAME.equals(name)) || !p.requiresGradient();
        for (Map.Entry<String, float[]> state : statesBefore.entrySet()) {
          if (!state.getKey().startsWith(p.getId() + "/")) {
            continue;
          }
          if (gone) {
            assertFalse(
                statesAfter.containsKey(state.getKey()),
                what + ": state of a frozen or replaced parameter kept: " + p.getName());
          } else {
            assertArrayEquals(
                state.getValue(),
                statesAfter.get(state.getKey()),
                what + ": optimizer state of kept " + p.getName() + " " + state.getKey());
          }
        }
      }
      // A blurred max pool keeps the pool's output shape (a global pool after it would hide it).
      for (Object[] pool : pools) {
        Block replacement = ((Block) pool[0]).getChildren().get((Integer) pool[1]).getValue();
        assertTrue(
            replacement instanceof dev.surgery.core.layers.BlurMaxPool2d,
            what + ": " + replacement);
        @SuppressWarnings("unchecked")
        Map<Long, Shape> shapes = (Map<Long, Shape>) pool[2];
        for (Map.Entry<Long, Shape> e : shapes.entrySet()) {
          NDArray x = gaussian(mm, new Shape(2, 3, e.getKey(), e.getKey()), e.getKey());
          assertEquals(
              e.getValue(),
              replacement
                  .forward(new ParameterStore(mm, false), new NDList(x), false)
                  .singletonOrThrow()
                  .getShape(),
              what + ": blurred max pool's output on " + e.getKey() + " x " + e.getKey());
        }
      }
      if (BlurPool.NAME.equals(name)) {
        assertEquals(
            targets.stream().filter(ZooArchitecturesTest::isMaxPool).count(),
            pools.size(),
            what + ": max pools found by place");
      }
      // Recompute blurred and standardized convolutions by hand.
      ParameterStore store = new ParameterStore(mm, false);
      for (Map.Entry<String, Conv2d> e : convs.entrySet()) {
        Conv2d original = e.getValue();
        Parameter originalWeight = original.getParameters().get("weight");
        Block replaced = null;
        for (Block b : preOrder(m.getBlock())) {
          if (b != original
              && b.getParameters().values().stream().anyMatch(p -> p == originalWeight)) {
            replaced = b;
          }
        }
        NDArray weight = original.getParameters().get("weight").getArray();
        NDArray bias =
            original.isIncludeBias() ? original.getParameters().get("bias").getArray() : null;
        long side = Math.max(9, original.getKernelShape().get(0) + 4);
        NDArray x = gaussian(mm, new Shape(2, inChannels(original), side, side), 7);
        NDArray expected;
        if (BlurPool.NAME.equals(name)) {
          assertTrue(replaced instanceof BlurConv2d, what + ": " + replaced);
          if (Boolean.FALSE.equals(s.get("blur_first"))) {
            // A stride-1 convolution, then the blur with the convolution's stride.
            expected =
                blur(
                    Conv2d.conv2d(
                            x,
                            weight,
                            bias,
                            new Shape(1, 1),
                            original.getPadding(),
                            original.getDilation(),
                            original.getGroups())
                        .singletonOrThrow(),
                    original.getStride());
          } else {
            expected =
                Conv2d.conv2d(
                        blur(x, new Shape(1, 1)),
                        weight,
                        bias,
                        original.getStride(),
                        original.getPadding(),
                        original.getDilation(),
                        original.getGroups())
                    .singletonOrThrow();
          }
        } else if (SqueezeExcite.NAME.equals(name)) {
          // conv(x) scaled per channel by sigmoid(W2 relu(W1 mean(conv(x)))), the gate's linears
          // read from the replacement, which holds the convolution itself.
          assertTrue(
              preOrder(replaced).stream().anyMatch(b -> b == original), what + ": conv not held");
          List<Block> linears =
              preOrder(replaced).stream().filter(b -> b instanceof Linear).toList();
          assertEquals(2, linears.size(), what + ": gate linears");
          NDArray y =
              Conv2d.conv2d(
                      x,
                      weight,
                      bias,
                      original.getStride(),
                      original.getPadding(),
                      original.getDilation(),
                      original.getGroups())
                  .singletonOrThrow();
          NDArray w1 = linears.get(0).getParameters().get("weight").getArray();
          NDArray w2 = linears.get(1).getParameters().get("weight").getArray();
          NDArray pooled = y.mean(new int[] {3}).mean(new int[] {2});
          NDArray hidden = pooled.matMul(w1.transpose()).getNDArrayInternal().relu();
          NDArray gate = hidden.matMul(w2.transpose()).getNDArrayInternal().sigmoid();
          expected = y.mul(gate.reshape(gate.getShape().get(0), gate.getShape().get(1), 1, 1));
        } else {
          assertTrue(replaced instanceof WeightStandardizedConv2d, what + ": " + replaced);
          expected =
              Conv2d.conv2d(
                      x,
                      standardize(weight),
                      bias,
                      original.getStride(),
                      original.getPadding(),
                      original.getDilation(),
                      original.getGroups())
                  .singletonOrThrow();
        }
        NDArray got = replaced.forward(store, new NDList(x), false).singletonOrThrow();
        assertEquals(expected.getShape(), got.getShape(), what + " " + e.getKey());
        float[] ev = expected.toFloatArray();
        float[] gv = got.toFloatArray();
        for (int i = 0; i < ev.length; i++) {
          if (Math.abs(ev[i] - gv[i]) > 1e-4f * (1 + Math.abs(ev[i]))) {
            fail(
                what
                    + " "
                    + e.getKey()
                    + " (groups "
                    + original.getGroups()
                    + ") value "
                    + i
                    + ": expected "
                    + ev[i]
                    + ", got "
                    + gv[i]);
          }
        }
      }
      if (GhostBatchNorm.NAME.equals(name) || StochasticDepth.NAME.equals(name)) {
        float[] evalAfter = t.evaluate(new NDList(probe)).singletonOrThrow().toFloatArray();
        assertArrayEquals(evalBefore, evalAfter, what + ": evaluation output changed");
      }
    };
  }

  /** Every optimizer state array by parameter id and state name ({@code id/name/device}). */
  static Map<String, float[]> optimizerStates(Trainer trainer) {
    Map<String, float[]> out = new LinkedHashMap<>();
    Map<String, Map<String, Map<ai.djl.Device, NDArray>>> states =
        dev.surgery.core.internal.DjlOptimizers.optimizerStates(
            dev.surgery.core.internal.DjlTrainers.optimizer(trainer));
    for (Map.Entry<String, Map<String, Map<ai.djl.Device, NDArray>>> state : states.entrySet()) {
      for (Map.Entry<String, Map<ai.djl.Device, NDArray>> perParameter :
          state.getValue().entrySet()) {
        for (Map.Entry<ai.djl.Device, NDArray> array : perParameter.getValue().entrySet()) {
          out.put(
              perParameter.getKey() + "/" + state.getKey() + "/" + array.getKey(),
              array.getValue().toFloatArray());
        }
      }
    }
    return out;
  }

  /** Standard normal values from a Java generator (the engine's generator is left alone). */
  static NDArray gaussian(NDManager manager, Shape shape, long seed) {
    java.util.Random random = new java.util.Random(seed);
    float[] values = new float[(int) shape.size()];
    for (int i = 0; i < values.length; i++) {
      values[i] = (float) random.nextGaussian();
    }
    return manager.create(values, shape);
  }

  /** The 3 x 3 binomial blur, depthwise, zero padding 1, at the given stride. */
  static NDArray blur(NDArray x, Shape stride) {
    long channels = x.getShape().get(1);
    NDManager m = x.getManager();
    NDArray row = m.create(new float[] {1, 2, 1});
    NDArray filter = row.reshape(3, 1).mul(row.reshape(1, 3)).div(16f);
    NDArray weight = filter.reshape(1, 1, 3, 3).repeat(0, channels);
    return Conv2d.conv2d(x, weight, null, stride, new Shape(1, 1), new Shape(1, 1), (int) channels)
        .singletonOrThrow();
  }

  /** Each output filter centered and scaled to unit (biased) variance, eps 1e-10. */
  static NDArray standardize(NDArray w) {
    NDArray flat = w.reshape(w.getShape().get(0), -1);
    NDArray centered = flat.sub(flat.mean(new int[] {1}, true));
    NDArray var = centered.square().mean(new int[] {1}, true);
    return centered.div(var.add(1e-10f).sqrt()).reshape(w.getShape());
  }
}
