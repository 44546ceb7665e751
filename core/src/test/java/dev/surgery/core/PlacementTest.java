package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import dev.surgery.core.testing.GcSafeL2Loss;
import dev.surgery.core.testing.TinyModels;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * README: "Replacing an initialized block initializes the replacement on the same manager, data
 * type and device". A float32 model on the model's own manager cannot tell that rule from "always
 * float32 on the model's manager", so the old blocks here live on a sub-manager of their own and in
 * float64 and float16 as well (the PyTorch CPU engine runs both convolutions and linear layers in
 * float16).
 */
class PlacementTest {

  @ParameterizedTest(name = "{0}")
  @EnumSource(
      value = DataType.class,
      names = {"FLOAT32", "FLOAT64", "FLOAT16"})
  void aFreshReplacementIsInitializedWhereTheOldBlockLives(DataType dataType) {
    try (NDManager root = NDManager.newBaseManager();
        NDManager own = root.newSubManager()) {
      Conv2d conv = PropertyTrees.conv(1);
      SequentialBlock net =
          new SequentialBlock().add(conv).add(Linear.builder().setUnits(3).build());
      Shape input = new Shape(2, 4, 5, 5);
      net.initialize(own, dataType, input);
      ai.djl.Device device = conv.getParameters().get("weight").getArray().getDevice();
      Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(Conv2d.class, (block, index) -> PropertyTrees.conv(1));
      Map<Block, Block> replaced = ModuleSurgery.replaceModuleClasses(net, policies);

      Block fresh = replaced.get(conv);
      assertNotSame(conv, fresh);
      for (Parameter p : fresh.getParameters().values()) {
        NDArray a = p.getArray();
        assertSame(own, a.getManager(), p.getName() + ": the old block's manager");
        assertEquals(dataType, a.getDataType(), p.getName() + ": the old block's data type");
        assertEquals(device, a.getDevice(), p.getName() + ": the old device");
      }
      assertArrayEquals(new Shape[] {input}, fresh.getInputShapes());
      // The model runs in that data type end to end.
      NDArray x = own.randomNormal(input).toType(dataType, false);
      NDList out = net.forward(new ParameterStore(own, false), new NDList(x), false);
      assertEquals(dataType, out.singletonOrThrow().getDataType());
    }
  }

  /**
   * With recursion on replacements, the replacement is visited too, and its own policy may keep it
   * (return it unchanged): it stays in the model, so it is initialized and shape-checked like any
   * replacement that stays.
   */
  @org.junit.jupiter.api.Test
  void aReplacementThatItsPolicyKeepsOnRecursionIsInitialized() {
    try (NDManager manager = NDManager.newBaseManager()) {
      Conv2d conv = PropertyTrees.conv(1);
      SequentialBlock net =
          new SequentialBlock().add(conv).add(Linear.builder().setUnits(3).build());
      Shape input = new Shape(2, 4, 5, 5);
      net.initialize(manager, DataType.FLOAT32, input);
      Shape outputBefore = net.getOutputShapes(new Shape[] {input})[0];
      Map<String, Shape> oldShapes = new LinkedHashMap<>();
      conv.getParameters().forEach(p -> oldShapes.put(p.getKey(), p.getValue().getShape()));
      Conv2d fresh = PropertyTrees.conv(1);
      Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(Conv2d.class, (block, index) -> block == fresh ? block : fresh);

      Map<Block, Block> replaced =
          ModuleSurgery.replaceModuleClasses(net, policies, null, true, null);

      assertSame(fresh, replaced.get(conv));
      assertSame(fresh, replaced.get(fresh), "visited again and kept");
      for (Parameter p : fresh.getParameters().values()) {
        assertEquals(oldShapes.get(p.getName()), p.getArray().getShape(), p.getName());
      }
      assertArrayEquals(new Shape[] {input}, fresh.getInputShapes());
      NDList out =
          net.forward(new ParameterStore(manager, false), new NDList(manager.ones(input)), false);
      assertEquals(outputBefore, out.singletonOrThrow().getShape());
    }
  }

  /**
   * The walk reads what placement needs of a block (its recorded input shapes) before the
   * replacement function runs; a function that initializes the old block makes that answer stale,
   * and its replacement must still be initialized and shape-checked, not waved through.
   */
  @org.junit.jupiter.api.Test
  void aFunctionThatInitializesTheOldBlockStillHasItsReplacementChecked() {
    try (NDManager manager = NDManager.newBaseManager()) {
      Linear old = Linear.builder().setUnits(3).build();
      SequentialBlock net = new SequentialBlock().add(old);
      Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(
          Linear.class,
          (block, index) -> {
            block.initialize(manager, DataType.FLOAT32, new Shape(2, 5));
            return Linear.builder().setUnits(4).build();
          });

      SurgeryException e =
          org.junit.jupiter.api.Assertions.assertThrows(
              SurgeryException.class, () -> ModuleSurgery.replaceModuleClasses(net, policies));

      org.junit.jupiter.api.Assertions.assertTrue(
          e.getMessage().contains("changes the output shapes"), e.getMessage());
      assertSame(old, net.getChildren().get(0).getValue(), "rolled back");
    }
  }

  /**
   * A model without a parameter gives no array to place a replacement beside. One that needs no
   * array is still initialized (on a scratch manager) and records the old block's input shapes,
   * trainer or not.
   */
  @org.junit.jupiter.api.Test
  void aParameterFreeReplacementInAParameterFreeModelIsPlacedWithoutATrainer() {
    try (NDManager manager = NDManager.newBaseManager()) {
      Block relu = Activation.reluBlock();
      SequentialBlock net = new SequentialBlock().add(relu).add(Activation.reluBlock());
      Shape input = new Shape(2, 5);
      net.initialize(manager, DataType.FLOAT32, input);
      Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(
          relu.getClass(), (block, index) -> block == relu ? Activation.tanhBlock() : null);
      Map<Block, Block> replaced = ModuleSurgery.replaceModuleClasses(net, policies);

      Block tanh = replaced.get(relu);
      assertNotSame(relu, tanh);
      assertArrayEquals(new Shape[] {input}, tanh.getInputShapes());
    }
  }

  /**
   * A model without a parameter, given its trainer: a replacement with parameters is initialized on
   * the model's manager and in its data type, as the trainer would initialize a new block of it.
   */
  @org.junit.jupiter.api.Test
  void aReplacementWithParametersInAParameterFreeModelIsPlacedOnTheTrainersModel() {
    Block relu = Activation.reluBlock();
    SequentialBlock net = new SequentialBlock().add(relu).add(Activation.reluBlock());
    Shape input = new Shape(2, 5);
    try (Model model = TinyModels.model("parameter-free", net);
        Trainer trainer = model.newTrainer(new DefaultTrainingConfig(new GcSafeL2Loss()))) {
      trainer.initialize(input);
      Map<BlockMatcher, ReplacementFunction> policies =
          Fixtures.replacing(relu, (block, index) -> Linear.builder().setUnits(5).build());
      Map<Block, Block> replaced =
          ModuleSurgery.replaceModules(
              net, policies, SurgeryOptions.builder().optTrainers(List.of(trainer)).build());

      Block linear = replaced.get(relu);
      assertTrue(linear instanceof Linear, String.valueOf(linear));
      for (Parameter p : linear.getParameters().values()) {
        NDArray a = p.getArray();
        assertSame(model.getNDManager(), a.getManager(), p.getName() + ": the model's manager");
        assertEquals(model.getDataType(), a.getDataType(), p.getName() + ": its data type");
      }
      assertArrayEquals(new Shape[] {input}, linear.getInputShapes());
    }
  }
}
