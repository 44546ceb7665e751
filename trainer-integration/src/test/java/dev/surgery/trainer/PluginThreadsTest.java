package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Parameter;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.SurgeryLock;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

/**
 * A plugin's {@code apply} runs without {@link SurgeryLock}: only the surgery calls it makes take
 * it. A reviewer found the listener holding the lock around every plugin's apply, so one that
 * handed a freeze to a helper thread (as the engine's advice for a deep tree says) and waited for
 * it hung for good.
 */
class PluginThreadsTest {

  @Test
  void aPluginMayWaitForSurgeryOnAnotherThread() throws Exception {
    AtomicBoolean helperDone = new AtomicBoolean();
    AtomicBoolean lockFreeInApply = new AtomicBoolean();
    TestAlgorithms.SimpleAlgorithm freezeOnHelper =
        new TestAlgorithms.SimpleAlgorithm("t_freeze_on_helper", Map.of(), false) {
          @Override
          public SurgeryChanges apply(SurgeryContext context) {
            lockFreeInApply.set(
                !((java.util.concurrent.locks.ReentrantLock) SurgeryLock.get()).isLocked());
            Parameter first = context.model().getParameters().values().get(0);
            Thread helper =
                new Thread(
                    () -> {
                      ModuleSurgery.freezeParameters(List.of(first), context.trainers());
                      helperDone.set(true);
                    },
                    "helper");
            helper.start();
            try {
              helper.join(20_000);
            } catch (InterruptedException e) {
              throw new IllegalStateException(e);
            }
            return new SurgeryChanges(name(), Map.of(), List.of(), 0, 0, 0);
          }
        };
    SurgeryListener listener = SurgeryListener.builder().add(freezeOnHelper, 1).build();
    try (Model model = TestModels.model("helper");
        NDManager data = NDManager.newBaseManager()) {
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        EasyTrain.fit(trainer, 2, TestModels.dataset(data, 5), null);
      }
      assertTrue(lockFreeInApply.get(), "the listener held the lock around the plugin's apply");
      assertTrue(helperDone.get(), "the helper's freeze never ran: the plugin's wait hung");
      assertFalse(
          model.getBlock().getParameters().values().get(0).requiresGradient(),
          "the helper froze the first parameter");
    }
  }
}
