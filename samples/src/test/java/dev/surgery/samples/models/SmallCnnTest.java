package dev.surgery.samples.models;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.util.Pair;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class SmallCnnTest {

  /**
   * The GPU check's network as it was written out before the builder: 8/16/16 and a global pool.
   */
  @Test
  void gpuCheckLayoutHasItsLayersInOrderAndClassifiesAnyImageSize() {
    Block net = SmallCnn.builder().setFilters(8, 16, 16).optGlobalPool(true).setClasses(4).build();
    assertEquals(
        List.of(
            "Conv2d",
            "LambdaBlock",
            "Conv2d",
            "LambdaBlock",
            "LambdaBlock",
            "Conv2d",
            "LambdaBlock",
            "LambdaBlock",
            "LambdaBlock",
            "Linear"),
        childTypes(net));
    List<Integer> strides = new ArrayList<>();
    for (Pair<String, Block> child : net.getChildren()) {
      if (child.getValue() instanceof Conv2d conv) {
        strides.add((int) conv.getStride().get(0));
      }
    }
    assertEquals(List.of(1, 2, 1), strides);
    try (NDManager manager = NDManager.newBaseManager()) {
      net.initialize(manager, DataType.FLOAT32, new Shape(2, 3, 16, 16));
      assertEquals(new Shape(2, 4), net.getOutputShapes(new Shape[] {new Shape(2, 3, 16, 16)})[0]);
      assertEquals(new Shape(2, 4), net.getOutputShapes(new Shape[] {new Shape(2, 3, 28, 28)})[0]);
    }
  }

  /** B4's layout: two convolutions, no global pool, 10 classes. */
  @Test
  void benchmarkLayoutFlattensThePooledMap() {
    Block net = SmallCnn.builder().setFilters(16, 16).setClasses(10).build();
    assertEquals(
        List.of(
            "Conv2d",
            "LambdaBlock",
            "Conv2d",
            "LambdaBlock",
            "LambdaBlock",
            "LambdaBlock",
            "Linear"),
        childTypes(net));
    try (NDManager manager = NDManager.newBaseManager()) {
      net.initialize(manager, DataType.FLOAT32, new Shape(4, 3, 16, 16));
      // 16 x 16 -> stride 2 -> 8 x 8 -> max pool 2 -> 4 x 4, 16 channels: 256 features into Linear.
      Block linear = net.getChildren().get(6).getValue();
      assertEquals(new Shape(10, 256), linear.getParameters().get("weight").getArray().getShape());
    }
  }

  @Test
  void badSettingsAreRefused() {
    assertThrows(IllegalArgumentException.class, () -> SmallCnn.builder().setFilters(8));
    assertThrows(IllegalArgumentException.class, () -> SmallCnn.builder().setFilters(8, 0));
    assertThrows(IllegalArgumentException.class, () -> SmallCnn.builder().setClasses(0));
  }

  private static List<String> childTypes(Block net) {
    List<String> types = new ArrayList<>();
    for (Pair<String, Block> child : net.getChildren()) {
      types.add(child.getValue().getClass().getSimpleName());
    }
    return types;
  }
}
