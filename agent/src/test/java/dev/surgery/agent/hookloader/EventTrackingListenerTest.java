package dev.surgery.agent.hookloader;

import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.Model;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import dev.surgery.core.events.Event;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The agent's tracking listener passes DJL's {@code onEpoch} and {@code onTrainingEnd} on: an
 * evaluation the program opened with {@code Trainer.evaluate} ends there, before the epoch ends and
 * when the trainer closes (a hand-written loop that evaluates last and never calls {@code
 * onEpoch}).
 */
class EventTrackingListenerTest {

  @Test
  void onEpochAndOnTrainingEndCloseAnOpenEvaluation() {
    List<Event> seen = new ArrayList<>();
    AgentEvents events = new AgentEvents((event, t) -> seen.add(event));
    EventTrackingListener tracking = new EventTrackingListener(events);
    try (Model model = Model.newInstance("tracking-test")) {
      model.setBlock(Linear.builder().setUnits(2).build());
      try (Trainer trainer = model.newTrainer(new DefaultTrainingConfig(Loss.l1Loss()))) {
        events.track(trainer);
        events.evaluateStarting(trainer);
        tracking.onEpoch(trainer);
        events.evaluateStarting(trainer);
        tracking.onTrainingEnd(trainer);
      }
    }
    assertEquals(
        List.of(
            Event.EVAL_START, Event.EVAL_END, Event.EPOCH_START, Event.EVAL_START, Event.EVAL_END),
        seen);
  }
}
