package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.Model;
import ai.djl.nn.Block;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.training.Trainer;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.layers.AdoptingConv2d;
import dev.surgery.core.layers.FactorizedConv2d;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Epoch-0 entries run in file order, also when an earlier one waits for the initialized model: an
 * entry that needs no shapes after one that does waits behind it, so that the pair composes as the
 * file says (and as the config check, which reads the file's order, assumed).
 */
@ExtendWith(OneIntraOpThread.class)
class EpochZeroFileOrderTest {

  /**
   * factorize (needs shapes) then weight_standardization (does not), both at epoch 0 on a model not
   * initialized when the trainer is built: weight standardization used to run first, at the
   * trainer's construction, so the factorized convolutions' 1 x 1 layers stayed plain (22
   * standardized instead of the 34 the file's order makes).
   */
  @Test
  void aStructuralEntryAfterOneThatWaitsForShapesRunsAfterIt() {
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(CompositionMatrixTest.algorithm(CompositionMatrixTest.FACT), 0)
            .add(CompositionMatrixTest.algorithm(CompositionMatrixTest.WS), 0)
            .build();
    try (Model model = Model.newInstance("epoch-zero-order")) {
      model.setBlock(CompositionMatrixTest.resNet20());
      try (Trainer trainer = model.newTrainer(CompositionMatrixTest.config(listener))) {
        trainer.initialize(CompositionMatrixTest.INPUT);
        listener.onInitialized(trainer);
      }
      List<SurgeryOutcome> outcomes = listener.getOutcomes();
      assertEquals(
          List.of(CompositionMatrixTest.FACT, CompositionMatrixTest.WS),
          outcomes.stream().map(SurgeryOutcome::algorithm).toList(),
          outcomes.toString());
      Block root = model.getBlock();
      long factorized = 0;
      long plain = 0;
      for (Block b : BlockPaths.index(root).keySet()) {
        if (b instanceof FactorizedConv2d) {
          factorized++;
        }
        if (b.getClass() == Conv2d.class
            || (b instanceof AdoptingConv2d c && !c.isWeightStandardized())) {
          plain++;
        }
      }
      assertEquals(12, factorized);
      assertEquals(0, plain, "every convolution, both layers of each factorized one included");
      assertEquals(34, outcomes.get(1).changes().changes().size(), outcomes.toString());
    }
  }
}
