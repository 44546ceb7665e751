package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import ai.djl.Model;
import ai.djl.nn.Block;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import dev.surgery.core.testing.TinyModels;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
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

  /**
   * A reviewer: {@code optIndices(null)} kept null, which a plan took for fresh counters while the
   * surgery itself failed at the first match ("rolled back: ... this.indices is null"). Null now
   * gives counters of the options' own from 0, as {@code replaceModuleClasses} takes null indices.
   */
  @Test
  void optIndicesNullGivesFreshCountersThatTheSurgeryUpdates() {
    SequentialBlock model = new SequentialBlock();
    model.add(Linear.builder().setUnits(3).build());
    model.add(Linear.builder().setUnits(2).build());
    BlockMatcher linears = BlockMatcher.ofClass(Linear.class);
    List<Integer> passed = new ArrayList<>();
    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(
        linears,
        (block, index) -> {
          passed.add(index);
          return Linear.builder().setUnits(BlockInspector.linearUnits((Linear) block)).build();
        });
    SurgeryOptions options = SurgeryOptions.builder().optIndices(null).build();

    Map<Block, Block> replaced = ModuleSurgery.replaceModules(model, policies, options);

    assertEquals(2, replaced.size());
    assertEquals(List.of(0, 1), passed, "the counters start at 0");
    assertEquals(Map.of(linears, 2), options.getIndices(), "and are updated in place");
  }
}
