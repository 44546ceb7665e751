package dev.surgery.agent.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.surgery.agent.testapp.CnnApp;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * {@code dry_run=true}: the agent prints, at the first {@code Trainer.initialize}, what each entry
 * would change (paths, old and new types, parameters) and changes nothing: the program trains the
 * model it built, and the block tree after training is the one before. With {@code report:} the
 * same plan, step for step, is written to the JSON surgery log.
 */
class DryRunIT {

  /**
   * A program that never calls trainer.initialize: the dry run initializes the model as DJL's first
   * forward would and prints the plan there (it said nothing before), writes its report, and trains
   * the same bits as without the agent, its arrays on the same manager (the trainer's, as DJL's
   * forward puts them), with a plan of new layers (squeeze-excite) that draws nothing from the
   * engine's random generator, which the program's later draws depend on.
   */
  @Test
  void aProgramThatNeverInitializesGetsThePlanAtItsFirstForward() throws Exception {
    Path dir =
        AgentConfigs.dirWithConfig(
            "dry-run-no-initialize",
            String.join(
                "\n",
                "algorithms:",
                "  - name: blurpool",
                "    epoch: 1",
                "  - name: squeeze_excite",
                "    epoch: 1",
                "    min_channels: 0",
                "report: plan.json",
                ""));
    String[] args = {"--no-initialize", "--own-loop", "--epochs", "1"};
    ForkedJvm.Result r = dryRun(dir, args);
    assertEquals(0, r.exitCode(), r.toString());
    assertEquals(1, r.countErr("^surgery-agent: dry run \\(dry_run=true\\)"), r.toString());
    assertTrue(r.stderr().contains("Conv2d -> BlurConv2d"), r.toString());
    assertTrue(Files.exists(dir.resolve("plan.json")), r.toString());
    ForkedJvm.Result plain = ForkedJvm.main(CnnApp.class.getName(), args).workDir(dir).run();
    assertNotNull(plain.findOut("CNNAPP: parameter bits after training: (.*)"), plain.toString());
    assertEquals(
        plain.findOut("CNNAPP: parameter bits after training: (.*)"),
        r.findOut("CNNAPP: parameter bits after training: (.*)"),
        r.toString());
    assertTrue(r.stderr().contains("Conv2d -> SqueezeExciteConv2d"), r.toString());
    // The parameters are registered as the forward would register them: the plan says what an
    // apply does to their optimizer state.
    assertTrue(r.stderr().contains("optimizer state: "), r.toString());
    assertEquals("trainer", plain.findOut("CNNAPP: parameter arrays on manager: (.*)"));
    assertEquals(
        plain.findOut("CNNAPP: parameter arrays on manager: (.*)"),
        r.findOut("CNNAPP: parameter arrays on manager: (.*)"),
        r.toString());
  }

  @Test
  void printsThePlanOnceAndChangesNothing() throws Exception {
    Path dir =
        AgentConfigs.dirWithConfig(
            "dry-run",
            String.join(
                "\n",
                "algorithms:",
                "  - name: blurpool",
                "    epoch: 1",
                "  - name: ghost_batchnorm",
                "    epoch: 2",
                "    include: ['**/07Nothing']",
                "  - name: layer_freezing",
                "    epoch: 1",
                "report: plan.json",
                ""));
    ForkedJvm.Result r = dryRun(dir, "--trainers", "2");
    assertEquals(0, r.exitCode(), r.toString());
    assertEquals(1, r.countErr("^surgery-agent: dry run \\(dry_run=true\\)"), r.toString());
    assertTrue(r.stderr().contains("blurpool at epoch 1 (surgery.yaml:2:5)"), r.toString());
    assertTrue(r.stderr().contains("Conv2d -> BlurConv2d"), r.toString());
    assertTrue(r.stderr().contains("maxPool2d -> BlurMaxPool2d"), r.toString());
    assertTrue(r.stderr().contains("parameters: "), r.toString());
    assertTrue(r.stderr().contains("optimizer state: "), r.toString());
    assertTrue(r.stderr().contains("ghost_batchnorm at epoch 2 (surgery.yaml:4:5)"), r.toString());
    assertTrue(
        r.stderr()
            .contains(
                "would fail: ghost_batchnorm: include pattern '**/07Nothing' matches no block"),
        r.toString());
    // No total_epochs: EasyTrain.fit announces the length after the plan; the real run applies it.
    assertTrue(
        r.stderr().contains("no plan: it needs the planned number of epochs, which EasyTrain.fit"),
        r.toString());
    assertFalse(r.stderr().contains("would fail: layer_freezing"), r.toString());
    String before = r.findOut("CNNAPP: structure before training: (.*)");
    String after = r.findOut("CNNAPP: structure after training: (.*)");
    assertEquals(before, after, r.toString());
    assertFalse(after.contains("Blur"), r.toString());
    assertTrue(r.stdout().contains("CNNAPP: done"), r.toString());

    // With report: the same plan goes to the JSON surgery log, which lists no application.
    JsonObject log = planJson(dir);
    assertTrue(log.get("dry_run").getAsBoolean(), log.toString());
    assertEquals(0, log.getAsJsonArray("applications").size(), log.toString());
    JsonArray plans = log.getAsJsonArray("plans");
    assertEquals(3, plans.size(), log.toString());
    JsonObject blurpool = plans.get(0).getAsJsonObject();
    assertEquals("blurpool", blurpool.get("algorithm").getAsString());
    assertEquals("surgery.yaml:2:5", blurpool.get("source").getAsString());
    // Each printed step line is "  <path> <old> -> <new>  -[...]  +[...]  =[...]  MACs <a> -> <b>",
    // each parameter with its optimizer state unless none is involved.
    Matcher line =
        Pattern.compile("(?m)^  ([^\\s:]+) +(\\S+) -> (\\S+)(.*?)(?:  MACs (\\S+) -> (\\S+))?$")
            .matcher(r.stderr());
    List<String> printed = new ArrayList<>();
    while (line.find()) {
      printed.add(
          line.group(1)
              + " "
              + line.group(2)
              + " -> "
              + line.group(3)
              + line.group(4)
              + " MACs "
              + line.group(5)
              + " -> "
              + line.group(6));
    }
    List<String> written = new ArrayList<>();
    int moved = 0;
    for (JsonElement e : blurpool.getAsJsonArray("steps")) {
      JsonObject step = e.getAsJsonObject();
      written.add(
          step.get("path").getAsString()
              + " "
              + step.get("from").getAsString()
              + " -> "
              + step.get("to").getAsString()
              + parameters("-", step.getAsJsonArray("removed"))
              + parameters("+", step.getAsJsonArray("added"))
              + parameters("=", step.getAsJsonArray("kept"))
              + " MACs "
              + macs(step.get("macs_before"))
              + " -> "
              + macs(step.get("macs_after")));
      if ("Conv2d".equals(step.get("from").getAsString())) {
        // The blurred convolution adopts the weight: the trainer's state for it carries over.
        JsonObject weight = step.getAsJsonArray("kept").get(0).getAsJsonObject();
        assertEquals("weight", weight.get("name").getAsString(), step.toString());
        assertEquals("moved", weight.get("state").getAsString(), step.toString());
        // A blurred convolution costs more than the plain one on the initialized input.
        assertTrue(
            step.get("macs_after").getAsLong() > step.get("macs_before").getAsLong(),
            step.toString());
      }
    }
    assertFalse(written.isEmpty(), log.toString());
    for (JsonElement e : blurpool.getAsJsonArray("steps")) {
      for (JsonElement p : e.getAsJsonObject().getAsJsonArray("kept")) {
        moved += "moved".equals(p.getAsJsonObject().get("state").getAsString()) ? 1 : 0;
      }
    }
    assertTrue(moved > 0, log.toString());
    assertEquals(
        moved, blurpool.getAsJsonObject("optimizer_state").get("moved").getAsInt(), log.toString());
    assertEquals(printed, written, r.stderr());
    JsonObject ghost = plans.get(1).getAsJsonObject();
    assertEquals("ghost_batchnorm", ghost.get("algorithm").getAsString());
    assertTrue(ghost.get("error").getAsString().contains("matches no block"), ghost.toString());
  }

  /** {@code CnnApp} with {@code args} under the agent's dry run of {@code dir/surgery.yaml}. */
  private static ForkedJvm.Result dryRun(Path dir, String... args) throws Exception {
    return ForkedJvm.main(CnnApp.class.getName(), args)
        .agent("config=surgery.yaml;dry_run=true")
        .workDir(dir)
        .run();
  }

  /** The JSON surgery log the configs here name ({@code report: plan.json}). */
  private static JsonObject planJson(Path dir) throws Exception {
    return JsonParser.parseString(Files.readString(dir.resolve("plan.json"))).getAsJsonObject();
  }

  /** A parameter list as the table prints it, from the JSON. */
  private static String parameters(String sign, JsonArray list) {
    if (list.isEmpty()) {
      return "";
    }
    List<String> items = new ArrayList<>();
    for (JsonElement e : list) {
      JsonObject p = e.getAsJsonObject();
      String state = p.get("state").getAsString();
      items.add(
          p.get("name").getAsString()
              + p.get("shape").getAsString()
              + (state.equals("none")
                  ? ""
                  : " " + (p.get("born_exact").getAsBoolean() ? "fresh exact" : state)));
    }
    return "  " + sign + items;
  }

  private static String macs(JsonElement value) {
    return value == null || value.isJsonNull() ? "unknown" : value.getAsString();
  }

  /**
   * A step entry written first is planned after the epoch-0 entry, which runs before the first
   * step, and the JSON says when it runs instead of giving it epoch 0.
   */
  @Test
  void listsEpochZeroEntriesFirstAndSaysWhenAStepEntryRuns() throws Exception {
    Path dir =
        AgentConfigs.dirWithConfig(
            "dry-run-order",
            String.join(
                "\n",
                "algorithms:",
                "  - name: weight_standardization",
                "    step: 2",
                "  - name: blurpool",
                "    epoch: 0",
                "  - name: layer_freezing",
                "    every: 1ep",
                "    freeze_start: 0.0",
                "  - name: layer_freezing",
                "    step: 9",
                "    freeze_start: 0.0",
                "total_epochs: 2",
                "report: plan.json",
                ""));
    ForkedJvm.Result r = dryRun(dir);
    assertEquals(0, r.exitCode(), r.toString());
    int blurpool = r.stderr().indexOf("blurpool at epoch 0 (surgery.yaml:4:5)");
    int standardization = r.stderr().indexOf("weight_standardization at step 2 (surgery.yaml:2:5)");
    assertTrue(blurpool >= 0 && standardization > blurpool, r.toString());

    JsonArray plans = planJson(dir).getAsJsonArray("plans");
    JsonObject first = plans.get(0).getAsJsonObject();
    JsonObject second = plans.get(1).getAsJsonObject();
    assertEquals("blurpool", first.get("algorithm").getAsString());
    assertEquals(0, first.get("epoch").getAsInt());
    assertEquals("at epoch 0", first.get("when").getAsString());
    assertEquals("weight_standardization", second.get("algorithm").getAsString());
    assertTrue(second.get("epoch").isJsonNull(), second.toString());
    assertEquals("at step 2", second.get("when").getAsString());
    // Layer freezing planned where it first runs: after epoch 1 of 2 it freezes the first half
    // (planned at 0 completed epochs, as before, it froze nothing). A step's epoch depends on the
    // batches per epoch, unknown before training: no plan, rather than a wrong one.
    JsonObject everyEpoch = plans.get(2).getAsJsonObject();
    assertEquals("every 1ep", everyEpoch.get("when").getAsString(), everyEpoch.toString());
    assertTrue(everyEpoch.getAsJsonArray("steps").size() > 0, everyEpoch.toString());
    JsonObject atStep = plans.get(3).getAsJsonObject();
    assertTrue(
        atStep
            .get("no_plan")
            .getAsString()
            .contains("what it changes follows the epochs completed when it runs (at step 9)"),
        atStep.toString());
  }
}
