package dev.surgery.benchmarks;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.layers.BlurFilter;
import java.util.ArrayList;
import java.util.List;

/**
 * B3: what BlurPool costs. ResNet-20 (DJL's {@code ResNetV1}, 20 layers, 16/32/64 filters) trains
 * on 32 x 32 inputs on the CPU with and without BlurPool (the 4 strided convolutions with at least
 * 16 input channels, blur before the convolution); steps of the two models alternate so that both
 * see the same machine load, each timed in wall clock and in the thread's CPU time. Then the blur
 * alone, forward and backward on the activations the 4 blurred convolutions see (at the 1x1
 * shortcuts only where their stride reads), against the same blur written as a plain depthwise
 * {@code Conv2d.conv2d(..., groups = channels)} call. Run: {@code mvn -B -q -pl benchmarks
 * exec:exec -Dbench.main=dev.surgery.benchmarks.B3BlurPoolCost -Dbench.args="--steps 30"}.
 */
public final class B3BlurPoolCost {

  private static final int CLASSES = 10;

  /** The command line. */
  static final BenchFlags FLAGS =
      BenchFlags.of("B3BlurPoolCost", "B3: what BlurPool costs per training step of ResNet-20")
          .count("steps", 30, 1, "measured steps per model")
          .count("batch", 32, 1, "batch size");

  private B3BlurPoolCost() {}

  /**
   * Runs the benchmark.
   *
   * @param args {@code --steps N} measured steps per model (default 30), {@code --batch N} (default
   *     32)
   * @throws Exception if DJL fails
   */
  public static void main(String[] args) throws Exception {
    BenchFlags.Values flags = FLAGS.orExit(args, v -> v);
    int steps = flags.count("steps");
    int batch = flags.count("batch");
    Shape input = new Shape(batch, 3, 32, 32);
    Engine.getInstance().setRandomSeed(3);
    List<Double> plainTimes = new ArrayList<>();
    List<Double> blurTimes = new ArrayList<>();
    // Thread CPU beside wall time: PyTorch runs on this thread alone when started with one thread,
    // and CPU time does not count the time the thread waited for a core.
    List<Double> plainCpu = new ArrayList<>();
    List<Double> blurCpu = new ArrayList<>();
    int blurred;
    try (Model plain = Model.newInstance("b3-plain");
        Model blur = Model.newInstance("b3-blur")) {
      plain.setBlock(resnet20());
      blur.setBlock(resnet20());
      try (Trainer plainTrainer = plain.newTrainer(config());
          Trainer blurTrainer = blur.newTrainer(config())) {
        plainTrainer.initialize(input);
        blurTrainer.initialize(input);
        blurred =
            BlurPool.builder()
                .build()
                .apply(SurgeryContext.live(blur.getBlock(), blurTrainer, 0, 0))
                .changes()
                .size();
        for (int s = -5; s < steps; s++) {
          // Alternate which model steps first, so that neither always runs on a warmer cache.
          double[] p;
          double[] b;
          if (s % 2 == 0) {
            p = timedStep(plainTrainer, input);
            b = timedStep(blurTrainer, input);
          } else {
            b = timedStep(blurTrainer, input);
            p = timedStep(plainTrainer, input);
          }
          if (s >= 0) {
            plainTimes.add(p[0]);
            blurTimes.add(b[0]);
            plainCpu.add(p[1]);
            blurCpu.add(b[1]);
          }
        }
      }
    }
    double plainMs = BenchSupport.median(plainTimes);
    double blurMs = BenchSupport.median(blurTimes);

    // The blur alone on the inputs of the four blurred convolutions, as they blur (blur first):
    // stage 2's first unit sees 16 x 32 x 32, stage 3's 32 x 16 x 16; the 3x3 convolution blurs
    // every position, the 1x1 shortcut only those its stride 2 reads.
    Shape[] activations = {
      new Shape(batch, 16, 32, 32),
      new Shape(batch, 16, 32, 32),
      new Shape(batch, 32, 16, 16),
      new Shape(batch, 32, 16, 16)
    };
    Shape[] strides = {new Shape(1, 1), new Shape(2, 2), new Shape(1, 1), new Shape(2, 2)};
    List<Double> ours = new ArrayList<>();
    List<Double> plainConv = new ArrayList<>();
    try (NDManager manager = NDManager.newBaseManager()) {
      BlurFilter filter = new BlurFilter();
      NDArray[] inputs = new NDArray[activations.length];
      NDArray[] kernels = new NDArray[activations.length];
      for (int i = 0; i < activations.length; i++) {
        inputs[i] = manager.randomUniform(0, 1, activations[i]);
        kernels[i] = BlurFilter.create(manager, activations[i].get(1), DataType.FLOAT32);
      }
      for (int s = -5; s < steps; s++) {
        double a = blurForwardBackward(manager, inputs, strides, null, filter);
        double b = blurForwardBackward(manager, inputs, strides, kernels, null);
        if (s >= 0) {
          ours.add(a);
          plainConv.add(b);
        }
      }
    }
    double oursMs = BenchSupport.median(ours);
    double convMs = BenchSupport.median(plainConv);
    List<List<String>> rows = new ArrayList<>();
    rows.add(row("ResNet-20 step, no BlurPool", "%.1f", plainTimes, "1.00"));
    rows.add(
        row(
            "ResNet-20 step, BlurPool (" + blurred + " BlurConv2d)",
            "%.1f",
            blurTimes,
            BenchSupport.f("%.2f", blurMs / plainMs)));
    double plainCpuMs = BenchSupport.median(plainCpu);
    double blurCpuMs = BenchSupport.median(blurCpu);
    rows.add(row("ResNet-20 step, no BlurPool, thread CPU", "%.1f", plainCpu, "1.00"));
    rows.add(
        row(
            "ResNet-20 step, BlurPool, thread CPU",
            "%.1f",
            blurCpu,
            BenchSupport.f("%.2f", blurCpuMs / plainCpuMs)));
    rows.add(
        row(
            "4 blurs fwd+bwd: BlurFilter.blur (cached filter)",
            "%.2f",
            ours,
            BenchSupport.f("%.2f", oursMs / convMs)));
    rows.add(row("4 blurs fwd+bwd: plain Conv2d.conv2d(groups = C)", "%.2f", plainConv, "1.00"));
    BenchSupport.printTable(
        "B3 BlurPool cost: ResNetV1-20 at 32 x 32, batch "
            + batch
            + ", Adam, CPU, "
            + steps
            + " interleaved steps each, "
            + BenchSupport.machine(),
        List.of("measurement", "median ms", "min..max ms", "ratio"),
        rows);
    System.out.println(
        BenchSupport.f("BlurPool step overhead: %+.1f %%", 100 * (blurMs / plainMs - 1))
            + BenchSupport.f(" (thread CPU: %+.1f %%)", 100 * (blurCpuMs / plainCpuMs - 1))
            + BenchSupport.f(
                "; blur share of a BlurPool step (from the step times): %.1f %%",
                100 * (blurMs - plainMs) / blurMs)
            + BenchSupport.f(
                "; blur share (from the blur micro-benchmark): %.1f %%", 100 * oursMs / blurMs));
  }

  /** One training step; returns its wall and thread CPU milliseconds. */
  private static double[] timedStep(Trainer trainer, Shape input) {
    long cpu = BenchSupport.threadCpuNanos();
    long t = System.nanoTime();
    BenchSupport.trainStep(trainer, input, CLASSES);
    return new double[] {BenchSupport.millisSince(t), BenchSupport.cpuMillisSince(cpu)};
  }

  /** Blurs every input and back-propagates the sum; returns the time in ms (copies not timed). */
  private static double blurForwardBackward(
      NDManager manager, NDArray[] inputs, Shape[] strides, NDArray[] kernels, BlurFilter filter) {
    try (NDManager step = manager.newSubManager()) {
      NDArray[] xs = new NDArray[inputs.length];
      for (int i = 0; i < inputs.length; i++) {
        xs[i] = inputs[i].duplicate();
        xs[i].attach(step);
        xs[i].setRequiresGradient(true);
      }
      long start = System.nanoTime();
      try (GradientCollector collector = Engine.getInstance().newGradientCollector()) {
        blurAll(xs, strides, kernels, filter, collector);
      }
      return BenchSupport.millisSince(start);
    }
  }

  private static void blurAll(
      NDArray[] xs,
      Shape[] strides,
      NDArray[] kernels,
      BlurFilter filter,
      GradientCollector collector) {
    NDArray total = null;
    for (int i = 0; i < xs.length; i++) {
      NDArray x = xs[i];
      NDArray y =
          filter != null
              ? filter.blur(x, strides[i])
              : Conv2d.conv2d(
                      x,
                      kernels[i],
                      null,
                      strides[i],
                      new Shape(1, 1),
                      new Shape(1, 1),
                      (int) x.getShape().get(1))
                  .singletonOrThrow();
      NDArray sum = y.sum();
      total = total == null ? sum : total.add(sum);
    }
    collector.backward(total);
  }

  /** A table row: the label, the median and range of the times, and the ratio to the baseline. */
  private static List<String> row(String label, String format, List<Double> times, String ratio) {
    return List.of(
        label,
        BenchSupport.f(format, BenchSupport.median(times)),
        BenchSupport.range(times, format),
        ratio);
  }

  private static ai.djl.nn.Block resnet20() {
    // DJL picks the 3-stage CIFAR layout for heights up to 28; the network is fully convolutional,
    // so it trains on 32 x 32 inputs as well.
    return BenchSupport.resNet20(new Shape(3, 28, 28), CLASSES).build();
  }

  private static DefaultTrainingConfig config() {
    return BenchSupport.adamConfig();
  }
}
