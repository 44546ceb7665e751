package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.norm.BatchNorm;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.layers.GhostBatchNormBlock;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class GhostBatchNormTest {

  @BeforeAll
  static void register() {
    LiveTraining.registerBuiltins();
  }

  private static long count(Block root, Class<?> type) {
    return BlockPaths.index(root).keySet().stream().filter(type::isInstance).count();
  }

  @Test
  void replacesEveryBatchNormOnceOnAnUninitializedModel() {
    SequentialBlock net = LiveTraining.smallCnn();
    GhostBatchNorm algorithm = GhostBatchNorm.builder().optGhostBatchSize(4).build();
    SurgeryChanges report = algorithm.apply(SurgeryContext.of(net));
    assertEquals(Map.of("BatchNorm->GhostBatchNormBlock", 2), report.countsByType());
    // No shapes yet: the count is unknown, not "0 -> 0".
    assertEquals(SurgeryChanges.UNKNOWN_PARAMETERS, report.parametersBefore());
    assertEquals(SurgeryChanges.UNKNOWN_PARAMETERS, report.parametersAfter());
    assertEquals(0, count(net, BatchNorm.class));
    assertEquals(2, count(net, GhostBatchNormBlock.class));
    assertTrue(algorithm.apply(SurgeryContext.of(net)).isEmpty(), "idempotent");
    try (NDManager manager = NDManager.newBaseManager()) {
      net.initialize(manager, DataType.FLOAT32, new Shape(2, 3, 8, 8));
      assertTrue(net.isInitialized());
    }
  }

  @Test
  void initializedModelKeepsEveryParameterObject() {
    SequentialBlock net = LiveTraining.smallCnn();
    try (NDManager manager = NDManager.newBaseManager()) {
      net.initialize(manager, DataType.FLOAT32, new Shape(2, 3, 8, 8));
      List<Parameter> before = WeightStandardizationTest.parameters(net);
      long scalars = AbstractSurgeryAlgorithm.countParameterScalars(net);
      SurgeryChanges report = GhostBatchNorm.builder().build().apply(SurgeryContext.of(net));
      assertTrue(scalars > 0);
      assertEquals(scalars, report.parametersBefore());
      assertEquals(scalars, report.parametersAfter());
      List<Parameter> after = WeightStandardizationTest.parameters(net);
      assertEquals(before.size(), after.size());
      for (int i = 0; i < before.size(); i++) {
        assertSame(before.get(i), after.get(i));
      }
      assertEquals(
          32,
          ((GhostBatchNormBlock) BlockPaths.resolve(net, "02GhostBatchNormBlock"))
              .getGhostBatchSize());
    }
  }

  @Test
  void invalidGhostSizeIsRefusedBeforeAnythingChanges() {
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () -> GhostBatchNorm.builder().optGhostBatchSize(0).build());
    assertTrue(e.getMessage().contains("ghost_batch_size") && e.getMessage().contains(">= 1"));
    assertThrows(
        IllegalArgumentException.class,
        () -> Algorithms.spec(GhostBatchNorm.NAME).create(Map.of("ghost_batch_size", 2.5)));
  }

  /**
   * Live, after three Adam steps: the subject equals the model built by hand with ghost batch norms
   * around the same parameters and a fresh Adam seeded with their state, bit for bit in every
   * parameter, moment and update count over four more steps.
   */
  @Test
  void liveApplicationTrainsExactlyLikeTheModelBuiltByHand() throws Exception {
    HandBuiltOracle.Case c = new HandBuiltOracle.Case();
    c.before = LiveTraining::smallCnn;
    c.sample = new Shape(3, 8, 8);
    c.algorithm = GhostBatchNorm.builder().optGhostBatchSize(4).build();
    c.byHand = fresh -> withGhostBatchNorms(fresh, 4);
    SurgeryChanges report = HandBuiltOracle.run(c);
    assertEquals(Map.of("BatchNorm->GhostBatchNormBlock", 2), report.countsByType());
  }

  /**
   * A batch norm over {@code (B, C)} features, batches of 7 and a ghost size of 3: the last chunk
   * would hold one sample, which PyTorch refuses to normalize in training (the first step after the
   * surgery failed). The chunks are 3 and 4, and ten steps after the live application equal the
   * model built by hand, bit for bit.
   */
  @Test
  void aChunkOfOneSampleOfOneValuePerChannelTrainsLikeTheModelBuiltByHand() throws Exception {
    HandBuiltOracle.Case c = new HandBuiltOracle.Case();
    c.before =
        () ->
            new SequentialBlock()
                .add(ai.djl.nn.core.Linear.builder().setUnits(8).build())
                .add(BatchNorm.builder().build())
                .add(ai.djl.nn.Activation.reluBlock())
                .add(ai.djl.nn.core.Linear.builder().setUnits(4).build());
    c.sample = new Shape(6);
    c.batch = 7;
    c.algorithm = GhostBatchNorm.builder().optGhostBatchSize(3).build();
    c.byHand = fresh -> withGhostBatchNorms(fresh, 3);
    SurgeryChanges report = HandBuiltOracle.run(c);
    assertEquals(Map.of("BatchNorm->GhostBatchNormBlock", 1), report.countsByType());
  }

  /** The model built by hand: the same blocks, each batch norm in a ghost batch norm. */
  private static Block withGhostBatchNorms(Block fresh, int ghostBatchSize) {
    SequentialBlock built = new SequentialBlock();
    for (Block b : fresh.getChildren().values()) {
      built.add(b instanceof BatchNorm bn ? GhostBatchNormBlock.from(bn, ghostBatchSize) : b);
    }
    return built;
  }
}
