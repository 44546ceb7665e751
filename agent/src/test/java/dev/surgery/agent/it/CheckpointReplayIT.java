package dev.surgery.agent.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.agent.testapp.CheckpointApp;
import dev.surgery.agent.testapp.LibraryLoadsApp;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * A program that resumes from a checkpoint with plain {@code Model.load}: under the agent, the
 * surgery recorded in the file is replayed before the parameters load, and the model computes what
 * the saved one did, bit for bit.
 */
class CheckpointReplayIT {

  /**
   * One {@code Model} given a new original block after a trial with surgery, saved untrained: the
   * file must not carry the earlier block's record (a load would replay surgery the saved block
   * never had), and a load under the agent gives the saved model back, bit for bit.
   */
  @Test
  void aModelGivenANewBlockSavesThatBlocksRecord() throws Exception {
    Path dir = AgentConfigs.dirWithConfig("checkpoint-new-block", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    ForkedJvm.Result trained = trainedAndSaved(dir, "new-block");
    String savedStructure = trained.findOut("CKPT: structure (.*)");
    assertFalse(savedStructure.contains("Blur"), trained.toString());

    loadsBack(trained, savedStructure, dir, "surgery.yaml");
  }

  @Test
  void modelLoadReplaysTheRecordedSurgery() throws Exception {
    Path dir = AgentConfigs.dirWithConfig("checkpoint", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    ForkedJvm.Result trained = trainedAndSaved(dir);
    String savedStructure = trained.findOut("CKPT: structure (.*)");
    // Both kinds of replacement: a surgery that missed the max pool would still save and replay,
    // and the output comparisons below would then hinge on the blurred conv's border alone.
    assertTrue(savedStructure.contains("BlurConv2d"), trained.toString());
    assertTrue(savedStructure.contains("BlurMaxPool2d"), trained.toString());

    ForkedJvm.Result loaded =
        loadsBack(trained, savedStructure, dir, "config=surgery.yaml;debug=true");
    assertEquals(
        1,
        loaded.countErr(
            "^surgery-agent: replayed \\d+ surgery record\\(s\\) from .*cnn-0002.params"),
        loaded.toString());

    // The two inputs' outputs differ: the trained network computes something (a comparison of
    // outputs below means nothing for a network whose output is its last bias).
    String[] out = trained.findOut("CKPT: output \\[(.*)\\]").split(", ");
    assertNotEquals(
        String.join(",", java.util.Arrays.copyOfRange(out, 0, out.length / 2)),
        String.join(",", java.util.Arrays.copyOfRange(out, out.length / 2, out.length)),
        trained.toString());

    // Without the agent, plain DJL cannot replay the record: the original architecture's Conv2d
    // refuses the blurred layer's version (it once loaded the weights into layers without the
    // blur, silently), and the model keeps its original blocks.
    ForkedJvm.Result plain =
        ForkedJvm.main(CheckpointApp.class.getName(), "load-failing", "model").workDir(dir).run();
    assertEquals(0, plain.exitCode(), plain.toString());
    assertEquals(
        "ai.djl.MalformedModelException: Unsupported encoding version: 81",
        plain.findOut("CKPT: failed (.*)"),
        plain.toString());
    assertFalse(plain.findOut("CKPT: structure (.*)").contains("Blur"), plain.toString());

    // A truncated copy: DJL's load fails part way, after the replay; the program that catches it
    // goes on with the model exactly as it was before the load (original blocks, no arrays, no
    // surgery property), not a half-replaced, half-loaded one.
    byte[] bytes = Files.readAllBytes(dir.resolve("model").resolve("cnn-0002.params"));
    writeParams(dir, "cut", Arrays.copyOf(bytes, bytes.length - 100));
    ForkedJvm.Result failed = loadFailingUnderTheAgent(dir, "cut");
    assertEquals(0, failed.exitCode(), failed.toString());
    // The exception names the file, as SurgeryCheckpoint.load's does (DJL's own names nothing).
    assertTrue(
        failed
            .findOut("CKPT: failed (.*)")
            .matches(
                "java\\.io\\.EOFException: .*cnn-0002\\.params: the parameters end early \\(a"
                    + " truncated file\\?\\)"),
        failed.toString());
    assertEquals("0", failed.findOut("CKPT: initialized (.*)"), failed.toString());
    assertEquals("null", failed.findOut("CKPT: property (.*)"), failed.toString());
    assertEquals(
        plain.findOut("CKPT: structure (.*)"),
        failed.findOut("CKPT: structure (.*)"),
        failed.toString());
    assertEquals(
        1,
        failed.countErr(
            "^surgery-agent: the parameters of .* could not be read from .*cnn-0002.params; the"
                + " model is as it was before the load \\(the replay of 1 surgery record\\(s\\)"
                + " undone\\)"),
        failed.toString());

    // A model the program initialized: its own arrays come back, whether the parameters cannot be
    // read or the record cannot be replayed (an algorithm this JVM does not know).
    ForkedJvm.Result initialized = loadFailingUnderTheAgent(dir, "cut", "init");
    assertEquals(0, initialized.exitCode(), initialized.toString());
    assertEquals("true", initialized.findOut("CKPT: own arrays (.*)"), initialized.toString());
    String text = new String(bytes, java.nio.charset.StandardCharsets.ISO_8859_1);
    assertTrue(text.contains("\"blurpool\""), "the record names blurpool");
    writeParams(
        dir,
        "unknown",
        text.replace("\"blurpool\"", "\"blurpoox\"")
            .getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
    ForkedJvm.Result unknownAlgorithm = loadFailingUnderTheAgent(dir, "unknown", "init");
    assertEquals(0, unknownAlgorithm.exitCode(), unknownAlgorithm.toString());
    assertTrue(
        unknownAlgorithm.findOut("CKPT: failed (.*)").contains("not registered"),
        unknownAlgorithm.toString());
    assertEquals(
        "true", unknownAlgorithm.findOut("CKPT: own arrays (.*)"), unknownAlgorithm.toString());

    // The same file without its record (as a model changed through the core API saves): nothing
    // to replay, and the agent's load says why the original architecture refuses it.
    String key = "\u0000\u0007surgery";
    assertEquals(1, text.split(key, -1).length - 1, "one property named surgery");
    writeParams(
        dir,
        "unrecorded",
        text.replace(key, "\u0000\u0007xurgery")
            .getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
    ForkedJvm.Result noRecord = loadFailingUnderTheAgent(dir, "unrecorded", "init");
    assertEquals(0, noRecord.exitCode(), noRecord.toString());
    assertTrue(
        noRecord
            .findOut("CKPT: failed (.*)")
            .matches(
                "ai\\.djl\\.MalformedModelException: .*cnn-0002\\.params: the file holds a"
                    + " BlurConv2d \\(blur before the convolution\\), a layer of DJL Surgery, where"
                    + " this model has a block of the original architecture \\(DJL: Unsupported"
                    + " encoding version: 81\\)\\..*"),
        noRecord.toString());
    assertEquals("true", noRecord.findOut("CKPT: own arrays (.*)"), noRecord.toString());
  }

  /**
   * A program with the library on its own class path, run under the agent: the model is loaded by
   * the program's copy of the library ({@code SurgeryCheckpoint}) and by the agent's ({@code
   * Model.load}), in either order. Each copy asks the other what the block carries, so the second
   * load finds the surgery in place rather than replaying it again (once refused with "cannot be
   * replayed on this architecture"): the model is the trained one, bit for bit, as without the
   * agent (where plain DJL can load it at all).
   */
  @Test
  void loadsByTheProgramsCopyAndTheAgentsAgreeOnWhatTheModelCarries() throws Exception {
    Path dir = AgentConfigs.dir("checkpoint-two-copies");
    ForkedJvm.Result trained = trainedUnderTheAgent(dir);
    assertEquals(0, trained.countErr("its own copy of DJL Surgery"), "no library on its path");
    String structure = trained.findOut("CKPT: structure (.*)");
    assertTrue(structure.contains("BlurConv2d"), trained.toString());
    String output = trained.findOut("CKPT: output (.*)");
    for (String mode : new String[] {"replay-then-load", "load-twice", "checkpoint-load-twice"}) {
      // Without the agent, a plain Model.load first cannot load the file (a control for the rest).
      boolean[] agentOrNot =
          mode.equals("load-twice") ? new boolean[] {true} : new boolean[] {true, false};
      for (boolean agent : agentOrNot) {
        ForkedJvm jvm =
            ForkedJvm.main(LibraryLoadsApp.class.getName(), mode, "model")
                .classpath(ForkedJvm.appClasspath(true))
                .workDir(dir);
        ForkedJvm.Result loaded = (agent ? jvm.agent("none.yaml") : jvm).run();
        String what = mode + (agent ? " under the agent" : " without it") + ": " + loaded;
        assertEquals(0, loaded.exitCode(), what);
        assertEquals(structure, loaded.findOut("CKPT: structure (.*)"), what);
        assertEquals(output, loaded.findOut("CKPT: output (.*)"), what);
        // Told once that the program runs a copy of its own beside the agent's.
        assertEquals(
            agent ? 1 : 0,
            loaded.countErr("^surgery-agent: WARNING: the program has its own copy of DJL Surgery"),
            what);
      }
    }
  }

  /**
   * A model the agent's copy loaded, to which the program's own listener then adds a surgery: the
   * agent's save hook writes the record the two copies know together (it once wrote its own, which
   * lacked the program's surgery: a file that claims less surgery than it holds).
   */
  @Test
  void aSaveUnderTheAgentKeepsWhatTheProgramsListenerRecorded() throws Exception {
    Path dir = AgentConfigs.dir("checkpoint-two-copies-save");
    trainedUnderTheAgent(dir);
    ForkedJvm.Result saved =
        ForkedJvm.main(LibraryLoadsApp.class.getName(), "load-train-save", "model")
            .classpath(ForkedJvm.appClasspath(true))
            .agent("none.yaml")
            .workDir(dir)
            .run();
    assertEquals(0, saved.exitCode(), saved.toString());
    assertEquals(
        List.of("blurpool@1", "weight_standardization@1"),
        saved
            .stdout()
            .lines()
            .filter(l -> l.startsWith("LOADS: saved record "))
            .map(l -> l.substring("LOADS: saved record ".length()))
            .toList(),
        saved.toString());
  }

  /**
   * {@link CheckpointApp} trained and saved under the agent with BlurPool at epoch 1 in {@code
   * dir/model}; {@code none.yaml} (no entries) is written beside it for the loads.
   */
  static ForkedJvm.Result trainedUnderTheAgent(Path dir) throws Exception {
    AgentConfigs.write(dir, "surgery.yaml", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    AgentConfigs.write(dir, "none.yaml", "algorithms: []\n");
    return trainedAndSaved(dir);
  }

  /**
   * {@link CheckpointApp} trained and saved in {@code dir/model} under the agent with the {@code
   * surgery.yaml} already in {@code dir}; asserts that it exited normally.
   */
  static ForkedJvm.Result trainedAndSaved(Path dir, String... extraArgs) throws Exception {
    List<String> args = new ArrayList<>(List.of("train", "model"));
    args.addAll(List.of(extraArgs));
    ForkedJvm.Result trained =
        ForkedJvm.main(CheckpointApp.class.getName(), args.toArray(String[]::new))
            .agent("surgery.yaml")
            .workDir(dir)
            .run();
    assertEquals(0, trained.exitCode(), trained.toString());
    return trained;
  }

  /** {@code bytes} as the saved parameters of a model in {@code dir/folder}. */
  private static void writeParams(Path dir, String folder, byte[] bytes) throws Exception {
    Path model = Files.createDirectories(dir.resolve(folder));
    Files.write(model.resolve("cnn-0002.params"), bytes);
  }

  /**
   * {@link CheckpointApp} loading {@code dir/folder} under the agent, catching a failing load
   * ({@code args}: the folder, then {@code init} for a model the program initialized first).
   */
  private static ForkedJvm.Result loadFailingUnderTheAgent(Path dir, String... args)
      throws Exception {
    List<String> all = new ArrayList<>(List.of("load-failing"));
    all.addAll(List.of(args));
    return ForkedJvm.main(CheckpointApp.class.getName(), all.toArray(String[]::new))
        .agent("surgery.yaml")
        .workDir(dir)
        .run();
  }

  /**
   * Loads the saved model under the agent and asserts it is the trained one: the same structure and
   * the same output bits.
   */
  private static ForkedJvm.Result loadsBack(
      ForkedJvm.Result trained, String savedStructure, Path dir, String agentArgument)
      throws Exception {
    ForkedJvm.Result loaded =
        ForkedJvm.main(CheckpointApp.class.getName(), "load", "model")
            .agent(agentArgument)
            .workDir(dir)
            .run();
    assertEquals(0, loaded.exitCode(), loaded.toString());
    assertEquals(savedStructure, loaded.findOut("CKPT: structure (.*)"), loaded.toString());
    assertEquals(
        trained.findOut("CKPT: output (.*)"),
        loaded.findOut("CKPT: output (.*)"),
        loaded.toString());
    return loaded;
  }
}
