package dev.surgery.trainer;

import ai.djl.Model;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.Trainer;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import dev.surgery.trainer.config.Trigger;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A listener's side of the model's surgery record (its {@code surgery} property, which {@code
 * Model.save} keeps and {@link SurgeryCheckpoint#load} replays): appends each application to it,
 * skips the entries a loaded checkpoint or an earlier trainer of the model applied already, and
 * freezes again what the record froze.
 */
final class RecordedEntries {

  /** How the reason of an entry skipped as in the model's record begins. */
  static final String ALREADY_RECORDED = "it is in the model's surgery record already";

  private final ListenerWarnings warnings;
  private final SurgeryLogWriter surgeryLog;

  /** The record text {@link #unwritableRecord} read last, and what it found; guarded by this. */
  private String checkedRecord;

  private String checkedProblem;

  /**
   * The algorithms already warned of as not added to a model's later-format record, by model
   * (weakly: a search's dropped models free their entry).
   */
  private final dev.surgery.core.internal.WeakIdentityMap<Model, java.util.Set<String>> notAdded =
      new dev.surgery.core.internal.WeakIdentityMap<>();

  RecordedEntries(ListenerWarnings warnings, SurgeryLogWriter surgeryLog) {
    this.warnings = warnings;
    this.surgeryLog = surgeryLog;
  }

  /**
   * Why this build cannot add to the model's surgery record, or null: it is in a later format,
   * written by a newer DJL Surgery, whose entries an append would drop. Asked before a scheduled
   * entry runs (not before an event-driven one, which may change nothing), so that it fails (as
   * {@code on_error} says) with the model unchanged.
   */
  String unwritableRecord(Model model) {
    String existing = CarriedRecords.recordOf(model);
    if (existing == null || existing.isBlank()) {
      return null;
    }
    // Parsed once per record text (an event-driven entry may run at every batch).
    synchronized (this) {
      if (existing.equals(checkedRecord)) {
        return checkedProblem;
      }
    }
    String problem = null;
    try {
      SurgeryJson.recordsFromJson(existing);
    } catch (SurgeryJson.NewerRecordFormatException e) {
      problem =
          "the model's surgery record cannot take this entry: "
              + e.getMessage()
              + " (this build would drop what it does not understand)";
    } catch (IllegalArgumentException e) {
      // not a record of ours: record() says so when it replaces it
    }
    synchronized (this) {
      checkedRecord = existing;
      checkedProblem = problem;
    }
    return problem;
  }

  /**
   * Whether a record holds an entry: an application of the same algorithm with the same
   * hyperparameters.
   */
  static boolean holds(String record, ScheduledAlgorithm entry) {
    for (SurgeryChanges c : SurgeryRecord.asChanges(record)) {
      if (c.algorithm().equals(entry.algorithm().name())
          && SurgeryJson.sameHyperparameters(c.hyperparameters(), entry.algorithm().settings())) {
        return true;
      }
    }
    return false;
  }

  /**
   * Appends the application to the model's {@code surgery} property, which model.save keeps.
   *
   * @param bornFrozen the parameters its replacements brought that surgery keeps frozen, by name;
   *     null when not looked for (recorded only where the application replaced a block)
   * @param step the optimizer steps the trainer had taken when it ran
   * @param trigger when the entry that ran runs, as it describes it
   * @return false when the record is in a later format and was kept as it is, without it
   */
  boolean record(
      Model model,
      Algorithm algorithm,
      int epoch,
      int planned,
      SurgeryChanges changes,
      List<String> bornFrozen,
      long step,
      String trigger) {
    List<SurgeryRecord> records = new ArrayList<>();
    String existing = CarriedRecords.recordOf(model);
    if (existing != null && !existing.isBlank()) {
      try {
        records.addAll(SurgeryJson.recordsFromJson(existing));
      } catch (SurgeryJson.NewerRecordFormatException e) {
        // A newer build's record: this entry cannot be added without dropping its entries. Kept as
        // it is (the entry's change is then not in it; apply refuses such a model first, but an
        // event-driven entry is asked only when it returns changes). Said once per algorithm and
        // model, not at every batch of an entry that runs at each.
        boolean first;
        synchronized (this) {
          first =
              notAdded.computeIfAbsent(model, m -> new java.util.HashSet<>()).add(algorithm.name());
        }
        if (first) {
          warnings.warn(
              "Surgery: "
                  + algorithm.name()
                  + " changed the model but is not added to its surgery record, which is kept as"
                  + " it is (said once): "
                  + e.getMessage());
        }
        return false;
      } catch (IllegalArgumentException e) {
        warnings.warn(
            "Surgery: the model's '"
                + SurgeryListener.PROPERTY
                + "' property is not a surgery record and is replaced ("
                + e.getMessage()
                + ")");
      }
    }
    Map<String, String> changed = SurgeryRecord.changesOf(changes);
    boolean replacedAny = changed.values().stream().anyMatch(c -> !FreezeChanges.isFreeze(c));
    records.add(
        new SurgeryRecord(
            algorithm.name(),
            algorithm.settings(),
            epoch,
            planned,
            changed,
            replacedAny ? bornFrozen : null,
            step,
            trigger));
    String json = SurgeryJson.recordsToJson(records);
    // The block first: a save on another thread syncs the property from it.
    CarriedRecords.carries(model.getBlock(), json);
    RecordProperty.write(model, json);
    CarriedRecords.describes(model);
    return true;
  }

  /**
   * Freezes again what a checkpoint's replayed surgery, or an entry an earlier trainer of the model
   * ran, froze ({@code layer_freezing}): DJL's {@code newTrainer} unfreezes every parameter of a
   * loaded model, just before this trainer starts, and the record's entries are not applied again.
   * Only then: a model that was not loaded keeps what the program unfroze itself.
   */
  void freezeAgain(Trainer trainer) {
    if (trainer.getModel() == null || !DjlTrainers.unfreezesOnNewTrainer(trainer.getModel())) {
      // DJL unfroze nothing: a parameter that trains now was unfrozen by the program, on purpose
      // (a second stage of fine-tuning), and stays so.
      return;
    }
    Block root = trainer.getModel().getBlock();
    List<Parameter> thawed = new ArrayList<>();
    for (Parameter p : SurgeryCheckpoint.frozenByReplay(root)) {
      if (p.requiresGradient()) {
        thawed.add(p);
      }
    }
    if (thawed.isEmpty()) {
      return;
    }
    Set<Parameter> inModel = Collections.newSetFromMap(new IdentityHashMap<>());
    inModel.addAll(root.getParameters().values());
    thawed.retainAll(inModel); // a later surgery may have replaced some
    if (!thawed.isEmpty()) {
      try {
        ModuleSurgery.freezeParameters(thawed, List.of(trainer));
      } catch (RuntimeException e) {
        warnings.warn(
            "Surgery: could not freeze again the "
                + thawed.size()
                + " parameters the checkpoint's record froze ("
                + e.getMessage()
                + "); they train");
        return;
      }
      ListenerLog.logger()
          .info(
              "Surgery: froze again {} parameters that the checkpoint's surgery record froze (DJL's"
                  + " newTrainer unfreezes a loaded model)",
              thawed.size());
    }
  }

  /** The surgery record of the model's current block (see CarriedRecords#recordOf); null: none. */
  static String recordOf(Model model) {
    return model == null ? null : CarriedRecords.recordOf(model);
  }

  /**
   * Marks as applied the one-shot entries that the model's surgery record holds already: a
   * checkpoint loaded with its surgery replayed (through {@link SurgeryCheckpoint#load} or under
   * the agent), or an earlier trainer of the same model. Running them again would at best change
   * nothing and record them twice, and an entry whose algorithm is not idempotent would be applied
   * twice. A record matches an entry with the same algorithm and hyperparameters, and for an epoch
   * entry the same epoch; each record stands for one entry, and a repeating entry accounts for
   * every run of it. Only when every record is accounted for (the job restarted with the schedule
   * the record came from) are the matched entries skipped: a schedule of the rest of training runs
   * in full, even an entry equal to one recorded. When {@code trainerBegins}, the entries the
   * record does not hold are warned of: they count epochs from this trainer's start.
   */
  void skipRecorded(Model model, TrainerState st, boolean trainerBegins) {
    String existing = recordOf(model);
    List<SurgeryRecord> records;
    try {
      records =
          existing == null || existing.isBlank()
              ? new ArrayList<>()
              : new ArrayList<>(SurgeryJson.recordsFromJson(existing));
    } catch (IllegalArgumentException e) {
      return; // not a record of ours: record() says so when it replaces it
    }
    if (records.isEmpty()) {
      if (trainerBegins) {
        warnIfSavedByDjlAfterAnEpoch(model, st);
      }
      return;
    }
    Schedule entries = st.schedule;
    int[] recordOf = new int[entries.size()];
    Arrays.fill(recordOf, -1);
    boolean[] accounted = new boolean[records.size()];
    // Which entry took each record (-1: none yet): a repeating step entry's record is a sign of
    // training, whatever epoch it shows.
    int[] takenBy = new int[records.size()];
    Arrays.fill(takenBy, -1);
    // A record's trigger decides where the schedule has an entry with it; one no entry has (another
    // build's wording, an edited schedule) falls back to the epoch and step rules.
    java.util.Set<String> triggers = new java.util.HashSet<>();
    for (int i = 0; i < entries.size(); i++) {
      triggers.add(entries.entry(i).trigger().describe());
    }
    // Entries that say most of when they ran take their records first (an epoch entry the record
    // of its epoch, before a duration or step entry of the same algorithm could take it), and
    // one-shot entries before repeating ones, which run on whether or not a record is theirs.
    for (int rank = 0; rank < MATCH_RANKS; rank++) {
      for (int i = 0; i < entries.size(); i++) {
        ScheduledAlgorithm entry = entries.entry(i);
        if (!matchesAt(entry.trigger(), rank) || recordOf[i] >= 0) {
          continue;
        }
        Algorithm algorithm = entry.algorithm();
        for (int k = 0; k < records.size(); k++) {
          SurgeryRecord r = records.get(k);
          if (accounted[k]
              || !exactEnoughFor(entry.trigger(), rank, r)
              || !r.algorithm().equals(algorithm.name())
              || !SurgeryJson.sameHyperparameters(r.hyperparameters(), algorithm.settings())
              || !couldHaveRecorded(entry.trigger(), r, triggers.contains(r.trigger()))) {
            continue;
          }
          accounted[k] = true;
          takenBy[k] = i;
          if (!entry.trigger().repeats()) {
            recordOf[i] = k;
            break;
          } // else one of its runs: accounted for, but the entry runs on
        }
      }
    }
    for (boolean a : accounted) {
      if (!a) {
        // The schedule is not the one the record came from (a rest-of-training schedule, or
        // another one): it runs in full, and an entry equal to a recorded one is meant anew.
        ListenerLog.logger()
            .info(
                "Surgery: the model's surgery record holds entries this schedule does not: the"
                    + " schedule runs in full ({} recorded)",
                records.size());
        return;
      }
    }
    for (int i = 0; i < entries.size(); i++) {
      // Open, not only pending: an epoch-0 entry may wait for onInitialized or for the length.
      if (recordOf[i] >= 0 && entries.isOpen(i)) {
        entries.alreadyRecorded(i);
        SurgeryRecord record = records.get(recordOf[i]);
        Trigger.Kind kind = entries.entry(i).trigger().kind();
        // An entry that counts steps is told by its step (a record of an older checkpoint may not
        // say it), the others by their epoch; repeating entries never get here (recordOf).
        String when =
            record.step() >= 0 && (kind == Trigger.Kind.STEP || kind == Trigger.Kind.DURATION)
                ? "step " + record.step() + " (epoch " + record.epoch() + ")"
                : "epoch " + record.epoch();
        String reason =
            ALREADY_RECORDED
                + " (a replayed checkpoint or an earlier trainer applied it at "
                + when
                + "): not applied again";
        ListenerLog.logger().info("Surgery: {}: {}", entries.entry(i).describe(), reason);
        surgeryLog.addNotRun(st.ordinal, entries.entry(i), reason);
      }
    }
    if (trainerBegins) {
      warnEpochsCountFromResume(st, records, recordOf, takenBy);
    }
  }

  /** How many rounds of matching {@link #matchesAt} knows. */
  private static final int MATCH_RANKS = 5;

  /**
   * Whether entries with this trigger take records in round {@code rank}: first what a record tells
   * exactly ({@code epoch:} entries by epoch, {@code step:} entries by the step a record says),
   * then {@code at:} entries by the epoch their fraction falls in, then {@code step:} entries by
   * epoch against records that do not say their step, and repeating entries last (they run on
   * whether a record is theirs or not).
   */
  private static boolean matchesAt(Trigger trigger, int rank) {
    switch (trigger.kind()) {
      case EPOCH:
        return rank == 0;
      case STEP:
        return rank == 1 || rank == 3;
      case DURATION:
        return rank == 2;
      default:
        return rank == 4;
    }
  }

  /** A {@code step:} entry's round 1 takes records that say their step, round 3 the others. */
  private static boolean exactEnoughFor(Trigger trigger, int rank, SurgeryRecord record) {
    if (trigger.kind() != Trigger.Kind.STEP) {
      return true;
    }
    return rank == 1 ? record.step() >= 0 : record.step() < 0;
  }

  /**
   * Whether an entry with this trigger can have made a record, as far as the record's completed
   * epochs tell (counted, as the trigger counts, from the start of the trainer that ran it): an
   * epoch entry at its epoch, an {@code every: Nep} entry at a multiple of N, a duration entry
   * within an epoch of its fraction of the planned epochs (when the record holds them), a step
   * entry at its step (before its step's epoch could have ended, for a record that does not say its
   * step), an {@code every: Nba} entry at a multiple of N. Events leave any record open.
   */
  static boolean couldHaveRecorded(Trigger trigger, SurgeryRecord record) {
    return couldHaveRecorded(trigger, record, record.trigger() != null);
  }

  /**
   * {@link #couldHaveRecorded(Trigger, SurgeryRecord)}, taking the record's trigger as the answer
   * only when {@code byTrigger} (the schedule has an entry with that trigger).
   */
  static boolean couldHaveRecorded(Trigger trigger, SurgeryRecord record, boolean byTrigger) {
    if (byTrigger && record.trigger() != null) {
      return record.trigger().equals(trigger.describe()); // the record names its entry's trigger
    }
    int epoch = record.epoch();
    switch (trigger.kind()) {
      case EPOCH:
        return epoch == trigger.amount();
      case EVERY_EPOCHS:
        return epoch > 0 && epoch % trigger.amount() == 0;
      case DURATION:
        if (record.totalEpochs() <= 0) {
          return true;
        }
        // Its step falls in the epoch after floor(f * T) completed ones (or ends it); a batch end
        // that closes an epoch comes before that epoch's end.
        double due = trigger.fraction() * record.totalEpochs();
        boolean whole = Math.abs(due - Math.rint(due)) < 1e-9;
        if (whole) {
          // The step is that epoch's last: its batch end comes before the epoch's end (one
          // fewer completed), or it runs at that end.
          return epoch == Math.round(due) - 1 || epoch == Math.round(due);
        }
        // Inside an epoch: floor(due) completed; in the first epoch of data that tells its size
        // only at the epoch's end, it runs there (1 completed).
        return epoch == (long) Math.floor(due) || (due < 1 && epoch == 1);
      case STEP:
        if (record.step() >= 0) {
          return record.step() == trigger.amount();
        }
        // Each epoch takes a step at least, and step S's batch end comes before its epoch's end.
        return epoch < trigger.amount();
      case EVERY_STEPS:
        return record.step() < 0 || (record.step() > 0 && record.step() % trigger.amount() == 0);
      default:
        return true;
    }
  }

  /**
   * A job restarted with its whole schedule from a checkpoint: this run counts epochs from 0, so an
   * entry the record does not hold runs that many epochs after the resume, not at the job's epoch
   * the schedule names (documented; said here because nothing else shows it until the end).
   */
  private void warnEpochsCountFromResume(
      TrainerState st, List<SurgeryRecord> records, int[] recordOf, int[] takenBy) {
    int reached = 0;
    for (SurgeryRecord r : records) {
      reached = Math.max(reached, r.epoch());
    }
    Schedule entries = st.schedule;
    // A record of the first epoch counts too where a step, duration or batch entry made it: the
    // checkpoint was taken inside training, mid-epoch maybe. (Records of epoch 0 alone are what an
    // evaluation trainer built from the same config meets: no restart.)
    boolean resumed = reached > 0;
    for (int k = 0; k < takenBy.length && !resumed; k++) {
      Trigger.Kind kind = takenBy[k] < 0 ? null : entries.entry(takenBy[k]).trigger().kind();
      resumed =
          kind == Trigger.Kind.STEP
              || kind == Trigger.Kind.EVERY_STEPS
              || kind == Trigger.Kind.DURATION;
    }
    if (resumed) {
      warnCountsFromHere(
          st,
          recordOf,
          reached,
          "the model comes with a surgery record (a loaded checkpoint, or an earlier trainer) that"
              + " reaches epoch "
              + reached
              + ", so");
    }
  }

  /**
   * A model that carries no surgery record but DJL's {@code Epoch} property, which {@code
   * SaveModelTrainingListener} sets on each save: a checkpoint of a run after that many epochs (or
   * the model an earlier trainer trained and saved). Its saver ran before the surgery listener, so
   * the checkpoint of the epoch an entry was due at holds neither that surgery nor its record, and
   * a job resumed from it with its whole schedule could not otherwise tell it is a resume.
   */
  private void warnIfSavedByDjlAfterAnEpoch(Model model, TrainerState st) {
    String saved = model == null ? null : model.getProperty("Epoch");
    int epoch;
    try {
      epoch = saved == null ? 0 : Integer.parseInt(saved.trim());
    } catch (NumberFormatException e) {
      return;
    }
    // Only a schedule with an entry that was due by that epoch reads as that run's (a fine-tuning
    // schedule whose entries all lie beyond it is no sign of a resume, and hears nothing).
    boolean dueBy = false;
    for (int i = 0; i < st.schedule.size(); i++) {
      Trigger t = st.schedule.entry(i).trigger();
      dueBy |=
          (t.kind() == Trigger.Kind.EPOCH || t.kind() == Trigger.Kind.EVERY_EPOCHS)
              && t.amount() > 0
              && t.amount() <= epoch;
    }
    if (epoch > 0 && dueBy) {
      int[] noRecord = new int[st.schedule.size()];
      Arrays.fill(noRecord, -1);
      warnCountsFromHere(
          st,
          noRecord,
          epoch,
          "the model carries no surgery record but DJL's Epoch property "
              + epoch
              + " (a checkpoint DJL's SaveModelTrainingListener wrote after that epoch, or an"
              + " earlier trainer's), so if this training resumes that run,");
    }
  }

  /**
   * Warns, when the trainer first trains, of each open entry the record does not hold ({@code
   * recordOf[i] < 0}) whose time this trainer counts from its own start.
   */
  private static void warnCountsFromHere(TrainerState st, int[] recordOf, int reached, String why) {
    Schedule entries = st.schedule;
    for (int i = 0; i < entries.size(); i++) {
      ScheduledAlgorithm entry = entries.entry(i);
      if (recordOf[i] >= 0 || !entries.isOpen(i)) {
        continue;
      }
      String counts = countsFromThisTrainer(entry.trigger());
      if (counts == null) {
        continue;
      }
      // Said when the trainer first trains: an evaluation trainer built from the same config
      // never does, and its epochs are no restart.
      st.resumeWarnings.add(
          "Surgery: "
              + entry.describe()
              + " counts "
              + counts
              + " from this trainer's start: "
              + why
              + " "
              + whenItRuns(entry.trigger(), reached)
              + "; for the job's own count, give this trainer a schedule for what remains (see"
              + " 'Checkpoints and resuming')");
    }
  }

  /** What a trigger counts from the trainer's start, or null when a restart does not move it. */
  private static String countsFromThisTrainer(Trigger trigger) {
    switch (trigger.kind()) {
      case EPOCH:
        return trigger.amount() > 0 ? "epochs" : null;
      case STEP:
      case EVERY_STEPS:
        return "optimizer steps";
      case EVERY_EPOCHS:
        return "epochs";
      case DURATION:
        return "its fraction of training";
      default:
        return null; // an event-driven entry asks its algorithm at every event
    }
  }

  /** When an entry the record does not hold runs after a restart, in the trainer's counts. */
  private static String whenItRuns(Trigger trigger, int reached) {
    long n = trigger.amount();
    switch (trigger.kind()) {
      case EPOCH:
        return "it runs "
            + n
            + (n == 1 ? " epoch" : " epochs")
            + " from now (at least epoch "
            + (reached + n)
            + " of the whole job)";
      case STEP:
        return "it runs after "
            + n
            + " optimizer steps of this trainer, not at the job's step "
            + n;
      case EVERY_STEPS:
        return "it runs every " + n + " optimizer steps counted from now, not from the job's start";
      case EVERY_EPOCHS:
        return "it runs every "
            + n
            + (n == 1 ? " epoch" : " epochs")
            + " counted from now, not from the job's start";
      default:
        return "its step is that fraction of the training this trainer plans, counted from now";
    }
  }
}
