package dev.surgery.agent.hookloader;

import ai.djl.training.Trainer;
import ai.djl.training.listener.TrainingListenerAdapter;

/**
 * The agent's second listener on each trainer, placed just before its {@code SurgeryListener}: it
 * sees DJL's {@code onEpoch} and {@code onTrainingEnd} first, so that an evaluation the program
 * opened with {@code Trainer.evaluate} ends ({@code EVAL_END}) before the epoch does ({@code
 * EPOCH_END}, the surgery listener's own {@code onEpoch}).
 */
final class EventTrackingListener extends TrainingListenerAdapter {

  private final AgentEvents events;

  EventTrackingListener(AgentEvents events) {
    this.events = events;
  }

  /** {@inheritDoc} */
  @Override
  public void onEpoch(Trainer trainer) {
    events.epochEnding(trainer);
  }

  /** {@inheritDoc} */
  @Override
  public void onTrainingEnd(Trainer trainer) {
    events.trainingEnding(trainer);
  }
}
