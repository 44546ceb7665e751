package dev.surgery.agent.it;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.agent.testapp.LogFileApp;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * The agent validates the config before {@code main}, building the listener: an outside probe found
 * that this made the program's SLF4J binding before {@code main} too, so slf4j-simple settings the
 * program made in {@code main} (its log file) were ignored and its log went to standard error. The
 * library now asks SLF4J for a logger only when it first logs.
 */
class ProgramLoggingSetupIT {

  @Test
  void loggingTheProgramConfiguresInMainIsTheLoggingItGets() throws Exception {
    Path dir =
        AgentConfigs.dirWithConfig("program-logging-setup", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    ForkedJvm.Result r =
        ForkedJvm.main(LogFileApp.class.getName(), "train.log", "--epochs", "2")
            .agent("surgery.yaml")
            .workDir(dir)
            .run();
    r.assertTrainedWithBlur();
    String log = Files.readString(dir.resolve("train.log"));
    assertTrue(log.contains("Surgery: blurpool at epoch 1 replaced"), log);
    assertFalse(r.stderr().contains("Surgery: blurpool"), r.toString());
  }
}
