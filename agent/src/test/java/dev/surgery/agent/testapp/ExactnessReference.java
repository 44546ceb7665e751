package dev.surgery.agent.testapp;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.pooling.Pool;
import ai.djl.training.ParameterStore;
import ai.djl.training.dataset.Batch;
import ai.djl.training.dataset.Dataset;
import ai.djl.training.optimizer.Adam;
import ai.djl.training.optimizer.AdamW;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.ParameterTracker;
import ai.djl.translate.TranslateException;
import ai.djl.util.PairList;
import ai.djl.util.Progress;
import java.io.IOException;
import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;

/**
 * The twins of {@link ExactnessApp} written with DJL alone, no DJL Surgery: blocks that switch from
 * a plain layer to its BlurPool form when told, keeping their very parameters (so DJL's own
 * optimizer keeps their state, as a surgery that adopts them must; the blur is written out here: a
 * depthwise 3x3 convolution with {@code [1,2,1] x [1,2,1] / 16}, zero padding 1); convolutions that
 * gain a squeeze-excite gate then, drawn from the engine's generator at that point; DJL's own
 * freezing of the first layers; DJL's optimizers with what a fresh optimizer gives a parameter born
 * mid-training; and a data set that makes a switch between two given steps.
 */
final class ExactnessReference {

  private ExactnessReference() {}

  /** Whether the blurred form runs; switched on at the program's chosen epoch end. */
  static volatile boolean blurred;

  private static NDArray blur(NDArray input, long stride) {
    long channels = input.getShape().get(1);
    float[] taps = {1, 2, 1};
    float[] all = new float[(int) channels * 9];
    for (int c = 0; c < channels; c++) {
      for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) {
          all[c * 9 + i * 3 + j] = taps[i] * taps[j] / 16;
        }
      }
    }
    try (NDArray filter = input.getManager().create(all, new Shape(channels, 1, 3, 3))) {
      return Conv2d.conv2d(
              input,
              filter,
              null,
              new Shape(stride, stride),
              new Shape(1, 1),
              new Shape(1, 1),
              (int) channels)
          .singletonOrThrow();
    }
  }

  /**
   * A block around a 3x3 convolution (padding 1), its child {@code conv}: the convolution's output
   * shapes and initialization are the block's, whatever a switch changes in its forward.
   */
  abstract static class AroundConv extends AbstractBlock {
    final Conv2d conv;

    AroundConv(int filters, int stride) {
      this.conv = addChildBlock("conv", ExactnessApp.conv(filters, stride));
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
      return conv.getOutputShapes(inputShapes);
    }

    @Override
    protected void initializeChildBlocks(
        NDManager manager, DataType dataType, Shape... inputShapes) {
      conv.initialize(manager, dataType, inputShapes);
    }
  }

  /** A strided 3x3 convolution (padding 1) that blurs its input first once switched. */
  static final class SwitchConv extends AroundConv {
    private final int stride;

    SwitchConv(int filters, int stride) {
      super(filters, stride);
      this.stride = stride;
    }

    @Override
    protected NDList forwardInternal(
        ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
      if (!blurred) {
        return conv.forward(ps, inputs, training, params);
      }
      NDArray x = inputs.singletonOrThrow();
      Parameter w = conv.getParameters().get("weight");
      Parameter b = conv.getParameters().get("bias");
      return Conv2d.conv2d(
          blur(x, 1),
          ps.getValue(w, x.getDevice(), training),
          ps.getValue(b, x.getDevice(), training),
          new Shape(stride, stride),
          new Shape(1, 1),
          new Shape(1, 1),
          1);
    }
  }

  /**
   * A 2x2 max pool with stride 2 that becomes a dense max pool and a strided blur once switched.
   */
  static final class SwitchPool extends AbstractBlock {
    @Override
    protected NDList forwardInternal(
        ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
      NDArray x = inputs.singletonOrThrow();
      if (!blurred) {
        return new NDList(
            Pool.maxPool2d(x, new Shape(2, 2), new Shape(2, 2), new Shape(0, 0), false));
      }
      NDArray pooled = Pool.maxPool2d(x, new Shape(2, 2), new Shape(1, 1), new Shape(0, 0), false);
      return new NDList(blur(pooled, 2));
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
      Shape in = inputShapes[0];
      return new Shape[] {new Shape(in.get(0), in.get(1), in.get(2) / 2, in.get(3) / 2)};
    }
  }

  /**
   * A strided 3x3 convolution (padding 1) that gets a squeeze-excite gate once switched: its two
   * bias-free linear layers are built, initialized (drawing from the engine's generator) and
   * registered only then, so they draw what a gate built by surgery at that point draws.
   */
  static final class SwitchSe extends AroundConv {
    private final int channels;
    private final int latent;
    private Linear reduce;
    private Linear expand;

    SwitchSe(int filters, int stride, int latent) {
      super(filters, stride);
      this.channels = filters;
      this.latent = latent;
    }

    /** Builds and initializes the gate on the convolution's manager. */
    void addGate() {
      NDArray weight = conv.getParameters().get("weight").getArray();
      reduce = addChildBlock("reduce", Linear.builder().setUnits(latent).optBias(false).build());
      expand = addChildBlock("expand", Linear.builder().setUnits(channels).optBias(false).build());
      reduce.initialize(weight.getManager(), DataType.FLOAT32, new Shape(8, channels));
      expand.initialize(weight.getManager(), DataType.FLOAT32, new Shape(8, latent));
    }

    @Override
    protected NDList forwardInternal(
        ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
      NDList out = conv.forward(ps, inputs, training, params);
      if (reduce == null) {
        return out;
      }
      NDArray x = out.singletonOrThrow();
      long n = x.getShape().get(0);
      long c = x.getShape().get(1);
      NDArray squeezed = x.reshape(n, c, -1).mean(new int[] {2});
      NDArray hidden = Activation.relu(reduce.forward(ps, new NDList(squeezed), training).head());
      NDArray gate = Activation.sigmoid(expand.forward(ps, new NDList(hidden), training).head());
      return new NDList(x.mul(gate.reshape(n, c, 1, 1)));
    }
  }

  /** The switch of a step-level twin: BlurPool's form on, and the gates of a gated network. */
  static void switchOn(Block root) {
    blurred = true;
    addGates(root);
  }

  /** Adds the gates of every {@link SwitchSe} of a sequence, in order (none in other networks). */
  static void addGates(Block root) {
    for (Block child : root.getChildren().values()) {
      if (child instanceof SwitchSe se) {
        se.addGate();
      }
    }
  }

  /**
   * The optimizer step under way, 1-based: the program counts its batches. A fresh optimizer's
   * schedule for a parameter born mid-training is read here (the model's position); DJL's own count
   * for a parameter it never updated is the highest count so far, which before the first other
   * parameter of that step is the previous step (it depends on the store's map order).
   */
  static volatile int currentStep;

  /**
   * DJL's Adam and AdamW with what a fresh optimizer gives a parameter born mid-training: the bias
   * correction of its own update count (DJL's own uses the highest count of any parameter), while
   * the learning-rate schedule is read at the model's position, {@link #currentStep}.
   */
  static final class Counts {
    private final Map<String, Integer> own = new HashMap<>();

    int next(String id) {
      return own.merge(id, 1, Integer::sum);
    }

    static ParameterTracker atPosition(ParameterTracker schedule) {
      return (id, ignored) -> schedule.getNewValue(id, currentStep);
    }
  }

  /** DJL's Sgd (no bias correction; momentum starts at zero) with the schedule at the position. */
  static Optimizer freshSgdMomentum(ParameterTracker schedule) {
    return Optimizer.sgd()
        .setLearningRateTracker(Counts.atPosition(schedule))
        .optMomentum(0.9f)
        .optWeightDecays(0.001f)
        .build();
  }

  static Optimizer freshAdam(ParameterTracker schedule) {
    Counts counts = new Counts();
    return new Adam(Adam.builder().optLearningRateTracker(Counts.atPosition(schedule))) {
      @Override
      protected int updateCount(String id) {
        return counts.next(id);
      }
    };
  }

  static Optimizer freshAdamOptions(ParameterTracker schedule) {
    Counts counts = new Counts();
    return new Adam(
        Adam.builder()
            .optLearningRateTracker(Counts.atPosition(schedule))
            .optBeta1(0.8f)
            .optBeta2(0.99f)
            .optEpsilon(1e-6f)
            .optWeightDecays(0.01f)
            .optClipGrad(0.05f)
            .setRescaleGrad(0.5f)) {
      @Override
      protected int updateCount(String id) {
        return counts.next(id);
      }
    };
  }

  static Optimizer freshAdamW(ParameterTracker schedule, float weightDecay) {
    Counts counts = new Counts();
    return new AdamW(
        AdamW.builder()
            .optLearningRateTracker(Counts.atPosition(schedule))
            .optWeightDecays(weightDecay)) {
      @Override
      protected int updateCount(String id) {
        return counts.next(id);
      }
    };
  }

  /** A data set that runs an action just before its batch number {@code at + 1} is fetched. */
  static final class HookedDataset implements Dataset {
    private final Dataset inner;
    private final int at;
    private final Runnable action;
    private int fetched;

    HookedDataset(Dataset inner, int at, Runnable action) {
      this.inner = inner;
      this.at = at;
      this.action = action;
    }

    @Override
    public Iterable<Batch> getData(NDManager manager) throws IOException, TranslateException {
      Iterable<Batch> batches = inner.getData(manager);
      return () -> {
        Iterator<Batch> it = batches.iterator();
        return new Iterator<>() {
          @Override
          public boolean hasNext() {
            return it.hasNext();
          }

          @Override
          public Batch next() {
            if (++fetched == at + 1) {
              action.run();
            }
            return it.next();
          }
        };
      };
    }

    @Override
    public void prepare(Progress progress) throws IOException, TranslateException {
      inner.prepare(progress);
    }
  }

  /** The first {@code count} layers with parameters of a tree, frozen the way DJL freezes. */
  static void freezeFirst(Block root, int count) {
    int[] left = {count};
    freeze(root, left);
  }

  private static void freeze(Block block, int[] left) {
    if (left[0] <= 0) {
      return;
    }
    if (block.getChildren().isEmpty() || block instanceof SwitchConv || block instanceof SwitchSe) {
      if (!block.getParameters().isEmpty()) {
        block.freezeParameters(true);
        left[0]--;
      }
      return;
    }
    for (Block child : block.getChildren().values()) {
      freeze(child, left);
    }
  }
}
