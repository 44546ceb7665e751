package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import ai.djl.Model;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import dev.surgery.core.testing.TinyModels;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The options builder: each setter sets what the surgery reads, replacing an earlier call's. */
class SurgeryOptionsTest {

  @Test
  void optTrainersReplacesTheTrainersSetBeforeAndNullClearsThem() {
    DefaultTrainingConfig config = new DefaultTrainingConfig(Loss.l2Loss());
    try (Model model = TinyModels.model("options", Linear.builder().setUnits(2).build());
        Trainer first = model.newTrainer(config);
        Trainer second = model.newTrainer(config)) {
      SurgeryOptions.Builder builder = SurgeryOptions.builder().optTrainers(List.of(first));
      assertEquals(List.of(first), builder.build().getTrainers());
      assertEquals(List.of(second), builder.optTrainers(List.of(second)).build().getTrainers());
      assertEquals(List.of(), builder.optTrainers(null).build().getTrainers());
    }
  }

  @Test
  void optIndicesHandsTheCallersMapToTheSurgery() {
    Map<Object, Integer> indices = new HashMap<>();
    SurgeryOptions options =
        SurgeryOptions.builder().optIndices(indices).optRecurseOnReplacements(true).build();
    assertSame(indices, options.getIndices(), "updated in place, as Composer's indices are");
    assertEquals(true, options.isRecurseOnReplacements());
  }
}
