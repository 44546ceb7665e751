package dev.surgery.core.algorithms;

import java.util.List;

/**
 * Adds algorithms from another jar: a {@link java.util.ServiceLoader} service. A plugin jar lists
 * its implementation in {@code META-INF/services/dev.surgery.core.algorithms.AlgorithmProvider};
 * {@link Algorithms#loadPlugins(ClassLoader)} finds it (on the class path, or in the jars given to
 * the agent with {@code extensions=a.jar:b.jar}) and registers its algorithms under their names, so
 * that YAML names them like the built-ins and validates their hyperparameters the same way (through
 * each {@link AlgorithmSpec}'s {@link HyperParameter} declarations).
 *
 * <pre>{@code
 * public final class MyProvider implements AlgorithmProvider {
 *   public List<AlgorithmSpec> algorithms() {
 *     return List.of(MyAlgorithm.SPEC);
 *   }
 * }
 * }</pre>
 *
 * <p>An implementation needs a public no-argument constructor.
 */
public interface AlgorithmProvider {

  /**
   * Returns the algorithms this jar adds.
   *
   * @return their specs; each name must be unique among all algorithms
   */
  List<AlgorithmSpec> algorithms();
}
