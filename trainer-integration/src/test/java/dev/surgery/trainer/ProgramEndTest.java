package dev.surgery.trainer;

import static dev.surgery.trainer.SurgeryListenerFitTest.algorithm;
import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.events.Time;
import dev.surgery.trainer.config.Trigger;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link SurgeryListener#onProgramEnd()}: a program that ends before its trainer's training did
 * ({@code System.exit}, an uncaught exception) leaves a surgery log that says so, and one whose
 * training ended leaves the log exactly as {@code onTrainingEnd} wrote it. The schedule is {@code
 * t_fresh_conv} at epoch 1 and {@code t_pool} at epoch 3; the program trains 1 epoch, so by the
 * schedule alone {@code t_pool} is the one entry that never ran.
 */
class ProgramEndTest {

  private static final String PROGRAM_ENDED =
      "the program began to end (System.exit, a signal such as SIGTERM, an uncaught exception, or"
          + " a trainer never closed) after 1 completed epoch, before training ended; nothing is"
          + " applied after that";

  @TempDir Path tmp;

  @BeforeAll
  static void register() {
    TestAlgorithms.ensureRegistered();
  }

  private static SurgeryListener listener(Path report) {
    return SurgeryListener.builder()
        .add(algorithm(TestAlgorithms.FRESH_CONV, Map.of("stride", 1)), 1)
        .add(algorithm(TestAlgorithms.POOL, Map.of()), 3)
        .optReportPath(report)
        .build();
  }

  private static JsonObject read(Path report) throws Exception {
    return JsonParser.parseString(Files.readString(report)).getAsJsonObject();
  }

  private static void assertNotRun(JsonObject entry, int trainer, String reason) {
    assertEquals(trainer, entry.get("trainer").getAsInt(), entry.toString());
    assertEquals(TestAlgorithms.POOL, entry.get("algorithm").getAsString(), entry.toString());
    assertEquals(3, entry.get("epoch").getAsInt(), entry.toString());
    assertEquals(reason, entry.get("reason").getAsString(), entry.toString());
  }

  @Test
  void aTrainerStillOpenAtProgramEndIsListedAndTheLogMarkedCutShort() throws Exception {
    Path report = tmp.resolve("log.json");
    SurgeryListener listener = listener(report);
    try (Model model = TestModels.model("cut");
        NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 5);
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        EasyTrain.fit(trainer, 1, dataset, null);
        // What a shutdown hook sees after System.exit: the trainer is still training.
        assertTrue(listener.onProgramEnd());
        JsonObject log = read(report);
        assertTrue(log.get("cut_short").getAsBoolean(), log.toString());
        JsonArray apps = log.getAsJsonArray("applications");
        assertEquals(1, apps.size(), log.toString());
        assertEquals(
            TestAlgorithms.FRESH_CONV,
            apps.get(0).getAsJsonObject().get("algorithm").getAsString());
        JsonArray notRun = log.getAsJsonArray("not_run");
        assertEquals(1, notRun.size(), log.toString());
        assertNotRun(notRun.get(0).getAsJsonObject(), 1, PROGRAM_ENDED);
        assertTrue(
            listener.getWarnings().stream()
                .anyMatch(w -> w.startsWith("Surgery: t_pool") && w.endsWith(PROGRAM_ENDED)),
            listener.getWarnings().toString());

        // Threads that go on training while the JVM exits apply nothing more, and say nothing
        // more (t_pool's epoch passes: it is not "missed" a second time).
        List<String> warned = listener.getWarnings();
        EasyTrain.fit(trainer, 3, dataset, null);
        assertEquals(0, TestModels.count(model.getBlock(), "ProbePool"));
        assertEquals(warned, listener.getWarnings());
        assertFalse(listener.onProgramEnd(), "only the first call counts");
      }
      // Closing the trainer afterwards lists nothing twice.
      JsonObject log = read(report);
      assertEquals(1, log.getAsJsonArray("not_run").size(), log.toString());
      assertEquals(1, log.getAsJsonArray("applications").size(), log.toString());
      assertTrue(log.get("cut_short").getAsBoolean(), log.toString());
    }
  }

  // Fails under PIT, where the collection it waits for does not come: mutation runs that take
  // ProgramEndTest leave it out with -DexcludedGroups=gc (every build runs it).
  @Test
  @Tag("gc")
  void aTrainerThatBeginsAfterTheProgramsEndListsItsEntriesAndLetsItsModelGo() throws Exception {
    // An outside probe: such a trainer trained on without its surgery (nothing is applied after
    // the end) and left no trace in the log, and its state kept its model's block for good.
    Path report = tmp.resolve("after-end.json");
    SurgeryListener listener = listener(report);
    java.lang.ref.WeakReference<ai.djl.nn.Block> afterEnd;
    try (NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 5);
      try (Model before = TestModels.model("before-end");
          Trainer trainer = before.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        EasyTrain.fit(trainer, 1, dataset, null);
        assertTrue(listener.onProgramEnd());
      }
      try (Model later = TestModels.model("after-end")) {
        afterEnd = new java.lang.ref.WeakReference<>(later.getBlock());
        try (Trainer trainer = later.newTrainer(TestModels.config(listener))) {
          trainer.initialize(INPUT);
          EasyTrain.fit(trainer, 3, dataset, null);
        }
        assertEquals(0, TestModels.count(later.getBlock(), "ProbePool"), "nothing after the end");
      }
    }
    JsonArray notRun = read(report).getAsJsonArray("not_run");
    long secondTrainers =
        java.util.stream.StreamSupport.stream(notRun.spliterator(), false)
            .filter(e -> e.getAsJsonObject().get("trainer").getAsInt() == 2)
            .count();
    assertEquals(2, secondTrainers, notRun.toString());
    for (int i = 0; i < 50 && afterEnd.get() != null; i++) {
      System.gc();
      Thread.sleep(10);
    }
    assertTrue(afterEnd.get() == null, "the listener keeps the block of a trainer that ended");
  }

  /** Delegates to an algorithm, pausing inside one of its runs until let go. */
  static final class Paused implements Algorithm {
    private final Algorithm inner;
    private final int pausedRun;
    private final boolean changesNothing;
    final CountDownLatch entered = new CountDownLatch(1);
    final CountDownLatch release = new CountDownLatch(1);
    private int runs;

    /**
     * @param pausedRun which run pauses (1: the first)
     * @param changesNothing returns null, as an average of the weights does
     */
    Paused(Algorithm inner, int pausedRun, boolean changesNothing) {
      this.inner = inner;
      this.pausedRun = pausedRun;
      this.changesNothing = changesNothing;
    }

    /** Starts a thread that waits until the paused run began, then runs {@code then}. */
    Thread onceEntered(Stderr.Run then) {
      Thread thread =
          new Thread(
              () -> {
                try {
                  assertTrue(entered.await(30, TimeUnit.SECONDS));
                  then.run();
                } catch (InterruptedException e) {
                  Thread.currentThread().interrupt();
                } catch (Exception e) {
                  throw new IllegalStateException(e);
                }
              });
      thread.start();
      return thread;
    }

    @Override
    public String name() {
      return inner.name();
    }

    @Override
    public Map<String, Object> hyperparameters() {
      return inner.hyperparameters();
    }

    @Override
    public SurgeryChanges apply(SurgeryContext context) {
      if (++runs == pausedRun) {
        entered.countDown();
        try {
          assertTrue(release.await(30, TimeUnit.SECONDS));
        } catch (InterruptedException e) {
          throw new IllegalStateException(e);
        }
      }
      SurgeryChanges changes = inner.apply(context);
      return changesNothing ? null : changes;
    }
  }

  /**
   * An outside tester: the program ending inside a repeating entry's later run (or an event-driven
   * entry's) left it out of the log, though a checkpoint a shutdown hook saves may hold its change;
   * only a one-shot entry was listed. Every application the end cuts into is listed.
   */
  @ParameterizedTest
  @ValueSource(booleans = {false, true})
  void aRepeatingEntrysRunThatTheProgramsEndCutIntoIsListed(boolean changesNothing)
      throws Exception {
    Path report = tmp.resolve("log.json");
    Paused paused =
        new Paused(algorithm(TestAlgorithms.LOG, Map.of("tag", "a")), 2, changesNothing);
    AtomicReference<JsonObject> atEnd = new AtomicReference<>();
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(paused, Trigger.every(Time.parse("1ep")))
            .optReportPath(report)
            .build();
    try (Model model = TestModels.model("cut-repeating");
        NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 5);
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        AtomicBoolean ended = new AtomicBoolean();
        // Waits its 2 s for the run, then lists it; only then is the run let go (as if
        // System.exit had ended the JVM in the middle of it).
        Thread hook =
            paused.onceEntered(
                () -> {
                  ended.set(listener.onProgramEnd());
                  atEnd.set(read(report));
                  paused.release.countDown();
                });
        EasyTrain.fit(trainer, 2, dataset, null);
        hook.join(30_000);
        assertTrue(ended.get(), "the trainer was still training");
      }
      JsonObject log = atEnd.get();
      assertEquals(
          changesNothing ? 0 : 1, log.getAsJsonArray("applications").size(), log.toString());
      JsonArray notRun = log.getAsJsonArray("not_run");
      assertEquals(1, notRun.size(), log.toString());
      JsonObject cut = notRun.get(0).getAsJsonObject();
      assertEquals(TestAlgorithms.LOG, cut.get("algorithm").getAsString(), log.toString());
      assertTrue(
          cut.get("reason").getAsString().startsWith(NotRunEntries.ENDED_WHILE_APPLIED),
          log.toString());
      // Let go, the run finished after all: listed as applied, as a one-shot entry's is (one that
      // changed nothing is not listed, as usual; a reviewer found its "not finished" item kept).
      JsonObject last = read(report);
      assertEquals(
          changesNothing ? 0 : 2, last.getAsJsonArray("applications").size(), last.toString());
      assertEquals(0, last.getAsJsonArray("not_run").size(), last.toString());
    }
  }

  @Test
  void anApplicationUnderWayWhenTheProgramEndsIsListedOnceAsApplied() throws Exception {
    // A SIGTERM in the middle of a surgery: the agent's shutdown hook runs beside the training
    // thread. It used to list the entry as never run while the surgery went on to apply it.
    Path report = tmp.resolve("log.json");
    Paused paused = new Paused(algorithm(TestAlgorithms.FRESH_CONV, Map.of("stride", 1)), 1, false);
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(paused, 1)
            .add(algorithm(TestAlgorithms.POOL, Map.of()), 3)
            .optReportPath(report)
            .build();
    try (Model model = TestModels.model("sigterm");
        NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 5);
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        AtomicBoolean ended = new AtomicBoolean();
        Thread hook = paused.onceEntered(() -> ended.set(listener.onProgramEnd()));
        Thread releaser =
            paused.onceEntered(
                () -> {
                  Thread.sleep(300); // the hook is waiting by now
                  paused.release.countDown();
                });
        EasyTrain.fit(trainer, 1, dataset, null);
        hook.join(30_000);
        releaser.join(30_000);
        assertTrue(ended.get(), "the trainer was still training");
        assertEquals(1, TestModels.count(model.getBlock(), "FreshConv2d"), "applied");
      }
      JsonObject log = read(report);
      JsonArray apps = log.getAsJsonArray("applications");
      assertEquals(1, apps.size(), log.toString());
      assertEquals("applied", apps.get(0).getAsJsonObject().get("status").getAsString());
      JsonArray notRun = log.getAsJsonArray("not_run");
      assertEquals(1, notRun.size(), "only t_pool: " + log);
      assertNotRun(notRun.get(0).getAsJsonObject(), 1, PROGRAM_ENDED);
    }
  }

  /** After the end no application begins, and a second end says the program had ended already. */
  @Test
  void afterTheEndNoApplicationBeginsAndASecondEndSaysSo() {
    ProgramEnd programEnd = new ProgramEnd();
    assertTrue(programEnd.beginApplying());
    programEnd.doneApplying();
    assertFalse(programEnd.ended());
    assertTrue(programEnd.end(0));
    assertTrue(programEnd.ended());
    assertFalse(programEnd.beginApplying(), "nothing is applied after the end");
    assertFalse(programEnd.end(0), "it had ended");
  }

  /**
   * The end (a shutdown hook) waits for an application under way on the training thread, here one
   * inside another whose inner part is done, and returns once the outer one is done (the thread
   * training on), well within the limit it was given, leaving the hook's thread uninterrupted.
   */
  @Test
  // A wait that never ends fails here rather than stalling the build.
  @Timeout(value = 60, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
  void theEndReturnsOnlyOnceAnApplicationUnderWayOnAnotherThreadIsDone() throws Exception {
    ProgramEnd programEnd = new ProgramEnd();
    CountDownLatch began = new CountDownLatch(1);
    CountDownLatch release = new CountDownLatch(1);
    CountDownLatch trainsOn = new CountDownLatch(1);
    AtomicBoolean done = new AtomicBoolean();
    Thread training =
        new Thread(
            () -> {
              programEnd.beginApplying();
              programEnd.beginApplying();
              programEnd.doneApplying(); // the inner application: the outer is still under way
              began.countDown();
              try {
                release.await();
              } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
              }
              done.set(true);
              programEnd.doneApplying();
              try {
                trainsOn.await(); // alive after its application, as a training thread is
              } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
              }
            });
    training.start();
    began.await();
    AtomicBoolean doneAtTheEnd = new AtomicBoolean();
    AtomicBoolean interrupted = new AtomicBoolean(true);
    Thread hook =
        new Thread(
            () -> {
              programEnd.end(600_000);
              doneAtTheEnd.set(done.get());
              interrupted.set(Thread.currentThread().isInterrupted());
            });
    hook.start();
    awaitWaitingOrEnded(hook);
    release.countDown();
    hook.join();
    trainsOn.countDown();
    training.join();
    assertTrue(doneAtTheEnd.get(), "the end returned while the application was under way");
    assertFalse(interrupted.get(), "no interrupt to pass on");
  }

  /** A hook interrupted while it waits stops waiting and keeps the interrupt for its caller. */
  @Test
  // A wait that never ends fails here rather than stalling the build.
  @Timeout(value = 60, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
  void anEndInterruptedWhileItWaitsReturnsKeepingTheInterrupt() throws Exception {
    ProgramEnd programEnd = new ProgramEnd();
    CountDownLatch began = new CountDownLatch(1);
    CountDownLatch release = new CountDownLatch(1);
    Thread training =
        new Thread(
            () -> {
              programEnd.beginApplying();
              began.countDown();
              try {
                release.await();
              } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
              }
              programEnd.doneApplying();
            });
    training.start();
    began.await();
    AtomicBoolean ended = new AtomicBoolean();
    AtomicBoolean interrupted = new AtomicBoolean();
    Thread hook =
        new Thread(
            () -> {
              ended.set(programEnd.end(600_000));
              interrupted.set(Thread.currentThread().isInterrupted());
            });
    hook.start();
    awaitWaitingOrEnded(hook);
    hook.interrupt();
    hook.join();
    release.countDown();
    training.join();
    assertTrue(ended.get());
    assertTrue(interrupted.get(), "the interrupt is the caller's to handle");
  }

  /** Returns once {@code thread} waits with a limit (inside the end's wait) or has ended. */
  private static void awaitWaitingOrEnded(Thread thread) {
    while (thread.isAlive() && thread.getState() != Thread.State.TIMED_WAITING) {
      Thread.onSpinWait();
    }
  }

  @Test
  void whileTrainingRunsTheLogOnDiskIsThisJobsAndReadsCutShort() throws Exception {
    // What a job killed outright (SIGKILL, the OOM killer) leaves: no hook runs, so the file on
    // disk at that moment is all there is. It must not read as complete, nor be the last job's.
    Path report = tmp.resolve("log.json");
    String previousJob =
        "{\"applications\": [{\"algorithm\": \"t_pool\", \"epoch\": 3}], \"not_run\": []}";
    Files.writeString(report, previousJob);
    SurgeryListener listener = listener(report);
    try (Model model = TestModels.model("killed");
        NDManager data = NDManager.newBaseManager()) {
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        // Training began (the Trainer's constructor): killed now, before any surgery.
        JsonObject log = read(report);
        assertTrue(log.get("cut_short").getAsBoolean(), log.toString());
        assertEquals(0, log.getAsJsonArray("applications").size(), log.toString());
        JsonArray notRun = log.getAsJsonArray("not_run");
        assertEquals(2, notRun.size(), log.toString());
        assertEquals(
            List.of(TestAlgorithms.FRESH_CONV, TestAlgorithms.POOL),
            List.of(
                notRun.get(0).getAsJsonObject().get("algorithm").getAsString(),
                notRun.get(1).getAsJsonObject().get("algorithm").getAsString()));
        assertTrue(
            notRun
                .get(0)
                .getAsJsonObject()
                .get("reason")
                .getAsString()
                .startsWith(
                    "not reached yet: training was running when this log was written, after 0"
                        + " completed epochs"),
            log.toString());

        trainer.initialize(INPUT);
        EasyTrain.fit(trainer, 1, TestModels.dataset(data, 5), null);
        // Killed after epoch 1's surgery: it is listed as applied, the rest as not reached yet.
        log = read(report);
        assertTrue(log.get("cut_short").getAsBoolean(), log.toString());
        assertEquals(1, log.getAsJsonArray("applications").size(), log.toString());
        assertEquals(1, log.getAsJsonArray("not_run").size(), log.toString());
        assertTrue(
            log.getAsJsonArray("not_run")
                .get(0)
                .getAsJsonObject()
                .get("reason")
                .getAsString()
                .contains("after 1 completed epoch"),
            log.toString());
      }
    }
    // Training ended: the log is complete, with the true reason.
    JsonObject log = read(report);
    assertEquals(Set.of("applications", "not_run"), log.keySet(), log.toString());
    assertNotRun(
        log.getAsJsonArray("not_run").get(0).getAsJsonObject(),
        1,
        "training ended after 1 completed epoch");
  }

  /**
   * Trainers of one listener training at once (trials side by side): the log written while they run
   * lists their entries not reached yet by trainer, in the order the trainers began, two each.
   */
  @Test
  void theEntriesNotReachedYetOfTrainersTrainingAtOnceComeInTrainerOrder() throws Exception {
    Path report = tmp.resolve("log.json");
    SurgeryListener listener = listener(report);
    List<Model> models = new ArrayList<>();
    List<Trainer> trainers = new ArrayList<>();
    try {
      for (int i = 0; i < 6; i++) {
        models.add(TestModels.model("side-by-side-" + i));
        trainers.add(models.get(i).newTrainer(TestModels.config(listener)));
      }
      // The sixth trainer's begin wrote the log.
      JsonArray notRun = read(report).getAsJsonArray("not_run");
      List<Integer> order = new ArrayList<>();
      notRun.forEach(e -> order.add(e.getAsJsonObject().get("trainer").getAsInt()));
      assertEquals(List.of(1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6), order, notRun.toString());
    } finally {
      trainers.forEach(Trainer::close);
      models.forEach(Model::close);
    }
  }

  @Test
  void aProgramWhoseTrainingEndedKeepsTheLogTrainingEndWrote() throws Exception {
    Path report = tmp.resolve("log.json");
    SurgeryListener listener = listener(report);
    try (Model model = TestModels.model("complete");
        NDManager data = NDManager.newBaseManager()) {
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        EasyTrain.fit(trainer, 1, TestModels.dataset(data, 5), null);
      }
    }
    String written = Files.readString(report);
    JsonObject log = read(report);
    assertEquals(Set.of("applications", "not_run"), log.keySet(), log.toString());
    assertNotRun(
        log.getAsJsonArray("not_run").get(0).getAsJsonObject(),
        1,
        "training ended after 1 completed epoch");

    assertFalse(listener.onProgramEnd());
    assertEquals(written, Files.readString(report), "a complete run's log is left alone");
  }

  @Test
  void onlyTheTrainerThatWasStillTrainingIsCutShort() throws Exception {
    Path report = tmp.resolve("log.json");
    SurgeryListener listener = listener(report);
    try (Model first = TestModels.model("first");
        Model second = TestModels.model("second");
        NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 5);
      try (Trainer trainer = first.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        EasyTrain.fit(trainer, 1, dataset, null);
      }
      try (Trainer trainer = second.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        EasyTrain.fit(trainer, 1, dataset, null);
        assertTrue(listener.onProgramEnd());
      }
    }
    JsonObject log = read(report);
    assertTrue(log.get("cut_short").getAsBoolean(), log.toString());
    assertEquals(2, log.getAsJsonArray("applications").size(), log.toString());
    JsonArray notRun = log.getAsJsonArray("not_run");
    assertEquals(2, notRun.size(), log.toString());
    assertNotRun(notRun.get(0).getAsJsonObject(), 1, "training ended after 1 completed epoch");
    assertNotRun(notRun.get(1).getAsJsonObject(), 2, PROGRAM_ENDED);
    assertEquals(
        List.of("cut_short", "applications", "not_run"),
        List.copyOf(log.keySet()),
        "the mark comes first, where a reader sees it");
  }
}
