package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.core.algorithms.Composition;
import dev.surgery.core.algorithms.LayerFreezing;
import dev.surgery.core.layers.BlurFilter;
import dev.surgery.core.layers.SqueezeExciteConv2d;
import dev.surgery.core.layers.TruncatedSvd;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * Public helpers given a value outside their documented range refuse it by name; an outside probe
 * met an {@code ArrayIndexOutOfBoundsException}, a division by zero, an {@code
 * IndexOutOfBoundsException}, and silent answers (a frozen fraction of 9.0, a width of 1 for NaN).
 */
class ArgumentRangesTest {

  private static void refused(Executable call, String fragment) {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
    assertTrue(e.getMessage().contains(fragment), e.getMessage());
  }

  @Test
  void tailNormTakesRanksFromZeroToTheNumberOfSingularValues() {
    TruncatedSvd svd = TruncatedSvd.of(new float[] {3, 0, 0, 4}, 2, 2);
    assertEquals(5.0, svd.tailNorm(0), 1e-12);
    assertEquals(3.0, svd.tailNorm(1), 1e-12);
    assertEquals(0.0, svd.tailNorm(2), 0.0);
    refused(() -> svd.tailNorm(-1), "rank must be in [0, 2], got -1");
    refused(() -> svd.tailNorm(3), "rank must be in [0, 2], got 3");
  }

  @Test
  void aBlurNeedsAStrideOfAtLeastOne() {
    assertEquals(4, BlurFilter.outputLength(8, 2, 1));
    refused(() -> BlurFilter.outputLength(8, 0, 1), "stride 0");
    refused(() -> BlurFilter.outputLength(8, 1, -1), "padding -1");
  }

  @Test
  void compositionWantsOneEpochPerAlgorithm() {
    List<BlurPool> two = List.of(BlurPool.builder().build(), BlurPool.builder().build());
    refused(() -> Composition.check(two, List.of(1)), "2 algorithms, 1 epochs");
  }

  @Test
  void theFrozenFractionIsAskedForAFractionOfTraining() {
    LayerFreezing freezing = LayerFreezing.builder().build();
    assertEquals(1.0, freezing.frozenFraction(1.0), 1e-12);
    refused(() -> freezing.frozenFraction(5), "in [0, 1], got 5.0");
    refused(() -> freezing.frozenFraction(Double.NaN), "got NaN");
  }

  @Test
  void theGatesWidthNeedsAPositiveFiniteValue() {
    assertEquals(4, SqueezeExciteConv2d.latentWidth(0.25, 16));
    refused(() -> SqueezeExciteConv2d.latentWidth(Double.NaN, 16), "got NaN");
    refused(() -> SqueezeExciteConv2d.latentWidth(-1, 16), "got -1.0");
    refused(() -> SqueezeExciteConv2d.latentWidth(4, 0), "and 0");
  }
}
