package dev.surgery.agent.hookloader;

import dev.surgery.core.events.Event;
import dev.surgery.core.internal.WeakIdentityMap;
import java.lang.ref.WeakReference;
import java.util.List;
import java.util.function.BiConsumer;
import java.util.stream.Collectors;

/**
 * Turns the instrumented DJL calls of each trainer into training {@link Event}s, each exactly once
 * per occurrence, whether the program trains with {@code EasyTrain.fit} or its own loop. Some
 * instrumented methods call others ({@code EasyTrain.fit} calls {@code evaluateDataset}, which
 * calls {@code Trainer.evaluate}), so a call is not an event by itself: what one event needs beyond
 * its own call, including whether an evaluation is already open, is kept per trainer:
 *
 * <ul>
 *   <li>a batch is open from its first training {@code Trainer.forward} to the {@code
 *       Trainer.step()} that ends it: {@link Event#BATCH_START} fires at the first forward only,
 *       {@link Event#AFTER_FORWARD} and {@link Event#AFTER_BACKWARD} once per batch (at the exit of
 *       its first forward and its first backward), {@link Event#BATCH_END} after the step;
 *   <li>an epoch is open from its first batch to DJL's {@code onEpoch}: {@link Event#EPOCH_START}
 *       fires before the first {@code BATCH_START} after {@code onEpoch} (or after the trainer was
 *       made); {@link Event#EPOCH_END} is the listener's own {@code onEpoch};
 *   <li>an evaluation is open inside {@code EasyTrain.evaluateDataset}, or, in a hand-written loop,
 *       from the first {@code Trainer.evaluate} after training to whichever comes first of the next
 *       training forward, {@code onEpoch}, the end of {@code fit} and {@code Trainer.close()}.
 * </ul>
 *
 * <p>Calls made by the thread handling an event (an algorithm's own forward passes) report nothing;
 * other threads' training calls wait until the event is handled (a parallel split of the batch must
 * not run beside a surgery). A handler must therefore not wait for training calls it hands to other
 * threads.
 *
 * <p>An evaluation is the training loop's unless it falls where the loop cannot evaluate: on
 * another thread while an event is handled (the handler's own helper, waited for), or on a thread
 * other than the one that trains the trainer (the thread of its latest training {@code forward},
 * {@code step()} or {@code EasyTrain.fit}) while that thread has a batch open, between its forward
 * and its step (a helper a handler left running): such an evaluation neither waits nor reports, or
 * it would open an evaluation in the middle of a batch and run event-driven algorithms there.
 * Between batches any thread's evaluation is the loop's: a loop that trains on one thread and
 * validates on another (a hand-off, an executor, the main thread after a pool trained) reports it.
 *
 * <p>Only trainers the agent attached its listener to are tracked ({@link #track}); calls for other
 * trainers are ignored. The state of a trainer goes when the trainer is garbage.
 */
final class AgentEvents {

  private final BiConsumer<Event, Object> sink;

  private final WeakIdentityMap<Object, Phase> phases = new WeakIdentityMap<>();

  /**
   * Creates the tracker.
   *
   * @param sink receives each event with its trainer (the listener's {@code onEvent})
   */
  AgentEvents(BiConsumer<Event, Object> sink) {
    this.sink = sink;
  }

  /**
   * Starts tracking a trainer the agent attached its listener to.
   *
   * @param trainer the trainer
   */
  void track(Object trainer) {
    phases.putIfAbsent(trainer, new Phase());
  }

  /**
   * Tells whether a trainer is tracked.
   *
   * @param trainer the trainer
   * @return true when the agent attached its listener to it
   */
  boolean tracks(Object trainer) {
    return phases.containsKey(trainer);
  }

  /**
   * Lists the tracked trainers that match a test (for the load events: the trainers of a model).
   *
   * @param test the test, for example "trains this model"
   * @return the trainers
   */
  List<Object> trainers(java.util.function.Predicate<Object> test) {
    synchronized (phases) {
      return phases.keys().stream().filter(test).collect(Collectors.toList());
    }
  }

  /** Exit of {@code Trainer.initialize}. */
  void initialized(Object trainer) {
    Phase p = phases.get(trainer);
    if (p != null && !p.firingHere()) {
      synchronized (p) {
        fire(p, Event.INIT, trainer);
      }
    }
  }

  /** Entry of {@code EasyTrain.fit}, after the planned epochs were passed on. */
  void fitStarting(Object trainer) {
    Phase p = phases.get(trainer);
    if (p != null && !p.firingHere()) {
      p.trainsHere();
      synchronized (p) {
        closeLazyEvaluation(p, trainer);
        fire(p, Event.FIT_START, trainer);
      }
    }
  }

  /** Normal return of {@code EasyTrain.fit}. */
  void fitEnded(Object trainer) {
    Phase p = phases.get(trainer);
    if (p != null && !p.firingHere()) {
      synchronized (p) {
        closeLazyEvaluation(p, trainer);
        fire(p, Event.FIT_END, trainer);
      }
    }
  }

  /**
   * Entry of a training {@code Trainer.forward} whose model is not initialized yet: runs {@code
   * action} (which may initialize the model, reporting {@link Event#INIT} through {@link
   * #initialized}) while holding the trainer's state, so that a parallel forward of the same batch
   * waits for it.
   *
   * @param trainer the trainer
   * @param action what to do before the forward
   */
  void beforeFirstForward(Object trainer, Runnable action) {
    Phase p = phases.get(trainer);
    if (p == null || p.firingHere()) {
      return;
    }
    synchronized (p) {
      action.run();
    }
  }

  /**
   * Tells, once per trainer, that this is its first training forward (not one the sink itself
   * makes): only then can the model still be uninitialized, so later forwards skip the question.
   *
   * @param trainer the trainer
   * @return true for the first training forward only
   */
  boolean firstTrainingForward(Object trainer) {
    Phase p = phases.get(trainer);
    if (p == null || p.firstForwardSeen || p.firingHere()) {
      return false;
    }
    synchronized (p) {
      boolean first = !p.firstForwardSeen;
      p.firstForwardSeen = true;
      return first;
    }
  }

  /** Entry of a training {@code Trainer.forward}. */
  void forwardStarting(Object trainer) {
    Phase p = phases.get(trainer);
    if (p == null || p.firingHere()) {
      return;
    }
    p.trainsHere();
    synchronized (p) {
      closeLazyEvaluation(p, trainer);
      if (!p.batchOpen) {
        if (!p.epochOpen) {
          p.epochOpen = true;
          fire(p, Event.EPOCH_START, trainer);
        }
        p.batchOpen = true;
        p.forwardReported = false;
        p.backwardReported = false;
        fire(p, Event.BATCH_START, trainer);
      }
    }
  }

  /** Normal return of a training {@code Trainer.forward}. */
  void forwardEnded(Object trainer) {
    Phase p = phases.get(trainer);
    if (p == null || p.firingHere()) {
      return;
    }
    synchronized (p) {
      if (p.batchOpen && !p.forwardReported) {
        p.forwardReported = true;
        fire(p, Event.AFTER_FORWARD, trainer);
      }
    }
  }

  /** Normal return of a gradient collector's {@code backward} for this trainer. */
  void backwardEnded(Object trainer) {
    Phase p = phases.get(trainer);
    if (p == null || p.firingHere()) {
      return;
    }
    synchronized (p) {
      if (p.batchOpen && !p.backwardReported) {
        p.backwardReported = true;
        fire(p, Event.AFTER_BACKWARD, trainer);
      }
    }
  }

  /** Normal return of {@code Trainer.step()}: every step is one batch end. */
  void stepEnded(Object trainer) {
    Phase p = phases.get(trainer);
    if (p == null || p.firingHere()) {
      return;
    }
    // After a parallel split's forwards on other threads, the step is back on the loop's thread.
    p.trainsHere();
    synchronized (p) {
      p.batchOpen = false;
      fire(p, Event.BATCH_END, trainer);
    }
  }

  /**
   * Entry of {@code Trainer.evaluate}: opens an evaluation unless one is open. One that is not the
   * training loop's (a handler's helper thread while it handles an event, or another thread while
   * the training thread is in the middle of a batch) reports nothing and does not wait, which could
   * wait for good.
   */
  void evaluateStarting(Object trainer) {
    Phase p = phases.get(trainer);
    // Not under the lock: a handler holds it while it waits for its helper's evaluation.
    if (p == null || p.firingHere() || p.firingElsewhere()) {
      return;
    }
    synchronized (p) {
      // Decided under the lock that opens it: no forward can open a batch in between.
      if (p.midBatchElsewhere()) {
        return;
      }
      if (p.datasetEvaluations == 0 && !p.lazyEvaluation) {
        p.lazyEvaluation = true;
        fire(p, Event.EVAL_START, trainer);
      }
    }
  }

  /** Entry of {@code EasyTrain.evaluateDataset} with a dataset (as {@link #evaluateStarting}). */
  void evaluateDatasetStarting(Object trainer) {
    Phase p = phases.get(trainer);
    if (p == null || p.firingHere()) {
      return;
    }
    if (p.firingElsewhere()) {
      p.othersEvaluations.merge(Thread.currentThread(), 1, Integer::sum);
      return;
    }
    synchronized (p) {
      if (p.midBatchElsewhere()) {
        p.othersEvaluations.merge(Thread.currentThread(), 1, Integer::sum);
        return;
      }
      if (p.lazyEvaluation) {
        // Already evaluating (the program called Trainer.evaluate first): one evaluation.
        p.lazyEvaluation = false;
      } else if (p.datasetEvaluations == 0) {
        fire(p, Event.EVAL_START, trainer);
      }
      p.datasetEvaluations++;
    }
  }

  /** Return (normal or not) of {@code EasyTrain.evaluateDataset} with a dataset. */
  void evaluateDatasetEnded(Object trainer) {
    Phase p = phases.get(trainer);
    if (p == null || p.firingHere()) {
      return;
    }
    Thread current = Thread.currentThread();
    Integer open = p.othersEvaluations.get(current); // only this thread changes its count
    if (open != null) {
      if (open > 1) {
        p.othersEvaluations.put(current, open - 1);
      } else {
        p.othersEvaluations.remove(current);
      }
      return; // one that was not the loop's when it started
    }
    synchronized (p) {
      if (p.datasetEvaluations > 0 && --p.datasetEvaluations == 0) {
        fire(p, Event.EVAL_END, trainer);
      }
    }
  }

  /**
   * DJL's {@code onEpoch}, seen by the agent's tracking listener just before the surgery listener
   * (whose {@code onEpoch} is {@link Event#EPOCH_END}).
   */
  void epochEnding(Object trainer) {
    Phase p = phases.get(trainer);
    if (p == null || p.firingHere()) {
      return;
    }
    synchronized (p) {
      closeLazyEvaluation(p, trainer);
      if (!p.epochOpen) {
        // An epoch without a training batch still starts before it ends.
        fire(p, Event.EPOCH_START, trainer);
      }
      p.epochOpen = false;
      p.batchOpen = false;
    }
  }

  /** DJL's {@code onTrainingEnd} ({@code Trainer.close()}). */
  void trainingEnding(Object trainer) {
    Phase p = phases.get(trainer);
    if (p == null || p.firingHere()) {
      return;
    }
    synchronized (p) {
      closeLazyEvaluation(p, trainer);
    }
  }

  /**
   * Reports a load event for a trainer.
   *
   * @param event {@link Event#BEFORE_LOAD} or {@link Event#AFTER_LOAD}
   * @param trainer a tracked trainer of the model being loaded
   */
  void load(Event event, Object trainer) {
    Phase p = phases.get(trainer);
    if (p == null || p.firingHere()) {
      return;
    }
    synchronized (p) {
      fire(p, event, trainer);
    }
  }

  /**
   * Hands an event to the sink. While the sink runs, this trainer's instrumented calls are the
   * algorithm's own (say, forward passes that re-estimate batch-norm statistics), not the
   * program's: they report nothing.
   */
  private void fire(Phase p, Event event, Object trainer) {
    p.firingThread = Thread.currentThread();
    try {
      sink.accept(event, trainer);
    } finally {
      p.firingThread = null;
    }
  }

  private void closeLazyEvaluation(Phase p, Object trainer) {
    if (p.lazyEvaluation) {
      p.lazyEvaluation = false;
      fire(p, Event.EVAL_END, trainer);
    }
  }

  /**
   * Where one trainer is in its training loop. Guarded by itself, except the threads (volatile) and
   * {@code othersEvaluations} (each thread's own count).
   */
  private static final class Phase {
    boolean epochOpen;
    boolean batchOpen;
    boolean forwardReported;
    boolean backwardReported;
    int datasetEvaluations;
    boolean lazyEvaluation;

    /**
     * Whether the first training forward was looked at (for a model never initialized); volatile so
     * that every later forward answers without taking the lock.
     */
    volatile boolean firstForwardSeen;

    /**
     * The thread running the sink, null otherwise. Only that thread's calls are the sink's own and
     * report nothing; another thread's call (a parallel executor's split of the same batch) waits
     * for the lock and is then counted, instead of being lost or racing with a surgery.
     */
    volatile Thread firingThread;

    boolean firingHere() {
      return firingThread == Thread.currentThread();
    }

    /**
     * The thread of the latest training call ({@code forward}, {@code step()}, {@code
     * EasyTrain.fit}), null before any. Weak, as the trainer's state must not keep a thread (and
     * whatever its task holds, the trainer included) from being collected.
     */
    volatile WeakReference<Thread> trainingThread;

    /** Records the calling thread as the one that trains the trainer. */
    void trainsHere() {
      WeakReference<Thread> known = trainingThread;
      Thread current = Thread.currentThread();
      if (known == null || known.get() != current) {
        trainingThread = new WeakReference<>(current);
      }
    }

    /** Whether another thread handles an event: an evaluation on this thread is the handler's. */
    boolean firingElsewhere() {
      Thread firing = firingThread;
      return firing != null && firing != Thread.currentThread();
    }

    /**
     * Whether another live thread trains the trainer and is in the middle of a batch, between its
     * forward and its step, where no loop evaluates. Asked holding this phase's lock. Between
     * batches any thread's evaluation is the loop's (so one a background thread runs while the loop
     * trains on is the loop's or not as it falls).
     */
    boolean midBatchElsewhere() {
      WeakReference<Thread> known = trainingThread;
      Thread training = known == null ? null : known.get();
      return batchOpen
          && training != null
          && training != Thread.currentThread()
          && training.isAlive();
    }

    /**
     * Dataset evaluations that were not the loop's when they started ({@link #firingElsewhere},
     * {@link #midBatchElsewhere}), per thread: their ends report nothing either.
     */
    final java.util.concurrent.ConcurrentHashMap<Thread, Integer> othersEvaluations =
        new java.util.concurrent.ConcurrentHashMap<>();
  }
}
