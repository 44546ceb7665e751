package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertThrows;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import dev.surgery.core.testing.ExactnessOracle;
import dev.surgery.core.testing.GcSafeL2Loss;
import dev.surgery.core.testing.TinyDense;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Why the exactness matrix leaves out Nag, RmsProp, Adagrad and Adadelta: DJL's PyTorch engine
 * refuses to take a step with them. Should a DJL release start running one, this fails and the
 * optimizer joins {@link dev.surgery.core.testing.OptimizerKind}.
 */
class UnsupportedOptimizersTest {

  static Stream<Optimizer> unsupported() {
    return Stream.of(
        Optimizer.nag().setLearningRateTracker(Tracker.fixed(0.1f)).setMomentum(0.9f).build(),
        Optimizer.rmsprop().build(),
        Optimizer.adagrad().build(),
        Optimizer.adadelta().build());
  }

  @ParameterizedTest
  @MethodSource("unsupported")
  void thePyTorchEngineDoesNotStep(Optimizer optimizer) {
    try (Model model = Model.newInstance("unsupported")) {
      model.setBlock(new TinyDense(2));
      try (Trainer trainer =
          model.newTrainer(new DefaultTrainingConfig(new GcSafeL2Loss()).optOptimizer(optimizer))) {
        trainer.initialize(ExactnessOracle.INPUT);
        try (GradientCollector collector = trainer.newGradientCollector()) {
          NDArray out =
              trainer
                  .forward(new NDList(model.getNDManager().ones(ExactnessOracle.INPUT)))
                  .singletonOrThrow();
          collector.backward(out.sum());
        }
        assertThrows(RuntimeException.class, trainer::step);
      }
    }
  }
}
