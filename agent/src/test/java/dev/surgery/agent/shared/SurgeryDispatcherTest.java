package dev.surgery.agent.shared;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.training.listener.TrainingListener;
import ai.djl.training.loss.Loss;
import dev.surgery.core.internal.DjlInternals;
import dev.surgery.core.testing.StandardError;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The dispatcher in-process, as the woven advice calls it: without a config it leaves every trainer
 * alone; with one it attaches the agent's own copy of the listener, once per trainer, from a loader
 * of its own beside DJL's.
 */
class SurgeryDispatcherTest {

  private static final String LISTENER = "dev.surgery.trainer.SurgeryListener";

  @TempDir Path dir;

  @BeforeEach
  @AfterEach
  void agentOff() throws Exception {
    System.clearProperty(SurgeryDispatcher.LIBRARY_COPIES_PROPERTY);
    ProgramCopyTest.forgetCopies();
    // The dispatcher's settings are the JVM's: back to "no config" for whatever runs next.
    SurgeryDispatcher.configure(null, List.of());
    SurgeryDispatcher.setDryRun(false);
  }

  private static List<String> listenerClasses(Trainer trainer) {
    return DjlInternals.listeners(trainer).stream().map(l -> l.getClass().getName()).toList();
  }

  /** Makes a tiny trainer (nothing is trained) and hands it to the check. */
  private static void withTrainer(java.util.function.Consumer<Trainer> check) {
    try (Model model = Model.newInstance("dispatcher-test")) {
      model.setBlock(Linear.builder().setUnits(2).build());
      try (Trainer trainer =
          model.newTrainer(
              new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
                  // One of the program's own, which the agent's must come after.
                  .addTrainingListeners(new ai.djl.training.listener.EpochTrainingListener()))) {
        check.accept(trainer);
      }
    }
  }

  @Test
  void withoutAConfigEveryTrainerIsLeftAlone() {
    withTrainer(
        trainer -> {
          List<String> before = listenerClasses(trainer);
          List<String> printed =
              StandardError.lines(
                  () -> {
                    SurgeryDispatcher.trainerCreated(trainer);
                    SurgeryDispatcher.trainerInitialized(trainer);
                    SurgeryDispatcher.fitStarting(trainer, 2);
                    SurgeryDispatcher.at(HookPoint.STEP_EXIT, trainer);
                  });
          assertEquals(before, listenerClasses(trainer));
          assertEquals(List.of(), printed);
          IllegalStateException thrown = new IllegalStateException("load failed");
          assertSame(thrown, SurgeryDispatcher.parametersLoadFailed(trainer.getModel(), thrown));
        });
  }

  @Test
  void aConfigAttachesTheAgentsOwnListenerOncePerTrainer() throws IOException {
    SurgeryDispatcher.configure(blurpoolConfig(), List.of());
    withTrainer(
        trainer -> {
          List<String> before = listenerClasses(trainer);
          assertEquals(1, before.size(), before.toString());
          SurgeryDispatcher.trainerCreated(trainer);
          SurgeryDispatcher.trainerCreated(trainer); // a second report: still one listener
          assertEquals(
              before,
              listenerClasses(trainer).subList(0, before.size()),
              "the program's listeners stay, first");
          // Tracked: its forwards are the agent's business, nothing to warn about.
          assertEquals(
              List.of(),
              StandardError.lines(() -> SurgeryDispatcher.forwardStarting(trainer, null)));
          List<TrainingListener> listeners = DjlInternals.listeners(trainer);
          List<TrainingListener> surgery =
              listeners.stream().filter(l -> l.getClass().getName().equals(LISTENER)).toList();
          assertEquals(1, surgery.size(), listenerClasses(trainer).toString());
          ClassLoader agents = surgery.get(0).getClass().getClassLoader();
          assertNotSame(SurgeryDispatcherTest.class.getClassLoader(), agents);
          assertTrue(ProgramCopy.isAgents(agents), agents.toString());
          assertTrue(SurgeryDispatcher.libraryLoaders().contains(agents));
          assertEquals(
              SurgeryDispatcher.class.getName(),
              System.getProperty(SurgeryDispatcher.LIBRARY_COPIES_PROPERTY));
          // The event tracker sits just before it (it sees onEpoch first).
          int at = listeners.indexOf(surgery.get(0));
          assertEquals(
              "dev.surgery.agent.hookloader.EventTrackingListener",
              listeners.get(at - 1).getClass().getName());
          // A training call without its trainer (a woven call on a null target) is ignored.
          assertEquals(
              List.of(), StandardError.lines(() -> SurgeryDispatcher.fitStarting(null, 2)));
        });
  }

  /** The program registered a SurgeryListener of its own: the agent adds no second one. */
  @Test
  void aTrainerWithTheProgramsOwnListenerGetsNoSecond() throws IOException {
    SurgeryDispatcher.configure(blurpoolConfig(), List.of());
    try (Model model = Model.newInstance("dispatcher-test")) {
      model.setBlock(Linear.builder().setUnits(2).build());
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
              .addTrainingListeners(dev.surgery.trainer.SurgeryListener.builder().build());
      try (Trainer trainer = model.newTrainer(config)) {
        SurgeryDispatcher.trainerCreated(trainer);
        assertEquals(
            1,
            listenerClasses(trainer).stream().filter(LISTENER::equals).count(),
            listenerClasses(trainer).toString());
        // Its forwards are not "without surgery": the program's listener does the surgery.
        assertEquals(
            List.of(), StandardError.lines(() -> SurgeryDispatcher.forwardStarting(trainer, null)));
      }
    }
  }

  /**
   * A trainer the agent attached nothing to (made before a late attach) trains without surgery:
   * said once per trainer, at its first forward.
   */
  @Test
  void aTrainerWithoutTheListenerIsNamedOnceAtItsForward() throws IOException {
    SurgeryDispatcher.configure(blurpoolConfig(), List.of());
    withTrainer(
        trainer -> {
          List<String> printed =
              StandardError.lines(
                  () -> {
                    SurgeryDispatcher.forwardStarting(trainer, null);
                    SurgeryDispatcher.at(HookPoint.FORWARD_ENTER, trainer);
                    SurgeryDispatcher.forwardStarting(trainer, null);
                  });
          assertEquals(1, printed.size(), printed.toString());
          assertTrue(
              printed
                  .get(0)
                  .startsWith(
                      "surgery-agent: WARNING: "
                          + SurgeryDispatcher.describe(trainer)
                          + " trains without surgery"),
              printed.get(0));
        });
  }

  private Path blurpoolConfig() throws IOException {
    return Files.writeString(
        dir.resolve("surgery.yaml"), "algorithms:\n  - name: blurpool\n    epoch: 1\n");
  }

  @Test
  void aDryRunAttachesNothing() throws IOException {
    SurgeryDispatcher.configure(blurpoolConfig(), List.of());
    SurgeryDispatcher.setDryRun(true);
    withTrainer(
        trainer -> {
          List<String> before = listenerClasses(trainer);
          SurgeryDispatcher.trainerCreated(trainer);
          assertEquals(before, listenerClasses(trainer));
        });
  }

  @Test
  void describeNamesTheClassAndIdentityAsObjectToStringDoes() {
    Object plain = new Object();
    // Object.toString is getClass().getName() + "@" + hex(hashCode()); the simple name here.
    assertEquals(
        "Object@" + plain.toString().substring(plain.toString().indexOf('@') + 1),
        SurgeryDispatcher.describe(plain));
  }
}
