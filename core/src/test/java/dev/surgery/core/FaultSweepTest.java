package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import dev.surgery.core.testing.OptimizerKind;
import dev.surgery.core.testing.TinyData;
import dev.surgery.core.testing.TinyModels;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Injects a failure at every single hit of every {@link Faults} point of one live surgery, not only
 * at one chosen hit: the surgery mixes weight copies and fresh blocks (which the engine
 * initializes) over three convolutions and a linear layer, so the points are reached at many stages
 * of the trainer update. How often each point is reached is counted on a dry run first; a failure
 * at each hit must restore everything {@link WeightCopyFaultTest.BeforeState} checks, after which
 * training goes on and the same surgery succeeds. Every hit runs under Adam, SGD with momentum and
 * weight decay, and AdamW ({@link RollbackTest#ROLLBACK_OPTIMIZERS}).
 */
class FaultSweepTest {

  private static final Shape INPUT = new Shape(8, 3, 8, 8);
  private static final List<String> POINTS = List.of("initialize", "trainer.remove", "trainer.add");

  private static Conv2d conv() {
    return TinyModels.conv3x3(4, 1);
  }

  private static SequentialBlock net() {
    return new SequentialBlock()
        .add(conv())
        .add(Activation.reluBlock())
        .add(conv())
        .add(conv())
        .add(Blocks.batchFlattenBlock())
        .add(Linear.builder().setUnits(4).build());
  }

  /** Copies for odd-numbered convolutions, fresh blocks (initialized by the engine) otherwise. */
  private static Map<Class<? extends Block>, ReplacementFunction> policies() {
    Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(
        Conv2d.class, (block, index) -> index % 2 == 1 ? Fixtures.copyOf((Conv2d) block) : conv());
    policies.put(Linear.class, (block, index) -> Linear.builder().setUnits(4).build());
    return policies;
  }

  private static DefaultTrainingConfig config(OptimizerKind kind) {
    return new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss()).optOptimizer(kind.create());
  }

  /** Every (point, hit) pair that one successful surgery reaches, under each optimizer. */
  static Stream<Arguments> everyHit() throws Exception {
    List<Arguments> cases = new ArrayList<>();
    for (OptimizerKind kind : RollbackTest.ROLLBACK_OPTIMIZERS) {
      cases.addAll(everyHit(kind));
    }
    return cases.stream();
  }

  private static List<Arguments> everyHit(OptimizerKind kind) throws Exception {
    Map<String, AtomicInteger> hits = new LinkedHashMap<>();
    POINTS.forEach(p -> hits.put(p, new AtomicInteger()));
    SequentialBlock net = net();
    try (Model model = TinyModels.model("dry-run", net);
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(config(kind))) {
      trainer.initialize(INPUT);
      EasyTrain.fit(trainer, 1, TinyData.images(data, 16, 3, 8, 8), null);
      Faults counting =
          name -> {
            AtomicInteger n = hits.get(name);
            if (n != null) {
              n.incrementAndGet();
            }
          };
      ModuleSurgery.replaceModuleClasses(net, policies(), List.of(trainer), false, null, counting);
    }
    List<Arguments> cases = new ArrayList<>();
    hits.forEach(
        (point, n) -> {
          for (int k = 1; k <= n.get(); k++) {
            cases.add(Arguments.of(point, k, n.get(), kind));
          }
        });
    return cases;
  }

  @ParameterizedTest(name = "{0}, hit {1} of {2}, {3}")
  @MethodSource("everyHit")
  void failureAtThisHitIsRolledBack(String point, int hit, int of, OptimizerKind kind)
      throws Exception {
    SequentialBlock net = net();
    try (Model model = TinyModels.model("sweep", net);
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(config(kind))) {
      trainer.initialize(INPUT);
      EasyTrain.fit(trainer, 1, TinyData.images(data, 16, 3, 8, 8), null);
      WeightCopyFaultTest.BeforeState before = WeightCopyFaultTest.BeforeState.of(net, trainer);

      AtomicInteger seen = new AtomicInteger();
      Faults faults =
          name -> {
            if (name.equals(point) && seen.incrementAndGet() == hit) {
              throw new IllegalStateException("injected at " + point + " #" + hit);
            }
          };
      SurgeryException e =
          assertThrows(
              SurgeryException.class,
              () ->
                  ModuleSurgery.replaceModuleClasses(
                      net, policies(), List.of(trainer), false, null, faults));
      assertEquals(hit, seen.get(), "the surgery stopped at the injected hit");
      assertTrue(e.getMessage().contains("injected at " + point + " #" + hit), e.getMessage());
      before.assertUnchanged(net, trainer);

      EasyTrain.fit(trainer, 1, TinyData.images(data, 16, 3, 8, 8), null);
      Map<Block, Block> replaced =
          ModuleSurgery.replaceModuleClasses(net, policies(), List.of(trainer), false, null);
      assertEquals(4, replaced.size());
      assertEquals(Fixtures.modelIds(net), Fixtures.storeIds(trainer));
    }
  }
}
