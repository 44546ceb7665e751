package dev.surgery.benchmarks;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.training.Trainer;
import dev.surgery.core.BlockMatcher;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.ReplacementFunction;
import dev.surgery.core.SurgeryOptions;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * B1's weights-copied surgery in steady state: every strided {@code Conv2d} of the trained
 * ResNet-50 of B1 replaced, with the live Adam trainer, by a new {@code Conv2d} holding native
 * copies of its weights, again and again on one model (each surgery replaces the previous one's
 * copies, which are strided {@code Conv2d}s too), against its floor: a native duplicate of exactly
 * those arrays, freed again (the surgery frees the arrays it replaces, so both allocate and free as
 * many). B1 times a surgery that runs a handful of times per JVM, as a user's does, mostly before
 * the JIT has compiled the engine; this times the same work once the code is compiled, which tells
 * how much of B1's ratio is the engine's work and how much cold code.
 *
 * <p>Run: {@code mvn -B -q -pl benchmarks exec:exec@jmh -Dbench.args="-f 2 -wi 5 -i 5 -w 2s -r 3s
 * LiveCopyBenchmark"}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class LiveCopyBenchmark {

  private Model model;
  private Trainer trainer;
  private Map<BlockMatcher, ReplacementFunction> copies;
  private SurgeryOptions options;

  /** Builds B1's ResNet-50 and trains it two Adam steps. */
  @Setup(Level.Trial)
  public void setUp() {
    model = Model.newInstance("live-copy");
    trainer = B1LiveSurgery.trainedTwoSteps(model);
    copies = new LinkedHashMap<>();
    copies.put(B1LiveSurgery.STRIDED, (block, index) -> B1LiveSurgery.copyOf((Conv2d) block));
    options = SurgeryOptions.builder().optTrainers(List.of(trainer)).build();
  }

  /** The model the surgery changes (for the smoke test). */
  Model model() {
    return model;
  }

  /** Closes the trainer and the model. */
  @TearDown(Level.Trial)
  public void tearDown() {
    BenchSupport.close(model, trainer);
  }

  /**
   * The surgery: every strided {@code Conv2d} replaced by a weight copy, live.
   *
   * @return the number of blocks replaced
   */
  @Benchmark
  public int weightsCopied() {
    return ModuleSurgery.replaceModules(model.getBlock(), copies, options).size();
  }

  /**
   * The floor: a native duplicate of the same parameter arrays, each freed again.
   *
   * @return the number of arrays duplicated
   */
  @Benchmark
  public int nativeDuplicate() {
    List<NDArray> arrays = new ArrayList<>();
    B1LiveSurgery.collect(model.getBlock(), B1LiveSurgery.STRIDED, arrays);
    for (NDArray array : arrays) {
      array.duplicate().close();
    }
    return arrays.size();
  }
}
