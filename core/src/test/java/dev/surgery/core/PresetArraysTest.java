package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.LayerNorm;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.util.PairList;
import dev.surgery.core.internal.DjlShapes;
import dev.surgery.core.testing.ExactnessOracle;
import dev.surgery.core.testing.GcSafeL2Loss;
import dev.surgery.core.testing.OpenArrays;
import dev.surgery.core.testing.TinyDense;
import dev.surgery.core.testing.TinyModels;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import org.junit.jupiter.api.Test;

/**
 * A replacement its function initialized itself, against the block it replaces: one in another data
 * type, or for other input channels, would pass the output-shape check and fail the next step in
 * the engine after the old arrays were freed; it is refused, with the model, its values and the
 * trainer as before. One initialized for another batch size, or for another image size that a
 * convolution accepts, is placed and trains on.
 */
class PresetArraysTest {

  private static final Shape INPUT = new Shape(4, 3, 8, 8);

  /** The second convolution receives 4 channels of 6 x 6. */
  private static final Shape SECOND_CONV_INPUT = new Shape(4, 4, 6, 6);

  @Test
  void aReplacementInitializedInAnotherDataTypeIsRefused() {
    SurgeryException e = refused(DataType.FLOAT64, SECOND_CONV_INPUT);
    assertTrue(e.getMessage().contains("float64"), e.getMessage());
    assertTrue(e.getMessage().contains("float32"), e.getMessage());
  }

  @Test
  void aReplacementInitializedForOtherInputChannelsIsRefused() {
    SurgeryException e = refused(DataType.FLOAT32, new Shape(4, 2, 6, 6));
    assertTrue(e.getMessage().contains("(4, 2, 6, 6)"), e.getMessage());
    assertTrue(e.getMessage().contains("(4, 4, 6, 6)"), e.getMessage());
    assertTrue(e.getMessage().contains("forward fails"), e.getMessage());
  }

  @Test
  void anotherBatchSizeOrAnImageSizeTheConvolutionAcceptsIsPlaced() {
    for (Shape initializedFor : List.of(new Shape(1, 4, 6, 6), new Shape(2, 4, 11, 11))) {
      SequentialBlock root = cnn();
      try (Model model = TinyModels.model("preset", root);
          Trainer trainer = model.newTrainer(adam())) {
        trainer.initialize(INPUT);
        Fixtures.sumStep(trainer);
        Block old = root.getChildren().valueAt(2);
        Set<NDArray> openBefore = OpenArrays.ofEngine(model.getNDManager());
        Map<Block, Block> done =
            ModuleSurgery.replaceModules(
                root,
                secondConv(model.getNDManager(), DataType.FLOAT32, initializedFor),
                SurgeryOptions.builder().optTrainers(List.of(trainer)).build());
        assertNotSame(old, root.getChildren().valueAt(2), initializedFor.toString());
        assertSame(done.get(old), root.getChildren().valueAt(2));
        // The forwards that judged the other image size left nothing open.
        Set<NDArray> stray = OpenArrays.ofEngine(model.getNDManager());
        stray.removeAll(openBefore);
        stray.removeAll(OpenArrays.reachable(root, trainer));
        assertEquals(Set.of(), stray, initializedFor.toString());
        Fixtures.sumStep(trainer); // trains on
        // It records the shapes it receives here: a later surgery initializes its own replacement
        // (a convolution and a layer norm over channels and image) for them and trains on.
        // (The batch dimension aside: another batch size is recorded as it was, and harmless.)
        Shape[] recorded = DjlShapes.recordedInputShapes(root.getChildren().valueAt(2));
        assertEquals(1, recorded.length);
        assertEquals(SECOND_CONV_INPUT.slice(1), recorded[0].slice(1), initializedFor.toString());
        Map<BlockMatcher, ReplacementFunction> again = new LinkedHashMap<>();
        again.put(
            (block, path) -> path.equals("03Conv2d"),
            (block, index) ->
                new SequentialBlock().add(conv()).add(LayerNorm.builder().axis(1, 2, 3).build()));
        ModuleSurgery.replaceModules(
            root, again, SurgeryOptions.builder().optTrainers(List.of(trainer)).build());
        Fixtures.sumStep(trainer);
        Fixtures.sumStep(trainer);
      }
    }
  }

  /**
   * A replacement initialized for two inputs where the old block receives one (a dense layer reads
   * only the first): it accepts the one input and is placed, and records the inputs it receives
   * here, the old block's, not the two it was initialized for.
   */
  @Test
  void aReplacementInitializedForAnotherNumberOfInputsRecordsTheOldBlocksInputs() {
    try (NDManager manager = NDManager.newBaseManager()) {
      TinyDense old = new TinyDense(5);
      SequentialBlock root = new SequentialBlock().add(old);
      Shape input = new Shape(2, 5);
      root.initialize(manager, DataType.FLOAT32, input);
      Shape[] oldInputs = old.getInputShapes();
      Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(
          BlockMatcher.ofClass(TinyDense.class),
          (block, index) -> {
            TinyDense fresh = new TinyDense(5);
            fresh.initialize(manager, DataType.FLOAT32, input, input);
            return fresh;
          });
      Map<Block, Block> replaced =
          ModuleSurgery.replaceModules(root, policies, SurgeryOptions.defaults());

      assertArrayEquals(oldInputs, replaced.get(old).getInputShapes());
    }
  }

  /** Scales its input by a parameter its settings give no shape: only the array says one. */
  static final class HandScale extends AbstractBlock {
    final Parameter weight =
        addParameter(Parameter.builder().setName("weight").setType(Parameter.Type.WEIGHT).build());

    @Override
    protected NDList forwardInternal(
        ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
      NDArray x = inputs.singletonOrThrow();
      return new NDList(x.mul(store.getValue(weight, x.getDevice(), training)));
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputs) {
      return inputs;
    }
  }

  /**
   * Arrays set by hand under the old block's parameter name but of another shape, in a block whose
   * settings declare none (so only a forward can judge them): its declared output shapes are the
   * old block's, its forward on the old block's inputs fails. Refused, the old block in place.
   */
  @Test
  void handSetArraysOfAnotherShapeWhoseForwardFailsAreRefused() {
    try (NDManager manager = NDManager.newBaseManager()) {
      TinyDense old = new TinyDense(5);
      SequentialBlock root = new SequentialBlock().add(old);
      root.initialize(manager, DataType.FLOAT32, new Shape(2, 5));
      Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(
          BlockMatcher.ofClass(TinyDense.class),
          (block, index) -> {
            HandScale scale = new HandScale();
            scale.weight.setArray(manager.ones(new Shape(3))); // 3 where 5 features arrive
            return scale;
          });

      SurgeryException e =
          assertThrows(
              SurgeryException.class,
              () -> ModuleSurgery.replaceModules(root, policies, SurgeryOptions.defaults()));

      assertTrue(e.getMessage().contains("arrays set by hand"), e.getMessage());
      assertTrue(e.getMessage().contains("forward fails"), e.getMessage());
      assertSame(old, root.getChildren().valueAt(0));
    }
  }

  /**
   * The forwards that judge a replacement initialized for other input shapes leave no array behind,
   * also where a block computes on its weight first ({@code TinyDense}: {@code x W^T}, whose
   * transpose belongs to the weight's manager).
   */
  @Test
  void theForwardsThatJudgeLeaveNoArrayBehind() {
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock root = new SequentialBlock().add(new TinyDense(5));
      root.initialize(manager, DataType.FLOAT32, new Shape(2, 5));
      Set<NDArray> before = OpenArrays.managedBy(manager);
      Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(
          BlockMatcher.ofClass(TinyDense.class),
          (block, index) -> {
            TinyDense fresh = new TinyDense(5);
            fresh.initialize(manager, DataType.FLOAT32, new Shape(2, 5, 7)); // another rank
            return fresh;
          });
      ModuleSurgery.replaceModules(root, policies, SurgeryOptions.defaults());

      Set<NDArray> stray = OpenArrays.managedBy(manager);
      stray.removeAll(before);
      for (ai.djl.nn.Parameter p : root.getParameters().values()) {
        stray.remove(p.getArray());
      }
      assertEquals(Set.of(), stray);
    }
  }

  /**
   * Arrays set by hand with the names and shapes of the old block's, in a convolution whose own
   * settings declare another kernel (5 x 5 with padding 1, where the arrays are 3 x 3): its
   * declared output shapes are the old block's, its forward gives 6 x 6 where 4 x 4 is expected. An
   * outside probe found it accepted, and the model computing something else without a word.
   */
  @Test
  void handSetArraysThatTheReplacementsSettingsContradictAreRefused() {
    SurgeryException e = refused(contradicting(true, false));
    assertTrue(e.getMessage().contains("'weight'"), e.getMessage());
    assertTrue(e.getMessage().contains("(4, 4, 3, 3)"), e.getMessage());
    assertTrue(e.getMessage().contains("(4, 4, 5, 5)"), e.getMessage());
  }

  /**
   * The same copy inside a composite replacement (a sequence holding the 5 x 5 convolution): the
   * first check looked at the replacement's own parameters only, and this one was accepted with the
   * model computing something else (a reviewer). A block inside the replacement is asked with the
   * inputs placement gave it.
   */
  @Test
  void aContradictedArrayInsideACompositeReplacementIsRefused() {
    SurgeryException e = refused(contradicting(true, true));
    assertTrue(e.getMessage().contains("Conv2d parameter 'weight'"), e.getMessage());
    assertTrue(e.getMessage().contains("(4, 4, 5, 5)"), e.getMessage());
  }

  /**
   * New parameters around the old block's very arrays (a supported way to replace a layer) in a
   * convolution declaring another kernel: the arrays "fit by construction" was assumed and the
   * check skipped them, at the top and inside a sequence (a reviewer). Every array a replacement
   * brought is asked.
   */
  @Test
  void theOldArraysRewrappedInAContradictingReplacementAreRefused() {
    for (boolean inside : new boolean[] {false, true}) {
      SurgeryException e = refused(contradicting(false, inside));
      assertTrue(e.getMessage().contains("(4, 4, 5, 5)"), inside + ": " + e.getMessage());
    }
  }

  /**
   * Replaces the second convolution by one declaring a 5 x 5 kernel (padding 1: the same declared
   * output) around the old 3 x 3 arrays: copies of them, or the very arrays; alone, or inside a
   * sequence.
   */
  private static Function<NDManager, Map<BlockMatcher, ReplacementFunction>> contradicting(
      boolean copies, boolean inside) {
    return manager -> {
      Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(
          (block, path) -> path.equals("03Conv2d"),
          (block, index) -> {
            Conv2d fresh =
                Conv2d.builder()
                    .setKernelShape(new Shape(5, 5))
                    .optPadding(new Shape(1, 1))
                    .setFilters(4)
                    .build();
            for (int i = 0; i < fresh.getParameters().size(); i++) {
              NDArray old = block.getParameters().valueAt(i).getArray();
              fresh.getParameters().valueAt(i).setArray(copies ? old.duplicate() : old);
            }
            return inside ? new SequentialBlock().add(fresh) : fresh;
          });
      return policies;
    };
  }

  private static SurgeryException refused(DataType dataType, Shape initializedFor) {
    return refused(manager -> secondConv(manager, dataType, initializedFor));
  }

  private static SurgeryException refused(
      Function<NDManager, Map<BlockMatcher, ReplacementFunction>> policies) {
    SequentialBlock root = cnn();
    try (Model model = TinyModels.model("preset", root);
        Trainer trainer = model.newTrainer(adam())) {
      trainer.initialize(INPUT);
      Fixtures.sumStep(trainer);
      Fixtures.sumStep(trainer);
      Block old = root.getChildren().valueAt(2);
      Map<String, float[]> valuesBefore = Fixtures.snapshot(root);
      Set<String> storeBefore = Fixtures.storeIds(trainer);
      Map<String, float[]> stateBefore = ExactnessOracle.optimizerStateValues(trainer);

      SurgeryException e =
          assertThrows(
              SurgeryException.class,
              () ->
                  ModuleSurgery.replaceModules(
                      root,
                      policies.apply(model.getNDManager()),
                      SurgeryOptions.builder().optTrainers(List.of(trainer)).build()));

      assertEquals("03Conv2d", e.getBlockPath(), e.getMessage());
      assertSame(old, root.getChildren().valueAt(2));
      assertFalse(
          old.getParameters().valueAt(0).getArray().isReleased(), "the old arrays stay open");
      Map<String, float[]> valuesAfter = Fixtures.snapshot(root);
      Fixtures.assertBitsEqual(valuesBefore, valuesAfter);
      assertEquals(storeBefore, Fixtures.storeIds(trainer));
      Map<String, float[]> stateAfter = ExactnessOracle.optimizerStateValues(trainer);
      Fixtures.assertBitsEqual(stateBefore, stateAfter);
      Fixtures.sumStep(trainer); // trains on
      return e;
    }
  }

  /** Replaces the second convolution by a new one the function initializes itself. */
  private static Map<BlockMatcher, ReplacementFunction> secondConv(
      NDManager manager, DataType dataType, Shape initializedFor) {
    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(
        (block, path) -> path.equals("03Conv2d"),
        (block, index) -> {
          Block fresh = conv();
          fresh.initialize(manager, dataType, initializedFor);
          return fresh;
        });
    return policies;
  }

  private static SequentialBlock cnn() {
    return new SequentialBlock()
        .add(conv())
        .add(Activation.reluBlock())
        .add(conv())
        .add(Blocks.batchFlattenBlock())
        .add(Linear.builder().setUnits(2).build());
  }

  private static Conv2d conv() {
    return Conv2d.builder().setKernelShape(new Shape(3, 3)).setFilters(4).build();
  }

  private static DefaultTrainingConfig adam() {
    return new DefaultTrainingConfig(new GcSafeL2Loss())
        .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build());
  }
}
