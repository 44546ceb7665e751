package dev.surgery.core.layers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.MalformedModelException;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.LambdaBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.pooling.Pool;
import ai.djl.training.ParameterStore;
import ai.djl.util.Pair;
import dev.surgery.core.testing.TinyModels;
import java.io.ByteArrayInputStream;
import java.io.DataInputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * BlurConv2d and BlurMaxPool2d keep the saved layout of the Conv2d and maxPool2d blocks they
 * replace but write a version byte of their own: a plain checkpoint (pretrained weights) loads into
 * the blurred architecture, and a blurred checkpoint is refused by the original one, whose layers
 * would compute something else with its weights.
 */
class BlurSaveLoadTest {

  private static final Shape INPUT = new Shape(2, 16, 12, 12);

  @TempDir Path dir;

  @Test
  void blurredModelSavesItsOwnVersionsReadsTheOriginalAndIsRefusedByIt() throws Exception {
    try (NDManager manager = NDManager.newBaseManager();
        Model original = Model.newInstance("net");
        Model blurred = Model.newInstance("net")) {
      manager.getEngine().setRandomSeed(3);
      SequentialBlock net = architecture(false);
      net.initialize(manager, DataType.FLOAT32, INPUT);
      original.setBlock(net);

      // The post-surgery model: same blocks, the strided conv and the pool replaced; the
      // replacements share the original Parameter objects.
      SequentialBlock surgery = new SequentialBlock();
      for (Pair<String, Block> child : net.getChildren()) {
        Block b = child.getValue();
        if (b instanceof Conv2d conv && conv.getStride().get(0) > 1) {
          b = BlurConv2d.fromConv2d(conv, true);
        } else if (b instanceof LambdaBlock l && "maxPool2d".equals(l.getName())) {
          b = BlurMaxPool2d.fromMaxPool2d(b);
        }
        surgery.add(b);
      }
      surgery.initialize(manager, DataType.FLOAT32, INPUT);
      assertEquals(2, countBlur(surgery));
      blurred.setBlock(surgery);

      Path originalDir = Files.createDirectories(dir.resolve("original"));
      Path blurredDir = Files.createDirectories(dir.resolve("blurred"));
      original.save(originalDir, "net");
      blurred.save(blurredDir, "net");
      byte[] originalBytes = Files.readAllBytes(originalDir.resolve("net-0000.params"));
      byte[] blurredBytes = Files.readAllBytes(blurredDir.resolve("net-0000.params"));
      // The same layout; only the two replaced blocks' version bytes differ (Conv2d's 3 and the
      // lambda's 2 there).
      assertEquals(originalBytes.length, blurredBytes.length);
      List<String> differences = new ArrayList<>();
      for (int i = 0; i < originalBytes.length; i++) {
        if (originalBytes[i] != blurredBytes[i]) {
          differences.add(originalBytes[i] + "->" + blurredBytes[i]);
        }
      }
      assertEquals(
          List.of("3->" + LayerVersions.BLUR_CONV_BLUR_FIRST, "2->" + LayerVersions.BLUR_MAX_POOL),
          differences);

      NDArray x = manager.randomNormal(INPUT);
      NDArray blurredOut = forward(manager, surgery, x);

      // blurred checkpoint -> original architecture: DJL's Conv2d refuses the version (before,
      // the weights loaded into layers without the blur, silently)
      try (Model loaded = Model.newInstance("net")) {
        loaded.setBlock(architecture(false));
        MalformedModelException refused =
            assertThrows(MalformedModelException.class, () -> loaded.load(blurredDir, "net"));
        assertEquals(
            "Unsupported encoding version: " + LayerVersions.BLUR_CONV_BLUR_FIRST,
            refused.getMessage());
      }
      // original checkpoint (pretrained weights) -> blurred architecture
      try (Model loaded = Model.newInstance("net")) {
        SequentialBlock fresh = architecture(true);
        loaded.setBlock(fresh);
        loaded.load(originalDir, "net");
        assertEquals(2, countBlur(fresh));
        assertSameValues(net, fresh);
        assertTrue(blurredOut.allClose(forward(manager, fresh, x), 1e-5, 1e-5, false));
        assertTrue(fresh.toString().contains("BlurMaxPool2d"), fresh.toString());
        // saved again, it is the blurred model's file (DJL names the inputs of a loaded model
        // only when it is initialized, which keeps the loaded values)
        fresh.initialize(manager, DataType.FLOAT32, INPUT);
        Path again = Files.createDirectories(dir.resolve("again"));
        loaded.save(again, "net");
        assertArrayEquals(blurredBytes, Files.readAllBytes(again.resolve("net-0000.params")));
      }
      // blurred checkpoint -> blurred architecture
      try (Model loaded = Model.newInstance("net")) {
        SequentialBlock fresh = architecture(true);
        loaded.setBlock(fresh);
        loaded.load(blurredDir, "net");
        assertSameValues(net, fresh);
        assertTrue(blurredOut.allClose(forward(manager, fresh, x), 1e-5, 1e-5, false));
      }
    }
  }

  @Test
  void anotherVariantsCheckpointIsRefusedNamingBoth() throws Exception {
    try (NDManager manager = NDManager.newBaseManager()) {
      BlurConv2d after = BlurConv2d.fromConv2d(strided(), false);
      after.initialize(manager, DataType.FLOAT32, INPUT);
      byte[] saved = WeightStandardizedConv2dTest.save(after);
      BlurConv2d first = BlurConv2d.fromConv2d(strided(), true);
      MalformedModelException refused =
          assertThrows(
              MalformedModelException.class,
              () ->
                  first.loadParameters(
                      manager, new DataInputStream(new ByteArrayInputStream(saved))));
      assertEquals(
          "Cannot load parameters for BlurConv2d (blur before the convolution): the file holds a"
              + " BlurConv2d (blur after the convolution) (encoding version 83) at this place,"
              + " which computes something else; load the file into the architecture it was saved"
              + " from",
          refused.getMessage());
      BlurMaxPool2d pool =
          new BlurMaxPool2d(new Shape(3, 3), new Shape(2, 2), new Shape(1, 1), false);
      assertThrows(
          MalformedModelException.class,
          () -> pool.loadParameters(manager, new DataInputStream(new ByteArrayInputStream(saved))));
    }
  }

  private static Conv2d strided() {
    return TinyModels.conv3x3(8, 2);
  }

  /** The test network; with {@code blur}, its strided conv and max pool are the Blur layers. */
  private static SequentialBlock architecture(boolean blur) {
    SequentialBlock net = new SequentialBlock();
    net.add(TinyModels.conv3x3(16, 1));
    net.add(Activation.reluBlock());
    if (blur) {
      net.add(
          BlurConv2d.blurBuilder()
              .setKernelShape(new Shape(3, 3))
              .optStride(new Shape(2, 2))
              .optPadding(new Shape(1, 1))
              .setFilters(8)
              .build());
      net.add(new BlurMaxPool2d(new Shape(3, 3), new Shape(2, 2), new Shape(1, 1), false));
    } else {
      net.add(strided());
      net.add(Pool.maxPool2dBlock(new Shape(3, 3), new Shape(2, 2), new Shape(1, 1)));
    }
    net.add(Blocks.batchFlattenBlock());
    net.add(Linear.builder().setUnits(3).build());
    return net;
  }

  private static int countBlur(Block net) {
    int n = 0;
    for (Block b : net.getChildren().values()) {
      if (b instanceof BlurConv2d || b instanceof BlurMaxPool2d) {
        n++;
      }
    }
    return n;
  }

  private static void assertSameValues(Block expected, Block actual) {
    List<Parameter> want = expected.getParameters().values();
    List<Parameter> got = actual.getParameters().values();
    assertEquals(want.size(), got.size());
    for (int i = 0; i < want.size(); i++) {
      assertEquals(want.get(i).getArray().getShape(), got.get(i).getArray().getShape());
      assertArrayEquals(
          want.get(i).getArray().toFloatArray(), got.get(i).getArray().toFloatArray(), 0f);
    }
  }

  private static NDArray forward(NDManager manager, Block block, NDArray x) {
    return block
        .forward(new ParameterStore(manager, false), new NDList(x), false)
        .singletonOrThrow();
  }
}
