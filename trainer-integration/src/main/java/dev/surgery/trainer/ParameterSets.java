package dev.surgery.trainer;

import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import dev.surgery.core.algorithms.LayerFreezing;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;

/**
 * The sets of a tree's parameters that freeze bookkeeping compares, each by identity (DJL's {@code
 * Parameter} may compare by value in a subclass, and two parameters may share a name). Running
 * statistics (batch norm's mean and variance) never take gradients and DJL's {@code newTrainer}
 * leaves them so: they are neither frozen nor trainable here.
 */
final class ParameterSets {

  private ParameterSets() {}

  /** A new, empty, mutable identity set. */
  static <T> Set<T> identitySet() {
    return Collections.newSetFromMap(new IdentityHashMap<>());
  }

  /** Every parameter of a tree (a new, mutable set). */
  static Set<Parameter> all(Block block) {
    Set<Parameter> all = identitySet();
    all.addAll(block.getParameters().values());
    return all;
  }

  /** Whether a parameter is a running statistic, which no freeze is about. */
  static boolean isStatistic(Parameter p) {
    return LayerFreezing.isStatistic(p);
  }

  /** The trainable kinds of parameters of a tree that take no gradient now (a new, mutable set). */
  static Set<Parameter> frozen(Block block) {
    Set<Parameter> frozen = identitySet();
    for (Parameter p : block.getParameters().values()) {
      if (!isStatistic(p) && !p.requiresGradient()) {
        frozen.add(p);
      }
    }
    return frozen;
  }

  /** The trainable kinds of parameters of a tree that take a gradient now (a new, mutable set). */
  static Set<Parameter> trainable(Block block) {
    Set<Parameter> trainable = identitySet();
    for (Parameter p : block.getParameters().values()) {
      if (!isStatistic(p) && p.requiresGradient()) {
        trainable.add(p);
      }
    }
    return trainable;
  }
}
