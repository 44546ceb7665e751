package dev.surgery.core;

import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.LambdaBlock;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import dev.surgery.core.internal.DjlShapes;
import dev.surgery.core.layers.BlurConv2d;
import dev.surgery.core.layers.BlurFilter;
import dev.surgery.core.layers.BlurMaxPool2d;
import dev.surgery.core.layers.BlurPool2d;
import dev.surgery.core.layers.FactorizedBlock;
import dev.surgery.core.layers.SqueezeExcite2d;
import dev.surgery.core.layers.SqueezeExciteConv2d;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Counts the multiply-accumulates of one forward per sample for the block types whose cost follows
 * from their settings and input shape: convolutions and linear layers (with the project's layers
 * built from them) and the blur filter (a depthwise 3x3 convolution). Elementwise work, pooling
 * maxima and normalization are not multiply-accumulates of a weight and are not counted: DJL's max
 * pools (its {@code maxPool*} lambdas) count 0. Any other type gives null (unknown) rather than a
 * guess.
 */
final class MacCounter {

  /** The names DJL's {@code Pool} gives its max-pool lambdas. */
  private static final Set<String> MAX_POOLS =
      Set.of(
          "maxPool1d",
          "maxPool2d",
          "maxPool3d",
          "globalMaxPool1d",
          "globalMaxPool2d",
          "globalMaxPool3d");

  private MacCounter() {}

  /**
   * Finds the input shapes of the blocks under {@code root} for a model input, one per place a
   * block runs (a block held at two places of the tree runs twice per sample): sequential and
   * parallel blocks pass shapes on through their children's {@code getOutputShapes} (past a lambda
   * that recorded this input, through the next child's recorded input, which runs no lambda); below
   * another composite only an initialized child's recorded shapes are used, and only when the
   * composite was initialized with this very input. A place it cannot reach gets no entry.
   *
   * @param root the root block
   * @param input the model's input shapes, batch axis first; the batch is taken as 1
   * @return block to its input shapes (batch 1) at each place reached, and its places in all
   */
  static Reached inputShapes(Block root, Shape[] input) {
    Reached reached = new Reached(new IdentityHashMap<>(), new IdentityHashMap<>());
    countPlaces(root, reached.places());
    walk(root, perSample(input), reached);
    return reached;
  }

  /**
   * What {@link #inputShapes} found: per block, the input shapes at the places the shapes reached,
   * and how many places it has in the tree.
   */
  record Reached(Map<Block, List<Shape[]>> shapes, Map<Block, Integer> places) {}

  private static void walk(Block block, Shape[] in, Reached reached) {
    reached.shapes().computeIfAbsent(block, b -> new ArrayList<>(1)).add(in);
    List<Block> children = block.getChildren().values();
    if (children.isEmpty()) {
      return;
    }
    if (block instanceof SequentialBlock) {
      Shape[] current = in;
      for (int i = 0, size = children.size(); i < size; i++) {
        Block child = children.get(i);
        walk(child, current, reached);
        if (i + 1 == size) {
          break; // the sequence's own output is not followed from here
        }
        Block next = children.get(i + 1);
        try {
          current =
              lambdaOutputRecorded(child, current, next, reached)
                  ? perSample(DjlShapes.recordedInputShapes(next))
                  : perSample(child.getOutputShapes(current));
        } catch (RuntimeException e) {
          return; // the rest of the sequence stays unknown
        }
      }
    } else if (block instanceof ParallelBlock) {
      for (Block child : children) {
        walk(child, in, reached);
      }
    } else if (recordedInputIs(block, in)) {
      for (Block child : children) {
        if (child.isInitialized()) {
          walk(child, perSample(DjlShapes.recordedInputShapes(child)), reached);
        }
      }
    }
  }

  /**
   * Whether a lambda's output for this input can be read from the next block's recorded input
   * rather than computed: DJL's {@code LambdaBlock.getOutputShapes} runs the lambda on zeros, so a
   * lambda that draws random numbers (noise, a dropout of its own) would move the program's random
   * generator. Only where the lambda last recorded this very input and the next block runs at this
   * one place, so that what it recorded is what the lambda gives here.
   */
  private static boolean lambdaOutputRecorded(
      Block child, Shape[] in, Block next, Reached reached) {
    return child instanceof LambdaBlock
        && recordedInputIs(child, in)
        && next.isInitialized()
        && reached.places().getOrDefault(next, 0) == 1;
  }

  private static void countPlaces(Block block, Map<Block, Integer> places) {
    places.merge(block, 1, Integer::sum);
    for (Block child : block.getChildren().values()) {
      countPlaces(child, places);
    }
  }

  /**
   * Counts the multiply-accumulates per sample of a block at every place it runs: the sum over its
   * places, or null when the shapes did not reach every one of them or a place's count is unknown.
   *
   * @param block the block
   * @param reached the shapes and places of the tree the block ran in
   * @param at the block whose places count (the replaced one, for its replacement)
   * @return the count, or null
   */
  static Long macsAtEveryPlace(Block block, Reached reached, Block at) {
    List<Shape[]> ins = reached.shapes().get(at);
    if (ins == null || ins.size() != reached.places().getOrDefault(at, 0)) {
      return null;
    }
    long total = 0;
    for (Shape[] in : ins) {
      Long c = macs(block, in);
      if (c == null) {
        return null;
      }
      total += c;
    }
    return total;
  }

  private static boolean recordedInputIs(Block block, Shape[] in) {
    if (!block.isInitialized()) {
      return false;
    }
    try {
      return java.util.Arrays.equals(perSample(DjlShapes.recordedInputShapes(block)), in);
    } catch (RuntimeException e) {
      return false;
    }
  }

  /** The shapes with batch axis 1, so that counts are per sample. */
  static Shape[] perSample(Shape[] shapes) {
    Shape[] out = new Shape[shapes.length];
    for (int i = 0; i < shapes.length; i++) {
      Shape s = shapes[i];
      out[i] = s.dimension() == 0 ? s : new Shape(1).addAll(s.slice(1));
    }
    return out;
  }

  /**
   * Counts the multiply-accumulates of one forward of a block per sample.
   *
   * @param block the block
   * @param in its input shapes (batch 1), or null when unknown
   * @return the count, or null when the type or the input shape does not allow it
   */
  static Long macs(Block block, Shape[] in) {
    if (in == null || in.length != 1) {
      return null;
    }
    try {
      return count(block, in[0]);
    } catch (RuntimeException e) {
      return null; // a shape the block refuses: unknown, never a wrong number
    }
  }

  private static Long count(Block block, Shape x) {
    if (block instanceof BlurConv2d blurConv) {
      return blurConv(blurConv, x);
    }
    if (block instanceof Conv2d conv) {
      return conv2d(conv, x, conv.getStride());
    }
    if (block instanceof Linear linear) {
      Shape y = linear.getOutputShapes(new Shape[] {x})[0];
      return x.size() * y.get(y.dimension() - 1);
    }
    if (block instanceof FactorizedBlock<?> factorized) {
      return sequence(factorized.getChildren().values(), x);
    }
    if (block instanceof SqueezeExciteConv2d se) {
      Long conv = count(se.getConv(), x);
      Long gate = count(se.getGate(), se.getConv().getOutputShapes(new Shape[] {x})[0]);
      return conv == null || gate == null ? null : conv + gate;
    }
    if (block instanceof SqueezeExcite2d gate) {
      // Two bias-free linear layers on the pooled channels: c -> latent -> c.
      return 2 * x.get(1) * gate.getLatentChannels();
    }
    if (block instanceof LambdaBlock lambda && MAX_POOLS.contains(lambda.getName())) {
      // DJL's max pools (Pool.maxPool2dBlock ...) take maxima: no multiply-accumulate. Unknown
      // made a blurpool plan's total unknown on every model with a max pool, though the blur that
      // BlurMaxPool2d adds was counted (an outside probe: "MACs unknown -> 4608").
      return 0L;
    }
    if (block instanceof BlurPool2d || block instanceof BlurMaxPool2d) {
      // Only the blur multiplies; it runs on the pooled map and gives the block's output.
      return blur(block.getOutputShapes(new Shape[] {x})[0]);
    }
    return null;
  }

  private static Long sequence(List<Block> blocks, Shape x) {
    long total = 0;
    Shape current = x;
    for (Block b : blocks) {
      Long c = count(b, current);
      if (c == null) {
        return null;
      }
      total += c;
      current = b.getOutputShapes(new Shape[] {current})[0];
    }
    return total;
  }

  private static long blurConv(BlurConv2d conv, Shape x) {
    if (conv.isBlurFirst()) {
      // The blur of the input (at stride 1, or where a 1 x 1 convolution reads), then the
      // convolution, whose output and cost stay those of the plain one.
      return blur(blurOutput(x, conv.getBlurStride())) + conv2d(conv, x, conv.getStride());
    }
    // The convolution at stride 1, then the strided blur of its output.
    Shape dense = conv2dOutput(conv, x, new Shape(1, 1));
    return conv2d(conv, x, new Shape(1, 1)) + blur(blurOutput(dense, conv.getStride()));
  }

  /** The shape of one sample's blur of {@code in} at a stride, zero padding 1. */
  private static Shape blurOutput(Shape in, Shape stride) {
    return new Shape(
        1,
        in.get(1),
        BlurFilter.outputLength(in.get(2), stride.get(0), 1),
        BlurFilter.outputLength(in.get(3), stride.get(1), 1));
  }

  /** The blur's cost for its output map: 3x3 taps per output value, one channel each. */
  private static long blur(Shape out) {
    return out.size() / out.get(0) * BlurFilter.SIZE * BlurFilter.SIZE;
  }

  /** {@code out_h * out_w * filters * in_channels / groups * k_h * k_w}. */
  private static long conv2d(Conv2d conv, Shape x, Shape stride) {
    Shape out = conv2dOutput(conv, x, stride);
    Shape k = conv.getKernelShape();
    return out.get(2)
        * out.get(3)
        * conv.getFilters()
        * (x.get(1) / conv.getGroups())
        * k.get(0)
        * k.get(1);
  }

  private static Shape conv2dOutput(Conv2d conv, Shape x, Shape stride) {
    Shape k = conv.getKernelShape();
    Shape p = conv.getPadding();
    Shape d = conv.getDilation();
    long h = (x.get(2) + 2 * p.get(0) - d.get(0) * (k.get(0) - 1) - 1) / stride.get(0) + 1;
    long w = (x.get(3) + 2 * p.get(1) - d.get(1) * (k.get(1) - 1) - 1) / stride.get(1) + 1;
    return new Shape(x.get(0), conv.getFilters(), h, w);
  }
}
