package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.modality.nlp.DefaultVocabulary;
import ai.djl.modality.nlp.embedding.TrainableWordEmbedding;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv1d;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.convolutional.Conv2dTranspose;
import ai.djl.nn.convolutional.Conv3d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.core.Prelu;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.nn.norm.LayerNorm;
import ai.djl.nn.recurrent.GRU;
import ai.djl.nn.recurrent.LSTM;
import ai.djl.nn.recurrent.RNN;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.initializer.Initializer;
import ai.djl.training.initializer.NormalInitializer;
import ai.djl.training.initializer.TruncatedNormalInitializer;
import ai.djl.training.initializer.UniformInitializer;
import ai.djl.training.initializer.XavierInitializer;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.util.PairList;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.core.algorithms.Factorize;
import dev.surgery.core.algorithms.GhostBatchNorm;
import dev.surgery.core.algorithms.SqueezeExcite;
import dev.surgery.core.algorithms.StochasticDepth;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.algorithms.WeightStandardization;
import dev.surgery.core.internal.DjlBlocks;
import dev.surgery.core.internal.DjlShapes;
import dev.surgery.core.layers.SqueezeExciteConv2d;
import dev.surgery.core.testing.GcSafeL2Loss;
import dev.surgery.core.testing.PassThroughBlock;
import dev.surgery.core.testing.TinyModels;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/**
 * The held-back draws of fresh layers across DJL's block families, data types, nestings and several
 * policies. The oracle is a twin model built the same way, whose replacement functions initialize
 * each fresh block by hand as they return it (so in the order the functions are called) from the
 * same seed: the surgery then only adopts arrays and draws nothing. Subject and twin must agree bit
 * for bit on every parameter, on the generator's next draw after the surgery, and on the losses and
 * parameters of a few training steps taken without reseeding. A surgery that fails late must leave
 * the generator and every parameter as they were.
 */
class HeldBackDrawsZooTest {

  private static final int SEED = 3131;

  /** Builds a fresh replacement for an original block (null: leave it). */
  @FunctionalInterface
  interface Fresh {
    Block make(Block original, int index);
  }

  /** One surgery on a small network: its policies keyed by class, in the order they run. */
  static final class Spec {
    final Supplier<Block> net;
    final Shape input;
    DataType type = DataType.FLOAT32;
    boolean train = true;
    final LinkedHashMap<Class<? extends Block>, Fresh> policies = new LinkedHashMap<>();

    Spec(Supplier<Block> net, Shape input) {
      this.net = net;
      this.input = input;
    }

    Spec policy(Class<? extends Block> type, Fresh fresh) {
      policies.put(type, fresh);
      return this;
    }

    Spec type(DataType type) {
      this.type = type;
      return this;
    }

    Spec noTraining() {
      this.train = false;
      return this;
    }
  }

  // ------------------------------------------------------------------ block families

  @Test
  void conv1dConv3dAndTransposedConvolutions() throws Exception {
    check(
        new Spec(() -> headed(conv1d(3)), new Shape(4, 2, 8))
            .policy(Conv1d.class, (b, i) -> conv1d(3)));
    // DJL's PyTorch engine has no deconvolution: compared after the surgery only.
    check(
        new Spec(() -> headed(conv3d(2)), new Shape(2, 2, 4, 4, 4))
            .policy(Conv3d.class, (b, i) -> conv3d(2)));
    check(
        new Spec(() -> headed(deconv(3), Activation.reluBlock(), deconv(2)), new Shape(2, 2, 4, 4))
            .policy(Conv2dTranspose.class, (b, i) -> deconv(i == 0 ? 3 : 2))
            .noTraining());
  }

  @Test
  void recurrentBlocksOfSeveralLayers() throws Exception {
    check(
        new Spec(() -> headed(lstm(2, false)), new Shape(2, 5, 3))
            .policy(LSTM.class, (b, i) -> lstm(2, false)));
    check(
        new Spec(() -> headed(gru(1, true)), new Shape(2, 5, 3))
            .policy(GRU.class, (b, i) -> gru(1, true))
            .noTraining()); // DJL 0.36's GRU on PyTorch refuses its own weights' layout
    check(
        new Spec(() -> headed(gru(2, false)), new Shape(2, 5, 3))
            .policy(GRU.class, (b, i) -> gru(2, false))
            .noTraining());
    check(new Spec(() -> headed(rnn(3)), new Shape(2, 5, 3)).policy(RNN.class, (b, i) -> rnn(3)));
  }

  @Test
  void linearWithoutBiasNormsAndPrelu() throws Exception {
    // Linear without bias (weight only), then LayerNorm and BatchNorm (constants: draw nothing)
    // between two drawn layers, and a Prelu whose alpha is drawn by a NormalInitializer.
    check(
        new Spec(
                () ->
                    headed(
                        Linear.builder().setUnits(6).optBias(false).build(),
                        LayerNorm.builder().build(),
                        prelu(),
                        linear(5),
                        BatchNorm.builder().build()),
                new Shape(4, 6))
            .policy(Linear.class, (b, i) -> i < 2 ? linearLike((Linear) b, i == 0) : null)
            .policy(LayerNorm.class, (b, i) -> LayerNorm.builder().build())
            .policy(BatchNorm.class, (b, i) -> BatchNorm.builder().build())
            .policy(Prelu.class, (b, i) -> prelu())
            .noTraining()); // DJL's PyTorch engine has no prelu
    check(
        new Spec(
                () ->
                    headed(
                        Linear.builder().setUnits(6).optBias(false).build(),
                        LayerNorm.builder().build(),
                        linear(5),
                        BatchNorm.builder().build()),
                new Shape(4, 6))
            .policy(Linear.class, (b, i) -> i < 2 ? linearLike((Linear) b, i == 0) : null)
            .policy(LayerNorm.class, (b, i) -> LayerNorm.builder().build())
            .policy(BatchNorm.class, (b, i) -> BatchNorm.builder().build()));
  }

  @Test
  void normsAloneDrawNothing() throws Exception {
    Spec spec =
        new Spec(
                () -> headed(linear(6), LayerNorm.builder().build(), BatchNorm.builder().build()),
                new Shape(4, 6))
            .policy(LayerNorm.class, (b, i) -> LayerNorm.builder().build())
            .policy(BatchNorm.class, (b, i) -> BatchNorm.builder().build());
    Outcome outcome = check(spec);
    Engine.getInstance().setRandomSeed(SEED);
    try (NDManager m = NDManager.newBaseManager()) {
      assertArrayEquals(Fixtures.nextDraw(m), outcome.drawAfterSurgery, "constants draw nothing");
    }
  }

  @Test
  void sequentialAndParallelWrappersOfSeveralFreshLayers() throws Exception {
    check(
        new Spec(() -> headed(linear(6), Activation.reluBlock()), new Shape(4, 5))
            .policy(
                Linear.class,
                (b, i) ->
                    i == 0
                        ? new SequentialBlock()
                            .add(linear(7))
                            .add(BatchNorm.builder().build())
                            .add(Activation.reluBlock())
                            .add(Linear.builder().setUnits(6).optBias(false).build())
                        : null));
    check(
        new Spec(() -> headed(linear(6), Activation.reluBlock()), new Shape(4, 5))
            .policy(
                Linear.class,
                (b, i) ->
                    i == 0
                        ? new ParallelBlock(
                            list -> new NDList(list.get(0).head().add(list.get(1).head())),
                            List.of(linear(6), new SequentialBlock().add(linear(3)).add(linear(6))))
                        : null));
  }

  @Test
  void aReplacementThatWrapsTheOriginalAndAFreshLayer() throws Exception {
    check(
        new Spec(() -> headed(linear(6), Activation.reluBlock(), linear(6)), new Shape(4, 5))
            .policy(
                Linear.class,
                (b, i) -> i < 2 ? new SequentialBlock().add(b).add(linear(6)) : null));
  }

  @Test
  void perTypeInitializersAndAParameterWithItsOwn() throws Exception {
    check(
        new Spec(
                () ->
                    headed(
                        conv2d(3), Activation.reluBlock(), new OwnScale(3), conv2d(2), linear(4)),
                new Shape(2, 2, 5, 5))
            .policy(
                Conv2d.class,
                (b, i) -> {
                  Conv2d c = conv2d(i == 0 ? 3 : 2);
                  c.setInitializer(new NormalInitializer(0.05f), Parameter.Type.WEIGHT);
                  c.setInitializer(new UniformInitializer(0.1f), Parameter.Type.BIAS);
                  return c;
                })
            .policy(OwnScale.class, (b, i) -> new OwnScale(3))
            .policy(
                Linear.class,
                (b, i) -> {
                  if (i != 0) {
                    return null;
                  }
                  Linear l = linear(4);
                  l.setInitializer(
                      new XavierInitializer(
                          XavierInitializer.RandomType.UNIFORM,
                          XavierInitializer.FactorType.AVG,
                          2),
                      Parameter.Type.WEIGHT);
                  return l;
                }));
  }

  @Test
  void drawingAndHeldBackInitializersInterleaved() throws Exception {
    // Held-back Xavier, a TruncatedNormal (drawn at once, after what was held back) and an
    // initializer of the program's own (likewise), across three replacements.
    Initializer own = (m, s, t) -> m.randomUniform(-0.3f, 0.3f, s, t);
    check(
        new Spec(
                () -> headed(linear(6), Activation.reluBlock(), linear(6), tanh(), linear(6)),
                new Shape(4, 5))
            .policy(
                Linear.class,
                (b, i) -> {
                  Linear l = linear(6);
                  if (i == 1) {
                    l.setInitializer(new TruncatedNormalInitializer(0.1f), Parameter.Type.BIAS);
                  } else if (i == 2) {
                    l.setInitializer(own, Parameter.Type.WEIGHT);
                  } else if (i == 3) {
                    return null; // the head
                  }
                  return l;
                }));
  }

  @Test
  void float64AndFloat16Models() throws Exception {
    for (DataType type : new DataType[] {DataType.FLOAT64, DataType.FLOAT16}) {
      Spec spec =
          new Spec(
                  () -> headed(conv2d(3), Activation.reluBlock(), conv2d(2), linear(4)),
                  new Shape(2, 2, 5, 5))
              .type(type)
              .policy(
                  Conv2d.class,
                  (b, i) -> {
                    Conv2d c = conv2d(i == 0 ? 3 : 2);
                    if (i == 1) {
                      c.setInitializer(new UniformInitializer(0.2f), Parameter.Type.WEIGHT);
                    }
                    return c;
                  })
              .policy(
                  Linear.class,
                  (b, i) -> {
                    if (i != 0) {
                      return null;
                    }
                    Linear l = linear(4);
                    l.setInitializer(new NormalInitializer(0.1f), Parameter.Type.BIAS);
                    return l;
                  });
      // DJL's optimizers refuse float64 parameters (a float32 rate); half precision is compared
      // after the surgery only too.
      spec.noTraining();
      check(spec);
    }
  }

  @Test
  void manyReplacementsNested() throws Exception {
    // Depth first the Linear layers are a, b, c, d.
    Supplier<Block> net =
        () ->
            new SequentialBlock()
                .add(
                    new SequentialBlock()
                        .add(linear(6)) // a
                        .add(new SequentialBlock().add(Activation.reluBlock()).add(linear(6)))) // b
                .add(linear(5)) // c
                .add(tanh())
                .add(linear(3)); // d, the head
    List<Integer> order = new ArrayList<>();
    Outcome outcome =
        check(
            new Spec(net, new Shape(4, 5))
                .policy(
                    Linear.class,
                    (b, i) -> {
                      order.add((int) DjlBlocks.linearUnits((Linear) b));
                      Linear l =
                          Linear.builder().setUnits(DjlBlocks.linearUnits((Linear) b)).build();
                      if (i % 2 == 1) {
                        l.setInitializer(new NormalInitializer(0.2f), Parameter.Type.WEIGHT);
                      }
                      return l;
                    }));
    assertNotNull(outcome);
    // The functions ran depth first; the twin's by-hand order followed them.
    assertEquals(List.of(6, 6, 5, 3), order.subList(0, 4));
  }

  @Test
  void aReplacementOfTheOriginalsOwnClassWithTheSameSettings() throws Exception {
    check(
        new Spec(() -> headed(conv2d(3), conv2d(3)), new Shape(2, 3, 4, 4))
            .policy(Conv2d.class, (b, i) -> conv2d(3)));
  }

  // ------------------------------------------------------------------ edges

  @Test
  void aFrozenFreshReplacementGetsItsDrawAndStaysFrozen() throws Exception {
    check(
        new Spec(() -> headed(linear(6), Activation.reluBlock(), linear(6)), new Shape(4, 5))
            .policy(
                Linear.class,
                (b, i) -> {
                  if (i > 1) {
                    return null;
                  }
                  Linear l = linear(6);
                  if (i == 0) {
                    l.freezeParameters(true);
                  }
                  return l;
                }));
  }

  @Test
  void twoFreshReplacementsThatShareOneParameter() throws Exception {
    // Tied weights: the first placement draws the shared weight, the second finds it placed.
    Parameter[] shared = new Parameter[1];
    Fresh tied =
        (b, i) -> {
          if (i > 1) {
            return null;
          }
          if (i == 0) {
            shared[0] = TiedDense.weight(6); // the subject's and the twin's own
          }
          return new TiedDense(shared[0]);
        };
    check(
        new Spec(() -> headed(linear(6), Activation.reluBlock(), linear(6)), new Shape(4, 6))
            .policy(Linear.class, tied));
  }

  @Test
  void anEmbeddingReplacement() throws Exception {
    check(
        new Spec(() -> headed(embedding()), new Shape(2, 4))
            .policy(TrainableWordEmbedding.class, (b, i) -> embedding())
            .noTraining()); // the inputs are word indices
  }

  /**
   * Recursion: each original Linear becomes a wrapper holding a marker and a fresh Linear, and the
   * markers are then replaced by fresh Linear layers; the draws are those of initializing the final
   * wrappers by hand, in the order they were placed.
   */
  @Test
  void recursionOnReplacementsDrawsAsTheFinalWrappersInitializedByHand() throws Exception {
    try (NDManager data = NDManager.newBaseManager();
        Model subject =
            model(
                "recursion",
                new Spec(
                    () -> headed(linear(6), Activation.reluBlock(), linear(6)), new Shape(4, 5)));
        Trainer trainer = subject.newTrainer(config(new Spec(() -> null, new Shape(4, 5))))) {
      Engine.getInstance().setRandomSeed(1);
      trainer.initialize(new Shape(4, 5));
      SequentialBlock net = (SequentialBlock) subject.getBlock();
      java.util.Set<Block> originals =
          java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
      originals.add(net.getChildren().valueAt(0));
      originals.add(net.getChildren().valueAt(2));
      Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(
          BlockMatcher.byBlock(originals::contains),
          (b, i) -> new SequentialBlock().add(new Marker()).add(linear(6)));
      policies.put(
          BlockMatcher.ofClass(Marker.class),
          (b, i) -> {
            Linear l = linear(6);
            l.setInitializer(new UniformInitializer(0.4f), Parameter.Type.WEIGHT);
            return l;
          });
      Engine.getInstance().setRandomSeed(SEED);
      ModuleSurgery.replaceModules(
          net,
          policies,
          SurgeryOptions.builder()
              .optTrainers(List.of(trainer))
              .optRecurseOnReplacements(true)
              .build());
      float[] after = Fixtures.nextDraw(data);

      Engine.getInstance().setRandomSeed(SEED);
      List<Block> byHand = new ArrayList<>();
      for (Shape input : new Shape[] {new Shape(4, 5), new Shape(4, 6)}) {
        Linear l = linear(6);
        l.setInitializer(new UniformInitializer(0.4f), Parameter.Type.WEIGHT);
        Block wrapper = new SequentialBlock().add(l).add(linear(6));
        wrapper.initialize(data, DataType.FLOAT32, input);
        byHand.add(wrapper);
      }
      assertArrayEquals(Fixtures.nextDraw(data), after);
      assertSameValues(byHand.get(0), net.getChildren().valueAt(0));
      assertSameValues(byHand.get(1), net.getChildren().valueAt(2));
    }
  }

  // ------------------------------------------------------------------ failures after placement

  /** Several families in one network: every fresh layer is placed before the failure. */
  private static Spec zoo() {
    return new Spec(
            () ->
                headed(
                    conv2d(3),
                    BatchNorm.builder().build(),
                    new OwnScale(3),
                    Activation.reluBlock(),
                    conv2d(2),
                    Blocks.batchFlattenBlock(),
                    Linear.builder().setUnits(6).optBias(false).build(),
                    LayerNorm.builder().build()),
            new Shape(2, 2, 5, 5))
        .policy(
            Conv2d.class,
            (b, i) -> {
              Conv2d c = conv2d(i == 0 ? 3 : 2);
              if (i == 1) {
                c.setInitializer(new NormalInitializer(0.05f), Parameter.Type.WEIGHT);
              }
              return c;
            })
        .policy(BatchNorm.class, (b, i) -> BatchNorm.builder().build())
        .policy(OwnScale.class, (b, i) -> new OwnScale(3))
        .policy(
            Linear.class,
            (b, i) ->
                i == 0
                    ? new SequentialBlock().add(b).add(linear(6)).add(Activation.reluBlock())
                    : null)
        .policy(LayerNorm.class, (b, i) -> LayerNorm.builder().build());
  }

  private static Spec recurrent() {
    return new Spec(() -> headed(lstm(2, false), rnn(2)), new Shape(2, 5, 3))
        .policy(LSTM.class, (b, i) -> lstm(2, false))
        .policy(RNN.class, (b, i) -> rnn(2));
  }

  @Test
  void theZooSucceedsAsByHand() throws Exception {
    check(zoo());
    check(recurrent());
  }

  @Test
  void aFailureAtTheLastPlacementHasDrawnNothing() throws Exception {
    checkFailsLate(zoo(), "initialize");
    checkFailsLate(recurrent(), "initialize");
  }

  @Test
  void aFailureWhileUpdatingTheTrainerHasDrawnNothing() throws Exception {
    checkFailsLate(zoo(), "trainer.add");
    checkFailsLate(zoo(), "trainer.remove");
    checkFailsLate(recurrent(), "trainer.add");
  }

  @Test
  void aReplacementRefusedAfterFreshLayersWerePlacedHasDrawnNothing() throws Exception {
    // The head (placed last) is given 4 outputs for 3: refused once every other layer is placed.
    Spec spec = recurrent();
    spec.policy(Linear.class, (b, i) -> DjlBlocks.linearUnits((Linear) b) == 3 ? linear(4) : null);
    try (NDManager data = NDManager.newBaseManager();
        Model subject = model("refused", spec);
        Trainer trainer = subject.newTrainer(config(spec))) {
      prepare(trainer, spec, batches(data, spec).get(0));
      Map<String, byte[]> before = new LinkedHashMap<>();
      for (var e : subject.getBlock().getParameters()) {
        before.put(e.getKey(), e.getValue().getArray().toByteArray());
      }
      Engine.getInstance().setRandomSeed(SEED);
      SurgeryException refused =
          assertThrows(
              SurgeryException.class,
              () ->
                  ModuleSurgery.replaceModuleClasses(
                      subject.getBlock(),
                      functions(spec, new ArrayList<>(), null, spec.type),
                      List.of(trainer),
                      false,
                      null));
      assertTrue(refused.getMessage().contains("changes the output shapes"), refused.getMessage());
      float[] afterAttempt = Fixtures.nextDraw(data);
      Engine.getInstance().setRandomSeed(SEED);
      assertArrayEquals(Fixtures.nextDraw(data), afterAttempt, "the refused surgery drew");
      for (var e : subject.getBlock().getParameters()) {
        assertArrayEquals(
            before.get(e.getKey()), e.getValue().getArray().toByteArray(), e.getKey());
      }
    }
  }

  // ------------------------------------------------------------------ algorithms

  @Test
  void squeezeExciteGatesAreTheGatesInitializedByHand() throws Exception {
    Spec spec =
        new Spec(
                () ->
                    headed(
                        conv2d(4),
                        Activation.reluBlock(),
                        conv2d(4),
                        Activation.reluBlock(),
                        conv2d(4)),
                new Shape(2, 3, 5, 5))
            .policy(Conv2d.class, (b, i) -> new SqueezeExciteConv2d((Conv2d) b, 2));
    check(
        spec,
        (net, trainer) ->
            SqueezeExcite.builder()
                .optMinChannels(0)
                .optLatentChannels(2)
                .build()
                .apply(SurgeryContext.live(net, trainer, 1, 0)),
        null);
  }

  @Test
  void algorithmsThatPlaceNoDrawnLayerLeaveTheGeneratorWhereItWas() throws Exception {
    Algorithm[] algorithms = {
      BlurPool.builder().optMinChannels(0).build(),
      GhostBatchNorm.builder().optGhostBatchSize(2).build(),
      Factorize.builder().optMinChannels(2).optLatentChannels(2).build(),
      StochasticDepth.builder().build(),
      WeightStandardization.builder().build()
    };
    for (Algorithm algorithm : algorithms) {
      Block net = TinyModels.resNet20();
      try (Model model = TinyModels.model("no-draw", net);
          NDManager data = NDManager.newBaseManager();
          Trainer trainer =
              model.newTrainer(config(new Spec(() -> net, new Shape(2, 1, 28, 28))))) {
        Engine.getInstance().setRandomSeed(1);
        trainer.initialize(new Shape(2, 1, 28, 28));
        Engine.getInstance().setRandomSeed(SEED);
        SurgeryChanges changes = algorithm.apply(SurgeryContext.live(net, trainer, 1, 0));
        assertNotNull(changes);
        float[] after = Fixtures.nextDraw(data);
        Engine.getInstance().setRandomSeed(SEED);
        assertArrayEquals(
            Fixtures.nextDraw(data), after, algorithm.getClass().getSimpleName() + " drew");
      }
    }
  }

  // ------------------------------------------------------------------ the harness

  /** What a checked surgery left: the generator's next draw right after it. */
  record Outcome(float[] drawAfterSurgery) {}

  /** A surgery on the subject's model (its block and trainer). */
  @FunctionalInterface
  interface Surgery {
    void apply(Block net, Trainer trainer) throws Exception;
  }

  /**
   * Applies the spec's surgery to a subject and to a twin whose functions initialize their fresh
   * blocks by hand; compares values, the generator and a few training steps.
   */
  private static Outcome check(Spec spec) throws Exception {
    List<String> subjectCalls = new ArrayList<>();
    return check(
        spec,
        (net, trainer) ->
            ModuleSurgery.replaceModuleClasses(
                net, functions(spec, subjectCalls, null, spec.type), List.of(trainer), false, null),
        subjectCalls);
  }

  /**
   * Applies {@code surgery} to a subject and the spec's functions to a twin, whose functions
   * initialize their fresh blocks by hand; compares values, the generator and a few training steps
   * ({@code subjectCalls}: the subject's function calls, compared with the twin's, if not null).
   */
  private static Outcome check(Spec spec, Surgery surgery, List<String> subjectCalls)
      throws Exception {
    try (NDManager data = NDManager.newBaseManager();
        Model subject = model("subject", spec);
        Model twin = model("twin", spec);
        Trainer subjectTrainer = subject.newTrainer(config(spec));
        Trainer twinTrainer = twin.newTrainer(config(spec))) {
      List<NDList[]> batches = batches(data, spec);
      prepare(subjectTrainer, spec, batches.get(0));
      prepare(twinTrainer, spec, batches.get(0));
      assertSameParameters(twin.getBlock(), subject.getBlock(), "before the surgery");

      Engine.getInstance().setRandomSeed(SEED);
      surgery.apply(subject.getBlock(), subjectTrainer);
      float[] subjectDraw = Fixtures.nextDraw(data);

      Engine.getInstance().setRandomSeed(SEED);
      List<String> twinCalls = new ArrayList<>();
      Map<Block, Block> replaced =
          ModuleSurgery.replaceModuleClasses(
              twin.getBlock(),
              functions(spec, twinCalls, twin.getNDManager(), spec.type),
              List.of(twinTrainer),
              false,
              null);
      float[] twinDraw = Fixtures.nextDraw(data);

      if (subjectCalls != null) {
        assertEquals(twinCalls, subjectCalls, "the functions ran in the same order");
      }
      assertTrue(replaced.entrySet().stream().anyMatch(e -> e.getKey() != e.getValue()));
      assertArrayEquals(twinDraw, subjectDraw, "the generator after the surgery, as by hand");
      assertSameParameters(twin.getBlock(), subject.getBlock(), "after the surgery");
      if (spec.train) {
        for (int step = 1; step < batches.size(); step++) {
          byte[] a = trainStep(twinTrainer, batches.get(step));
          byte[] b = trainStep(subjectTrainer, batches.get(step));
          assertArrayEquals(a, b, "loss of step " + step);
        }
        assertSameParameters(twin.getBlock(), subject.getBlock(), "after training");
      }
      return new Outcome(subjectDraw);
    }
  }

  /**
   * Fails the spec's surgery at the last chance of the fault point {@code point} (counted on a run
   * that succeeds), after placement: the generator has not moved, every parameter is the object and
   * the values it was, and the model trains on bit for bit as a twin that never tried.
   */
  private static void checkFailsLate(Spec spec, String point) throws Exception {
    int[] chances = new int[1];
    try (Model counting = model("counting", spec);
        Trainer trainer = counting.newTrainer(config(spec));
        NDManager data = NDManager.newBaseManager()) {
      prepare(trainer, spec, batches(data, spec).get(0));
      ModuleSurgery.replaceModuleClasses(
          counting.getBlock(),
          functions(spec, new ArrayList<>(), null, spec.type),
          List.of(trainer),
          false,
          null,
          name -> chances[0] += name.equals(point) ? 1 : 0);
    }
    assertTrue(chances[0] > 0, "the surgery passes " + point);
    try (NDManager data = NDManager.newBaseManager();
        Model subject = model("subject", spec);
        Model twin = model("twin", spec);
        Trainer subjectTrainer = subject.newTrainer(config(spec));
        Trainer twinTrainer = twin.newTrainer(config(spec))) {
      List<NDList[]> batches = batches(data, spec);
      prepare(subjectTrainer, spec, batches.get(0));
      prepare(twinTrainer, spec, batches.get(0));
      PairList<String, Parameter> before = subject.getBlock().getParameters();
      int[] seen = new int[1];
      Faults late =
          name -> {
            if (name.equals(point) && ++seen[0] == chances[0]) {
              throw new IllegalStateException("injected at the last " + point);
            }
          };
      Engine.getInstance().setRandomSeed(SEED);
      SurgeryException failed =
          assertThrows(
              SurgeryException.class,
              () ->
                  ModuleSurgery.replaceModuleClasses(
                      subject.getBlock(),
                      functions(spec, new ArrayList<>(), null, spec.type),
                      List.of(subjectTrainer),
                      false,
                      null,
                      late));
      assertTrue(String.valueOf(failed.getCause()).contains("injected"), failed.toString());
      float[] afterAttempt = Fixtures.nextDraw(data);
      Engine.getInstance().setRandomSeed(SEED);
      assertArrayEquals(
          Fixtures.nextDraw(data), afterAttempt, "the failed surgery drew from the generator");
      PairList<String, Parameter> after = subject.getBlock().getParameters();
      assertEquals(before.keys(), after.keys());
      for (int i = 0; i < before.size(); i++) {
        assertTrue(before.valueAt(i) == after.valueAt(i), before.keyAt(i) + " is the same object");
      }
      assertSameParameters(twin.getBlock(), subject.getBlock(), "after the failure");
      if (spec.train) {
        for (int step = 1; step < batches.size(); step++) {
          assertArrayEquals(
              trainStep(twinTrainer, batches.get(step)),
              trainStep(subjectTrainer, batches.get(step)),
              "loss of step " + step);
        }
      }
    }
  }

  /**
   * The spec's policies as replacement functions; {@code byHand}: initialize each fresh block there
   * as it is returned, for the original's recorded input shapes.
   */
  private static Map<Class<? extends Block>, ReplacementFunction> functions(
      Spec spec, List<String> calls, NDManager byHand, DataType type) {
    Map<Class<? extends Block>, ReplacementFunction> functions = new LinkedHashMap<>();
    for (Map.Entry<Class<? extends Block>, Fresh> e : spec.policies.entrySet()) {
      Fresh fresh = e.getValue();
      functions.put(
          e.getKey(),
          (block, index) -> {
            Block made = fresh.make(block, index);
            if (made != null && made != block) {
              calls.add(e.getKey().getSimpleName() + "#" + index);
              if (byHand != null) {
                made.initialize(byHand, type, DjlShapes.recordedInputShapes(block));
              }
            }
            return made;
          });
    }
    return functions;
  }

  private static Model model(String name, Spec spec) {
    Model model = Model.newInstance(name);
    model.setDataType(spec.type);
    model.setBlock(spec.net.get());
    return model;
  }

  private static DefaultTrainingConfig config(Spec spec) {
    return new DefaultTrainingConfig(new GcSafeL2Loss())
        .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build());
  }

  /** Initializes the trainer from seed 1 and takes one step (the optimizer then has state). */
  private static void prepare(Trainer trainer, Spec spec, NDList[] batch) {
    Engine.getInstance().setRandomSeed(1);
    trainer.initialize(spec.input);
    if (spec.train) {
      trainStep(trainer, batch);
    }
  }

  /** Four fixed batches of the spec's input shape and the network's output shape. */
  private static List<NDList[]> batches(NDManager data, Spec spec) {
    Engine.getInstance().setRandomSeed(5);
    Shape out = new Shape(spec.input.get(0), 3);
    List<NDList[]> batches = new ArrayList<>();
    for (int i = 0; i < 4; i++) {
      NDArray x = data.randomNormal(spec.input).toType(spec.type, false);
      NDArray y = data.randomNormal(out).toType(spec.type, false);
      batches.add(new NDList[] {new NDList(x), new NDList(y)});
    }
    return batches;
  }

  /** One step of a plain loop; the loss's bytes. */
  private static byte[] trainStep(Trainer trainer, NDList[] batch) {
    byte[] loss;
    try (GradientCollector collector = trainer.newGradientCollector()) {
      NDList prediction = trainer.forward(batch[0]);
      NDArray l = trainer.getLoss().evaluate(batch[1], prediction);
      collector.backward(l);
      loss = l.toByteArray();
    }
    trainer.step();
    return loss;
  }

  /** The network followed by a flatten and a Linear(3) head. */
  private static SequentialBlock headed(Block... blocks) {
    SequentialBlock net = new SequentialBlock();
    for (Block b : blocks) {
      net.add(b);
    }
    return net.add(Blocks.batchFlattenBlock()).add(linear(3));
  }

  private static void assertSameParameters(Block expected, Block actual, String when) {
    PairList<String, Parameter> e = expected.getParameters();
    PairList<String, Parameter> a = actual.getParameters();
    assertEquals(e.keys(), a.keys(), when + ": the parameters");
    for (int i = 0; i < e.size(); i++) {
      Parameter pe = e.valueAt(i);
      Parameter pa = a.valueAt(i);
      String label = when + ": " + e.keyAt(i);
      assertEquals(pe.getArray().getDataType(), pa.getArray().getDataType(), label);
      assertEquals(pe.getArray().getShape(), pa.getArray().getShape(), label);
      assertArrayEquals(pe.getArray().toByteArray(), pa.getArray().toByteArray(), label);
      assertEquals(pe.getArray().hasGradient(), pa.getArray().hasGradient(), label + " gradient");
    }
  }

  // ------------------------------------------------------------------ blocks

  private static Linear linear(int units) {
    return Linear.builder().setUnits(units).build();
  }

  private static Conv1d conv1d(int filters) {
    return Conv1d.builder()
        .setKernelShape(new Shape(3))
        .optPadding(new Shape(1))
        .setFilters(filters)
        .build();
  }

  /** A parameter-free layer between two Linear layers. */
  private static Block tanh() {
    return Activation.tanhBlock();
  }

  private static Conv2d conv2d(int filters) {
    return Conv2d.builder()
        .setKernelShape(new Shape(3, 3))
        .optPadding(new Shape(1, 1))
        .setFilters(filters)
        .build();
  }

  private static Conv3d conv3d(int filters) {
    return Conv3d.builder()
        .setKernelShape(new Shape(3, 3, 3))
        .optPadding(new Shape(1, 1, 1))
        .setFilters(filters)
        .build();
  }

  private static Conv2dTranspose deconv(int filters) {
    return Conv2dTranspose.builder().setKernelShape(new Shape(2, 2)).setFilters(filters).build();
  }

  private static LSTM lstm(int layers, boolean bidirectional) {
    return LSTM.builder()
        .setStateSize(4)
        .setNumLayers(layers)
        .optBidirectional(bidirectional)
        .optBatchFirst(true)
        .optReturnState(false)
        .build();
  }

  private static GRU gru(int layers, boolean bidirectional) {
    return GRU.builder()
        .setStateSize(4)
        .setNumLayers(layers)
        .optBidirectional(bidirectional)
        .optBatchFirst(true)
        .optReturnState(false)
        .build();
  }

  private static RNN rnn(int layers) {
    return RNN.builder()
        .setStateSize(4)
        .setNumLayers(layers)
        .optBatchFirst(true)
        .optReturnState(false)
        .setActivation(RNN.Activation.TANH)
        .build();
  }

  private static Prelu prelu() {
    Prelu p = new Prelu();
    p.setInitializer(new NormalInitializer(0.1f), Parameter.Type.WEIGHT);
    return p;
  }

  private static Linear linearLike(Linear original, boolean withoutBias) {
    return Linear.builder().setUnits(DjlBlocks.linearUnits(original)).optBias(!withoutBias).build();
  }

  private static TrainableWordEmbedding embedding() {
    return TrainableWordEmbedding.builder()
        .setVocabulary(new DefaultVocabulary(List.of("a", "b", "c", "d", "e")))
        .setEmbeddingSize(3)
        .build();
  }

  private static void assertSameValues(Block expected, Block actual) {
    PairList<String, Parameter> e = expected.getParameters();
    PairList<String, Parameter> a = actual.getParameters();
    assertEquals(e.size(), a.size());
    for (int i = 0; i < e.size(); i++) {
      assertArrayEquals(
          e.valueAt(i).getArray().toByteArray(), a.valueAt(i).getArray().toByteArray(), a.keyAt(i));
    }
  }

  /** A parameter-free identity of the program's own, replaced under recursion. */
  static final class Marker extends PassThroughBlock {}

  /** A dense layer around a weight it may share with another (tied weights), no bias. */
  static final class TiedDense extends AbstractBlock {
    private final Parameter weight;

    @SuppressWarnings("this-escape")
    TiedDense(Parameter weight) {
      this.weight = addParameter(weight);
    }

    static Parameter weight(int units) {
      return Parameter.builder()
          .setName("weight")
          .setType(Parameter.Type.WEIGHT)
          .optShape(new Shape(units, units))
          .build();
    }

    @Override
    protected NDList forwardInternal(
        ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
      NDArray x = inputs.singletonOrThrow();
      NDArray w = store.getValue(weight, x.getDevice(), training);
      return new NDList(x.matMul(w.transpose()));
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
      return inputShapes;
    }
  }

  /**
   * A block of the program's own that overrides none of the initialization methods: a per-channel
   * scale built with its own UniformInitializer, its shape set in prepare.
   */
  static final class OwnScale extends AbstractBlock {
    private final Parameter scale;
    private final long channels;

    @SuppressWarnings("this-escape")
    OwnScale(long channels) {
      this.channels = channels;
      scale =
          addParameter(
              Parameter.builder()
                  .setName("scale")
                  .setType(Parameter.Type.OTHER)
                  .optInitializer(new UniformInitializer(0.5f))
                  .build());
    }

    @Override
    protected NDList forwardInternal(
        ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
      NDArray x = inputs.singletonOrThrow();
      NDArray s = store.getValue(scale, x.getDevice(), training);
      return new NDList(x.mul(s.reshape(1, channels, 1, 1)));
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
      return inputShapes;
    }

    @Override
    public void prepare(Shape[] inputShapes) {
      scale.setShape(new Shape(channels));
    }
  }
}
