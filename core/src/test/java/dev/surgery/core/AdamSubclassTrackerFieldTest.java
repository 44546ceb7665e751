package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Adam;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.FixedPerVarTracker;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * From a review of 1106c19e (fixed): the tracker field is now "the first tracker-typed field
 * holding a value", searched from the optimizer's own class up. A subclass of DJL's Adam that keeps
 * a reference to its per-layer rates (declared FixedPerVarTracker, for logging) while Adam's own
 * learningRateTracker field (declared ParameterTracker) holds the same tracker and is the one
 * Adam's update reads is now refused by replaceParamsInOptimizer ("declare the field
 * ParameterTracker"); before the commit the stand-in went into Adam's field, as it does for plain
 * Adam. Expected: it trains bit for bit as plain Adam with the same tracker.
 */
class AdamSubclassTrackerFieldTest {

  static final class LoggingAdam extends Adam {
    final FixedPerVarTracker rates; // kept to log the rates; Adam's field holds the same tracker

    LoggingAdam(FixedPerVarTracker rates) {
      super(Adam.builder().optLearningRateTracker(rates));
      this.rates = rates;
    }
  }

  private static List<float[]> run(boolean subclass) {
    Engine.getInstance().setRandomSeed(5);
    List<float[]> out = new ArrayList<>();
    try (Model model = Model.newInstance("probe");
        NDManager data = NDManager.newBaseManager()) {
      SequentialBlock net = Fixtures.tanhProbeNet();
      model.setBlock(net);
      FixedPerVarTracker rates = Fixtures.perIdRates(net, 0.002f, 0.05f);
      Optimizer optimizer =
          subclass
              ? new LoggingAdam(rates)
              : Optimizer.adam().optLearningRateTracker(rates).build();
      NDArray x = data.randomNormal(new Shape(8, 4));
      NDArray y = data.randomInteger(0, 3, new Shape(8), DataType.INT64);
      try (Trainer trainer = Fixtures.probeTrainer(model, optimizer)) {
        for (int step = 1; step <= 6; step++) {
          Fixtures.lossStep(trainer, x, y);
          if (step == 3) {
            Map<Class<? extends Block>, ReplacementFunction> policies =
                Fixtures.replacingClass(Linear.class, (old, i) -> Fixtures.linearCopyOf(old));
            Map<Block, Block> replaced =
                ModuleSurgery.replaceModuleClasses(net, policies, null, false, null);
            replaced.forEach(
                (old, copy) ->
                    ModuleSurgery.replaceParamsInOptimizer(
                        new ArrayList<>(old.getParameters().values()),
                        new ArrayList<>(copy.getParameters().values()),
                        List.of(trainer)));
          }
          for (var p : net.getParameters()) {
            out.add(p.getValue().getArray().toFloatArray());
          }
        }
      }
    }
    return out;
  }

  @Test
  void anAdamSubclassKeepingItsTrackerInASecondFieldTrainsAsAdamDoes() {
    List<float[]> adam = run(false);
    List<float[]> subclass = run(true);
    for (int i = 0; i < adam.size(); i++) {
      assertArrayEquals(adam.get(i), subclass.get(i), "array " + i);
    }
  }
}
