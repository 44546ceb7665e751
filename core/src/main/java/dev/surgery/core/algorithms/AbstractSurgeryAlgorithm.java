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
 * Base class for algorithms that work by replacing blocks through {@link
 * ModuleSurgery#replaceModules}: the subclass says which blocks to replace and how ({@link
 * #policies}); this class runs the surgery on the context's model and trainers, and builds the
 * {@link SurgeryReport} (block paths before surgery, old and new types, parameter counts before and
 * after, elapsed time).
 *
 * <p>A subclass validates its hyperparameters in its constructor (so that an invalid value fails
 * before anything changes) and keeps {@link #policies} free of side effects on the model: the
 * engine makes the changes and undoes all of them if one fails.
 */
public abstract class AbstractSurgeryAlgorithm implements Algorithm {

  /** Creates the algorithm; subclasses validate their hyperparameters in their constructor. */
  protected AbstractSurgeryAlgorithm() {}

  /**
   * Returns the replacement policies to run, in priority order: the first matcher that selects a
   * block decides its replacement. Called once per {@link #apply}, before the model is changed, so
   * it may inspect the model and throw a {@link dev.surgery.core.SurgeryException} to refuse the
   * surgery.
   *
   * @param context what the algorithm applies to
   * @return matcher to replacement function, in priority order
   */
  protected abstract LinkedHashMap<BlockMatcher, ReplacementFunction> policies(
      SurgeryContext context);

  /**
   * Returns the engine options for one application. The default keeps the context's trainers exact,
   * does not visit replacements, and requires output shapes to be kept. Override to change that
   * (start from {@code SurgeryOptions.builder().optTrainers(context.trainers())}).
   *
   * @param context what the algorithm applies to
   * @return the options
   */
  protected SurgeryOptions surgeryOptions(SurgeryContext context) {
    return SurgeryOptions.builder().optTrainers(context.trainers()).build();
  }

  /**
   * Runs the surgery described by {@link #policies} and reports it.
   *
   * @param context the model, its trainers and where training stands
   * @return what changed; empty when nothing matched
   * @throws dev.surgery.core.SurgeryException if the surgery failed; nothing was changed then
   */
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
    Map<Block, String> pathsAfter = null;
    for (Map.Entry<Block, Block> e : replaced.entrySet()) {
      String path = paths.get(e.getKey());
      if (path == null) {
        // An intermediate replacement (recursion on replacements): it has only a path after.
        if (pathsAfter == null) {
          pathsAfter = BlockPaths.index(root);
        }
        path = pathsAfter.get(e.getValue());
      }
      changes.add(
          new SurgeryReport.Change(
              BlockPaths.display(path),
              BlockPaths.typeName(e.getKey()),
              BlockPaths.typeName(e.getValue())));
    }
    long after = countParameterScalars(root);
    return new SurgeryReport(
        name(), hyperparameters(), changes, before, after, System.nanoTime() - start);
  }

  /**
   * Counts the parameter values (scalars) under a block: the sum of the sizes of its distinct
   * {@link Parameter} objects (a parameter shared by several blocks counts once). A parameter whose
   * shape is not known yet (uninitialized model) counts 0.
   *
   * @param root the root block
   * @return the number of scalars
   */
  public static long countParameterScalars(Block root) {
    Set<Parameter> seen = Collections.newSetFromMap(new IdentityHashMap<>());
    long total = 0;
    for (Pair<String, Parameter> p : root.getParameters()) {
      Parameter parameter = p.getValue();
      if (seen.add(parameter)) {
        Shape shape = parameter.getShape();
        if (shape != null) {
          total += shape.size();
        }
      }
    }
    return total;
  }

  /**
   * Shows the algorithm as its config name and hyperparameters, for example {@code
   * blurpool{replace_convs=true, min_channels=16}}.
   *
   * @return the description
   */
  @Override
  public String toString() {
    return name() + hyperparameters();
  }
}
