package dev.surgery.trainer;

import ai.djl.Model;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.LayerFreezing;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.events.Event;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import dev.surgery.trainer.config.Trigger;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * Records what an entry's successful run did, everywhere it has to show: what it froze carried for
 * a later trainer of the model, its outcome in the surgery log, the model's {@code surgery}
 * property (so that a checkpoint replays it), what the trainer's state must remember of it (a
 * change no step trained yet, a length it followed, the loss window after it), its warnings, and
 * the INFO line. Kept apart from the run itself ({@link EntryRunner}), which only decides whether
 * the run succeeded; a failure is {@link FailedEntries}' to report.
 */
final class AppliedEntries {

  private final ListenerWarnings warnings;
  private final SurgeryLogWriter surgeryLog;
  private final RecordedEntries records;
  private final NotRunEntries notRun;
  private final TrainingLength length;

  /** Whether the program ended: a run it listed as cut short did finish. */
  private final ProgramEnd programEnd;

  AppliedEntries(
      ListenerWarnings warnings,
      SurgeryLogWriter surgeryLog,
      RecordedEntries records,
      NotRunEntries notRun,
      TrainingLength length,
      ProgramEnd programEnd) {
    this.warnings = warnings;
    this.surgeryLog = surgeryLog;
    this.records = records;
    this.notRun = notRun;
    this.length = length;
    this.programEnd = programEnd;
  }

  /**
   * Records the run of entry {@code index} that returned {@code changes} (null: no structural
   * change, such as an average of the weights) and whose changes were checked against {@code
   * before}.
   */
  void recordRun(
      TrainerState st,
      int index,
      ScheduledAlgorithm entry,
      Event event,
      Model model,
      SurgeryChanges changes,
      BeforeRun before) {
    Algorithm algorithm = entry.algorithm();
    // What it froze is frozen again for a later trainer of the model: DJL's newTrainer unfreezes
    // every parameter of a model that was loaded, and the recorded entry is not applied again.
    // Not what it froze because the program had frozen the layers it replaced (FreezeProvenance).
    FreezeProvenance freezes = before.freezes;
    Block after = model.getBlock();
    List<String> bornFrozen = null;
    if (freezes != null && after != null) {
      Set<Parameter> kept = freezes.keptAfter(after);
      CarriedRecords.addFrozen(after, kept);
      bornFrozen = freezes.bornKeptNames(after, kept);
    }
    if (changes == null) {
      // No structural change (for example an average of the weights): nothing to record; but a
      // run the program's end listed as cut short did finish, and the log on disk must say so.
      if (notRun.forgetIfProgramEnded(st, programEnd)) {
        surgeryLog.write();
      }
      return;
    }
    BeforeRun.PendingGradients pending = before.pending;
    if (pending != null
        && pending.pending() > 0
        && !changes.isEmpty()
        // Freezing replaces no block: the frozen parameters' gradients are simply never applied.
        && !before.sameBlocks(model.getBlock())
        && st.pendingWarned.add(index)) {
      warnPendingGradients(entry, pending);
    }
    // Logged by the algorithm already; listed with the listener's own.
    changes.warnings().forEach(warnings::keep);
    long nanos = changes.nanos() > 0 ? changes.nanos() : before.elapsedNanos();
    PendingOutcome applied =
        new PendingOutcome(
            st.ordinal,
            entry,
            algorithm.settings(),
            before.completed,
            st.stepsTaken(),
            SurgeryOutcome.Status.APPLIED,
            changes,
            null,
            nanos,
            before.lossBefore,
            before.lossBeforeBatches);
    notRun.forgetIfProgramEnded(st, programEnd);
    surgeryLog.add(applied);
    if (entry.trigger().kind() != Trigger.Kind.EVENTS
        && !changes.isEmpty()
        && !before.sameBlocks(model.getBlock())) {
      // Warned of at the trainer's training end if no batch or step trains after it (an outside
      // probe: an 'epoch: 2' entry of a 2-epoch run changed the model after its last validation,
      // and DJL's EasyHpo example saved it with the accuracy of the model before the change).
      st.changedSinceTraining.add(entry.describe());
    }
    if (length.followsAnnouncement(st, entry) && !changes.isEmpty()) {
      // (A run that changed nothing under the announced length changes nothing under a longer one:
      // layer_freezing freezes a smaller fraction of a longer training.)
      st.lengthFollowedBy = entry;
      st.lengthFollowed = before.planned;
    }
    st.losses.awaitAfter(applied);
    // A quiet freeze (empty changes) is a change too: recorded, so that a checkpoint replays it (a
    // review), where the entry's freezes are looked at.
    boolean froze = freezes != null && after != null && freezes.freezesChanged(after);
    if (!changes.isEmpty() || !entry.trigger().repeats() || froze) {
      // A repeating or event-driven entry that changed nothing this time leaves no record: each
      // record rewrites the property and is replayed at every load. What an algorithm's state
      // lists is the record, so such a run is not listed there either.
      if (records.record(
          model,
          algorithm,
          before.completed,
          before.planned,
          changes,
          bornFrozen,
          st.stepsTaken(),
          entry.trigger().describe())) {
        st.reports.add(changes);
      }
      st.recordSeen = RecordedEntries.recordOf(model);
      st.wrote(st.recordSeen);
    }
    if (ListenerLog.logger().isInfoEnabled()) {
      // An epoch entry says which epoch; any other its schedule (a step entry ran "at epoch 0").
      String when =
          entry.byEpoch() || entry.trigger().kind() == Trigger.Kind.EVERY_EPOCHS
              ? "at epoch " + before.completed
              : entry.trigger().describe();
      String line = logLine(algorithm.name(), when, changes, nanos);
      ListenerLog.logger()
          .info(
              entry.byEpoch()
                  ? line
                  : line + " (" + event.configName() + ", step " + st.stepsTaken() + ")");
    }
    surgeryLog.writeSoon();
  }

  /**
   * Warns that a surgery that changed blocks ran with gradients pending: parameters it keeps keep
   * theirs, those it replaces take theirs away, and new ones start without, so the next step mixes
   * gradients of two models. Once per entry and trainer.
   */
  private void warnPendingGradients(ScheduledAlgorithm entry, BeforeRun.PendingGradients pending) {
    warnings.warn(
        "Surgery: "
            + entry.describe()
            + " ran with gradients pending on "
            + pending.pending()
            + " of "
            + pending.trainable()
            + " trainable parameters (a backward pass since the last trainer.step(), such as"
            + " a gradient-accumulation window open across the epoch end): parameters it kept"
            + " keep theirs, parameters it replaced lost theirs and new ones start without, so"
            + " the next step mixes gradients of the model before and after the surgery. Step"
            + " (or zero the gradients) before the epoch ends, or schedule the entry by step");
  }

  /**
   * Formats the INFO line with the entry's moment as its schedule says it, e.g. {@code Surgery:
   * blurpool at epoch 1 replaced 4 blocks (...)} or {@code ... at step 3 ...}.
   */
  static String logLine(String algorithm, String when, SurgeryChanges changes, long nanos) {
    StringBuilder sb = new StringBuilder("Surgery: ").append(algorithm).append(' ').append(when);
    int n = changes.changes().size();
    // A freeze changes no block (its changes read "Conv2d->frozen Conv2d"): it froze layers. A
    // layer_freezing run that froze none says so in the same words.
    boolean freezes = LayerFreezing.NAME.equals(algorithm);
    boolean froze =
        n > 0 && changes.changes().stream().allMatch(c -> c.newType().startsWith("frozen "));
    sb.append(froze || (n == 0 && freezes) ? " froze " : " replaced ");
    if (n == 0) {
      sb.append(freezes ? "no layers" : "no blocks");
    } else {
      sb.append(n)
          .append(froze ? (n == 1 ? " layer (" : " layers (") : n == 1 ? " block (" : " blocks (");
      sb.append(
          changes.countsByType().entrySet().stream()
              .map(e -> e.getKey() + " x" + e.getValue())
              .collect(Collectors.joining(", ")));
      sb.append(')');
    }
    if (changes.parametersBefore() == SurgeryChanges.UNKNOWN_PARAMETERS
        || changes.parametersAfter() == SurgeryChanges.UNKNOWN_PARAMETERS) {
      // Before Trainer.initialize no parameter has a shape: the count is unknown, not 0.
      sb.append(", parameters unknown (model not initialized)");
    } else {
      sb.append(
          String.format(
              Locale.ROOT,
              ", parameters %,d -> %,d",
              changes.parametersBefore(),
              changes.parametersAfter()));
    }
    sb.append(String.format(Locale.ROOT, ", %d ms", Math.round(nanos / 1e6)));
    return sb.toString();
  }
}
