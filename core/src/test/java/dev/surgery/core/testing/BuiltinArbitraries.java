package dev.surgery.core.testing;

import dev.surgery.core.Targets;
import dev.surgery.core.algorithms.AbstractSurgeryAlgorithm;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.core.algorithms.Composition;
import dev.surgery.core.algorithms.Factorize;
import dev.surgery.core.algorithms.GhostBatchNorm;
import dev.surgery.core.algorithms.LayerFreezing;
import dev.surgery.core.algorithms.SqueezeExcite;
import dev.surgery.core.algorithms.StochasticDepth;
import dev.surgery.core.algorithms.WeightStandardization;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.Tuple;

/**
 * jqwik generators of the built-in algorithms with random settings and targets, sized for {@link
 * TinyModels#everyAlgorithmNet()}: the schedules of the composition and checkpoint properties.
 */
public final class BuiltinArbitraries {

  private BuiltinArbitraries() {}

  /**
   * The algorithm with the targets, or as it is for null targets.
   *
   * @param algorithm a built-in
   * @param targets where it applies, or null for the whole model
   * @return the algorithm limited to the targets
   */
  public static Algorithm withTargets(Algorithm algorithm, Targets targets) {
    return targets == null
        ? algorithm
        : ((AbstractSurgeryAlgorithm) algorithm).withTargets(targets);
  }

  /**
   * Whole model mostly (null); some entries limited by type or by path (the top-level convolutions,
   * the residual unit's subtree, any convolution at any depth) of {@link
   * TinyModels#everyAlgorithmNet()}.
   *
   * @return targets, or null for the whole model
   */
  public static Arbitrary<Targets> targets() {
    return Arbitraries.frequencyOf(
        Tuple.of(8, Arbitraries.just(null)),
        Tuple.of(
            4,
            Arbitraries.of(
                Targets.include("type:Conv2d"),
                Targets.of(List.of(), List.of("type:Linear")),
                Targets.include("0?Conv2d"),
                Targets.include("08ParallelBlock/**"),
                Targets.include("**/*Conv2d"),
                Targets.of(List.of(), List.of("08ParallelBlock")))));
  }

  /** Each built-in, with settings around the model's sizes. */
  public static final List<Arbitrary<Algorithm>> ALGORITHMS = algorithms();

  /**
   * Each built-in with settings around the model's sizes, so that repeats cover, overlap or miss
   * each other's layers.
   *
   * @return one generator per built-in
   */
  private static List<Arbitrary<Algorithm>> algorithms() {
    Arbitrary<Integer> channels = Arbitraries.of(1, 8, 16, 32, 64);
    Arbitrary<Algorithm> blurPool =
        Combinators.combine(Arbitraries.of(false, true), Arbitraries.of(false, true), channels)
            .filter((convs, pools, min) -> convs || pools)
            .as(
                (convs, pools, min) ->
                    BlurPool.builder()
                        .optReplaceConvs(convs)
                        .optReplaceMaxpools(pools)
                        .optMinChannels(min)
                        .build());
    Arbitrary<Algorithm> standardization =
        Arbitraries.integers()
            .between(0, 3)
            .map(n -> WeightStandardization.builder().optNLastLayersIgnore(n).build());
    Arbitrary<Algorithm> gates =
        Combinators.combine(channels, Arbitraries.of(0.25, 0.5, 4.0))
            .as(
                (min, latent) ->
                    SqueezeExcite.builder().optMinChannels(min).optLatentChannels(latent).build());
    Arbitrary<Algorithm> factorize =
        Combinators.combine(
                Arbitraries.of(false, true),
                Arbitraries.of(false, true),
                Arbitraries.of(8, 16, 32),
                Arbitraries.of(0.25, 0.5, 4.0, 8.0),
                Arbitraries.of(16, 32),
                Arbitraries.of(0.25, 0.5, 8.0))
            .filter((convs, linears, minC, latC, minF, latF) -> convs || linears)
            .as(
                (convs, linears, minC, latC, minF, latF) ->
                    Factorize.builder()
                        .optFactorizeConvs(convs)
                        .optFactorizeLinears(linears)
                        .optMinChannels(minC)
                        .optLatentChannels(latC)
                        .optMinFeatures(minF)
                        .optLatentFeatures(latF)
                        .build());
    Arbitrary<Algorithm> ghost =
        Arbitraries.of(1, 2, 4).map(n -> GhostBatchNorm.builder().optGhostBatchSize(n).build());
    Arbitrary<Algorithm> depth =
        Arbitraries.of("block", "sample")
            .map(m -> StochasticDepth.builder().optStochasticMethod(m).build());
    Arbitrary<Algorithm> freezing =
        Combinators.combine(Arbitraries.of(0.0, 0.25, 0.5), Arbitraries.of(0.5, 1.0))
            .as(
                (start, level) ->
                    LayerFreezing.builder().optFreezeStart(start).optFreezeLevel(level).build());
    return List.of(blurPool, standardization, gates, factorize, ghost, depth, freezing);
  }

  /**
   * One entry of a generated schedule.
   *
   * @param algorithm the algorithm, with its targets
   * @param epoch the completed epochs after which it runs (0: right after initialization)
   */
  public record Entry(Algorithm algorithm, int epoch) {
    @Override
    public String toString() {
      return algorithm.name() + algorithm.hyperparameters() + algorithm.targets() + "@" + epoch;
    }
  }

  /**
   * Entries of the given algorithms with random targets ({@link #targets()}) and epochs.
   *
   * @param algorithm the algorithms
   * @param epoch the epochs
   * @return the entries
   */
  public static Arbitrary<Entry> entries(Arbitrary<Algorithm> algorithm, Arbitrary<Integer> epoch) {
    return Combinators.combine(algorithm, targets(), epoch)
        .as((a, t, e) -> new Entry(withTargets(a, t), e));
  }

  /**
   * Entries of any built-in ({@link #ALGORITHMS}) with random targets and epochs.
   *
   * @param epoch the epochs
   * @return the entries
   */
  public static Arbitrary<Entry> entries(Arbitrary<Integer> epoch) {
    return entries(Arbitraries.oneOf(ALGORITHMS), epoch);
  }

  /**
   * Sorts a schedule the way it is applied: by epoch, then as written.
   *
   * @param schedule the entries as written
   * @return a new list in the order of application
   */
  public static List<Entry> applicationOrder(List<Entry> schedule) {
    List<Entry> order = new ArrayList<>(schedule);
    order.sort(Comparator.comparingInt(Entry::epoch));
    return order;
  }

  /**
   * The conflicts {@link Composition} finds in a schedule.
   *
   * @param order the schedule in the order of application
   * @return the conflicts; empty when the schedule composes
   */
  public static List<Composition.Conflict> conflicts(List<Entry> order) {
    return Composition.check(
        order.stream().map(Entry::algorithm).toList(), order.stream().map(Entry::epoch).toList());
  }

  /**
   * Schedules of one to three entries of any built-in, at epochs 0 to {@code lastEpoch}, that the
   * rules accept ({@link Composition#check}): none is drawn in vain where a refused one would be
   * skipped.
   *
   * @param lastEpoch the latest completed epoch an entry may run after
   * @return the schedules, as written
   */
  public static Arbitrary<List<Entry>> acceptedSchedules(int lastEpoch) {
    return entries(Arbitraries.integers().between(0, lastEpoch))
        .list()
        .ofMinSize(1)
        .ofMaxSize(MOST_ACCEPTED_ENTRIES)
        .filter(s -> conflicts(applicationOrder(s)).isEmpty());
  }

  /** The most entries {@link #acceptedSchedules} draws. */
  public static final int MOST_ACCEPTED_ENTRIES = 3;

  /**
   * DJL's optimizers that the PyTorch engine runs.
   *
   * @return SGD, SGD with momentum, Adam and AdamW as the tests build them
   */
  public static Arbitrary<OptimizerKind> optimizers() {
    return Arbitraries.of(
        OptimizerKind.SGD, OptimizerKind.SGD_MOMENTUM, OptimizerKind.ADAM, OptimizerKind.ADAMW);
  }
}
