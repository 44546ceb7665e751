package dev.surgery.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.apache.commons.math3.distribution.TDistribution;
import org.apache.commons.math3.stat.descriptive.SummaryStatistics;
import org.junit.jupiter.api.Test;

/**
 * B2b's intervals decide whether the agent's idle cost is resolved to 1 %; their arithmetic is
 * checked against commons-math3's Student-t distribution and summary statistics.
 */
class B2IntervalTest {

  @Test
  void halfIntervalIsTheStudentTQuantileTimesTheStandardError() {
    Random random = new Random(7);
    for (int n : new int[] {2, 3, 10, 30, 31, 32, 60, 120, 300, 1000}) {
      List<Double> values = sample(random, n);
      SummaryStatistics stats = summary(values);
      double expected =
          new TDistribution(n - 1).inverseCumulativeProbability(0.975)
              * stats.getStandardDeviation()
              / Math.sqrt(n);
      assertEquals(expected, B2IdleOverhead.halfInterval95(values), 1e-3 * expected, "n=" + n);
    }
  }

  @Test
  void balancedIntervalAveragesTheGroupMeansAndAddsTheirVariances() {
    Random random = new Random(11);
    List<Double> a = sample(random, 12);
    List<Double> b = new ArrayList<>();
    for (double v : sample(random, 12)) {
      b.add(v + 0.05); // one core 5 % slower: it moves the mean, not the width
    }
    SummaryStatistics sa = summary(a);
    SummaryStatistics sb = summary(b);
    double se = Math.sqrt(sa.getVariance() / sa.getN() + sb.getVariance() / sb.getN()) / 2;
    double expectedHalf = new TDistribution(11).inverseCumulativeProbability(0.975) * se;

    double[] meanAndHalf = B2IdleOverhead.balancedInterval95(a, b);

    assertEquals((sa.getMean() + sb.getMean()) / 2, meanAndHalf[0], 1e-12);
    assertEquals(expectedHalf, meanAndHalf[1], 1e-3 * expectedHalf);
    List<Double> all = new ArrayList<>(a);
    all.addAll(b);
    // Pooled without blocks, the core difference would widen the interval.
    assertTrue(B2IdleOverhead.halfInterval95(all) > meanAndHalf[1]);
  }

  private static List<Double> sample(Random random, int n) {
    List<Double> values = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      values.add(1 + 0.04 * random.nextGaussian());
    }
    return values;
  }

  private static SummaryStatistics summary(List<Double> values) {
    SummaryStatistics stats = new SummaryStatistics();
    values.forEach(stats::addValue);
    return stats;
  }

  @Test
  void anIntervalOfOneRoundSaysSoInsteadOfNaN() {
    assertEquals(
        "n/a (needs 2 rounds here; run more --rounds)", B2IdleOverhead.interval(List.of(1.01)));
    assertFalse(B2IdleOverhead.interval(List.of(1.01, 1.02)).contains("NaN"));
  }
}
