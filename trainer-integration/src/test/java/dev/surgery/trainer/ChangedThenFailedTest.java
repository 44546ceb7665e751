package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Activation;
import ai.djl.nn.LambdaBlock;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.events.Event;
import dev.surgery.core.events.State;
import dev.surgery.trainer.config.OnError;
import dev.surgery.trainer.config.Trigger;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * A plugin that commits a surgery of its own and fails afterwards leaves a model that no rollback
 * restores and no record describes: the listener must not say the model is unchanged, nor train on
 * under {@code on_error: skip}; training stops naming what happened.
 */
class ChangedThenFailedTest {

  /** Replaces the first ReLU by a leaky one (same shapes), then throws. */
  static final class CommitsThenThrows implements Algorithm {
    @Override
    public String name() {
      return "t_commits_then_throws";
    }

    @Override
    public Map<String, Object> hyperparameters() {
      return Map.of();
    }

    @Override
    public SurgeryChanges apply(SurgeryContext context) {
      TestAlgorithms.replace(
          context,
          (block, path) -> block instanceof LambdaBlock,
          (block, index) -> index == 0 ? Activation.leakyReluBlock(0.1f) : null,
          this);
      throw new IllegalStateException("the plugin's second step failed");
    }
  }

  @Test
  void aPluginThatChangedTheModelBeforeFailingStopsTrainingEvenUnderSkip() throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder().add(new CommitsThenThrows(), 1).optOnError(OnError.SKIP).build();
    try (Model model = TestModels.model("changed");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      SurgeryFailedException e =
          assertThrows(
              SurgeryFailedException.class,
              () -> EasyTrain.fit(trainer, 2, TestModels.dataset(data, 7), null));
      assertTrue(
          e.getMessage().contains("failed after it had changed the model")
              && e.getMessage().contains("the plugin's second step failed")
              && e.getMessage().contains("training stops whatever on_error says"),
          e.getMessage());
      assertEquals(1, listener.getOutcomes().size());
      assertEquals(SurgeryOutcome.Status.FAILED, listener.getOutcomes().get(0).status());
      assertNull(model.getProperty(SurgeryListener.PROPERTY), "nothing recorded");
    }
  }

  /** The same plugin at a load event of a model no trainer trains yet. */
  static class CommitsThenThrowsAtLoad implements Algorithm {
    private final CommitsThenThrows inner = new CommitsThenThrows();

    @Override
    public String name() {
      return inner.name();
    }

    @Override
    public Map<String, Object> hyperparameters() {
      return Map.of();
    }

    @Override
    public Set<Event> events() {
      return Set.of(Event.AFTER_LOAD);
    }

    @Override
    public boolean match(Event event, State state) {
      return true;
    }

    @Override
    public SurgeryChanges apply(SurgeryContext context) {
      return inner.apply(context);
    }
  }

  /** A listener of the plugin at AFTER_LOAD alone, under on_error: skip. */
  private static SurgeryListener atLoadUnderSkip(Algorithm plugin) {
    return SurgeryListener.builder()
        .add(plugin, Trigger.onEvents())
        .optOnError(OnError.SKIP)
        .optObservableEvents(Set.of(Event.AFTER_LOAD))
        .build();
  }

  @Test
  void atALoadEventTooAChangeThenAFailureStopsEvenUnderSkip() {
    SurgeryListener listener = atLoadUnderSkip(new CommitsThenThrowsAtLoad());
    try (Model model = TestModels.model("changed-at-load")) {
      SurgeryFailedException e =
          assertThrows(
              SurgeryFailedException.class, () -> listener.onEvent(Event.AFTER_LOAD, model));
      assertTrue(
          e.getMessage().contains("failed after it had changed the model")
              && e.getMessage().contains("loading stops whatever on_error says"),
          e.getMessage());
    }
  }

  @Test
  void atALoadEventAFailureThatChangedNothingIsSkippedUnderSkip() {
    SurgeryListener listener =
        atLoadUnderSkip(
            new CommitsThenThrowsAtLoad() {
              @Override
              public SurgeryChanges apply(SurgeryContext context) {
                throw new IllegalStateException("nothing changed");
              }
            });
    try (Model model = TestModels.model("unchanged-at-load")) {
      listener.onEvent(Event.AFTER_LOAD, model); // logged, loading goes on
    }
  }

  @Test
  void atALoadEventAFreezeThenAFailureStopsEvenUnderSkipAsInTraining() {
    SurgeryListener listener =
        atLoadUnderSkip(
            new CommitsThenThrowsAtLoad() {
              @Override
              public SurgeryChanges apply(SurgeryContext context) {
                // A quiet freeze: no block changes, which the load path once took for nothing.
                context.model().freezeParameters(true);
                throw new IllegalStateException("failed after freezing");
              }
            });
    try (Model model = TestModels.model("frozen-at-load")) {
      SurgeryFailedException e =
          assertThrows(
              SurgeryFailedException.class, () -> listener.onEvent(Event.AFTER_LOAD, model));
      assertTrue(
          e.getMessage().contains("failed after it had changed the model (its blocks or frozen")
              && e.getMessage().contains("failed after freezing")
              && e.getMessage().contains("loading stops whatever on_error says"),
          e.getMessage());
    }
  }
}
