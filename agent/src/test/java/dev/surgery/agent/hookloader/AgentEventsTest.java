package dev.surgery.agent.hookloader;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.core.events.Event;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

/**
 * The agent's event bookkeeping, driven by the instrumented calls in the order DJL 0.36.0 makes
 * them, against the event order written down in {@link Event} (the oracle is that grammar, built
 * here independently of the code under test).
 */
class AgentEventsTest {

  /** The events of a first training batch, in order. */
  private static final List<Event> FIRST_BATCH =
      List.of(
          Event.EPOCH_START,
          Event.BATCH_START,
          Event.AFTER_FORWARD,
          Event.AFTER_BACKWARD,
          Event.BATCH_END);

  private final Object trainer = new Object();
  private final List<Event> seen = Collections.synchronizedList(new ArrayList<>());
  private final List<String> eventThreads = Collections.synchronizedList(new ArrayList<>());
  private final AgentEvents events = new AgentEvents(this::record);

  private Runnable onBatchEnd = () -> {};
  private Runnable onBatchStart = () -> {};
  private Runnable onAfterForward = () -> {};

  private void record(Event event, Object t) {
    assertEquals(trainer, t);
    seen.add(event);
    eventThreads.add(Thread.currentThread().getName());
    if (event == Event.BATCH_END) {
      onBatchEnd.run();
    }
    if (event == Event.BATCH_START) {
      onBatchStart.run();
    }
    if (event == Event.AFTER_FORWARD) {
      onAfterForward.run();
    }
  }

  /** DJL's onEpoch: the agent's tracking listener, then the surgery listener (EPOCH_END). */
  private void onEpoch() {
    events.epochEnding(trainer);
    seen.add(Event.EPOCH_END);
  }

  /** What EasyTrain.trainBatch and Trainer.step do for one single-device batch. */
  private void batch() {
    events.forwardStarting(trainer);
    events.forwardEnded(trainer);
    events.backwardEnded(trainer);
    events.stepEnded(trainer);
  }

  private static List<Event> expectedFit(int epochs, int batches, boolean validation) {
    List<Event> out = new ArrayList<>(List.of(Event.INIT, Event.FIT_START));
    for (int e = 0; e < epochs; e++) {
      out.add(Event.EPOCH_START);
      for (int b = 0; b < batches; b++) {
        out.addAll(
            List.of(Event.BATCH_START, Event.AFTER_FORWARD, Event.AFTER_BACKWARD, Event.BATCH_END));
      }
      if (validation) {
        out.addAll(List.of(Event.EVAL_START, Event.EVAL_END));
      }
      out.add(Event.EPOCH_END);
    }
    out.add(Event.FIT_END);
    return out;
  }

  /**
   * An outside tester: a plugin that evaluated on a helper thread at BATCH_START and waited for it
   * hung for good under the agent (the helper's {@code Trainer.evaluate} waited for the handler),
   * where the library runs it. A helper's evaluations while an event is handled are the handler's
   * own: they neither wait nor report.
   */
  @Test
  void aHandlerMayWaitForAnEvaluationOnAHelperThread() throws Exception {
    events.track(trainer);
    java.util.concurrent.ExecutorService helper =
        java.util.concurrent.Executors.newSingleThreadExecutor();
    AtomicBoolean helperDone = new AtomicBoolean();
    try {
      onBatchStart =
          () -> {
            try {
              helper
                  .submit(
                      () -> {
                        events.evaluateStarting(trainer);
                        events.evaluateDatasetStarting(trainer);
                        events.evaluateStarting(trainer);
                        events.evaluateDatasetEnded(trainer);
                      })
                  .get(10, java.util.concurrent.TimeUnit.SECONDS);
              helperDone.set(true);
            } catch (Exception e) {
              throw new IllegalStateException("the helper's evaluation waited for the handler", e);
            }
          };
      batch();
      onBatchStart = () -> {};
      batch();
    } finally {
      helper.shutdownNow();
    }
    assertEquals(true, helperDone.get());
    List<Event> expected = new ArrayList<>(FIRST_BATCH);
    expected.addAll(
        List.of(Event.BATCH_START, Event.AFTER_FORWARD, Event.AFTER_BACKWARD, Event.BATCH_END));
    assertEquals(expected, seen, "the helper's evaluation reports nothing");
    // The program's own evaluation afterwards is reported as usual.
    events.evaluateDatasetStarting(trainer);
    events.evaluateDatasetEnded(trainer);
    assertEquals(Event.EVAL_END, seen.get(seen.size() - 1));
  }

  /**
   * An outside probe: a plugin started a helper thread at an epoch end that kept calling {@code
   * Trainer.evaluate} and returned without waiting for it. Under the agent the helper's calls after
   * the handler returned opened an evaluation in the middle of training (EVAL_START on the helper
   * thread, EVAL_END at the main thread's next forward), so event-driven plugins ran on the helper,
   * between a forward and the step. No loop evaluates in the middle of a batch: another thread's
   * evaluation there is not the loop's.
   */
  @Test
  void aHelperThreadsEvaluationsAfterTheHandlerReturnedAreNotTheLoops() throws Exception {
    events.track(trainer);
    java.util.concurrent.CountDownLatch go = new java.util.concurrent.CountDownLatch(1);
    java.util.concurrent.CountDownLatch evaluated = new java.util.concurrent.CountDownLatch(1);
    java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
    Thread helper =
        new Thread(
            () -> {
              try {
                go.await();
                events.evaluateStarting(trainer);
                events.evaluateDatasetStarting(trainer);
                events.evaluateStarting(trainer);
                events.evaluateDatasetEnded(trainer);
                evaluated.countDown();
                release.await(); // still alive while the loop trains on, as a lingering helper is
              } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
              }
            },
            "lingering-evaluator");
    helper.setDaemon(true);
    onBatchEnd =
        () -> {
          onBatchEnd = () -> {};
          helper.start(); // the handler returns without waiting for it
        };
    try {
      batch();
      events.forwardStarting(trainer);
      events.forwardEnded(trainer);
      go.countDown(); // the helper evaluates between the next forward and its step
      assertTrue(evaluated.await(10, java.util.concurrent.TimeUnit.SECONDS));
      events.backwardEnded(trainer);
      events.stepEnded(trainer);
      onEpoch();
      List<Event> expected = new ArrayList<>(FIRST_BATCH);
      expected.addAll(
          List.of(
              Event.BATCH_START,
              Event.AFTER_FORWARD,
              Event.AFTER_BACKWARD,
              Event.BATCH_END,
              Event.EPOCH_END));
      assertEquals(expected, seen, "the helper's evaluations are not the training loop's");
      // The loop's own evaluation on its training thread still reports while the helper lives.
      events.evaluateStarting(trainer);
      events.forwardStarting(trainer);
      assertEquals(
          List.of(Event.EVAL_START, Event.EVAL_END, Event.EPOCH_START, Event.BATCH_START),
          seen.subList(expected.size(), seen.size()));
      assertEquals(Set.of(Thread.currentThread().getName()), Set.copyOf(eventThreads));
    } finally {
      release.countDown();
      helper.join(10_000);
    }
  }

  /**
   * A program that trains on a thread of its own and evaluates the trained model on {@code main}
   * after that thread ended: with no live training thread left, the evaluation is the loop's.
   */
  @Test
  void anEvaluationAfterTheTrainingThreadEndedIsTheLoops() throws Exception {
    events.track(trainer);
    Thread training = new Thread(this::batch, "training");
    training.start();
    training.join();
    events.evaluateDatasetStarting(trainer);
    events.evaluateStarting(trainer);
    events.evaluateDatasetEnded(trainer);
    List<Event> expected = new ArrayList<>(FIRST_BATCH);
    expected.addAll(List.of(Event.EVAL_START, Event.EVAL_END));
    assertEquals(expected, seen);
  }

  /**
   * A loop that trains on a worker and validates on {@code main} while the worker waits (a hand-off
   * between threads), or validates on an executor while the training thread waits: between batches
   * the evaluation is the loop's, though the training thread is alive (an outside probe found a
   * rule that counted only the training thread's evaluations dropping these).
   */
  @Test
  void anotherThreadsEvaluationBetweenBatchesIsTheLoops() throws Exception {
    events.track(trainer);
    java.util.concurrent.CountDownLatch trained = new java.util.concurrent.CountDownLatch(1);
    java.util.concurrent.CountDownLatch validated = new java.util.concurrent.CountDownLatch(1);
    Thread worker =
        new Thread(
            () -> {
              batch();
              trained.countDown();
              try {
                validated.await(); // waits for main's validation, then ends its epoch
              } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
              }
              onEpoch();
            },
            "worker");
    worker.start();
    try {
      assertTrue(trained.await(10, java.util.concurrent.TimeUnit.SECONDS));
      events.evaluateDatasetStarting(trainer);
      events.evaluateStarting(trainer);
      events.evaluateDatasetEnded(trainer);
    } finally {
      validated.countDown();
      worker.join(10_000);
    }
    List<Event> expected = new ArrayList<>(FIRST_BATCH);
    expected.addAll(List.of(Event.EVAL_START, Event.EVAL_END, Event.EPOCH_END));
    assertEquals(expected, seen);
  }

  @Test
  void easyTrainFitReportsEachEventOncePerOccurrenceInOrder() {
    events.track(trainer);
    events.initialized(trainer);
    events.fitStarting(trainer);
    for (int e = 0; e < 2; e++) {
      for (int b = 0; b < 3; b++) {
        batch();
      }
      events.evaluateDatasetStarting(trainer);
      for (int v = 0; v < 2; v++) {
        events.evaluateStarting(trainer); // EasyTrain.validateSplit -> Trainer.evaluate
      }
      events.evaluateDatasetEnded(trainer);
      onEpoch();
    }
    events.fitEnded(trainer);
    assertEquals(expectedFit(2, 3, true), seen);
  }

  @Test
  void handWrittenLoopWithTrainerEvaluateClosesTheEvaluationBeforeTheEpochEnds() {
    events.track(trainer);
    events.initialized(trainer);
    for (int e = 0; e < 2; e++) {
      for (int b = 0; b < 2; b++) {
        batch();
      }
      for (int v = 0; v < 3; v++) {
        events.evaluateStarting(trainer);
      }
      onEpoch();
    }
    List<Event> expected = new ArrayList<>(expectedFit(2, 2, true));
    expected.remove(Event.FIT_START);
    expected.remove(Event.FIT_END);
    assertEquals(expected, seen);
  }

  @Test
  void evaluationInTheMiddleOfAnEpochEndsAtTheNextTrainingForward() {
    events.track(trainer);
    batch();
    events.evaluateStarting(trainer);
    batch();
    events.trainingEnding(trainer); // Trainer.close without an open evaluation: nothing
    assertEquals(
        List.of(
            Event.EPOCH_START,
            Event.BATCH_START,
            Event.AFTER_FORWARD,
            Event.AFTER_BACKWARD,
            Event.BATCH_END,
            Event.EVAL_START,
            Event.EVAL_END,
            Event.BATCH_START,
            Event.AFTER_FORWARD,
            Event.AFTER_BACKWARD,
            Event.BATCH_END),
        seen);
  }

  @Test
  void gradientAccumulationIsOneBatchPerStep() {
    events.track(trainer);
    for (int micro = 0; micro < 3; micro++) {
      events.forwardStarting(trainer);
      events.forwardEnded(trainer);
      events.backwardEnded(trainer);
    }
    events.stepEnded(trainer);
    assertEquals(FIRST_BATCH, seen);
  }

  @Test
  void callsMadeWhileAnEventIsHandledReportNothing() {
    events.track(trainer);
    // An algorithm that runs its own forward passes and steps at BATCH_END.
    onBatchEnd =
        () -> {
          events.forwardStarting(trainer);
          events.forwardEnded(trainer);
          events.stepEnded(trainer);
          events.evaluateStarting(trainer);
        };
    batch();
    batch();
    assertEquals(expectedFit(1, 2, false).subList(2, 11), seen);
  }

  /**
   * A parallel executor trains the splits of one batch on several threads. While one thread's
   * BATCH_START is handled (a surgery may be running), another split's calls must wait and then
   * count: neither run beside the surgery nor be taken for the handler's own calls and lost.
   */
  @Test
  void anotherThreadsCallsWaitForTheEventAndAreCounted() throws Exception {
    events.track(trainer);
    Thread split =
        new Thread(
            () -> {
              events.forwardStarting(trainer);
              events.forwardEnded(trainer);
              events.backwardEnded(trainer);
            });
    AtomicBoolean splitDoneDuringHandler = new AtomicBoolean();
    onBatchStart =
        () -> {
          split.start();
          try {
            split.join(500);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          }
          splitDoneDuringHandler.set(!split.isAlive());
        };
    events.forwardStarting(trainer);
    split.join();
    events.stepEnded(trainer);
    assertFalse(splitDoneDuringHandler.get(), "the other split ran while BATCH_START was handled");
    assertEquals(FIRST_BATCH, seen);
  }

  /** Runs a task on the helper thread and waits for it. */
  private static void on(java.util.concurrent.ExecutorService thread, Runnable task)
      throws Exception {
    thread.submit(task).get(10, java.util.concurrent.TimeUnit.SECONDS);
  }

  /** Waits for a latch, failing after ten seconds instead of hanging. */
  private static void await(java.util.concurrent.CountDownLatch latch) {
    try {
      assertTrue(latch.await(10, java.util.concurrent.TimeUnit.SECONDS), "timed out");
    } catch (InterruptedException e) {
      throw new IllegalStateException(e);
    }
  }

  /**
   * {@code EasyTrain.fit} starting on one thread while another thread has a batch open, between its
   * forward and its step. The fit is a training call like {@code forward} and {@code step()}: it
   * waits while the other thread handles an event (nothing runs beside a surgery), but it is
   * neither refused nor held until that batch ends (the other thread may be waiting for the fit):
   * FIT_START is reported once, at once, and the fit's thread is the one that trains from then on
   * (agent README: the thread of the latest training forward, step() or EasyTrain.fit), so the
   * other thread's evaluation in the middle of its batch is not the loop's. The batch stays the one
   * the other thread opened, ended by its step; the fit's first forward opens the next.
   */
  @Test
  void aFitStartedWhileAnotherThreadsBatchIsOpenWaitsOnlyForItsHandler() throws Exception {
    events.track(trainer);
    java.util.concurrent.CountDownLatch handling = new java.util.concurrent.CountDownLatch(1);
    java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
    java.util.concurrent.CountDownLatch forwarded = new java.util.concurrent.CountDownLatch(1);
    java.util.concurrent.CountDownLatch stepNow = new java.util.concurrent.CountDownLatch(1);
    onAfterForward =
        () -> {
          onAfterForward = () -> {};
          handling.countDown();
          await(release); // a handler still running when the fit starts
        };
    Thread loop =
        new Thread(
            () -> {
              events.forwardStarting(trainer);
              events.forwardEnded(trainer);
              forwarded.countDown();
              await(stepNow);
              events.evaluateStarting(trainer); // mid-batch, another thread trains now
              events.backwardEnded(trainer);
              events.stepEnded(trainer);
            },
            "loop");
    Thread[] fitThread = new Thread[1];
    java.util.concurrent.ExecutorService fit =
        java.util.concurrent.Executors.newSingleThreadExecutor(
            r -> fitThread[0] = new Thread(r, "fit"));
    try {
      loop.start();
      await(handling);
      java.util.concurrent.Future<?> started = fit.submit(() -> events.fitStarting(trainer));
      long deadline = System.nanoTime() + 10_000_000_000L;
      // Blocked on the trainer's state (waiting, should the lock ever be another kind).
      while (fitThread[0].getState() == Thread.State.NEW
          || fitThread[0].getState() == Thread.State.RUNNABLE) {
        assertTrue(System.nanoTime() < deadline, "the fit never waited");
        Thread.onSpinWait();
      }
      assertFalse(started.isDone(), "the fit returned while the other thread handled an event");
      assertFalse(seen.contains(Event.FIT_START), "FIT_START beside the other thread's handler");
      release.countDown();
      started.get(10, java.util.concurrent.TimeUnit.SECONDS); // the batch is still open
      await(forwarded);
      assertEquals(
          List.of(Event.EPOCH_START, Event.BATCH_START, Event.AFTER_FORWARD, Event.FIT_START),
          seen);
      stepNow.countDown();
      loop.join(10_000);
      assertFalse(loop.isAlive());
      on(fit, this::batch); // the fit's first batch
    } finally {
      release.countDown();
      stepNow.countDown();
      fit.shutdownNow();
    }
    assertEquals(
        List.of(
            Event.EPOCH_START,
            Event.BATCH_START,
            Event.AFTER_FORWARD,
            Event.FIT_START,
            Event.AFTER_BACKWARD,
            Event.BATCH_END,
            Event.BATCH_START,
            Event.AFTER_FORWARD,
            Event.AFTER_BACKWARD,
            Event.BATCH_END),
        seen);
    assertEquals("fit", eventThreads.get(3));
  }

  /**
   * The thread that trains is the one of the latest training forward: a loop that moved from a
   * worker to main (the worker still alive) makes the worker's evaluation in the middle of main's
   * batch not the loop's.
   */
  @Test
  void theLatestTrainingForwardsThreadIsTheTrainingThread() throws Exception {
    events.track(trainer);
    java.util.concurrent.ExecutorService worker =
        java.util.concurrent.Executors.newSingleThreadExecutor();
    try {
      on(worker, this::batch);
      events.forwardStarting(trainer);
      on(worker, () -> events.evaluateStarting(trainer));
      events.forwardEnded(trainer);
      events.backwardEnded(trainer);
      events.stepEnded(trainer);
    } finally {
      worker.shutdownNow();
    }
    List<Event> expected = new ArrayList<>(FIRST_BATCH);
    expected.addAll(FIRST_BATCH.subList(1, FIRST_BATCH.size()));
    assertEquals(expected, seen, "no evaluation opened between main's forward and its step");
  }

  /**
   * A thread's dataset evaluation that was not the loop's (in the middle of another thread's batch)
   * ends without a word; the same thread's next one, between batches, is the loop's and reports
   * both its start and its end.
   */
  @Test
  void aThreadsEvaluationAfterOneThatWasNotTheLoopsReportsItsEnd() throws Exception {
    events.track(trainer);
    java.util.concurrent.ExecutorService helper =
        java.util.concurrent.Executors.newSingleThreadExecutor();
    Runnable evaluateDataset =
        () -> {
          events.evaluateDatasetStarting(trainer);
          events.evaluateDatasetEnded(trainer);
        };
    try {
      events.forwardStarting(trainer);
      on(
          helper,
          () -> {
            // mid-batch: not the loop's; one nested in another, then one alone
            events.evaluateDatasetStarting(trainer);
            evaluateDataset.run();
            events.evaluateDatasetEnded(trainer);
            evaluateDataset.run();
          });
      events.forwardEnded(trainer);
      events.backwardEnded(trainer);
      events.stepEnded(trainer);
      on(helper, evaluateDataset); // between batches: the loop's
    } finally {
      helper.shutdownNow();
    }
    List<Event> expected = new ArrayList<>(FIRST_BATCH);
    expected.addAll(List.of(Event.EVAL_START, Event.EVAL_END));
    assertEquals(expected, seen);
  }

  /**
   * A dataset evaluation's end without its start (a handler that threw at EVAL_START left the count
   * as it was) does not make the next evaluation's start go unreported.
   */
  @Test
  void anUnmatchedEvaluationEndLeavesTheNextEvaluationReported() {
    events.track(trainer);
    events.evaluateDatasetEnded(trainer);
    events.evaluateDatasetStarting(trainer);
    events.evaluateDatasetEnded(trainer);
    assertEquals(List.of(Event.EVAL_START, Event.EVAL_END), seen);
  }

  @Test
  void closingTheTrainerOrStartingFitEndsAnOpenEvaluation() {
    events.track(trainer);
    events.evaluateStarting(trainer);
    events.fitStarting(trainer);
    events.evaluateStarting(trainer);
    events.fitEnded(trainer);
    events.evaluateStarting(trainer);
    events.trainingEnding(trainer);
    assertEquals(
        List.of(
            Event.EVAL_START,
            Event.EVAL_END,
            Event.FIT_START,
            Event.EVAL_START,
            Event.EVAL_END,
            Event.FIT_END,
            Event.EVAL_START,
            Event.EVAL_END),
        seen);
  }

  @Test
  void anEpochWithoutATrainingBatchStartsBeforeItEnds() {
    events.track(trainer);
    onEpoch();
    onEpoch();
    assertEquals(
        List.of(Event.EPOCH_START, Event.EPOCH_END, Event.EPOCH_START, Event.EPOCH_END), seen);
  }

  @Test
  void loadEventsGoToTrackedTrainersAndTrainersListsThoseThatMatch() {
    Object other = new Object();
    assertFalse(events.tracks(trainer));
    events.track(trainer);
    events.track(other);
    assertTrue(events.tracks(trainer));
    assertEquals(List.of(trainer), events.trainers(t -> t == trainer));
    assertEquals(Set.of(trainer, other), Set.copyOf(events.trainers(t -> true)));
    events.load(Event.BEFORE_LOAD, trainer);
    events.load(Event.AFTER_LOAD, trainer);
    new AgentEvents(this::record).load(Event.BEFORE_LOAD, trainer); // not tracked there
    assertEquals(List.of(Event.BEFORE_LOAD, Event.AFTER_LOAD), seen);
  }

  /**
   * Only the first training forward of a tracked trainer is the first, and the question runs the
   * action before it; neither counts for the handler's own forwards nor for untracked trainers.
   */
  @Test
  void theFirstTrainingForwardIsAskedOncePerTrainer() {
    List<String> actions = new ArrayList<>();
    assertFalse(events.firstTrainingForward(trainer), "not tracked");
    events.beforeFirstForward(trainer, () -> actions.add("untracked"));
    events.track(trainer);
    onBatchStart =
        () -> {
          assertFalse(events.firstTrainingForward(trainer), "the handler's own forward");
          events.beforeFirstForward(trainer, () -> actions.add("handler"));
        };
    events.forwardStarting(trainer);
    onBatchStart = () -> {};
    assertTrue(events.firstTrainingForward(trainer));
    events.beforeFirstForward(trainer, () -> actions.add("program"));
    assertFalse(events.firstTrainingForward(trainer));
    assertFalse(events.firstTrainingForward(trainer));
    assertEquals(List.of("program"), actions);
  }

  /**
   * Two splits of the first batch ask at once: the one that waited for the trainer's state while
   * the other answered is not the first (it would initialize the model a second time).
   */
  @Test
  void aForwardThatWaitedWhileTheFirstWasAnsweredIsNotTheFirst() throws Exception {
    events.track(trainer);
    AtomicBoolean otherFirst = new AtomicBoolean(true);
    Thread other = new Thread(() -> otherFirst.set(events.firstTrainingForward(trainer)));
    // beforeFirstForward holds the trainer's state while its action runs.
    events.beforeFirstForward(
        trainer,
        () -> {
          other.start();
          // Blocked on the trainer's monitor (waiting, should the lock ever be another kind).
          long deadline = System.nanoTime() + 10_000_000_000L;
          while (other.getState() == Thread.State.NEW
              || other.getState() == Thread.State.RUNNABLE) {
            assertTrue(System.nanoTime() < deadline, "the other split never waited");
            Thread.onSpinWait();
          }
          assertTrue(events.firstTrainingForward(trainer), "this thread's is the first");
        });
    other.join(10_000);
    assertFalse(otherFirst.get(), "the split that waited is not the first");
  }

  @Test
  void trainersTheAgentDidNotAttachToAreIgnored() {
    events.initialized(trainer);
    batch();
    events.evaluateDatasetStarting(trainer);
    events.evaluateDatasetEnded(trainer);
    events.fitEnded(trainer);
    assertEquals(List.of(), seen);
  }
}
