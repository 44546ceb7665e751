package dev.surgery.core.algorithms;

import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.util.Pair;
import dev.surgery.core.BlockMatcher;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.ReplacementFunction;
import dev.surgery.core.SurgeryOptions;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Stand-in for the shared {@code AbstractSurgeryAlgorithm} base (same protected contract: {@link
 * #policies} and {@link #surgeryOptions}) until both live on one branch; the algorithms of this
 * package switch to the shared base by changing their {@code extends} clause, and this class then
 * goes away.
 */
abstract class PolicySurgeryAlgorithm implements Algorithm {

  /**
   * Returns the replacement policies, in priority order. Called once per {@link #apply}, before the
   * model changes; it may inspect the model and refuse with a {@link
   * dev.surgery.core.SurgeryException}.
   *
   * @param context what the algorithm applies to
   * @return matcher to replacement function
   */
  protected abstract LinkedHashMap<BlockMatcher, ReplacementFunction> policies(
      SurgeryContext context);

  /**
   * Returns the engine options: the context's trainers, no recursion, shapes kept.
   *
   * @param context what the algorithm applies to
   * @return the options
   */
  protected SurgeryOptions surgeryOptions(SurgeryContext context) {
    return SurgeryOptions.builder().optTrainers(context.trainers()).build();
  }

  /** {@inheritDoc} */
  @Override
  public SurgeryReport apply(SurgeryContext context) {
    long start = System.nanoTime();
    Block root = context.model();
    Map<Block, String> paths = BlockPaths.index(root);
    long before = countParameterScalars(root);
    LinkedHashMap<BlockMatcher, ReplacementFunction> policies = policies(context);
    Map<Block, Block> replaced =
        ModuleSurgery.replaceModules(root, policies, surgeryOptions(context));
    List<SurgeryReport.Change> changes = new ArrayList<>(replaced.size());
    for (Map.Entry<Block, Block> e : replaced.entrySet()) {
      changes.add(
          new SurgeryReport.Change(
              BlockPaths.display(paths.get(e.getKey())),
              BlockPaths.typeName(e.getKey()),
              BlockPaths.typeName(e.getValue())));
    }
    long after = countParameterScalars(root);
    return new SurgeryReport(
        name(), hyperparameters(), changes, before, after, System.nanoTime() - start);
  }

  static long countParameterScalars(Block root) {
    Set<Parameter> seen = Collections.newSetFromMap(new IdentityHashMap<>());
    long total = 0;
    for (Pair<String, Parameter> p : root.getParameters()) {
      Parameter parameter = p.getValue();
      if (seen.add(parameter) && parameter.getShape() != null) {
        Shape shape = parameter.getShape();
        total += shape.size();
      }
    }
    return total;
  }

  @Override
  public String toString() {
    return name() + hyperparameters();
  }
}
