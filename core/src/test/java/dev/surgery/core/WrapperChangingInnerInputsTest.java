package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * A wrapper that feeds the block it wraps other inputs (a fresh Linear of 7 units ahead of it, the
 * wrapper's own output shapes unchanged) while a layer inside that block is replaced too: the inner
 * replacement, placed first for the inputs of the layer it replaces (5 features), cannot take the 7
 * the wrapper gives it. The refusal said the replacement "holds an array" it should be built with,
 * or left uninitialized, advice for arrays a user brought, when placement had given them; it now
 * says what happened. Nothing changes, nothing is drawn.
 */
class WrapperChangingInnerInputsTest {

  static final class Holder extends SequentialBlock {}

  private static final Shape INPUT = new Shape(4, 5);

  @Test
  void theRefusalNamesTheWrapperChangingTheInnerInputsAndChangesNothing() {
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock net =
          new SequentialBlock()
              .add(new Holder().add(Linear.builder().setUnits(6).build()))
              .add(Activation.reluBlock())
              .add(Linear.builder().setUnits(3).build());
      Engine.getInstance().setRandomSeed(1);
      net.initialize(manager, DataType.FLOAT32, INPUT);
      List<Parameter> before = new ArrayList<>(BlockTrees.parametersOf(net));
      Map<String, float[]> values = Fixtures.snapshot(net);
      Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(
          Holder.class,
          (block, index) ->
              new SequentialBlock().add(Linear.builder().setUnits(7).build()).add(block));
      policies.put(
          Linear.class, (block, index) -> index == 0 ? Linear.builder().setUnits(6).build() : null);
      Engine.getInstance().setRandomSeed(9);
      SurgeryException refused =
          assertThrows(
              SurgeryException.class,
              () -> ModuleSurgery.replaceModuleClasses(net, policies, List.of(), false, null));
      String message = refused.getMessage();
      assertTrue(message.startsWith("at 01Holder: replacement SequentialBlock gives"), message);
      assertTrue(message.contains("placed first for the input shapes"), message);
      float[] afterAttempt = Fixtures.nextDraw(manager);
      Engine.getInstance().setRandomSeed(9);
      assertArrayEquals(Fixtures.nextDraw(manager), afterAttempt, "the refused surgery drew");
      assertEquals(before, new ArrayList<>(BlockTrees.parametersOf(net)), "the same parameters");
      Map<String, float[]> after = Fixtures.snapshot(net);
      assertEquals(values.keySet(), after.keySet());
      values.forEach((id, v) -> assertArrayEquals(v, after.get(id), id));
    }
  }
}
