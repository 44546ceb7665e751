package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import dev.surgery.core.testing.OpenArrays;
import dev.surgery.core.testing.OptimizerKind;
import dev.surgery.core.testing.TinyDense;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Unfreezing zeroes the gradient a frozen parameter's arrays may have kept; that step must leave no
 * array of its own open: none after an unfreeze that succeeds, and, after one that fails and is
 * rolled back, exactly the arrays that were open before (a failed call changes nothing, the set of
 * live native arrays included).
 */
class UnfreezeOpenArraysTest {

  private static final Shape INPUT = new Shape(4, 5);

  private static List<Block> net() {
    return List.of(
        new SequentialBlock()
            .add(new TinyDense(5))
            .add(Activation.reluBlock())
            .add(new TinyDense(5))
            .add(Activation.reluBlock())
            .add(new TinyDense(3)));
  }

  private static List<Parameter> firstTwoLayers(KthFaultRig rig) {
    Block root = rig.roots.get(0);
    List<Parameter> layers =
        new ArrayList<>(root.getChildren().valueAt(0).getParameters().values());
    layers.addAll(root.getChildren().valueAt(2).getParameters().values());
    return layers;
  }

  private static List<String> opened(KthFaultRig rig, List<NDArray> before) {
    List<String> opened = new ArrayList<>();
    for (NDArray a : OpenArrays.ofEngine(rig.data)) {
      if (before.stream().noneMatch(b -> b == a)) {
        opened.add(a.getDataType() + " " + a.getShape() + " in " + a.getManager().getName());
      }
    }
    return opened;
  }

  @Test
  void anUnfreezeLeavesNoArrayOfItsOwnOpen() {
    try (KthFaultRig rig =
        new KthFaultRig("unfreeze", net(), INPUT, DataType.FLOAT32, OptimizerKind.ADAM)) {
      rig.round(true);
      ModuleSurgery.freezeParameters(firstTwoLayers(rig), rig.trainers);
      rig.round(true);
      List<NDArray> before = new ArrayList<>(OpenArrays.ofEngine(rig.data));

      ModuleSurgery.unfreezeParameters(firstTwoLayers(rig), rig.trainers);

      assertEquals(List.of(), opened(rig, before));
    }
  }

  @Test
  void aFailedUnfreezeLeavesTheOpenArraysAsTheyWere() {
    try (KthFaultRig rig =
        new KthFaultRig(
            "unfreeze-fails", net(), INPUT, DataType.FLOAT32, OptimizerKind.SGD_MOMENTUM)) {
      rig.round(true);
      rig.armTrainerMaps();
      ModuleSurgery.freezeParameters(firstTwoLayers(rig), rig.trainers);
      rig.round(true);
      List<NDArray> before = new ArrayList<>(OpenArrays.ofEngine(rig.data));

      // The momentum map refuses the second parameter's removal, after the first one restarted.
      KthFaultRig.ARMED.set(new KthFaultRig.Injector(3));
      try {
        assertThrows(
            KthFaultRig.InjectedFault.class,
            () -> ModuleSurgery.unfreezeParameters(firstTwoLayers(rig), rig.trainers));
      } finally {
        KthFaultRig.ARMED.remove();
      }

      assertEquals(List.of(), opened(rig, before));
    }
  }
}
