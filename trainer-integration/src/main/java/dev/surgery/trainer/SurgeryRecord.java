package dev.surgery.trainer;

import dev.surgery.core.algorithms.SurgeryChanges;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One applied surgery as recorded in a model's {@code surgery} property: enough to replay it on the
 * original architecture before loading a checkpoint, and to tell when the architecture it is
 * replayed on is not that one.
 *
 * @param algorithm the algorithm's config name
 * @param hyperparameters the hyperparameters it ran with, by config name
 * @param epoch the number of completed epochs when it ran (0: before training)
 * @param totalEpochs the planned number of epochs it was given, 0 when unknown
 * @param changes what it replaced: block path (as it was before) to {@code old->new} type ({@code
 *     02SequentialBlock/04Conv2d: Conv2d->BlurConv2d}), in order; empty when it replaced nothing;
 *     null when unknown (a record written before this was recorded, or by hand). A replay must
 *     replace exactly these
 * @param bornFrozen the parameters its replacements brought that surgery kept frozen, by the
 *     model's parameter names right after it ran (DJL's {@code getParameters()} keys): a
 *     replacement of a layer that surgery had frozen is born frozen, one of a layer only the
 *     program had frozen follows the program. Empty when none; null when unknown (a record written
 *     before this was recorded, one that replaced nothing, or one of an event-driven entry whose
 *     algorithm does not need the planned length: its freezes are not looked at per event), which a
 *     replay then infers from the freezes it meets
 * @param step the optimizer steps the trainer had taken when it ran, counted as {@code step:}
 *     entries count them (0: before training); -1 when unknown (a record written before this was
 *     recorded, or by a replay). A restarted job's schedule tells by it which entry made the record
 * @param trigger when the schedule entry that made it runs, as the entry describes it ({@code at
 *     epoch 2}, {@code every 9ba}, {@code at 0.5dur}); null when unknown (a record written before
 *     this was recorded). A restarted job's schedule gives the record to an entry with that trigger
 */
public record SurgeryRecord(
    String algorithm,
    Map<String, Object> hyperparameters,
    int epoch,
    int totalEpochs,
    Map<String, String> changes,
    List<String> bornFrozen,
    long step,
    String trigger) {

  /**
   * Validates and copies.
   *
   * @param algorithm the algorithm's config name
   * @param hyperparameters the hyperparameters it ran with, by config name
   * @param epoch the number of completed epochs when it ran (0: before training)
   * @param totalEpochs the planned number of epochs it was given, 0 when unknown
   * @param changes what it replaced: block path (as it was before) to {@code old->new} type ({@code
   *     02SequentialBlock/04Conv2d: Conv2d->BlurConv2d}), in order; empty when it replaced nothing;
   *     null when unknown (a record written before this was recorded, or by hand). A replay must
   *     replace exactly these
   * @param bornFrozen the parameters its replacements brought that surgery kept frozen, by the
   *     model's parameter names right after it ran; null when unknown
   * @param step the optimizer steps taken when it ran; -1 when unknown
   * @param trigger when the entry that made it runs, as the entry describes it; null when unknown
   */
  public SurgeryRecord {
    if (algorithm == null || algorithm.isEmpty()) {
      throw new IllegalArgumentException("algorithm must not be empty");
    }
    if (epoch < 0 || totalEpochs < 0) {
      throw new IllegalArgumentException("epochs must be >= 0");
    }
    if (step < -1) {
      throw new IllegalArgumentException("step must be >= 0, or -1 when unknown, got " + step);
    }
    hyperparameters =
        Collections.unmodifiableMap(
            new LinkedHashMap<>(hyperparameters == null ? Map.of() : hyperparameters));
    if (changes != null) {
      for (Map.Entry<String, String> e : changes.entrySet()) {
        if (e.getKey() == null || e.getValue() == null || !e.getValue().contains("->")) {
          throw new IllegalArgumentException(
              "changes must map block paths to 'Old->New' types, got " + changes);
        }
      }
      changes = Collections.unmodifiableMap(new LinkedHashMap<>(changes));
    }
    if (bornFrozen != null) {
      if (bornFrozen.stream().anyMatch(name -> name == null || name.isEmpty())) {
        throw new IllegalArgumentException(
            "born frozen parameters must be named, got " + bornFrozen);
      }
      bornFrozen = List.copyOf(bornFrozen);
    }
  }

  /**
   * A record that does not say which schedule entry made it.
   *
   * @param algorithm the algorithm's config name
   * @param hyperparameters the hyperparameters it ran with, by config name
   * @param epoch the number of completed epochs when it ran (0: before training)
   * @param totalEpochs the planned number of epochs it was given, 0 when unknown
   * @param changes what it replaced: block path (as it was before) to {@code old->new} type; null
   *     when unknown
   * @param bornFrozen the parameters its replacements brought that surgery kept frozen; null when
   *     unknown
   * @param step the optimizer steps taken when it ran; -1 when unknown
   */
  public SurgeryRecord(
      String algorithm,
      Map<String, Object> hyperparameters,
      int epoch,
      int totalEpochs,
      Map<String, String> changes,
      List<String> bornFrozen,
      long step) {
    this(algorithm, hyperparameters, epoch, totalEpochs, changes, bornFrozen, step, null);
  }

  /**
   * A record that does not say at which step it ran.
   *
   * @param algorithm the algorithm's config name
   * @param hyperparameters the hyperparameters it ran with, by config name
   * @param epoch the number of completed epochs when it ran (0: before training)
   * @param totalEpochs the planned number of epochs it was given, 0 when unknown
   * @param changes what it replaced: block path (as it was before) to {@code old->new} type; null
   *     when unknown
   * @param bornFrozen the parameters its replacements brought that surgery kept frozen; null when
   *     unknown
   */
  public SurgeryRecord(
      String algorithm,
      Map<String, Object> hyperparameters,
      int epoch,
      int totalEpochs,
      Map<String, String> changes,
      List<String> bornFrozen) {
    this(algorithm, hyperparameters, epoch, totalEpochs, changes, bornFrozen, -1, null);
  }

  /**
   * A record that does not say which of its replacements' parameters were born frozen.
   *
   * @param algorithm the algorithm's config name
   * @param hyperparameters the hyperparameters it ran with, by config name
   * @param epoch the number of completed epochs when it ran (0: before training)
   * @param totalEpochs the planned number of epochs it was given, 0 when unknown
   * @param changes what it replaced: block path (as it was before) to {@code old->new} type; null
   *     when unknown
   */
  public SurgeryRecord(
      String algorithm,
      Map<String, Object> hyperparameters,
      int epoch,
      int totalEpochs,
      Map<String, String> changes) {
    this(algorithm, hyperparameters, epoch, totalEpochs, changes, null);
  }

  /**
   * Whether two records stand for the same application: algorithm, epoch, replaced blocks and
   * hyperparameters as a record writes them (not the step, trigger or born-frozen names, which an
   * older build's record may lack).
   */
  boolean sameApplicationAs(SurgeryRecord other) {
    return algorithm.equals(other.algorithm)
        && epoch == other.epoch
        && java.util.Objects.equals(changes, other.changes)
        && SurgeryJson.sameHyperparameters(hyperparameters, other.hyperparameters);
  }

  /**
   * Reads a model's surgery record (its {@code surgery} property) as the changes of each entry:
   * algorithm, hyperparameters and replaced blocks; parameter counts unknown, time 0 (a record
   * keeps neither).
   *
   * @param json the property, or null
   * @return the changes, in order; empty when there is no record or it is not one this build reads
   */
  static List<SurgeryChanges> asChanges(String json) {
    if (json == null || json.isBlank()) {
      return List.of();
    }
    List<SurgeryRecord> records;
    try {
      records = SurgeryJson.recordsFromJson(json);
    } catch (IllegalArgumentException e) {
      return List.of();
    }
    List<SurgeryChanges> changes = new ArrayList<>(records.size());
    for (SurgeryRecord r : records) {
      List<SurgeryChanges.Change> replaced = new ArrayList<>();
      if (r.changes() != null) {
        for (Map.Entry<String, String> e : r.changes().entrySet()) {
          // One path may hold several replacements in turn: "A->B, B->C" (a name with ", " in it
          // is one step).
          String[] steps = e.getValue().split(", ");
          boolean each = java.util.Arrays.stream(steps).allMatch(step -> step.contains("->"));
          for (String step : each ? steps : new String[] {e.getValue()}) {
            int arrow = step.indexOf("->");
            replaced.add(
                new SurgeryChanges.Change(
                    e.getKey(), step.substring(0, arrow), step.substring(arrow + 2)));
          }
        }
      }
      changes.add(
          new SurgeryChanges(
              r.algorithm(),
              r.hyperparameters(),
              replaced,
              SurgeryChanges.UNKNOWN_PARAMETERS,
              SurgeryChanges.UNKNOWN_PARAMETERS,
              0));
    }
    return changes;
  }

  /**
   * What an application replaced, as a record keeps it.
   *
   * @param changes the application's changes
   * @return block path to {@code old->new} type, in replacement order
   */
  public static Map<String, String> changesOf(SurgeryChanges changes) {
    Map<String, String> byPath = new LinkedHashMap<>();
    for (SurgeryChanges.Change c : changes.changes()) {
      byPath.merge(c.path(), c.oldType() + "->" + c.newType(), (a, b) -> a + ", " + b);
    }
    return byPath;
  }

  /**
   * A record whose changes are unknown (not checked on replay).
   *
   * @param algorithm the algorithm's config name
   * @param hyperparameters the hyperparameters it ran with, by config name
   * @param epoch the number of completed epochs when it ran (0: before training)
   * @param totalEpochs the planned number of epochs it was given, 0 when unknown
   */
  public SurgeryRecord(
      String algorithm, Map<String, Object> hyperparameters, int epoch, int totalEpochs) {
    this(algorithm, hyperparameters, epoch, totalEpochs, null, null);
  }
}
