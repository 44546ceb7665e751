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
  private final Trainer trainer;
  private final boolean live;
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
      boolean live,
      TrainerState st,
      int totalEpochs,
      long totalSteps) {
    this.event = event;
    this.trainer = trainer;
    this.live = live;
    this.completedEpochs = st.passedEpochs();
    this.steps = st.steps;
    this.batchInEpoch = st.batchInEpoch;
    this.totalEpochs = totalEpochs;
    this.totalSteps = totalSteps;
    this.recentLosses = List.copyOf(st.recentLosses);
    this.record = List.copyOf(st.reports);
  }

  @Override
  public Event event() {
    return event;
  }

  @Override
  public Model model() {
    return trainer.getModel();
  }

  @Override
  public Trainer trainer() {
    return trainer;
  }

  @Override
  public List<Trainer> trainers() {
    return live ? List.of(trainer) : List.of();
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
    return new SurgeryContext(
        trainer.getModel().getBlock(), trainers(), completedEpochs, totalEpochs);
  }
}
