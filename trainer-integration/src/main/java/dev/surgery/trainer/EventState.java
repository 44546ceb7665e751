package dev.surgery.trainer;

import ai.djl.Model;
import ai.djl.training.Trainer;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.events.Event;
import dev.surgery.core.events.State;
import java.util.List;

/**
 * The {@link State} {@link SurgeryListener} gives algorithms at one event: a snapshot of one
 * trainer's counters, made for one call.
 */
final class EventState implements State {

  private final Event event;
  private final Model model;
  private final Trainer trainer;

  /** The trainers a surgery keeps exact: this one and its model's other live ones, or none. */
  private final List<Trainer> liveTrainers;

  private final int completedEpochs;
  private final long steps;
  private final long batchInEpoch;
  private final int totalEpochs;
  private final long totalSteps;
  private final List<Float> recentLosses;
  private final List<SurgeryChanges> record;

  EventState(
      Event event,
      Trainer trainer,
      List<Trainer> liveTrainers,
      TrainerState st,
      int totalEpochs,
      long totalSteps) {
    this.event = event;
    this.model = trainer.getModel();
    this.trainer = trainer;
    this.liveTrainers = List.copyOf(liveTrainers);
    this.completedEpochs = st.passedEpochs();
    this.steps = st.stepsTaken(); // counted from BATCH_END, or from DJL's batch callbacks
    this.batchInEpoch = st.batchInEpoch;
    this.totalEpochs = totalEpochs;
    this.totalSteps = totalSteps;
    this.recentLosses = st.losses.recent();
    this.record = st.surgeryRecord(RecordedEntries.recordOf(trainer.getModel()));
  }

  /** A state for a load event of a model no trainer trains: no trainer, counters at 0. */
  EventState(Event event, Model model) {
    this.event = event;
    this.model = model;
    this.trainer = null;
    this.liveTrainers = List.of();
    this.completedEpochs = 0;
    this.steps = 0;
    this.batchInEpoch = 0;
    this.totalEpochs = 0;
    this.totalSteps = 0;
    this.recentLosses = List.of();
    this.record = SurgeryRecord.asChanges(RecordedEntries.recordOf(model));
  }

  @Override
  public Event event() {
    return event;
  }

  @Override
  public Model model() {
    return model;
  }

  @Override
  public Trainer trainer() {
    return trainer;
  }

  @Override
  public List<Trainer> trainers() {
    return liveTrainers;
  }

  @Override
  public int completedEpochs() {
    return completedEpochs;
  }

  @Override
  public long globalSteps() {
    return steps;
  }

  @Override
  public long batchInEpoch() {
    return batchInEpoch;
  }

  @Override
  public int totalEpochs() {
    return totalEpochs;
  }

  @Override
  public long totalSteps() {
    return totalSteps;
  }

  @Override
  public List<Float> recentLosses() {
    return recentLosses;
  }

  @Override
  public List<SurgeryChanges> surgeryRecord() {
    return record;
  }

  @Override
  public SurgeryContext surgeryContext() {
    if (!event.allowsSurgery()) {
      throw new IllegalStateException(
          "no surgery at "
              + event.configName()
              + ": a batch's forward or backward is in flight (surgery is exact only between an"
              + " optimizer step and the next forward)");
    }
    return new SurgeryContext(model.getBlock(), trainers(), completedEpochs, totalEpochs);
  }
}
