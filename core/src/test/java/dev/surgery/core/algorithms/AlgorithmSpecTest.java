package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.surgery.core.Targets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * How a spec builds an algorithm from config values: values converted and checked before its
 * factory runs, {@code include} and {@code exclude} taken as targets for every algorithm, and a
 * factory that returns no algorithm of the spec's name refused.
 */
class AlgorithmSpecTest {

  @Test
  void ofConvertsAndChecksValuesBeforeTheFactorySeesThem() {
    List<Integer> seen = new ArrayList<>();
    AlgorithmSpec spec =
        AlgorithmSpec.of(
            GhostBatchNorm.NAME,
            List.of(GhostBatchNorm.GHOST_BATCH_SIZE),
            values -> {
              seen.add(values.get(GhostBatchNorm.GHOST_BATCH_SIZE));
              return GhostBatchNorm.builder()
                  .optGhostBatchSize(values.get(GhostBatchNorm.GHOST_BATCH_SIZE))
                  .build();
            });
    assertEquals(
        Map.of("ghost_batch_size", 8),
        spec.create(Map.of("ghost_batch_size", 8L)).hyperparameters());
    assertEquals(List.of(8), seen);
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class, () -> spec.create(Map.of("ghost_batch_size", 0)));
    assertEquals(
        "ghost_batch_size must be >= 1, got 0 (ghost_batch_size: samples per chunk normalized"
            + " separately in training)",
        e.getMessage());
    assertEquals(List.of(8), seen, "the factory ran for a refused value");
  }

  @Test
  void hyperParameterFindsADeclarationByItsNameOnly() {
    assertSame(BlurPool.MIN_CHANNELS, BlurPool.SPEC.hyperParameter("min_channels"));
    assertSame(BlurPool.BLUR_FIRST, BlurPool.SPEC.hyperParameter("blur_first"));
    assertNull(BlurPool.SPEC.hyperParameter("min_channel"));
    assertNull(BlurPool.SPEC.hyperParameter(Targets.INCLUDE));
  }

  @Test
  void includeAndExcludeBecomeTheAlgorithmsTargets() {
    Algorithm limited =
        BlurPool.SPEC.create(
            Map.of(
                "include",
                "05ParallelBlock",
                "exclude",
                List.of("**/02SequentialBlock", "01Conv2d"),
                "min_channels",
                8));
    assertEquals(
        Targets.include("05ParallelBlock").exclude("**/02SequentialBlock", "01Conv2d"),
        limited.targets());
    assertEquals(8, limited.hyperparameters().get("min_channels"));
    assertFalse(limited.hyperparameters().containsKey("include"));
    assertEquals(Targets.ALL, BlurPool.SPEC.create(Map.of()).targets());
  }

  @Test
  void patternsThatAreNotStringsAreRefusedNamingTheKey() {
    IllegalArgumentException number =
        assertThrows(
            IllegalArgumentException.class,
            () -> BlurPool.SPEC.create(Map.of("include", List.of("01Conv2d", 3))));
    assertEquals(
        "include must be a list of block patterns (strings), found 3", number.getMessage());
    IllegalArgumentException map =
        assertThrows(
            IllegalArgumentException.class,
            () -> BlurPool.SPEC.create(Map.of("exclude", Map.of("a", "b"))));
    assertEquals(
        "exclude must be a list of block patterns (strings), found {a=b}", map.getMessage());
  }

  /** Its records are replayed by name: a factory must return an algorithm of the spec's name. */
  @Test
  void aFactoryReturningNothingOrAnotherAlgorithmIsRefusedNamingBoth() {
    AlgorithmPluginException none =
        assertThrows(
            AlgorithmPluginException.class,
            () -> new AlgorithmSpec("plug", List.of(), values -> null).create(Map.of()));
    assertEquals(
        "the factory of algorithm 'plug' returned null: it must return an algorithm whose name()"
            + " is 'plug'",
        none.getMessage());
    AlgorithmPluginException other =
        assertThrows(
            AlgorithmPluginException.class,
            () ->
                new AlgorithmSpec("plug", List.of(), values -> GhostBatchNorm.builder().build())
                    .create(Map.of()));
    assertEquals(
        "the factory of algorithm 'plug' returned an algorithm named 'ghost_batchnorm'"
            + " (dev.surgery.core.algorithms.GhostBatchNorm): it must return an algorithm whose"
            + " name() is 'plug'",
        other.getMessage());
  }
}
