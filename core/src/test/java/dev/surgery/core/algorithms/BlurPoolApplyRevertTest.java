package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.pooling.Pool;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import dev.surgery.core.BlockMatcher;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.ReplacementFunction;
import dev.surgery.core.SurgeryOptions;
import dev.surgery.core.internal.DjlOptimizers;
import dev.surgery.core.internal.DjlShapes;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.layers.BlurConv2d;
import dev.surgery.core.layers.BlurMaxPool2d;
import dev.surgery.core.testing.GcSafeL2Loss;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * docs/benchmarks.md (B4b) states that live BlurPool apply/revert cycles keep the open arrays flat;
 * the benchmark measures it, this test holds it in every build: 12 cycles of BlurPool applied with
 * a live Adam trainer, a step, a revert (each BlurConv2d to a plain Conv2d holding a copy, each
 * BlurMaxPool2d to DJL's max pool), a step. Nothing is closed by hand: the engine must free what
 * left the model. From the 6th cycle on, the open arrays (every manager's, the optimizer state and
 * the store's copies) must be exactly as many as after the 5th.
 */
class BlurPoolApplyRevertTest {

  private static final Shape INPUT = new Shape(4, 3, 8, 8);

  @Test
  void applyRevertCyclesLeaveNoArrayBehind() {
    SequentialBlock net =
        new SequentialBlock()
            .add(LiveTraining.conv(16, 1))
            .add(Activation.reluBlock())
            .add(LiveTraining.conv(16, 2))
            .add(Activation.reluBlock())
            .add(Pool.maxPool2dBlock(new Shape(2, 2), new Shape(2, 2)))
            .add(Linear.builder().setUnits(4).build());
    DefaultTrainingConfig config =
        new DefaultTrainingConfig(new GcSafeL2Loss())
            .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build());
    try (Model model = Model.newInstance("blur-cycles");
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(net);
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(INPUT);
        NDArray x = data.randomNormal(INPUT);
        List<Integer> counts = new ArrayList<>();
        for (int cycle = 0; cycle < 12; cycle++) {
          BlurPool.builder().build().apply(SurgeryContext.live(net, trainer, 1, 0));
          step(trainer, x);
          Map<Block, Block> reverted =
              ModuleSurgery.replaceModules(
                  net, revert(), SurgeryOptions.builder().optTrainers(List.of(trainer)).build());
          assertEquals(2, reverted.size(), "cycle " + cycle + " reverts the blur conv and pool");
          step(trainer, x);
          counts.add(openArrays(model, trainer, data));
        }
        for (int i = 5; i < counts.size(); i++) {
          assertEquals(
              counts.get(4), counts.get(i), "open arrays after cycle " + i + ": " + counts);
        }
        for (Parameter p : net.getParameters().values()) {
          assertFalse(p.getArray().isReleased(), p.getName());
        }
      }
    }
  }

  private static Map<BlockMatcher, ReplacementFunction> revert() {
    Map<BlockMatcher, ReplacementFunction> revert = new LinkedHashMap<>();
    revert.put(BlockMatcher.ofClass(BlurConv2d.class), (block, index) -> copy((Conv2d) block));
    revert.put(
        BlockMatcher.ofClass(BlurMaxPool2d.class),
        (block, index) -> {
          BlurMaxPool2d pool = (BlurMaxPool2d) block;
          return Pool.maxPool2dBlock(
              pool.getKernelShape(), pool.getStride(), pool.getPadding(), pool.isCeilMode());
        });
    return revert;
  }

  private static Conv2d copy(Conv2d conv) {
    Conv2d copy =
        Conv2d.builder()
            .setKernelShape(conv.getKernelShape())
            .optStride(conv.getStride())
            .optPadding(conv.getPadding())
            .setFilters(conv.getFilters())
            .optBias(conv.isIncludeBias())
            .build();
    NDArray weight = conv.getParameters().get("weight").getArray();
    copy.initialize(weight.getManager(), weight.getDataType(), DjlShapes.recordedInputShapes(conv));
    for (int i = 0; i < conv.getParameters().size(); i++) {
      conv.getParameters().valueAt(i).getArray().copyTo(copy.getParameters().valueAt(i).getArray());
    }
    return copy;
  }

  private static void step(Trainer trainer, NDArray x) {
    try (GradientCollector collector = trainer.newGradientCollector()) {
      NDArray out = trainer.forward(new NDList(x)).singletonOrThrow();
      collector.backward(out.square().mean());
    }
    trainer.step();
  }

  /** Distinct open arrays: every manager's (from the root down), optimizer state, store copies. */
  private static int openArrays(Model model, Trainer trainer, NDManager data) {
    Set<NDArray> open = Collections.newSetFromMap(new IdentityHashMap<>());
    NDManager root = model.getNDManager();
    while (root.getParentManager() != null) {
      root = root.getParentManager();
    }
    open.addAll(root.getManagedArrays());
    open.removeAll(data.getManagedArrays());
    for (Map<String, Map<Device, NDArray>> state :
        DjlOptimizers.optimizerStates(DjlTrainers.optimizer(trainer)).values()) {
      state.values().forEach(perDevice -> open.addAll(perDevice.values()));
    }
    for (Object entry : DjlTrainers.storeEntries(DjlTrainers.parameterStore(trainer)).values()) {
      open.addAll(DjlTrainers.mirrors(entry));
    }
    open.removeIf(NDArray::isReleased);
    return open.size();
  }
}
