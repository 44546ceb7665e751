package dev.surgery.trainer;

import ai.djl.Model;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.events.Event;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import dev.surgery.trainer.config.Trigger;
import java.util.List;
import java.util.Set;

/**
 * Runs the event-driven entries that take a model's load event ({@link Event#BEFORE_LOAD}, {@link
 * Event#AFTER_LOAD}) when the listener serves no trainer of the model, such as {@code Model.load}
 * before training. Apart from {@link EntryRunner} because nothing of a training run applies here:
 * there is no trainer whose state, schedule or surgery record a run could change, so nothing is
 * recorded, and a failure is told to the program at once, stopping the load where it would stop
 * training ({@link FailedEntries#stops}).
 */
final class LoadEventEntries {

  private final List<ScheduledAlgorithm> schedule;
  private final FailedEntries failures;

  LoadEventEntries(List<ScheduledAlgorithm> schedule, FailedEntries failures) {
    this.schedule = schedule;
    this.failures = failures;
  }

  /**
   * Runs the event-driven entries that take a model's load event ({@link Event#BEFORE_LOAD}, {@link
   * Event#AFTER_LOAD}) when this listener serves no trainer of the model: nothing is recorded (no
   * trainer trains it), and a failure stops the load where it would stop training, for the same
   * reasons, told in the same order.
   *
   * @param event the load event
   * @param model the model being loaded
   * @throws SurgeryFailedException when a failure stops the load
   */
  void run(Event event, Model model) {
    EventState state = new EventState(event, model);
    for (ScheduledAlgorithm entry : schedule) {
      Algorithm algorithm = entry.algorithm();
      if (entry.trigger().kind() != Trigger.Kind.EVENTS || !algorithm.events().contains(event)) {
        continue;
      }
      String call = "match";
      // Walked only for an entry about to apply, as in training. Only whether the frozen set
      // changed matters here (nothing is recorded at a load): no provenance of the freezes.
      List<Block> blocksBefore = null;
      Set<Parameter> frozenBefore = null;
      try {
        if (algorithm.match(event, state)) {
          call = "apply";
          Block block = model.getBlock();
          blocksBefore = BeforeRun.blocksOf(block);
          frozenBefore = block == null ? Set.of() : ParameterSets.frozen(block);
          algorithm.apply(event, state);
        }
      } catch (Throwable e) { // whatever the plugin's call throws is its failure: checked ones
        // undeclared, a class its jar lacks, a broken assert, its recursion overflowing the stack
        RuntimeException error = FailedEntries.pluginError(call, event, algorithm, e);
        // As in training: a change no rollback undoes, loaded on under skip, would be a model that
        // neither the program nor a record knows.
        Block now = model.getBlock();
        boolean changed =
            blocksBefore != null
                && (!BeforeRun.sameBlocks(blocksBefore, BeforeRun.blocksOf(now))
                    || !(now == null ? Set.of() : ParameterSets.frozen(now)).equals(frozenBefore));
        boolean jvm = FailedEntries.jvmFailing(e) || FailedEntries.jvmFailing(error.getCause());
        String message = "Surgery: " + entry.describe() + " failed: " + error.getMessage();
        if (failures.stops(changed, jvm)) {
          throw new SurgeryFailedException(
              message
                  + (changed
                      ? " (it failed after it had changed the model (its blocks or frozen"
                          + " parameters), which is neither undone nor recorded: loading stops"
                          + " whatever on_error says)"
                      : jvm
                          ? " (the JVM is failing: loading stops whatever on_error says)"
                          : " (on_error: fail stops here; use on_error: skip to go on without it)"),
              algorithm.name(),
              0,
              null,
              error);
        }
        ListenerLog.logger().error("{} (on_error: skip, loading goes on)", message);
      }
    }
  }
}
