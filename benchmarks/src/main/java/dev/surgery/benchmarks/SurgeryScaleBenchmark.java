package dev.surgery.benchmarks;

import ai.djl.nn.Block;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import dev.surgery.core.BlockMatcher;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.ReplacementFunction;
import dev.surgery.core.SurgeryOptions;
import java.util.ArrayDeque;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * B4a with JMH: count + replace on generated trees of 1k to 200k blocks (nested sequential blocks
 * of 10 children; leaves alternately an uninitialized {@code Linear} and an identity lambda; every
 * {@code Linear}, 45 % of the blocks, replaced by a new one) against a plain breadth-first walk of
 * the same tree with {@code getChildren()}. Replacing a {@code Linear} by a {@code Linear} keeps
 * the tree's shape, so each invocation sees the same tree. Issue 15: per-block time at 200k within
 * 1.5x of at 1k, and within 3x of the walk. {@code countAndReplacePrebuilt} times the engine's part
 * alone (replacements built beforehand); compare both with {@code plainWalk} of the same size, and
 * the engine's part with {@code countAndMinimalPrebuilt}, the least work any two-phase surgery with
 * the engine's guarantees does on this tree. {@code freshIdentityHashes} times the first identity
 * hash of every replacement, one part any surgery that refuses a replacement already in the model
 * must pay.
 *
 * <p>Run: {@code mvn -B -q -pl benchmarks exec:exec@jmh -Dbench.args="-f 1 -wi 3 -i 5
 * SurgeryScaleBenchmark"}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class SurgeryScaleBenchmark {

  /** About this many blocks in the tree. */
  @Param({"1000", "10000", "50000", "200000"})
  public int blocks;

  private SequentialBlock root;
  private Map<BlockMatcher, ReplacementFunction> newLinear;

  /** Builds the tree. */
  @Setup(Level.Trial)
  public void setUp() {
    root = B4ScaleAndLeaks.tree(blocks);
    newLinear = new LinkedHashMap<>();
    newLinear.put(
        BlockMatcher.ofClass(Linear.class), (block, index) -> Linear.builder().setUnits(4).build());
  }

  /**
   * The floor: a breadth-first walk over {@code getChildren()}.
   *
   * @return the number of blocks walked
   */
  @Benchmark
  public int plainWalk() {
    return B4ScaleAndLeaks.plainWalk(root);
  }

  /**
   * Counts the {@code Linear}s, then replaces every one (structural surgery, no trainer).
   *
   * @return the count plus the number replaced
   */
  @Benchmark
  public int countAndReplace() {
    int count = ModuleSurgery.countModuleInstances(root, Linear.class);
    return count + ModuleSurgery.replaceModules(root, newLinear, SurgeryOptions.defaults()).size();
  }

  /**
   * The engine's part of {@link #countAndReplace}: the same count and surgery, with replacements
   * built before the timed section (building 45 % of the tree anew is the replacement function's
   * work, not the engine's).
   *
   * @param prebuilt one new {@code Linear} per {@code Linear} of the tree, built per invocation
   * @return the count plus the number replaced
   */
  @Benchmark
  public int countAndReplacePrebuilt(Prebuilt prebuilt) {
    int count = ModuleSurgery.countModuleInstances(root, Linear.class);
    Map<BlockMatcher, ReplacementFunction> take = new LinkedHashMap<>();
    take.put(BlockMatcher.ofClass(Linear.class), (block, index) -> prebuilt.blocks.poll());
    return count + ModuleSurgery.replaceModules(root, take, SurgeryOptions.defaults()).size();
  }

  /**
   * The floor of {@link #countAndReplacePrebuilt}: the same count, then the least work a two-phase
   * leaf replacement with the engine's guarantees does on this tree ({@link MinimalLeafSurgery}).
   *
   * @param prebuilt one new {@code Linear} per {@code Linear} of the tree, built per invocation
   * @return the count plus the number replaced
   */
  @Benchmark
  public int countAndMinimalPrebuilt(Prebuilt prebuilt) {
    int count = ModuleSurgery.countModuleInstances(root, Linear.class);
    return count
        + MinimalLeafSurgery.replace(root, Linear.class, (block, index) -> prebuilt.blocks.poll());
  }

  /**
   * A floor under any surgery that refuses a replacement already in the model: the first identity
   * hash of every replacement (a fresh block has none until it is asked for, and the check needs
   * one per replacement, whatever the set it is looked up in). Compare with {@link #plainWalk}:
   * this part alone, before any walk, probe or write, is what the engine cannot remove without
   * dropping the check.
   *
   * @param prebuilt one new {@code Linear} per {@code Linear} of the tree, built per invocation
   * @return a sum of the hashes
   */
  @Benchmark
  public int freshIdentityHashes(Prebuilt prebuilt) {
    int sum = 0;
    for (Block block : prebuilt.blocks) {
      sum += System.identityHashCode(block);
    }
    return sum;
  }

  /** Replacements built outside the timed section, anew for every invocation. */
  @State(Scope.Thread)
  public static class Prebuilt {
    final ArrayDeque<Block> blocks = new ArrayDeque<>();

    /**
     * Builds as many new {@code Linear}s as the tree holds.
     *
     * @param bench the benchmark state, for the tree's size
     */
    @Setup(Level.Invocation)
    public void build(SurgeryScaleBenchmark bench) {
      blocks.clear();
      blocks.addAll(
          B4ScaleAndLeaks.newLinears(ModuleSurgery.countModuleInstances(bench.root, Linear.class)));
    }
  }
}
