package dev.surgery.trainer;

import dev.surgery.core.SurgeryException;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.events.Event;
import dev.surgery.trainer.config.OnError;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import java.util.List;

/**
 * Reports an entry's failure as {@code on_error} says: a failed or skipped run is added to the
 * surgery log with the losses before it and marked in the trainer's schedule, and then either
 * training stops (the entries it keeps from running listed, a {@link SurgeryFailedException}) or
 * the failure is logged at ERROR and training goes on. Whatever {@code on_error} says, a failure
 * stops training where the algorithm had changed the model before it failed (nothing undoes or
 * records that change) or the JVM is failing. Kept apart from the run itself ({@link EntryRunner})
 * because every way an entry can fail is reported here: the run, a check before it, a length proved
 * wrong later (told in its own words), a stop before training starts (whose exception its caller
 * throws); {@link LoadEventEntries} asks it too whether a failure at a model's load stops the load.
 */
final class FailedEntries {

  private final List<ScheduledAlgorithm> schedule;
  private final OnError onError;
  private final TrainingLength length;
  private final ListenerWarnings warnings;
  private final SurgeryLogWriter surgeryLog;
  private final NotRunEntries notRun;

  /** Whether the program ended: a failure then is reported only for the application under way. */
  private final ProgramEnd programEnd;

  FailedEntries(
      List<ScheduledAlgorithm> schedule,
      OnError onError,
      TrainingLength length,
      ListenerWarnings warnings,
      SurgeryLogWriter surgeryLog,
      NotRunEntries notRun,
      ProgramEnd programEnd) {
    this.schedule = schedule;
    this.onError = onError;
    this.length = length;
    this.warnings = warnings;
    this.surgeryLog = surgeryLog;
    this.notRun = notRun;
    this.programEnd = programEnd;
  }

  /**
   * A longer announcement after an entry followed a length that only the loop announced (no total
   * configured): a second fit (a loop that calls fit once per epoch) shows that length was not the
   * training's, so what the entry did (froze by the fraction of a wrong total, ran at the wrong
   * step) is wrong. Reported as that entry's failure, before this fit's first step: under on_error
   * fail training stops (and again at every later announcement); under skip it goes on, said once
   * (at ERROR, as skip logs failures), with what the entry did: it ran before the proof came.
   */
  void lengthProvedWrong(TrainerState st, int planned) {
    ScheduledAlgorithm entry = st.lengthFollowedBy;
    String message =
        "Surgery: "
            + entry.describe()
            + " followed a length of "
            + st.lengthFollowed
            + " epochs that the training loop announced, but it now announces "
            + planned
            + " epochs in all: that was not the length of training, so what it did is wrong. A"
            + " program that calls fit more than once (once per epoch, say) must "
            + length.configuredEpochsHint();
    logFailure(
        st,
        entry,
        onError == OnError.FAIL ? SurgeryOutcome.Status.FAILED : SurgeryOutcome.Status.SKIPPED,
        message,
        0);
    surgeryLog.write();
    if (onError == OnError.FAIL) {
      st.stopped =
          new TrainerState.StoppedTraining(
              entry, -1, -1, "when a later fit announced " + planned + " epochs in all");
      ListenerLog.logger().error(message + " (on_error: fail stops training)");
      throw new SurgeryFailedException(
          message + " (on_error: fail stops training; on_error: skip trains on)",
          entry.algorithm().name(),
          st.passedEpochs(),
          null,
          null);
    }
    // Logged as skip logs a failure (an error), but unlike a failed surgery nothing can be put
    // back: the entry ran in an earlier fit, and may have been trained on since.
    String skipped =
        message
            + " (on_error: skip: training goes on with what the entry did, which cannot be undone"
            + " after it ran)";
    warnings.keep(skipped);
    ListenerLog.logger().error(skipped);
    st.lengthFollowedBy = null; // said once
  }

  /** Records and reports a failed entry that had not changed the model. */
  void failed(TrainerState st, int index, Event event, RuntimeException e, long nanos) {
    failed(st, index, event, e, nanos, false);
  }

  /**
   * Records an entry that stops training before its first step because the program did not do what
   * it needs (report the trainer's initialization): failed in the surgery log, and named as the
   * reason of the entries it keeps from running. The caller throws.
   */
  void stopsTrainingBeforeItStarts(TrainerState st, int index, String cause) {
    ScheduledAlgorithm entry = schedule.get(index);
    logFailure(st, entry, SurgeryOutcome.Status.FAILED, cause, 0);
    st.schedule.failed(index, false);
    st.stopped = new TrainerState.StoppedTraining(entry, -1, -1, "before the first step");
    surgeryLog.write();
  }

  /** Adds a failed or skipped run of an entry to the surgery log, with the losses before it. */
  private void logFailure(
      TrainerState st,
      ScheduledAlgorithm entry,
      SurgeryOutcome.Status status,
      String cause,
      long nanos) {
    surgeryLog.add(
        new PendingOutcome(
            st.ordinal,
            entry,
            entry.algorithm().settings(),
            st.passedEpochs(),
            st.stepsTaken(),
            status,
            null,
            cause,
            nanos,
            st.losses.meanBefore(),
            st.losses.beforeBatches()));
  }

  /**
   * Records and reports a failed entry. {@code modelChanged}: the algorithm failed after a surgery
   * of its own had committed, so the model is changed, neither undone nor recorded; training on
   * (on_error: skip) would train a model no checkpoint record describes, so training stops whatever
   * on_error says.
   */
  void failed(
      TrainerState st,
      int index,
      Event event,
      RuntimeException e,
      long nanos,
      boolean modelChanged) {
    if (programEnd.ended() && st.applying != index) {
      return; // as in apply; an application under way at the end is reported as it ends
    }
    notRun.forgetIfProgramEnded(st, programEnd);
    ScheduledAlgorithm entry = schedule.get(index);
    int completed = st.passedEpochs();
    String path = e instanceof SurgeryException se ? se.getBlockPath() : null;
    String cause = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
    String where = path == null || cause.contains(path) ? "" : " at block " + path;
    String at =
        entry.byEpoch() ? "" : " at " + event.configName() + " after " + st.stepsTaken() + " steps";
    boolean jvmFailing = jvmFailing(e.getCause());
    boolean stop = stops(modelChanged, jvmFailing);
    SurgeryOutcome.Status status =
        stop ? SurgeryOutcome.Status.FAILED : SurgeryOutcome.Status.SKIPPED;
    logFailure(st, entry, status, cause, nanos);
    st.schedule.failed(index, !stop);
    if (stop) {
      // Entries after it in the schedule due at the same moment (this epoch end, this step) never
      // get their turn; the others are not due yet. (A stop before training, or at a fit's start,
      // has no such moment.)
      st.stopped =
          new TrainerState.StoppedTraining(
              entry,
              event == Event.EPOCH_END ? completed : -1,
              event == Event.BATCH_END ? st.steps : -1,
              event == Event.EPOCH_END
                  ? "at the end of epoch " + completed
                  : event == Event.BATCH_END
                      ? "at step " + st.steps
                      : st.steps == 0 ? "before the first step" : "after " + st.steps + " steps");
      notRun.listRepeatsStoppedAt(st, index);
    }
    if (stop) {
      surgeryLog.write();
      String state =
          modelChanged
              ? ". That change can be neither undone nor recorded for a checkpoint, so training"
                  + " stops whatever on_error says; an algorithm must fail before it changes the"
                  + " model or make its changes in one engine call"
              : jvmFailing
                  ? ". "
                      + asBefore(entry.algorithm())
                      + "; the JVM is failing, so training stops whatever on_error says"
                  : ". "
                      + asBefore(entry.algorithm())
                      + " (on_error: fail stops training; use on_error: skip to train on without"
                      + " it)";
      throw new SurgeryFailedException(
          "Surgery: "
              + entry.describe()
              + (modelChanged
                  ? " failed after it had changed the model (its blocks or frozen parameters"
                      + " differ from before)"
                  : " failed")
              + at
              + where
              + ": "
              + cause
              + state,
          entry.algorithm().name(),
          completed,
          path,
          e);
    }
    ListenerLog.logger()
        .error(
            "Surgery: {} failed{}{} and was skipped (on_error: skip), it does not run again and {}:"
                + " {}",
            entry.describe(),
            at,
            where,
            isPlugin(entry.algorithm())
                ? "the model's blocks and frozen layers are unchanged (values it wrote into"
                    + " parameter arrays are not undone)"
                : "the model is unchanged",
            cause);
    // The stack trace helps only when debugging the algorithm itself.
    ListenerLog.logger().debug("Surgery: failure of {}", entry.describe(), e);
    surgeryLog.write();
  }

  /**
   * What a failure that changed no block leaves, in words: the whole model as it was for a built-in
   * algorithm, whose arrays are its engine calls' to roll back; for a plugin its blocks and frozen
   * layers, since values it wrote into the model's arrays itself are nothing the listener sees.
   */
  private static String asBefore(Algorithm algorithm) {
    return isPlugin(algorithm)
        ? "The model's blocks and frozen layers are as they were before "
            + algorithm.name()
            + " (values it wrote into parameter arrays itself are not undone)"
        : "The model is as it was before " + algorithm.name();
  }

  private static boolean isPlugin(Algorithm algorithm) {
    return !"built-in".equals(Algorithms.origin(algorithm.name()));
  }

  /**
   * Whether a failure stops training (or a load): where on_error says so, and whatever it says
   * where the entry changed the model before it failed (nothing undoes or records that change) or
   * the JVM is failing.
   */
  boolean stops(boolean modelChanged, boolean jvmFailing) {
    return onError == OnError.FAIL || modelChanged || jvmFailing;
  }

  /**
   * Whether a plugin's failure is the JVM's (out of memory, an internal error): no failure of the
   * entry alone that training could go on from. A stack overflow is the plugin's own recursion.
   */
  static boolean jvmFailing(Throwable cause) {
    return cause instanceof VirtualMachineError && !(cause instanceof StackOverflowError);
  }

  /** Wraps a plugin's exception so that the message names the plugin, the call and its jar. */
  static RuntimeException pluginError(String call, Event event, Algorithm algorithm, Throwable e) {
    if (e instanceof SurgeryException s) {
      return s; // the engine's own error, which names the block
    }
    String origin = Algorithms.origin(algorithm.name());
    return new IllegalStateException(
        "algorithm '"
            + algorithm.name()
            + "' ("
            + algorithm.getClass().getName()
            + (origin == null || origin.equals("built-in") ? "" : ", from " + origin)
            + ") threw in "
            + call
            + "("
            + event.configName()
            + "): "
            + e
            + (e.getMessage() == null && e.getCause() != null
                ? " caused by " + e.getCause() // ExceptionInInitializerError: the initializer's
                : ""),
        e);
  }
}
