package dev.surgery.agent.shared;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.listener.TrainingListener;
import ai.djl.training.loss.Loss;
import dev.surgery.agent.hookloader.PluginJar;
import dev.surgery.core.internal.DjlTrainers;
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

  /**
   * Where the recording plugin writes each event it is asked about ({@code RecordingAlgorithm}).
   */
  private static final String RECORD = "surgery.test.record";

  @TempDir Path dir;

  @BeforeEach
  @AfterEach
  void agentOff() throws Exception {
    System.clearProperty(SurgeryDispatcher.LIBRARY_COPIES_PROPERTY);
    ProgramCopyTest.forgetCopies();
    // The dispatcher's settings are the JVM's: back to "no config" for whatever runs next.
    SurgeryDispatcher.configure(null, List.of());
    SurgeryDispatcher.setDryRun(false);
    System.clearProperty(RECORD);
  }

  private static List<String> listenerClasses(Trainer trainer) {
    return DjlTrainers.listeners(trainer).stream().map(l -> l.getClass().getName()).toList();
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
          List<TrainingListener> listeners = DjlTrainers.listeners(trainer);
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

  /**
   * The agent set up with the recording plugin alone, which writes each event it is asked about;
   * returns the file it writes to.
   */
  private Path recordingAgent() throws IOException {
    Path config =
        Files.writeString(dir.resolve("recording.yaml"), "algorithms:\n  - name: recording\n");
    SurgeryDispatcher.configure(config, List.of(PluginJar.recording(dir)));
    Path record = dir.resolve("events.txt");
    System.setProperty(RECORD, record.toString());
    return record;
  }

  /** Each recorded event with the optimizer steps its trainer had taken, e.g. BATCH_END steps=1. */
  private static List<String> recorded(Path record) throws IOException {
    if (!Files.isRegularFile(record)) {
      return List.of();
    }
    return Files.readAllLines(record).stream()
        .map(l -> l.substring(0, l.indexOf(' ', l.indexOf(" steps=") + 1)))
        .toList();
  }

  /** The batch calls the woven advice makes: a training forward's entry and exit, a step. */
  private static void forward(Trainer trainer) {
    SurgeryDispatcher.forwardStarting(trainer, null);
    SurgeryDispatcher.at(HookPoint.FORWARD_EXIT, trainer);
  }

  private static void step(Trainer trainer) {
    SurgeryDispatcher.at(HookPoint.STEP_EXIT, trainer);
  }

  /**
   * A backward through a collector the program made itself, as the collector's advice reports it.
   */
  private static void backwardThroughTheEngines() {
    try (GradientCollector collector = Engine.getInstance().newGradientCollector()) {
      SurgeryDispatcher.backwardDone(collector);
    }
  }

  /**
   * A gradient collector the program made itself ({@code Engine.newGradientCollector()}, not {@code
   * trainer.newGradientCollector()}): its backward is AFTER_BACKWARD of the trainer whose training
   * forward ran last on that thread, in the batch that trainer has open, once per batch (agent
   * README, Events); a backward with no batch open, or on a thread without a forward, reports
   * nothing. A collector a trainer made stays that trainer's. Two trainers trained in turn on one
   * thread tell "the last forward's" from "the first" or "any"; the recording tells them apart by
   * their optimizer steps (A is a step ahead of B). The expected events are worked out by hand from
   * that rule.
   */
  @Test
  void aCollectorTheTrainerDidNotMakeIsTheBatchOfThisThreadsLastForward() throws Exception {
    Path record = recordingAgent();
    withTrainer(
        a ->
            withTrainer(
                b -> {
                  a.initialize(new Shape(1, 3));
                  b.initialize(new Shape(1, 3));
                  SurgeryDispatcher.trainerCreated(a);
                  SurgeryDispatcher.trainerCreated(b);
                  forward(a);
                  backwardThroughTheEngines(); // A's
                  step(a);
                  forward(b);
                  forward(a);
                  backwardThroughTheEngines(); // A's: its forward ran last
                  forward(b); // a second forward of B's open batch (accumulation): no event
                  backwardThroughTheEngines(); // B's
                  backwardThroughTheEngines(); // B's again: once per batch
                  step(b);
                  step(a);
                  backwardThroughTheEngines(); // B's, but its batch ended: nothing
                  forward(a);
                  forward(b);
                  Thread other = new Thread(SurgeryDispatcherTest::backwardThroughTheEngines);
                  other.start(); // no forward on that thread: nothing, though B's batch is open
                  try {
                    other.join(10_000);
                  } catch (InterruptedException e) {
                    throw new IllegalStateException(e);
                  }
                  assertFalse(other.isAlive());
                  try (GradientCollector made = a.newGradientCollector()) {
                    SurgeryDispatcher.collectorCreated(a, made); // as the trainer's advice does
                    SurgeryDispatcher.backwardDone(made); // A's, though B's forward ran last
                  }
                }));
    assertEquals(
        List.of(
            "EPOCH_START steps=0", // A
            "BATCH_START steps=0",
            "AFTER_FORWARD steps=0",
            "AFTER_BACKWARD steps=0",
            "BATCH_END steps=1",
            "EPOCH_START steps=0", // B
            "BATCH_START steps=0",
            "AFTER_FORWARD steps=0",
            "BATCH_START steps=1", // A
            "AFTER_FORWARD steps=1",
            "AFTER_BACKWARD steps=1",
            "AFTER_BACKWARD steps=0", // B
            "BATCH_END steps=1",
            "BATCH_END steps=2", // A
            "BATCH_START steps=2",
            "AFTER_FORWARD steps=2",
            "BATCH_START steps=1", // B
            "AFTER_FORWARD steps=1",
            "AFTER_BACKWARD steps=2"), // A
        recorded(record));
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
