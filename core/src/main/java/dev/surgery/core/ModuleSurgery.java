package dev.surgery.core;

import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.Trainer;
import java.util.Collection;
import java.util.List;
import java.util.Map;

/** The surgery engine (work in progress: signatures are final, bodies land next). */
public final class ModuleSurgery {

  private ModuleSurgery() {}

  public static int countModuleInstances(Block module, Class<?>... moduleClasses) {
    throw new UnsupportedOperationException("not yet implemented");
  }

  public static Map<Block, Block> replaceModuleClasses(
      Block module, Map<Class<? extends Block>, ReplacementFunction> policies) {
    throw new UnsupportedOperationException("not yet implemented");
  }

  public static Map<Block, Block> replaceModuleClasses(
      Block module,
      Map<Class<? extends Block>, ReplacementFunction> policies,
      Collection<Trainer> optimizers,
      boolean recurseOnReplacements,
      Map<Class<? extends Block>, Integer> indices) {
    throw new UnsupportedOperationException("not yet implemented");
  }

  public static int countModuleInstances(Block module, BlockMatcher matcher) {
    throw new UnsupportedOperationException("not yet implemented");
  }

  public static Map<Block, Block> replaceModules(
      Block module, Map<BlockMatcher, ReplacementFunction> policies, SurgeryOptions options) {
    throw new UnsupportedOperationException("not yet implemented");
  }

  public static void replaceParamsInOptimizer(
      List<Parameter> oldParams, List<Parameter> newParams, Collection<Trainer> optimizers) {
    throw new UnsupportedOperationException("not yet implemented");
  }

  public static void updateParamsInOptimizer(
      Iterable<Parameter> oldParams,
      Iterable<Parameter> newParams,
      Collection<Trainer> optimizers) {
    throw new UnsupportedOperationException("not yet implemented");
  }
}
