package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.training.ParameterStore;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.SurgeryException;
import dev.surgery.core.layers.SqueezeExciteConv2d;
import dev.surgery.core.testing.OptimizerKind;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class SqueezeExciteTest {

  @BeforeAll
  static void register() {
    LiveTraining.registerBuiltins();
  }

  @Test
  void latentWidthFollowsComposer() {
    assertEquals(64, SqueezeExciteConv2d.latentWidth(64, 16));
    assertEquals(4, SqueezeExciteConv2d.latentWidth(0.25, 16));
    assertEquals(3, SqueezeExciteConv2d.latentWidth(3.9, 16));
    assertEquals(1, SqueezeExciteConv2d.latentWidth(0.01, 16));
  }

  @Test
  void gateMatchesDirectComputation() {
    try (NDManager manager = NDManager.newBaseManager()) {
      Conv2d conv = LiveTraining.conv(4, 1);
      SqueezeExciteConv2d se = new SqueezeExciteConv2d(conv, 2);
      Shape in = new Shape(2, 3, 5, 5);
      se.initialize(manager, DataType.FLOAT32, in);
      NDArray x = manager.randomNormal(in);
      ParameterStore ps = new ParameterStore(manager, false);
      float[] y = conv.forward(ps, new NDList(x), false).head().toFloatArray();
      float[] out = se.forward(ps, new NDList(x), false).head().toFloatArray();
      float[] w1 = se.getGate().getParameters().valueAt(0).getArray().toFloatArray(); // 2 x 4
      float[] w2 = se.getGate().getParameters().valueAt(1).getArray().toFloatArray(); // 4 x 2
      for (int n = 0; n < 2; n++) {
        double[] m = new double[4];
        for (int c = 0; c < 4; c++) {
          for (int i = 0; i < 25; i++) {
            m[c] += y[n * 100 + c * 25 + i] / 25.0;
          }
        }
        double[] h = new double[2];
        for (int j = 0; j < 2; j++) {
          for (int c = 0; c < 4; c++) {
            h[j] += w1[j * 4 + c] * m[c];
          }
          h[j] = Math.max(0, h[j]);
        }
        for (int c = 0; c < 4; c++) {
          double z = 0;
          for (int j = 0; j < 2; j++) {
            z += w2[c * 2 + j] * h[j];
          }
          double s = 1 / (1 + Math.exp(-z));
          for (int i = 0; i < 25; i++) {
            int k = n * 100 + c * 25 + i;
            assertEquals(y[k] * s, out[k], 1e-5, "element " + k);
          }
        }
      }
    }
  }

  private static List<Block> wrappedConvs(Block root) {
    List<Block> convs = new ArrayList<>();
    for (Block b : BlockPaths.index(root).keySet()) {
      if (b instanceof SqueezeExciteConv2d se) {
        convs.add(se.getConv());
      }
    }
    return convs;
  }

  @Test
  void wrapsConvolutionsWithEnoughChannelsOnce() {
    SequentialBlock net = LiveTraining.smallCnn(); // convs 3->8, 8->16, 16->16
    try (NDManager manager = NDManager.newBaseManager()) {
      net.initialize(manager, DataType.FLOAT32, new Shape(2, 3, 8, 8));
      Block second = BlockPaths.resolve(net, "04Conv2d");
      Block third = BlockPaths.resolve(net, "07Conv2d");
      NDArray x = manager.randomNormal(new Shape(2, 3, 8, 8));
      Shape outBefore =
          net.forward(new ParameterStore(manager, false), new NDList(x), false).head().getShape();
      SqueezeExcite algorithm =
          SqueezeExcite.builder().optMinChannels(8).optLatentChannels(0.5).build();
      SurgeryChanges report = algorithm.apply(SurgeryContext.of(net));
      assertEquals(
          List.of("04Conv2d", "07Conv2d"),
          report.changes().stream().map(SurgeryChanges.Change::path).toList());
      assertEquals(List.of(second, third), wrappedConvs(net));
      // New parameters: per wrapped conv, two bias-free gate matrices of 16 x 8.
      assertEquals(2 * (2 * 16 * 8), report.parametersAfter() - report.parametersBefore());
      assertTrue(net.isInitialized());
      assertEquals(
          outBefore,
          net.forward(new ParameterStore(manager, false), new NDList(x), false).head().getShape());
      assertTrue(algorithm.apply(SurgeryContext.of(net)).isEmpty(), "idempotent");
      assertEquals(2, wrappedConvs(net).size());
    }
  }

  @Test
  void uninitializedModelNeedsInputChannelsUnlessEveryConvQualifies() {
    SqueezeExcite strict = SqueezeExcite.builder().optMinChannels(8).build();
    assertTrue(strict.needsInitializedModel());
    SequentialBlock net = LiveTraining.smallCnn();
    SurgeryException e =
        assertThrows(SurgeryException.class, () -> strict.apply(SurgeryContext.of(net)));
    assertEquals("01Conv2d", e.getBlockPath());
    assertEquals(0, wrappedConvs(net).size(), "nothing changed");

    SqueezeExcite all = SqueezeExcite.builder().optMinChannels(0).optLatentChannels(2).build();
    assertFalse(all.needsInitializedModel());
    assertEquals(3, all.apply(SurgeryContext.of(net)).changes().size());
    try (NDManager manager = NDManager.newBaseManager()) {
      net.initialize(manager, DataType.FLOAT32, new Shape(2, 3, 8, 8));
      assertTrue(net.isInitialized());
    }
  }

  @Test
  void sameSeedGivesTheSameGates() {
    float[][] gates = new float[2][];
    for (int run = 0; run < 2; run++) {
      try (NDManager manager = NDManager.newBaseManager()) {
        Engine.getInstance().setRandomSeed(42);
        SequentialBlock net = LiveTraining.smallCnn();
        net.initialize(manager, DataType.FLOAT32, new Shape(2, 3, 8, 8));
        SqueezeExcite.builder()
            .optMinChannels(16)
            .optLatentChannels(4)
            .build()
            .apply(SurgeryContext.of(net));
        SqueezeExciteConv2d se =
            (SqueezeExciteConv2d) BlockPaths.resolve(net, "07SqueezeExciteConv2d");
        gates[run] = se.getGate().getParameters().valueAt(1).getArray().toFloatArray();
      }
    }
    assertArrayEquals(gates[0], gates[1], 0f);
  }

  @Test
  void invalidValuesAreRefused() {
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () -> SqueezeExcite.builder().optLatentChannels(0).build());
    assertTrue(
        e.getMessage().contains("latent_channels") && e.getMessage().contains("(0, 2147483647]"),
        e.getMessage());
    // A width beyond an int: once accepted, it failed an epoch into training (no gate that wide).
    e =
        assertThrows(
            IllegalArgumentException.class,
            () -> SqueezeExcite.builder().optLatentChannels(3e9).build());
    assertTrue(e.getMessage().contains("got 3.0E9"), e.getMessage());
    e =
        assertThrows(
            IllegalArgumentException.class,
            () -> SqueezeExcite.builder().optMinChannels(-3).build());
    assertTrue(e.getMessage().contains("min_channels") && e.getMessage().contains("-3"));
    AlgorithmSpec spec = Algorithms.spec(SqueezeExcite.NAME);
    assertEquals(
        Map.of("latent_channels", 64.0, "min_channels", 128),
        spec.create(Map.of()).hyperparameters());
  }

  /**
   * Live, after three steps of SGD with momentum: the subject equals the model built by hand with
   * the last convolution inside a squeeze-excite wrapper, a fresh optimizer holding the
   * convolution's momentum and the gate starting without any, bit for bit over four more steps.
   */
  @Test
  void liveApplicationTrainsExactlyLikeTheModelBuiltByHand() throws Exception {
    HandBuiltOracle.Case c = new HandBuiltOracle.Case();
    c.before = LiveTraining::smallCnn;
    c.sample = new Shape(3, 8, 8);
    c.optimizer = OptimizerKind.SGD_MOMENTUM;
    c.algorithm = SqueezeExcite.builder().optMinChannels(16).optLatentChannels(4).build();
    c.byHand =
        fresh -> {
          SequentialBlock built = new SequentialBlock();
          List<Block> blocks = fresh.getChildren().values();
          for (int i = 0; i < blocks.size(); i++) {
            // only the last convolution has 16 input channels
            built.add(i == 6 ? new SqueezeExciteConv2d((Conv2d) blocks.get(i), 4) : blocks.get(i));
          }
          return built;
        };
    SurgeryChanges report = HandBuiltOracle.run(c);
    assertEquals(Map.of("Conv2d->SqueezeExciteConv2d", 1), report.countsByType());
  }

  /**
   * Input channels are needed only where min_channels can exclude a convolution: every convolution
   * has at least one channel, so 0 and 1 exclude none and need no initialized model.
   */
  @Test
  void onlyAThresholdAboveOneNeedsTheInputChannels() {
    assertEquals(
        List.of(false, false, true),
        java.util.stream.IntStream.of(0, 1, 2)
            .mapToObj(
                m -> SqueezeExcite.builder().optMinChannels(m).build().needsInitializedModel())
            .toList());
  }
}
