package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Parameter;
import dev.surgery.core.testing.OptimizerKind;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A parameter frozen by its flag whose arrays still take gradients (a wrapper built frozen around
 * arrays that train, as {@code RestartTrainingGradientTest} builds one; DJL's own freeze stops the
 * arrays too), unfrozen by a call that then fails (here the optimizer's state map, at the first
 * change it is asked for) and is rolled back: the parameter must be frozen again as it was, its
 * arrays still taking gradients, with the gradient they gathered. Undoing the unfreeze with DJL's
 * {@code freeze(true)} also switched the arrays' gradients off.
 */
class FailedUnfreezeKeepsArraysTakingGradientsTest {

  @ParameterizedTest
  @EnumSource(
      value = OptimizerKind.class,
      names = {"ADAM", "SGD_MOMENTUM"})
  void aRolledBackUnfreezeLeavesTheArraysTakingTheirGradients(OptimizerKind kind) {
    try (KthFaultRig rig = KthFaultRig.denseReluDense("unfreeze", kind)) {
      rig.round(true);
      List<Parameter> layer =
          new ArrayList<>(rig.roots.get(0).getChildren().valueAt(0).getParameters().values());
      ModuleSurgery.freezeParameters(layer, rig.trainers);
      for (Parameter p : layer) {
        p.getArray().setRequiresGradient(true); // frozen by the flag alone, as a frozen wrapper
      }
      rig.round(true); // the frozen layer's arrays gather a gradient
      List<float[]> gradients = new ArrayList<>();
      for (Parameter p : layer) {
        try (NDArray g = p.getArray().getGradient()) {
          gradients.add(g.toFloatArray());
        }
      }
      rig.armTrainerMaps();

      KthFaultRig.ARMED.set(new KthFaultRig.Injector(1));
      try {
        assertThrows(
            KthFaultRig.InjectedFault.class,
            () -> ModuleSurgery.unfreezeParameters(layer, rig.trainers));
      } finally {
        KthFaultRig.ARMED.remove();
      }

      for (int i = 0; i < layer.size(); i++) {
        Parameter p = layer.get(i);
        assertFalse(p.requiresGradient(), p.getName() + " is frozen again");
        assertTrue(p.getArray().hasGradient(), p.getName() + "'s array still takes gradients");
        try (NDArray g = p.getArray().getGradient()) {
          assertArrayEquals(gradients.get(i), g.toFloatArray(), p.getName() + "'s gradient");
        }
      }
      assertEquals(2, layer.size());
    }
  }
}
