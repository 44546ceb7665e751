package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What {@link SurgeryCheckpoint#replay(Model, Path)} returns: the file's records, also those the
 * model carried already and were not replayed again (a reviewer: the Javadoc called them "the
 * replayed records", which on the saved model itself, where nothing is replayed, read as none).
 */
class ReplayReturnTest {

  @TempDir Path dir;

  @Test
  void replayReturnsTheFilesRecordsWhetherOrNotTheModelCarriedThem() throws Exception {
    SurgeryListener listener = SurgeryListener.builder().add(TestModels.blurpool(), 1).build();
    try (Model saved = TestModels.model("replayed");
        NDManager manager = NDManager.newBaseManager()) {
      TestModels.train(saved, listener, 1, TestModels.dataset(manager, 1));
      saved.save(dir, "replayed");
      Path file = SurgeryCheckpoint.resolveParamsFile(dir, "replayed", null);
      String before = TestModels.structure(saved.getBlock());

      List<SurgeryRecord> carried = SurgeryCheckpoint.replay(saved, file);

      assertEquals(1, carried.size(), "the record the model carries is still the file's");
      assertEquals("blurpool", carried.get(0).algorithm());
      assertEquals(before, TestModels.structure(saved.getBlock()), "nothing was replayed again");
      try (Model fresh = TestModels.model("replayed")) {
        List<SurgeryRecord> replayed = SurgeryCheckpoint.replay(fresh, file);
        assertEquals(carried, replayed, "the same records where they were replayed now");
        assertEquals(before, TestModels.structure(fresh.getBlock()));
      }
    }
  }
}
