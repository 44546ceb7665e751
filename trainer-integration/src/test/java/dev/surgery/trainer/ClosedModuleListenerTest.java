package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Activation;
import ai.djl.nn.LambdaBlock;
import ai.djl.nn.SequentialBlock;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.core.testing.ClosedModules;
import dev.surgery.trainer.config.OnError;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Function;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A model with a block class of a module that does not open its package to DJL Surgery: the
 * listener says so before the first step, naming the block and the {@code opens}, rather than only
 * when the surgery fails epochs into training; the surgery then fails rolled back, saying the same.
 */
class ClosedModuleListenerTest {

  @Test
  void aClosedBlockClassIsWarnedOfBeforeTrainingAndItsSurgeryFailsNamingTheOpens(@TempDir Path dir)
      throws Exception {
    ClassLoader closedApp = ClosedModules.closedApp(dir);
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(BlurPool.builder().optMinChannels(0).build(), 1)
            .optOnError(OnError.SKIP)
            .build();
    SequentialBlock root =
        new SequentialBlock().add(ClosedModules.holder(closedApp, TestModels.cnn()));
    try (Model model = Model.newInstance("closed");
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(root);
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        String atStart = onlyWarningOnceInitialized(trainer, listener);
        assertTrue(atStart.startsWith("Surgery: block 01Holder is a closedapp.Holder"), atStart);
        assertTrue(
            atStart.contains("closedapp.Holder, whose fields the engine cannot read"), atStart);
        String before = TestModels.structure(root);

        EasyTrain.fit(trainer, 2, TestModels.dataset(data, 3), null);

        SurgeryOutcome outcome = listener.getOutcomes().get(0);
        assertEquals(SurgeryOutcome.Status.SKIPPED, outcome.status());
        assertTrue(outcome.error().contains("add 'opens closedapp;'"), outcome.error());
        assertEquals(before, TestModels.structure(root), "rolled back");
      }
    }
  }

  /**
   * A listener with no entry runs no surgery that could be refused: a closed block class is not
   * warned of, and training runs.
   */
  @Test
  void aListenerWithoutEntriesSaysNothingOfAClosedBlock(@TempDir Path dir) throws Exception {
    ClassLoader closedApp = ClosedModules.closedApp(dir);
    SurgeryListener listener = SurgeryListener.builder().build();
    SequentialBlock root =
        new SequentialBlock().add(ClosedModules.holder(closedApp, TestModels.cnn()));
    try (Model model = Model.newInstance("closed-none");
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(root);
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        EasyTrain.fit(trainer, 1, TestModels.dataset(data, 3), null);
      }
    }
    assertEquals(List.of(), listener.getWarnings());
  }

  /** A lambda block of the closed module: DJL's LambdaBlock class, the program's function. */
  @Test
  void aLambdaOfAClosedModuleIsWarnedOfBeforeTraining(@TempDir Path dir) throws Exception {
    ClassLoader closedApp = ClosedModules.closedApp(dir);
    SurgeryListener listener =
        SurgeryListener.builder().add(BlurPool.builder().optMinChannels(0).build(), 1).build();
    SequentialBlock root =
        new SequentialBlock()
            .add(TestModels.cnn())
            .add(ClosedModules.lambdaOver(closedApp, Activation.reluBlock()));
    try (Model model = Model.newInstance("closed-lambda")) {
      model.setBlock(root);
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        String atStart = onlyWarningOnceInitialized(trainer, listener);
        assertTrue(
            atStart.startsWith(
                "Surgery: block 02LambdaBlock runs a function of class closedapp.Holder$$Lambda"),
            atStart);
      }
    }
  }

  /**
   * A probe on the module path: a method reference of the closed package ({@code Activation::relu},
   * DJL's usual idiom) was warned of though it captured nothing to read, and, named first, it hid
   * the block class of that package whose fields a surgery does need; a reviewer: so was a lambda
   * over a number, which the engine reads past too. Now the block class alone.
   */
  @Test
  void aFunctionThatCapturedNothingIsNotWarnedOfNorHidesABlockClass(@TempDir Path dir)
      throws Exception {
    ClassLoader closedApp = ClosedModules.closedApp(dir);
    SurgeryListener listener =
        SurgeryListener.builder().add(BlurPool.builder().optMinChannels(0).build(), 1).build();
    SequentialBlock root =
        new SequentialBlock()
            .add(ClosedModules.capturingNothing(closedApp))
            .add(ClosedModules.capturingANumber(closedApp, 0.5f))
            .add(ClosedModules.holder(closedApp, TestModels.cnn()));
    try (Model model = Model.newInstance("closed-relu")) {
      model.setBlock(root);
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        String atStart = onlyWarningOnceInitialized(trainer, listener);
        assertTrue(atStart.startsWith("Surgery: block 03Holder is a closedapp.Holder"), atStart);
      }
    }
  }

  /**
   * A function of the JDK the engine cannot read (what {@code Function.andThen} returns) is not
   * warned of with an opens of a JDK module, which no program should add: a surgery that needs it
   * is refused when it runs, with that refusal's own advice (one lambda of the program's own).
   */
  @Test
  void aJdkFunctionIsNotWarnedOfWithAnOpensOfTheJdk() {
    SurgeryListener listener =
        SurgeryListener.builder().add(BlurPool.builder().optMinChannels(0).build(), 1).build();
    Function<NDList, NDList> same = x -> x;
    SequentialBlock root =
        new SequentialBlock()
            .add(TestModels.cnn())
            .add(new LambdaBlock(same.andThen(same), "composed by the JDK"));
    try (Model model = Model.newInstance("jdk-lambda")) {
      model.setBlock(root);
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        assertEquals(List.of(), listener.getWarnings());
      }
    }
  }

  /**
   * Initializes the trainer and returns the listener's one warning by then, which names the
   * directive that opens the closed package.
   */
  private static String onlyWarningOnceInitialized(Trainer trainer, SurgeryListener listener) {
    trainer.initialize(INPUT);
    List<String> atStart = listener.getWarnings();
    assertEquals(1, atStart.size(), atStart.toString());
    assertTrue(atStart.get(0).contains("add 'opens closedapp;'"), atStart.get(0));
    return atStart.get(0);
  }
}
