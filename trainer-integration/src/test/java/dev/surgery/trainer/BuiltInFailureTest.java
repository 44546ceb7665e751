package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.LambdaBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.pooling.Pool;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import dev.surgery.trainer.config.SurgeryConfig;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * A built-in algorithm that fails on the model it meets: blurpool, valid in the config, on a model
 * whose max pool the program wrote itself (a lambda named {@code maxPool2d} that {@code
 * Pool.maxPool2dBlock} did not build, so its window cannot be read for the replacement). What the
 * failure says (the entry and where it comes from in the config, the block and the reason, what a
 * built-in's failure leaves: the whole model, not a plugin's blocks-and-freezes only) and what
 * {@code on_error} does, against runs of the same model without the entry (the oracle): under
 * {@code skip} training goes on exactly as without it, under {@code fail} it stops with the model
 * of the epochs before.
 */
class BuiltInFailureTest {

  /** The entry alone; on_error, when given, comes after it so that the entry stays on line 2. */
  private static final String ENTRY = "algorithms:\n  - name: blurpool\n    epoch: 1\n";

  /** Where the entry is: line 2, the column of its first key after " - ". */
  private static final String SOURCE = "run.yaml:2:5";

  private static final String WITHOUT = "algorithms: []\n";

  private static final int EPOCHS = 3;

  /** The program's own 2 x 2 max pool: the same computation, not DJL's block. */
  private static Block ownMaxPool() {
    return new LambdaBlock(
        x ->
            new NDList(
                Pool.maxPool2d(
                    x.singletonOrThrow(),
                    new Shape(2, 2),
                    new Shape(2, 2),
                    new Shape(0, 0),
                    false)),
        "maxPool2d");
  }

  /** The test CNN with the program's max pool in place of DJL's (its sixth block). */
  private static SequentialBlock cnnWithOwnPool() {
    SequentialBlock net = new SequentialBlock();
    List<Block> blocks = new ArrayList<>(TestModels.cnn().getChildren().values());
    blocks.set(5, ownMaxPool());
    blocks.forEach(net::add);
    return net;
  }

  /** One run: the final parameter values, the model's structure, and what the listener said. */
  private record Run(
      List<float[]> values,
      String structure,
      SurgeryListener listener,
      SurgeryFailedException failure,
      String log) {}

  private static Run train(String yaml, int epochs) throws Exception {
    SurgeryListener listener = SurgeryListener.fromConfig(SurgeryConfig.parse(yaml, "run.yaml"));
    Engine.getInstance().setRandomSeed(7);
    try (Model model = TestModels.model("built-in-failure");
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(cnnWithOwnPool());
      ArrayDataset dataset = TestModels.dataset(data, 3);
      SurgeryFailedException[] failure = new SurgeryFailedException[1];
      String log;
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(TestModels.INPUT);
        listener.onInitialized(trainer);
        Engine.getInstance().setRandomSeed(21);
        log =
            Stderr.of(
                () -> {
                  try {
                    EasyTrain.fit(trainer, epochs, dataset, null);
                  } catch (SurgeryFailedException e) {
                    failure[0] = e;
                  }
                });
      }
      List<float[]> values = new ArrayList<>();
      for (Parameter p : model.getBlock().getParameters().values()) {
        values.add(p.getArray().toFloatArray());
      }
      return new Run(values, TestModels.structure(model.getBlock()), listener, failure[0], log);
    }
  }

  private static void assertSameModel(Run expected, Run actual) {
    assertEquals(expected.structure(), actual.structure());
    assertEquals(expected.values().size(), actual.values().size());
    for (int i = 0; i < expected.values().size(); i++) {
      assertArrayEquals(expected.values().get(i), actual.values().get(i), "parameter " + i);
    }
  }

  /** The block DJL's SequentialBlock names the sixth child: its index and the lambda's class. */
  private static final String POOL = "06LambdaBlock";

  private static final String REASON =
      "cannot read the kernel, stride, padding and ceil mode of this maxPool2d lambda";

  @Test
  void onErrorSkipTrainsOnExactlyAsWithoutTheEntryAndSaysTheModelIsUnchanged() throws Exception {
    Run without = train(WITHOUT, EPOCHS);
    Run skipped = train(ENTRY + "on_error: skip\n", EPOCHS);
    assertNull(skipped.failure(), "on_error: skip trains on");
    // The strided convolution the entry would also have replaced is as it was too: one surgery.
    assertSameModel(without, skipped);
    assertEquals(
        List.of(SurgeryOutcome.Status.SKIPPED),
        skipped.listener().getOutcomes().stream().map(SurgeryOutcome::status).toList());
    String line =
        skipped.log().lines().filter(l -> l.contains("and was skipped")).findFirst().orElse("");
    assertTrue(
        line.contains(
            "Surgery: blurpool at epoch 1 ("
                + SOURCE
                + ") failed and was skipped (on_error: skip), it does not run again and the model"
                + " is unchanged: at "
                + POOL
                + ": "),
        skipped.log());
    assertTrue(line.contains(REASON), line);
    // A built-in's failure leaves the whole model, not only a plugin's blocks and freezes.
    assertFalse(line.contains("values it wrote"), line);
  }

  @Test
  void onErrorFailStopsTrainingNamingTheEntryTheBlockAndTheReason() throws Exception {
    Run oneEpoch = train(WITHOUT, 1);
    Run failed = train(ENTRY + "on_error: fail\n", EPOCHS);
    SurgeryFailedException e = failed.failure();
    assertNotNull(e, "on_error: fail stops training");
    assertEquals("blurpool", e.getAlgorithm());
    assertEquals(1, e.getEpoch());
    assertEquals(POOL, e.getBlockPath());
    String message = e.getMessage();
    assertTrue(message.startsWith("Surgery: blurpool at epoch 1 (" + SOURCE + ")"), message);
    // The block named once (the engine's message names it), no step for an epoch entry.
    assertTrue(message.contains(") failed: at " + POOL + ": "), message);
    assertTrue(message.contains(REASON), message);
    assertTrue(
        message.endsWith(
            ". The model is as it was before blurpool (on_error: fail stops training; use"
                + " on_error: skip to train on without it)"),
        message);
    // Stopped at the end of epoch 1, with the model one epoch of plain training gives.
    assertSameModel(oneEpoch, failed);
    assertEquals(
        List.of(SurgeryOutcome.Status.FAILED),
        failed.listener().getOutcomes().stream().map(SurgeryOutcome::status).toList());
  }
}
