package dev.surgery.core.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBaseBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.convolutional.Conv1d;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.convolutional.Conv3d;
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
 * {@link DjlShapes#declaredShapes} against DJL itself: the shapes a block's own initialization
 * gives its parameters, read before any array exists; and a block asked leaves with every field,
 * array and shape it had.
 */
class DeclaredShapesTest {

  /** What DJL's initialize gives a twin built the same way, by parameter name. */
  private static void agreesWithDjl(Supplier<AbstractBaseBlock> build, Shape input) {
    agreesWithDjl(build, input, java.util.Set.of());
  }

  /**
   * As above; the parameters named in {@code unanswered} are shaped outside DJL's {@code prepare}
   * (at construction), so no answer is expected for them: no answer means no refusal.
   */
  private static void agreesWithDjl(
      Supplier<AbstractBaseBlock> build, Shape input, java.util.Set<String> unanswered) {
    AbstractBaseBlock asked = build.get();
    List<Shape> shapesBefore = new ArrayList<>();
    asked.getDirectParameters().values().forEach(p -> shapesBefore.add(p.getShape()));
    Map<Parameter, Shape> declared = DjlShapes.declaredShapes(asked, new Shape[] {input});
    try (NDManager manager = NDManager.newBaseManager()) {
      AbstractBaseBlock twin = build.get();
      twin.initialize(manager, DataType.FLOAT32, input);
      List<Parameter> own = new ArrayList<>(asked.getDirectParameters().values());
      List<Parameter> djl = new ArrayList<>(twin.getDirectParameters().values());
      assertEquals(djl.size(), own.size());
      for (int i = 0; i < own.size(); i++) {
        assertEquals(
            unanswered.contains(own.get(i).getName()) ? null : djl.get(i).getArray().getShape(),
            declared.get(own.get(i)),
            asked.getClass().getSimpleName() + "." + own.get(i).getName() + " for " + input);
        assertEquals(shapesBefore.get(i), own.get(i).getShape(), "its shape as it was");
      }
      assertEquals(null, DjlShapes.recordedInputShapes(asked), "no input shapes left behind");
    }
  }

  /**
   * DJL's convolutions and linear layers, and a subclass shaped as its parent, each with an input
   * it takes: the blocks whose shapes {@link DjlInternals} reads from their settings.
   */
  private static final List<Map.Entry<Supplier<AbstractBaseBlock>, Shape>> STANDARD =
      List.of(
          Map.entry(
              () ->
                  Conv2d.builder()
                      .setKernelShape(new Shape(3, 5))
                      .setFilters(6)
                      .optGroups(2)
                      .optPadding(new Shape(1, 2))
                      .build(),
              new Shape(2, 4, 9, 9)),
          Map.entry(
              () ->
                  Conv2d.builder()
                      .setKernelShape(new Shape(1, 1))
                      .setFilters(3)
                      .optBias(false)
                      .build(),
              new Shape(1, 8, 4, 4)),
          Map.entry(
              () -> Conv1d.builder().setKernelShape(new Shape(3)).setFilters(5).build(),
              new Shape(2, 7, 10)),
          Map.entry(() -> Linear.builder().setUnits(5).build(), new Shape(2, 3, 7)),
          Map.entry(() -> Linear.builder().setUnits(5).optBias(false).build(), new Shape(4)),
          Map.entry(
              () ->
                  Conv3d.builder()
                      .setKernelShape(new Shape(3, 1, 2))
                      .setFilters(4)
                      .optDilation(new Shape(2, 1, 1))
                      .build(),
              new Shape(1, 2, 6, 5, 5)),
          Map.entry(() -> BlurConv2d.fromConv2d(conv3x3(), true), new Shape(2, 4, 8, 8)));

  @Test
  void convolutionsAndLinearLayersAsDjlShapesThem() {
    for (Map.Entry<Supplier<AbstractBaseBlock>, Shape> layer : STANDARD) {
      agreesWithDjl(layer.getKey(), layer.getValue());
    }
    // A subclass holding a parameter of its own: only its initialization knows that shape (a
    // reviewer: the first reading gave it the convolution's weight shape, refusing a good copy).
    agreesWithDjl(ScaledConv2d::new, new Shape(2, 4, 9, 9), java.util.Set.of("scale"));
    agreesWithDjl(() -> BatchNorm.builder().build(), new Shape(2, 4, 5, 5));
    agreesWithDjl(() -> LayerNorm.builder().build(), new Shape(2, 6));
  }

  /**
   * {@link DjlShapes#declaresShape}, the shape-free answer a surgery asks first, against DJL's own
   * initialization: true for the shape DJL gives each parameter of its convolutions and linear
   * layers, false for any other; no answer for blocks only {@link DjlShapes#declaredShapes} can
   * shape (a subclass with a parameter of its own, other layers), which then decides.
   */
  @Test
  void theShapeFreeAnswerAgreesWithDjlForItsConvolutionsAndLinearLayers() {
    for (Map.Entry<Supplier<AbstractBaseBlock>, Shape> layer : STANDARD) {
      Shape[] input = {layer.getValue()};
      try (NDManager manager = NDManager.newBaseManager()) {
        AbstractBaseBlock asked = layer.getKey().get();
        AbstractBaseBlock twin = layer.getKey().get();
        twin.initialize(manager, DataType.FLOAT32, input);
        List<Parameter> own = new ArrayList<>(asked.getDirectParameters().values());
        List<Parameter> djl = new ArrayList<>(twin.getDirectParameters().values());
        for (int i = 0; i < own.size(); i++) {
          Shape right = djl.get(i).getArray().getShape();
          String what = asked.getClass().getSimpleName() + "." + own.get(i).getName();
          assertEquals(
              Boolean.TRUE, DjlShapes.declaresShape(asked, input, own.get(i), right), what);
          long[] bigger = right.getShape().clone();
          bigger[bigger.length - 1]++;
          assertEquals(
              Boolean.FALSE,
              DjlShapes.declaresShape(asked, input, own.get(i), new Shape(bigger)),
              what + " against " + new Shape(bigger));
          Shape longer = right.addAll(new Shape(1));
          assertEquals(
              Boolean.FALSE,
              DjlShapes.declaresShape(asked, input, own.get(i), longer),
              what + " against " + longer);
        }
      }
    }
    Shape[] image = {new Shape(2, 4, 9, 9)};
    for (AbstractBaseBlock other :
        List.<AbstractBaseBlock>of(
            new ScaledConv2d(), BatchNorm.builder().build(), LayerNorm.builder().build())) {
      for (Parameter p : other.getDirectParameters().values()) {
        assertEquals(
            null,
            DjlShapes.declaresShape(other, image, p, new Shape(8, 4, 3, 3)),
            other.getClass().getSimpleName() + "." + p.getName());
      }
    }
  }

  /** A convolution whose subclass adds a per-filter scale of its own. */
  static final class ScaledConv2d extends Conv2d {
    ScaledConv2d() {
      super(Conv2d.builder().setKernelShape(new Shape(3, 3)).setFilters(8));
      addParameter(
          Parameter.builder()
              .setName("scale")
              .setType(Parameter.Type.WEIGHT)
              .optShape(new Shape(8, 1, 1))
              .build());
    }
  }

  /** Inputs of another rank than the convolution's: refused, as DJL's initialize refuses them. */
  @Test
  void inputsOfAnotherRankAreRefusedAsDjlRefusesThem() {
    for (Shape input : List.of(new Shape(2, 8, 9), new Shape(2, 8, 9, 9, 9))) {
      assertThrows(
          RuntimeException.class,
          () -> DjlShapes.declaredShapes(conv3x3(), new Shape[] {input}),
          input.toString());
    }
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
            DjlShapes.declaredShapes(block, new Shape[] {asked.get(b)});
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
