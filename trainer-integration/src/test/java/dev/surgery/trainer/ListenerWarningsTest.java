package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import dev.surgery.core.algorithms.BlurPool;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link SurgeryListener#getWarnings()} holds every warning of a run, also those an algorithm logs
 * itself (an application that changed nothing) and the surgery log's own (a file it cannot write),
 * so that a program without an SLF4J binding still learns them (an outside probe found them only in
 * the log).
 */
class ListenerWarningsTest {

  @Test
  void anAlgorithmsWarningAndAnUnwritableLogAreAmongTheListenersWarnings(@TempDir Path dir)
      throws Exception {
    BlurPool nothingToBlur =
        BlurPool.builder().optMinChannels(1000).optReplaceMaxpools(false).build();
    // The builder refuses a path the log could not be written to; one that becomes unwritable
    // after it (its directory replaced by a file) is only found when the log is written.
    Path logs = Files.createDirectories(dir.resolve("logs"));
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(nothingToBlur, 1)
            .optReportPath(logs.resolve("log.json"))
            .build();
    Files.delete(logs);
    Files.writeString(logs, "x");
    try (Model model = TestModels.model("warnings");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      EasyTrain.fit(trainer, 2, TestModels.dataset(data, 3), null);
    }
    // The surgery log (when it can be written) keeps it with the application.
    assertEquals(
        List.of("Applying blurpool did not change any layers: " + nothingToBlur.hyperparameters()),
        listener.getOutcomes().get(0).changes().warnings());
    com.google.gson.JsonObject logged = SurgeryJson.outcome(listener.getOutcomes().get(0));
    assertEquals(
        "Applying blurpool did not change any layers: " + nothingToBlur.hyperparameters(),
        logged.getAsJsonArray("warnings").get(0).getAsString());
    List<String> warnings = listener.getWarnings();
    assertEquals(
        1,
        warnings.stream()
            .filter(
                w ->
                    w.equals(
                        "Applying blurpool did not change any layers: "
                            + nothingToBlur.hyperparameters()))
            .count(),
        warnings.toString());
    assertEquals(
        1,
        warnings.stream()
            .filter(w -> w.startsWith("Surgery: cannot write the surgery log"))
            .count(),
        warnings.toString());
    assertEquals(2, warnings.size(), warnings.toString());
  }
}
