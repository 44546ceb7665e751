package dev.surgery.agent.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.agent.testapp.CnnApp;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * {@code dry_run=true}: the agent prints, at the first {@code Trainer.initialize}, what each entry
 * would change (paths, old and new types, parameters) and changes nothing: the program trains the
 * model it built, and the block tree after training is the one before.
 */
class DryRunIT {

  @Test
  void printsThePlanOnceAndChangesNothing() throws Exception {
    Path dir = AgentConfigs.dir("dry-run");
    AgentConfigs.write(
        dir,
        "surgery.yaml",
        String.join(
            "\n",
            "algorithms:",
            "  - name: blurpool",
            "    epoch: 1",
            "  - name: ghost_batchnorm",
            "    epoch: 2",
            "    include: ['**/07Nothing']",
            ""));
    ForkedJvm.Result r =
        ForkedJvm.main(CnnApp.class.getName(), "--trainers", "2")
            .agent("config=surgery.yaml;dry_run=true")
            .workDir(dir)
            .run();
    assertEquals(0, r.exitCode(), r.toString());
    assertEquals(1, r.countErr("^surgery-agent: dry run \\(dry_run=true\\)"), r.toString());
    assertTrue(r.stderr().contains("blurpool at epoch 1 (surgery.yaml:2:5)"), r.toString());
    assertTrue(r.stderr().contains("Conv2d -> BlurConv2d"), r.toString());
    assertTrue(r.stderr().contains("maxPool2d -> BlurMaxPool2d"), r.toString());
    assertTrue(r.stderr().contains("parameters: "), r.toString());
    assertTrue(r.stderr().contains("ghost_batchnorm at epoch 2 (surgery.yaml:4:5)"), r.toString());
    assertTrue(
        r.stderr()
            .contains(
                "would fail: ghost_batchnorm: include pattern '**/07Nothing' matches no block"),
        r.toString());
    String before = r.findOut("CNNAPP: structure before training: (.*)");
    String after = r.findOut("CNNAPP: structure after training: (.*)");
    assertEquals(before, after, r.toString());
    assertFalse(after.contains("Blur"), r.toString());
    assertTrue(r.stdout().contains("CNNAPP: done"), r.toString());
  }
}
