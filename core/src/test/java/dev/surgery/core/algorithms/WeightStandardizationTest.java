package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.LambdaBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv1d;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.norm.LayerNorm;
import ai.djl.util.Pair;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.layers.WeightStandardizedConv2d;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class WeightStandardizationTest {

  @BeforeAll
  static void register() {
    LiveTraining.registerBuiltins();
  }

  /** A Conv2d subclass with its own forward, which must never be swapped away. */
  static final class CustomConv extends Conv2d {
    CustomConv() {
      super(Conv2d.builder().setKernelShape(new Shape(1, 1)).setFilters(8));
    }
  }

  /** A group norm of the program's own (two groups, no affine parameters): DJL 0.36 has none. */
  static final class GroupNorm extends LambdaBlock {
    GroupNorm() {
      super(
          list -> {
            NDArray x = list.singletonOrThrow();
            NDArray grouped = x.reshape(x.getShape().get(0), 2, -1);
            NDArray centered = grouped.sub(grouped.mean(new int[] {2}, true));
            NDArray variance = centered.square().mean(new int[] {2}, true);
            return new NDList(centered.div(variance.add(1e-5f).sqrt()).reshape(x.getShape()));
          });
    }
  }

  /** Stands for a weight norm of the program's own: it reparametrizes, it does not normalize. */
  static final class WeightNorm extends LambdaBlock {
    WeightNorm() {
      super(list -> list);
    }
  }

  /** The warnings of weight standardization applied with its defaults. */
  private static List<String> warningsOf(Block net) {
    return WeightStandardization.builder().build().apply(SurgeryContext.of(net)).warnings();
  }

  private static List<String> types(Block root) {
    List<String> types = new ArrayList<>();
    for (Block b : BlockPaths.index(root).keySet()) {
      if (b instanceof Conv2d) {
        types.add(b.getClass().getSimpleName());
      }
    }
    return types;
  }

  @Test
  void standardizesAllButTheLastConvolutionsInOrder() {
    SequentialBlock net = LiveTraining.smallCnn();
    SurgeryChanges report = ignoringLast(1, net);
    assertEquals(
        List.of("WeightStandardizedConv2d", "WeightStandardizedConv2d", "Conv2d"), types(net));
    assertEquals(2, report.changes().size());
    assertEquals("01Conv2d", report.changes().get(0).path());
    assertEquals(Map.of("Conv2d->WeightStandardizedConv2d", 2), report.countsByType());

    SequentialBlock all = LiveTraining.smallCnn();
    WeightStandardization.builder().build().apply(SurgeryContext.of(all));
    assertEquals(3, countStandardized(all));

    SequentialBlock none = LiveTraining.smallCnn();
    assertTrue(
        WeightStandardization.builder()
            .optNLastLayersIgnore(3)
            .build()
            .apply(SurgeryContext.of(none))
            .isEmpty());
  }

  /** Applies weight standardization, leaving the last {@code n} convolutions plain. */
  private static SurgeryChanges ignoringLast(int n, Block net) {
    return WeightStandardization.builder()
        .optNLastLayersIgnore(n)
        .build()
        .apply(SurgeryContext.of(net));
  }

  private static long countStandardized(Block root) {
    return types(root).stream().filter("WeightStandardizedConv2d"::equals).count();
  }

  @Test
  void conv1dStaysPlainAndIsNotCountedForTheLastLayersIgnored() {
    // Composer standardizes and counts Conv1d too (an outside probe); here it stays plain, as
    // algorithms.md says, and n_last_layers_ignore counts the Conv2d layers alone.
    SequentialBlock net =
        new SequentialBlock()
            .add(Conv1d.builder().setKernelShape(new Shape(3)).setFilters(4).build())
            .add(LiveTraining.conv(4, 1))
            .add(LiveTraining.conv(4, 1));
    SurgeryChanges report = ignoringLast(1, net);
    assertEquals(
        List.of("Conv1d", "WeightStandardizedConv2d", "Conv2d"),
        net.getChildren().values().stream().map(b -> b.getClass().getSimpleName()).toList());
    assertEquals("02Conv2d", report.changes().get(0).path());
    // Said, never silent: the model has one Conv1d.
    assertTrue(
        report.warnings().stream()
            .anyMatch(
                w ->
                    w.startsWith(
                        "weight_standardization: the model has 1 Conv1d/Conv3d layer(s), which"
                            + " stay plain")),
        report.warnings().toString());
  }

  @Test
  void aModelWithoutNormalizationIsWarnedOfAndOneWithItIsNot() {
    // On networks without batch norm (DJL's GoogLeNet, SqueezeNet, AlexNet, NiN) the loss after
    // standardization grew by orders of magnitude: said, never silent.
    SequentialBlock plain =
        new SequentialBlock()
            .add(LiveTraining.conv(4, 1))
            .add(Activation.reluBlock())
            .add(LiveTraining.conv(4, 1));
    SurgeryChanges warned = WeightStandardization.builder().build().apply(SurgeryContext.of(plain));
    assertEquals(2, warned.changes().size());
    assertEquals(1, warned.warnings().size(), warned.warnings().toString());
    String warning = warned.warnings().get(0);
    assertTrue(warning.contains("no normalization layer"), warning);
    assertTrue(warning.contains("each of the 2 standardized convolutions"), warning);

    SurgeryChanges withBatchNorm =
        WeightStandardization.builder().build().apply(SurgeryContext.of(LiveTraining.smallCnn()));
    assertEquals(3, withBatchNorm.changes().size());
    assertEquals(List.of(), withBatchNorm.warnings());

    SequentialBlock ghost = LiveTraining.smallCnn();
    GhostBatchNorm.builder().build().apply(SurgeryContext.of(ghost));
    assertEquals(List.of(), warningsOf(ghost));

    SequentialBlock layerNorm =
        new SequentialBlock().add(LiveTraining.conv(4, 1)).add(LayerNorm.builder().build());
    assertEquals(List.of(), warningsOf(layerNorm));

    // A normalization of the program's own (DJL 0.36 has no group norm), as a class or a named
    // lambda: not warned of.
    SequentialBlock groupNorm =
        new SequentialBlock().add(LiveTraining.conv(4, 1)).add(new GroupNorm());
    assertEquals(List.of(), warningsOf(groupNorm));
    SequentialBlock namedLambda =
        new SequentialBlock()
            .add(LiveTraining.conv(4, 1))
            .add(new LambdaBlock(list -> list, "instance_norm"));
    assertEquals(List.of(), warningsOf(namedLambda));
    // A weight norm reparametrizes weights and leaves the output's scale to grow: still warned of.
    SequentialBlock weightNorm =
        new SequentialBlock().add(LiveTraining.conv(4, 1)).add(new WeightNorm());
    assertTrue(
        warningsOf(weightNorm).stream().anyMatch(w -> w.contains("no normalization layer")),
        "a weight norm is no normalization of activations");

    // Nothing standardized: only the no-change warning, none about normalization.
    SequentialBlock ignored = new SequentialBlock().add(LiveTraining.conv(4, 1));
    List<String> none = ignoringLast(1, ignored).warnings();
    assertTrue(
        none.stream().noneMatch(w -> w.contains("normalization")), "nothing standardized: " + none);
  }

  @Test
  void idempotentAndLeavesConvSubclassesAlone() {
    SequentialBlock net = new SequentialBlock().add(new CustomConv()).add(LiveTraining.conv(4, 1));
    WeightStandardization ws = WeightStandardization.builder().build();
    SurgeryChanges first = ws.apply(SurgeryContext.of(net));
    assertEquals(1, first.changes().size());
    assertEquals(List.of("CustomConv", "WeightStandardizedConv2d"), types(net));
    assertTrue(ws.apply(SurgeryContext.of(net)).isEmpty(), "second application changes nothing");
  }

  @Test
  void initializedModelKeepsParameterObjectsAndShapes() {
    SequentialBlock net = LiveTraining.smallCnn();
    try (NDManager manager = NDManager.newBaseManager()) {
      net.initialize(manager, DataType.FLOAT32, new Shape(2, 3, 8, 8));
      List<Parameter> before = parameters(net);
      SurgeryChanges report = WeightStandardization.builder().build().apply(SurgeryContext.of(net));
      assertEquals(3, report.changes().size());
      assertEquals(report.parametersBefore(), report.parametersAfter());
      List<Parameter> after = parameters(net);
      assertEquals(before.size(), after.size());
      for (int i = 0; i < before.size(); i++) {
        assertSame(before.get(i), after.get(i));
      }
      assertTrue(net.isInitialized());
    }
  }

  static List<Parameter> parameters(Block root) {
    List<Parameter> list = new ArrayList<>();
    for (Pair<String, Parameter> p : root.getParameters()) {
      list.add(p.getValue());
    }
    return list;
  }

  @Test
  void invalidHyperparameterIsRefusedWithRange() {
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () -> WeightStandardization.builder().optNLastLayersIgnore(-1).build());
    assertTrue(e.getMessage().contains("n_last_layers_ignore"), e.getMessage());
    assertTrue(e.getMessage().contains(">= 0") && e.getMessage().contains("-1"), e.getMessage());
    AlgorithmSpec spec = Algorithms.spec(WeightStandardization.NAME);
    assertThrows(
        IllegalArgumentException.class, () -> spec.create(Map.of("n_last_layers_ignore", "2")));
    assertEquals(
        Map.of("n_last_layers_ignore", 2),
        spec.create(Map.of("n_last_layers_ignore", 2)).hyperparameters());
  }

  /**
   * Live, after three Adam steps: the subject equals the model built by hand with standardized
   * convolutions around the same parameters and a fresh Adam seeded with their moments, bit for bit
   * over four more steps (the moments kept, not restarted).
   */
  @Test
  void liveApplicationTrainsExactlyLikeTheModelBuiltByHand() throws Exception {
    HandBuiltOracle.Case c = new HandBuiltOracle.Case();
    c.before = LiveTraining::smallCnn;
    c.sample = new Shape(3, 8, 8);
    c.algorithm = WeightStandardization.builder().optNLastLayersIgnore(1).build();
    c.byHand =
        fresh -> {
          SequentialBlock built = new SequentialBlock();
          int convs = 0;
          for (Block b : fresh.getChildren().values()) {
            // every convolution but the last one (n_last_layers_ignore = 1)
            boolean standardize = b instanceof Conv2d && ++convs < 3;
            built.add(standardize ? WeightStandardizedConv2d.from((Conv2d) b) : b);
          }
          return built;
        };
    SurgeryChanges report = HandBuiltOracle.run(c);
    assertEquals(Map.of("Conv2d->WeightStandardizedConv2d", 2), report.countsByType());
  }
}
