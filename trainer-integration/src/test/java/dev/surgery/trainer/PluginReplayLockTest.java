package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.training.Trainer;
import dev.surgery.core.SurgeryLock;
import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.HyperParameterValues;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.trainer.config.SurgeryConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A plugin's {@code apply} runs without the surgery lock while training, and holding it while a
 * checkpoint replays its record (the load is one surgery): a plugin whose helper threads take the
 * lock must tell the two apart, which {@link SurgeryLock#isHeldByCurrentThread()} does (an outside
 * probe's plugin joined such helpers during a replay and hung there).
 */
class PluginReplayLockTest {

  /** What each call of the plugin saw: whether its thread held the lock. */
  private static final List<Boolean> HELD = Collections.synchronizedList(new ArrayList<>());

  static {
    Algorithms.register(AlgorithmSpec.of("t_lock_seen", List.of(), LockSeen::new));
  }

  /** Changes nothing (empty changes, so it is recorded and replayed); notes the lock. */
  private static final class LockSeen extends TestAlgorithms.SimpleAlgorithm {
    LockSeen(HyperParameterValues values) {
      super(values.algorithm(), values.asMap(), false);
    }

    @Override
    public SurgeryChanges apply(SurgeryContext context) {
      HELD.add(SurgeryLock.isHeldByCurrentThread());
      return new SurgeryChanges(name(), hyperparameters(), List.of(), 0, 0, 1);
    }
  }

  @Test
  void aPluginAppliesWithoutTheLockInTrainingAndHoldingItInAReplay(@TempDir Path dir)
      throws Exception {
    HELD.clear();
    SurgeryListener listener =
        SurgeryListener.fromConfig(
            SurgeryConfig.parse("algorithms:\n  - {name: t_lock_seen, epoch: 1}\n", "lock.yaml"));
    try (Model model = TestModels.model("lock-seen");
        NDManager data = NDManager.newBaseManager()) {
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        SurgeryTrain.fit(trainer, 1, TestModels.dataset(data, 3), null);
      }
      assertEquals(List.of(false), HELD);
      model.save(dir, "lock-seen");
    }
    assertEquals(true, Files.isRegularFile(dir.resolve("lock-seen-0000.params")));
    try (Model fresh = TestModels.model("lock-seen")) {
      SurgeryCheckpoint.load(fresh, dir, "lock-seen");
    }
    assertEquals(List.of(false, true), HELD);
    assertEquals(false, SurgeryLock.isHeldByCurrentThread(), "released after the load");
  }
}
