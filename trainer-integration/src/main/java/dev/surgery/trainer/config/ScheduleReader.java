package dev.surgery.trainer.config;

import static dev.surgery.trainer.config.ConfigParser.AT;
import static dev.surgery.trainer.config.ConfigParser.EPOCH;
import static dev.surgery.trainer.config.ConfigParser.EVERY;
import static dev.surgery.trainer.config.ConfigParser.MAX_STEP;
import static dev.surgery.trainer.config.ConfigParser.SCHEDULE_KEYS;
import static dev.surgery.trainer.config.ConfigParser.STEP;

import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.events.Time;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.snakeyaml.engine.v2.nodes.Node;

/**
 * Reads an entry's schedule into its {@link Trigger}: one of {@code epoch}, {@code step}, {@code
 * at} or {@code every} (two of them are refused), or none for an entry that runs on its algorithm's
 * events; each value is checked against its range and unit.
 */
final class ScheduleReader {

  private final ScalarReader scalars;
  private final ConfigProblems problems;

  /**
   * Creates a reader of schedules.
   *
   * @param scalars types the schedule's values
   * @param problems where problems go
   */
  ScheduleReader(ScalarReader scalars, ConfigProblems problems) {
    this.scalars = scalars;
    this.problems = problems;
  }

  /**
   * An entry's schedule as read: its trigger (null when unreadable or absent), the node that
   * decides its events (its schedule key once read, else the entry), and whether it is usable.
   */
  record ScheduleRead(Trigger trigger, Node triggerNode, boolean ok) {
    /** The entry unbound, with its schedule kept for the checks across entries where usable. */
    BoundEntry unbound() {
      return new BoundEntry(null, triggerNode, ok ? trigger : null);
    }
  }

  /**
   * Reads the schedule among an entry's keys; {@code spec} is its algorithm when known, {@code
   * where} names the entry in messages and {@code node} is the entry.
   */
  ScheduleRead read(Map<String, Node> keys, AlgorithmSpec spec, String where, Node node) {
    List<String> scheduleKeys = new ArrayList<>();
    for (String k : SCHEDULE_KEYS) {
      if (keys.containsKey(k)) {
        scheduleKeys.add(k);
      }
    }
    if (scheduleKeys.size() > 1) {
      problems.addAt(
          keys.get(scheduleKeys.get(1)),
          where
              + " has both '"
              + scheduleKeys.get(0)
              + "' and '"
              + scheduleKeys.get(1)
              + "': give one schedule (epoch, step, at or every)");
      return new ScheduleRead(null, node, false);
    }
    if (scheduleKeys.isEmpty()) {
      // Whether an entry may go without a schedule depends on its algorithm's events: without a
      // known algorithm there is nothing to judge, and the name problem is the one to fix (a typo
      // in an event-driven plugin's name would otherwise also be told it needs an epoch).
      // With one, the entry runs on events: checked against the algorithm's once it is built.
      return new ScheduleRead(spec != null ? Trigger.onEvents() : null, node, spec != null);
    }
    String key = scheduleKeys.get(0);
    Node scheduleNode = keys.get(key);
    Trigger trigger = trigger(key, scheduleNode);
    return new ScheduleRead(trigger, scheduleNode, trigger != null);
  }

  /** Reads one schedule key: epoch, step, at or every. */
  private Trigger trigger(String key, Node node) {
    switch (key) {
      case EPOCH:
        {
          Integer epoch = scalars.integer(node, EPOCH, 0);
          return epoch == null ? null : Trigger.atEpoch(epoch);
        }
      case STEP:
        {
          Long step = scalars.whole(node, STEP, 1, MAX_STEP);
          return step == null ? null : Trigger.atStep(step);
        }
      default:
        Object v = scalars.scalar(node);
        if (v == ScalarReader.INVALID) {
          return null;
        }
        if (!(v instanceof String text)) {
          problems.addAt(
              node,
              key
                  + " takes a time string such as '2ep' (epochs), '100ba' (batches)"
                  + (key.equals(AT) ? " or '0.5dur' (a fraction of the planned training)" : "")
                  + ", got "
                  + scalars.describe(node));
          return null;
        }
        try {
          Time time = Time.parse(text);
          if (key.equals(EVERY) && time.unit() != Time.Unit.DURATION && time.count() == 0) {
            problems.addAt(node, "every must be at least 1ep or 1ba, got '" + text + "'");
            return null;
          }
          if (time.unit() == Time.Unit.BATCH && (time.count() < 1 || time.count() > MAX_STEP)) {
            problems.addAt(
                node, key + ": a step must be in [1, " + MAX_STEP + "], got '" + text + "'");
            return null;
          }
          if (time.unit() == Time.Unit.EPOCH && time.count() > SurgeryConfig.MAX_EPOCH) {
            problems.addAt(
                node,
                key
                    + ": an epoch must be at most "
                    + SurgeryConfig.MAX_EPOCH
                    + ", got '"
                    + text
                    + "'");
            return null;
          }
          return key.equals(AT) ? Trigger.at(time) : Trigger.every(time);
        } catch (IllegalArgumentException e) {
          problems.addAt(node, key + ": " + e.getMessage());
          return null;
        }
    }
  }
}
