package dev.surgery.trainer;

import ai.djl.nn.Block;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.testing.ExactnessOracle;
import dev.surgery.core.testing.OptimizerKind;
import dev.surgery.core.testing.TinyDense;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Core's exactness oracle on the path users resume by: {@link SurgeryCheckpoint#load} into a new
 * model, a new trainer whose optimizer resumes at the saved step count, and surgery right away. The
 * born layer must follow a fresh optimizer for 50 steps under every optimizer.
 */
class ExactAfterCheckpointLoadTest {

  @TempDir Path dir;

  @ParameterizedTest
  @EnumSource(OptimizerKind.class)
  void bornRightAfterSurgeryCheckpointLoadFollowsAFreshOptimizer(OptimizerKind kind)
      throws Exception {
    try (ExactnessOracle o = new ExactnessOracle(kind, 1, false, false)) {
      o.steps(20);
      o.reloadSubject(dir, SurgeryCheckpoint::load);
      TinyDense target = o.target();
      Map<Block, Block> replaced =
          ModuleSurgery.replaceModuleClasses(
              o.subjectRoot(),
              Map.of(
                  TinyDense.class, (b, i) -> b == target ? new TinyDense(target.getUnits()) : null),
              List.of(o.subjectTrainer()),
              false,
              null);
      TinyDense born = (TinyDense) replaced.get(target);
      o.targetReplacedBy(born);
      o.startFreshOptimizer(born.getDirectParameters().values());
      o.assertTrainerHoldsOnlyLiveParameters();
      for (int i = 0; i < 50; i++) {
        o.step();
        o.assertBornMatchFreshOptimizer();
      }
      o.assertTrainerHoldsOnlyLiveParameters();
    }
  }
}
