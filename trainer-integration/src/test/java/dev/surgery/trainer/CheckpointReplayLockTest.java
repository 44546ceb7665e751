package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.Model;
import dev.surgery.core.SurgeryLock;
import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.SurgeryChanges;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.locks.ReentrantLock;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every public replay of a checkpoint's records holds the surgery lock from the first record to the
 * last, so that another thread's surgery (or a program's use of the model under the lock) cannot
 * come between two of them: {@link SurgeryCheckpoint#replay(Model, Path)}, and the replay the
 * agent's load path runs ({@link ModelLoadUndo#replay}), which a review found without it.
 */
class CheckpointReplayLockTest {

  @TempDir Path dir;

  private static final List<Boolean> HELD = new ArrayList<>();

  static {
    Algorithms.register(
        new AlgorithmSpec(
            "t_lock_probe",
            List.of(),
            v ->
                TestAlgorithms.applying(
                    "t_lock_probe",
                    context -> {
                      HELD.add(((ReentrantLock) SurgeryLock.get()).isHeldByCurrentThread());
                      return new SurgeryChanges("t_lock_probe", Map.of(), List.of(), 0, 0, 0);
                    })));
  }

  private Path saved() throws Exception {
    try (Model model = TestModels.model("probe")) {
      model.getBlock().initialize(model.getNDManager(), model.getDataType(), INPUT);
      model.setProperty(
          "surgery",
          "[{\"algorithm\":\"t_lock_probe\",\"hyperparameters\":{},\"epoch\":1,\"changes\":{}},"
              + "{\"algorithm\":\"t_lock_probe\",\"hyperparameters\":{},\"epoch\":2,"
              + "\"changes\":{}}]");
      model.save(dir, "probe");
    }
    return dir.resolve("probe-0000.params");
  }

  @Test
  void theLoadUndosReplayHoldsTheSurgeryLockAsTheOtherReplaysDo() throws Exception {
    Path file = saved();
    HELD.clear();
    try (Model restored = TestModels.model("probe")) {
      SurgeryCheckpoint.replay(restored, file);
    }
    assertEquals(List.of(true, true), HELD, "SurgeryCheckpoint.replay(Model, Path) holds it");
    HELD.clear();
    try (Model restored = TestModels.model("probe")) {
      ModelLoadUndo undo = ModelLoadUndo.before(restored);
      try {
        undo.replay(file);
      } finally {
        undo.failed();
      }
    }
    assertEquals(
        List.of(true, true), HELD, "ModelLoadUndo.replay (the agent's load path) holds it");
  }
}
