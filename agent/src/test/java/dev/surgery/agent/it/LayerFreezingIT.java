package dev.surgery.agent.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.agent.testapp.FreezeApp;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * Layer freezing under the agent needs the planned number of epochs: from {@code EasyTrain.fit}
 * when the program calls it, and a clear error naming {@code total_epochs} when nothing says it.
 */
class LayerFreezingIT {

  /** Freezing from the start (freeze_start 0) to every layer but the last at the end. */
  private static final String FREEZING_AT_EPOCHS_0_1_2 =
      String.join(
          "\n",
          "algorithms:",
          "  - name: layer_freezing",
          "    epoch: 0",
          "    freeze_start: 0.0",
          "  - name: layer_freezing",
          "    epoch: 1",
          "    freeze_start: 0.0",
          "  - name: layer_freezing",
          "    epoch: 2",
          "    freeze_start: 0.0",
          "");

  @Test
  void takesThePlannedEpochsFromEasyTrainFit() throws Exception {
    Path dir = AgentConfigs.dirWithConfig("freezing-fit", FREEZING_AT_EPOCHS_0_1_2);
    ForkedJvm.Result r =
        ForkedJvm.main(FreezeApp.class.getName())
            .agent("config=surgery.yaml;debug=true")
            .workDir(dir)
            .run();
    assertEquals(0, r.exitCode(), r.toString());
    assertEquals(
        1,
        r.countErr("EasyTrain.fit starts 3 epochs: SurgeryListener.onPlannedEpochs"),
        r.toString());
    // Composer's schedule with 5 layers over 3 epochs: after k epochs floor(k / 3 * (5 - 1)).
    for (int epoch = 1; epoch <= 3; epoch++) {
      int expected = (int) Math.floor((epoch - 1) / 3.0 * 4);
      assertEquals(
          String.valueOf(expected),
          r.findOut("FREEZEAPP: epoch " + epoch + " trains with frozen (\\d+)"),
          "epoch " + epoch + ": " + r);
    }
    assertEquals("2", r.findOut("FREEZEAPP: frozen layers after training (\\d+)"), r.toString());
    // The agent's own warnings only: newer JDKs warn about DJL's native access on their own.
    assertEquals(0, r.countErr("^surgery-agent: WARNING"), r.toString());
  }

  @Test
  void withoutFitAndWithoutTotalEpochsTheErrorNamesTheYamlKey() throws Exception {
    Path dir =
        AgentConfigs.dirWithConfig(
            "freezing-own-loop",
            String.join("\n", "algorithms:", "  - name: layer_freezing", "    epoch: 1", ""));
    ForkedJvm.Result r =
        ForkedJvm.main(FreezeApp.class.getName(), "--own-loop")
            .agent("surgery.yaml")
            .workDir(dir)
            .run();
    assertNotEquals(0, r.exitCode(), r.toString());
    assertTrue(
        r.stderr()
            .contains(
                "layer_freezing needs the planned number of epochs, which is unknown: set"
                    + " 'total_epochs: <n>' at the top level of surgery.yaml"),
        r.toString());
    assertTrue(r.stderr().contains("SurgeryFailedException"), r.toString());
    // Refused when it is due, at the end of epoch 1: training never got to a second epoch.
    assertNull(r.findOut("FREEZEAPP: epoch 2 trains with frozen (\\d+)"), r.toString());
    assertFalse(r.stdout().contains("FREEZEAPP: done"), r.toString());
  }
}
