package dev.surgery.agent.hookloader;

import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.training.Trainer;
import dev.surgery.agent.shared.AgentLog;
import dev.surgery.core.BlockInspector;
import dev.surgery.core.SurgeryPlan;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.PlanUnavailableException;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.internal.DjlShapes;
import dev.surgery.trainer.EntryPlan;
import dev.surgery.trainer.SurgeryListener;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import dev.surgery.trainer.config.Trigger;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.OptionalInt;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The agent's dry run ({@code dry_run=true}): nothing is applied; once, when the first trainer's
 * model is initialized, the plan of every entry is printed (and written where the config says). A
 * plan needs the model's shapes, so for a program that never calls {@code trainer.initialize} the
 * model is initialized at its first forward as DJL's forward is about to do it, where the agent can
 * do that exactly.
 */
final class DryRunPlan {

  private final SurgeryListener listener;
  private final AtomicBoolean printed = new AtomicBoolean();

  /**
   * Creates it for the agent's listener.
   *
   * @param listener the listener whose schedule is planned
   */
  DryRunPlan(SurgeryListener listener) {
    this.listener = listener;
  }

  /** {@code Trainer.initialize} returned: the plan, the first time. */
  void trainerInitialized(Trainer trainer) {
    if (printed.compareAndSet(false, true)) {
      AgentLog.info(planTable(trainer));
    }
  }

  /**
   * A dry run for a program that never calls {@code trainer.initialize}: the plan needs the model's
   * shapes, so the model is initialized as DJL's forward is about to do (on the trainer's manager,
   * with the first forward's input shapes, FLOAT32, only for DJL's own blocks), and the plan is
   * printed. Where that would not be exactly DJL's initialization, the dry run says it cannot plan,
   * rather than saying nothing.
   */
  void forwardStarting(Trainer trainer, Object data) {
    if (printed.get()) {
      return;
    }
    Block block = trainer.getModel().getBlock();
    if (block == null || BlockInspector.wasInitialized(block)) {
      return;
    }
    if (!FirstForwardInitialization.exactly(block, data, trainer.getModel().getDataType())) {
      if (printed.compareAndSet(false, true)) {
        AgentLog.info(
            "dry run (dry_run=true): no plan: the program never called trainer.initialize(shapes)"
                + " and the model cannot be initialized exactly as DJL would at its first forward");
      }
      return;
    }
    // Exactly what DJL's forward is about to do (AbstractBaseBlock.forward: the trainer's manager,
    // FLOAT32, the input's shapes), so the program goes on as without the agent: its arrays on
    // the trainer's manager, the same draws; DJL's forward then finds the model initialized.
    // The forward registers each parameter in the trainer's store as it reads it; registered now
    // (the same call, the same arrays), the plan sees what the trainer will hold at the entry's
    // epoch and says what an apply does to each parameter's optimizer state.
    FirstForwardInitialization.initialize(trainer, block, ((NDList) data).getShapes());
    if (printed.compareAndSet(false, true)) {
      AgentLog.info(planTable(trainer));
    }
  }

  /**
   * The plan of every entry, in application order, each on the model as it is now (nothing is
   * applied in a dry run, so a later entry's plan does not see an earlier entry's changes), with
   * what an apply would do to the trainer's optimizer state (the plan only reads it).
   */
  private String planTable(Trainer trainer) {
    Block block = trainer.getModel().getBlock();
    StringBuilder sb =
        new StringBuilder(
            "dry run (dry_run=true): nothing is applied. What each entry would change on the"
                + " model as initialized:");
    // Multiply-accumulates are counted for the input the trainer was initialized with.
    Shape input = initializedInput(block);
    List<EntryPlan> plans = new ArrayList<>();
    // Entries at epoch 0 run before the first step: first. The others in the order of the file:
    // an epoch and a step cannot be compared here (the batches per epoch are unknown). A step
    // entry's epoch() is 0, so it must not be taken for an epoch-0 entry.
    List<ScheduledAlgorithm> order = new ArrayList<>(listener.getSchedule());
    order.sort(
        Comparator.comparingInt((ScheduledAlgorithm e) -> beforeTraining(e) ? 0 : 1)
            .thenComparingInt(ScheduledAlgorithm::index));
    for (ScheduledAlgorithm entry : order) {
      Algorithm algorithm = entry.algorithm();
      String title = entry.describe() + " " + algorithm.settings();
      int planned = listener.getPlannedEpochs(trainer);
      // Planned where the entry first runs: what layer freezing freezes follows the epochs
      // completed then (a step entry's epoch() is 0, not the epoch its step falls in).
      OptionalInt completed = listener.completedEpochsAtFirstRun(trainer, entry);
      SurgeryContext context =
          new SurgeryContext(block, List.of(trainer), completed.orElse(entry.epoch()), planned);
      sb.append('\n');
      if (algorithm.needsTotalEpochs() && planned > 0 && completed.isEmpty()) {
        String why =
            EntryPlan.NO_PLAN
                + "what it changes follows the epochs completed when it runs ("
                + entry.trigger().describe()
                + "), which the batches per epoch decide, not known before training; the dry run"
                + " cannot say what it would change";
        plans.add(new EntryPlan(entry, null, why));
        sb.append(title).append("\n  ").append(why);
        continue;
      }
      if (algorithm.needsTotalEpochs() && planned <= 0) {
        // Not a failure: EasyTrain.fit announces the length when it starts, after this plan.
        String why =
            EntryPlan.NO_PLAN
                + "it needs the planned number of epochs, which EasyTrain.fit announces when it"
                + " starts, after this plan (a loop of the program's own needs 'total_epochs');"
                + " the dry run cannot say what it would change";
        plans.add(new EntryPlan(entry, null, why));
        sb.append(title).append("\n  ").append(why);
        continue;
      }
      try {
        SurgeryPlan plan = algorithm.plan(context, input);
        plans.add(new EntryPlan(entry, plan, null));
        sb.append(plan.toTable(title));
      } catch (PlanUnavailableException e) {
        // An algorithm that cannot plan (one that acts on events, a plugin): not a failure.
        String why =
            EntryPlan.NO_PLAN
                + e.getMessage()
                + " before it runs; the dry run cannot say what it would change";
        plans.add(new EntryPlan(entry, null, why));
        sb.append(title).append("\n  ").append(why);
      } catch (RuntimeException e) {
        plans.add(new EntryPlan(entry, null, String.valueOf(e.getMessage())));
        sb.append(title).append("\n  would fail: ").append(e.getMessage());
      }
    }
    listener
        .writePlanReport(plans)
        .ifPresent(path -> sb.append("\nplan written to ").append(path.toAbsolutePath()));
    return sb.toString();
  }

  /** Whether an entry runs before the first training step: at epoch 0. */
  private static boolean beforeTraining(ScheduledAlgorithm entry) {
    return entry.trigger().kind() == Trigger.Kind.EPOCH && entry.epoch() == 0;
  }

  /** The model's single input shape as recorded by {@code Trainer.initialize}, or null. */
  private static Shape initializedInput(Block block) {
    try {
      Shape[] shapes = block.isInitialized() ? DjlShapes.recordedInputShapes(block) : null;
      return shapes != null && shapes.length == 1 ? shapes[0] : null;
    } catch (RuntimeException e) {
      return null;
    }
  }
}
