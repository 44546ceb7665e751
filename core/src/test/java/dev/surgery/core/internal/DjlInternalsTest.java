package dev.surgery.core.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.nn.AbstractBlock;
import ai.djl.training.ParameterStore;
import ai.djl.training.optimizer.Optimizer;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The reflection layer resolves against this DJL and names what changed when it does not. */
class DjlInternalsTest {

  @Test
  void everyFieldResolvesAgainstThisDjl() {
    DjlInternals.verify();
  }

  @Test
  void missingFieldNamesTheDjlClassAndField() {
    DjlInternalsException e =
        assertThrows(
            DjlInternalsException.class,
            () -> DjlInternals.field(AbstractBlock.class, "childrenRenamed", Object.class));
    assertTrue(e.getMessage().contains("ai.djl.nn.AbstractBlock.childrenRenamed"), e.getMessage());
  }

  @Test
  void retypedFieldNamesBothTypes() {
    DjlInternalsException e =
        assertThrows(
            DjlInternalsException.class,
            () -> DjlInternals.field(ParameterStore.class, "parameterMap", Optimizer.class));
    assertTrue(e.getMessage().contains("ai.djl.training.ParameterStore.parameterMap"));
    assertTrue(e.getMessage().contains(Map.class.getName()), e.getMessage());
  }

  @Test
  void optimizerStateMapsAreFoundByType() {
    assertEquals(
        java.util.Set.of("Adam.means", "Adam.variances"),
        DjlInternals.optimizerStates(Optimizer.adam().build()).keySet());
    assertEquals(
        java.util.Set.of("Sgd.momentumStates"),
        DjlInternals.optimizerStates(
                Optimizer.sgd()
                    .setLearningRateTracker(ai.djl.training.tracker.Tracker.fixed(0.1f))
                    .build())
            .keySet());
  }
}
