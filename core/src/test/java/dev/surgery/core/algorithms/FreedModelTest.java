package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.SurgeryException;
import dev.surgery.core.testing.TinyModels;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A model whose arrays were freed (its {@code Model} closed) is refused by every algorithm's apply
 * and plan with a {@link SurgeryException} that names the first such block and says why, before
 * anything changes: the tree, and the parameters' trainable flags (DJL's freeze changes the flag,
 * then fails on a freed array).
 */
class FreedModelTest {

  @BeforeAll
  static void register() {
    LiveTraining.registerBuiltins();
  }

  static List<String> names() {
    return List.copyOf(LiveTraining.builtinNames());
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("names")
  void everyAlgorithmRefusesAClosedModelChangingNothing(String name) {
    Block resnet = closedResNet(false);
    String structure = resnet.toString();
    Map<String, Boolean> trainable = trainable(resnet);
    Algorithm algorithm = Algorithms.spec(name).create(DeterminismTest.SETTINGS.get(name));
    SurgeryContext context = new SurgeryContext(resnet, List.of(), 1, 2);
    for (Runnable call :
        List.<Runnable>of(() -> algorithm.plan(context), () -> algorithm.apply(context))) {
      SurgeryException e = assertThrows(SurgeryException.class, call::run);
      assertTrue(
          e.getMessage().contains("was freed (was the Model or its NDManager closed?)"),
          e.getMessage());
      assertTrue(e.getMessage().startsWith("at "), "names the block: " + e.getMessage());
      assertEquals(structure, resnet.toString());
      assertEquals(trainable, trainable(resnet));
    }
  }

  @Test
  void freezingOrUnfreezingFreedParametersChangesNone() {
    Block resnet = closedResNet(false);
    Map<String, Boolean> trainable = trainable(resnet);
    SurgeryException e =
        assertThrows(
            SurgeryException.class,
            () -> ModuleSurgery.freezeParameters(resnet.getParameters().values(), null));
    assertTrue(e.getMessage().contains("nothing was frozen"), e.getMessage());
    assertEquals(trainable, trainable(resnet));
    // Frozen before the close: unfreezing refuses alike, every flag as it was.
    Block frozen = closedResNet(true);
    Map<String, Boolean> before = trainable(frozen);
    SurgeryException u =
        assertThrows(
            SurgeryException.class,
            () -> ModuleSurgery.unfreezeParameters(frozen.getParameters().values(), null));
    assertTrue(u.getMessage().contains("nothing was unfrozen"), u.getMessage());
    assertEquals(before, trainable(frozen));
  }

  /** An initialized ResNet-20 whose Model was closed (its parameters frozen first if asked). */
  private static Block closedResNet(boolean frozen) {
    Block resnet = TinyModels.resNet20();
    Model model = TinyModels.model("freed", resnet);
    resnet.initialize(model.getNDManager(), DataType.FLOAT32, new Shape(2, 1, 28, 28));
    if (frozen) {
      ModuleSurgery.freezeParameters(resnet.getParameters().values(), null);
    }
    model.close();
    return resnet;
  }

  private static Map<String, Boolean> trainable(Block block) {
    return block.getParameters().stream()
        .collect(Collectors.toMap(p -> p.getKey(), p -> p.getValue().requiresGradient()));
  }
}
