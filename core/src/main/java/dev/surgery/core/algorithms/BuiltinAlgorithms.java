package dev.surgery.core.algorithms;

/**
 * The algorithms of this package that register themselves in {@link Algorithms}; called once from
 * its static initializer.
 */
final class BuiltinAlgorithms {

  private BuiltinAlgorithms() {}

  /** Registers every built-in algorithm, in documentation order. */
  static void registerAll() {
    Algorithms.register(BlurPool.SPEC);
    Algorithms.register(WeightStandardization.SPEC);
    Algorithms.register(GhostBatchNorm.SPEC);
    Algorithms.register(SqueezeExcite.SPEC);
    Algorithms.register(StochasticDepth.SPEC);
    Algorithms.register(LayerFreezing.SPEC);
    Algorithms.register(Factorize.SPEC);
  }
}
