package dev.surgery.core.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBaseBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.convolutional.Conv1d;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.nn.norm.LayerNorm;
import dev.surgery.core.layers.BlurConv2d;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/**
 * {@link DjlInternals#declaredShapes} against DJL itself: the shapes a block's own initialization
 * gives its parameters, read before any array exists; and a block asked leaves with every field,
 * array and shape it had.
 */
class DeclaredShapesTest {

  /** What DJL's initialize gives a twin built the same way, by parameter name. */
  private static void agreesWithDjl(Supplier<AbstractBaseBlock> build, Shape input) {
    AbstractBaseBlock asked = build.get();
    Map<Parameter, Shape> declared = DjlInternals.declaredShapes(asked, new Shape[] {input});
    try (NDManager manager = NDManager.newBaseManager()) {
      AbstractBaseBlock twin = build.get();
      twin.initialize(manager, DataType.FLOAT32, input);
      List<Parameter> own = new ArrayList<>(asked.getDirectParameters().values());
      List<Parameter> djl = new ArrayList<>(twin.getDirectParameters().values());
      assertEquals(djl.size(), own.size());
      for (int i = 0; i < own.size(); i++) {
        assertEquals(
            djl.get(i).getArray().getShape(),
            declared.get(own.get(i)),
            asked.getClass().getSimpleName() + "." + own.get(i).getName() + " for " + input);
        assertEquals(null, own.get(i).getShape(), "no shape left behind");
      }
      assertEquals(null, DjlInternals.recordedInputShapes(asked), "no input shapes left behind");
    }
  }

  @Test
  void convolutionsAndLinearLayersAsDjlShapesThem() {
    agreesWithDjl(
        () ->
            Conv2d.builder()
                .setKernelShape(new Shape(3, 5))
                .setFilters(6)
                .optGroups(2)
                .optPadding(new Shape(1, 2))
                .build(),
        new Shape(2, 4, 9, 9));
    agreesWithDjl(
        () -> Conv2d.builder().setKernelShape(new Shape(1, 1)).setFilters(3).optBias(false).build(),
        new Shape(1, 8, 4, 4));
    agreesWithDjl(
        () -> Conv1d.builder().setKernelShape(new Shape(3)).setFilters(5).build(),
        new Shape(2, 7, 10));
    agreesWithDjl(() -> Linear.builder().setUnits(5).build(), new Shape(2, 3, 7));
    agreesWithDjl(() -> Linear.builder().setUnits(5).optBias(false).build(), new Shape(4));
    agreesWithDjl(() -> BlurConv2d.fromConv2d(conv3x3(), true), new Shape(2, 4, 8, 8));
    agreesWithDjl(() -> BatchNorm.builder().build(), new Shape(2, 4, 5, 5));
    agreesWithDjl(() -> LayerNorm.builder().build(), new Shape(2, 6));
  }

  private static Conv2d conv3x3() {
    return Conv2d.builder().setKernelShape(new Shape(3, 3)).setFilters(4).build();
  }

  /**
   * An initialized block asked for other inputs keeps every instance field (what DJL's
   * beforeInitialize writes: a batch norm's channels, a layer norm's shape, the recorded inputs),
   * its parameters' arrays and their shapes.
   */
  @Test
  void aBlockAskedKeepsEveryFieldArrayAndShape() {
    try (NDManager manager = NDManager.newBaseManager()) {
      List<AbstractBaseBlock> blocks =
          List.of(BatchNorm.builder().build(), LayerNorm.builder().build());
      List<Shape> initialized = List.of(new Shape(2, 4, 5, 5), new Shape(2, 6));
      List<Shape> asked = List.of(new Shape(3, 8, 2, 2), new Shape(5, 9));
      for (int b = 0; b < blocks.size(); b++) {
        AbstractBaseBlock block = blocks.get(b);
        block.initialize(manager, DataType.FLOAT32, initialized.get(b));
        List<FieldSlot> fields = BlockFields.instanceFields(block.getClass());
        List<Object> before = new ArrayList<>();
        fields.forEach(f -> before.add(f.get(block)));
        List<NDArray> arrays = new ArrayList<>();
        List<Shape> shapes = new ArrayList<>();
        for (Parameter p : block.getDirectParameters().values()) {
          arrays.add(p.getArray());
          shapes.add(p.getShape());
        }
        Map<Parameter, Shape> declared =
            DjlInternals.declaredShapes(block, new Shape[] {asked.get(b)});
        assertTrue(!declared.isEmpty(), block.getClass().getSimpleName());
        for (int i = 0; i < fields.size(); i++) {
          Object now = fields.get(i).get(block);
          if (fields.get(i).type().isPrimitive()) {
            assertEquals(before.get(i), now, fields.get(i).toString());
          } else {
            assertSame(before.get(i), now, fields.get(i).toString());
          }
        }
        int i = 0;
        for (Parameter p : block.getDirectParameters().values()) {
          assertSame(arrays.get(i), p.getArray(), p.getName());
          assertEquals(shapes.get(i++), p.getShape(), p.getName());
        }
      }
    }
  }
}
