package dev.surgery.agent.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.surgery.agent.testapp.ExitMidTrainingApp;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The surgery log of a program that ends in the middle of training. The schedule is BlurPool at
 * epoch 1 and weight standardization at epoch 3; the program trains 1 epoch, so by the schedule
 * alone BlurPool ran and weight standardization never did. Whether the program then exits, dies of
 * an uncaught exception or closes its trainer, the log must list weight standardization as not run;
 * only the first two are cut short, and the log must say so.
 */
class ProgramEndReportIT {

  private static final String CONFIG =
      String.join(
          "\n",
          "algorithms:",
          "  - name: blurpool",
          "    epoch: 1",
          "  - name: weight_standardization",
          "    epoch: 3",
          "report: report.json",
          "");

  private static JsonObject run(String mode, int expectedExit) throws Exception {
    Path dir = AgentConfigs.dirWithConfig("program-end-" + mode, CONFIG);
    ForkedJvm.Result r =
        ForkedJvm.main(ExitMidTrainingApp.class.getName(), mode)
            .agent("surgery.yaml")
            .workDir(dir)
            .run();
    assertEquals(expectedExit, r.exitCode(), r.toString());
    assertTrue(r.stdout().contains("EXITAPP: trained 1 epoch, now " + mode), r.toString());
    JsonObject log =
        JsonParser.parseString(Files.readString(dir.resolve("report.json"))).getAsJsonObject();
    JsonArray apps = log.getAsJsonArray("applications");
    assertEquals(1, apps.size(), log.toString());
    assertEquals("blurpool", apps.get(0).getAsJsonObject().get("algorithm").getAsString());
    assertEquals("applied", apps.get(0).getAsJsonObject().get("status").getAsString());
    JsonArray notRun = log.getAsJsonArray("not_run");
    assertEquals(1, notRun.size(), log.toString());
    JsonObject entry = notRun.get(0).getAsJsonObject();
    assertEquals("weight_standardization", entry.get("algorithm").getAsString(), log.toString());
    assertEquals(3, entry.get("epoch").getAsInt(), log.toString());
    assertEquals(1, entry.get("trainer").getAsInt(), log.toString());
    assertEquals("surgery.yaml:4:5", entry.get("source").getAsString(), log.toString());
    assertEquals(1, r.countErr("weight_standardization at epoch 3 .* never ran: "), r.toString());
    return log;
  }

  @ParameterizedTest
  @ValueSource(strings = {"exit", "throw"})
  void aProgramThatEndsMidTrainingLeavesALogMarkedCutShort(String mode) throws Exception {
    JsonObject log = run(mode, mode.equals("exit") ? ExitMidTrainingApp.EXIT_STATUS : 1);
    assertTrue(log.has("cut_short") && log.get("cut_short").getAsBoolean(), log.toString());
    String reason =
        log.getAsJsonArray("not_run").get(0).getAsJsonObject().get("reason").getAsString();
    assertEquals(
        "the program began to end (System.exit, a signal such as SIGTERM, an uncaught exception,"
            + " or a trainer never closed) after 1 completed epoch, before training ended; nothing"
            + " is applied after that",
        reason,
        log.toString());
  }

  @Test
  void aProgramWhoseTrainingEndedLeavesTheLogAsBefore() throws Exception {
    JsonObject log = run("close", 0);
    assertEquals(Set.of("applications", "not_run"), log.keySet(), log.toString());
    assertEquals(
        "training ended after 1 completed epoch",
        log.getAsJsonArray("not_run").get(0).getAsJsonObject().get("reason").getAsString(),
        log.toString());
  }
}
