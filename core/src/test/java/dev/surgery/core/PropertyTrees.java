package dev.surgery.core;

import ai.djl.basicmodelzoo.cv.classification.ResNetV1;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.nn.pooling.Pool;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;
import dev.surgery.core.Fixtures.FieldHolder;
import dev.surgery.core.Fixtures.ListHolder;
import dev.surgery.core.internal.DjlShapes;
import dev.surgery.core.testing.TrajectoryOracle;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;

/**
 * Block trees as data, for the property test: jqwik generates and shrinks these descriptions (a
 * failing case shrinks to a small tree), and {@link #build} turns one into DJL blocks, the same way
 * for the subject and its control. Every tree maps {@code (2, 4, 6, 6)} inputs to 4 channels;
 * strided convolutions and strided ResNet units halve the spatial size (never inside a parallel
 * branch, whose branches must agree), and a {@code Linear} keeps the last dimension.
 */
final class PropertyTrees {

  static final Shape INPUT = new Shape(2, 4, 6, 6);

  private PropertyTrees() {}

  /** A node of a generated tree. */
  sealed interface Node
      permits ConvNode,
          DenseNode,
          NormNode,
          PoolNode,
          ReluNode,
          ShareNode,
          ResUnitNode,
          SeqNode,
          ParNode,
          HolderNode {}

  /** A 3x3 convolution to 4 channels, stride 2 when {@code strided}, frozen or not. */
  record ConvNode(boolean strided, boolean frozen) implements Node {}

  /** A Linear over the last dimension, keeping it. */
  record DenseNode(boolean frozen) implements Node {}

  /** A batch norm. */
  record NormNode() implements Node {}

  /** DJL's 3x3 max pool (a lambda named maxPool2d), shape preserving. */
  record PoolNode() implements Node {}

  /** A ReLU lambda. */
  record ReluNode() implements Node {}

  /** The same block object as an earlier stride-1 convolution (a fresh one if there is none). */
  record ShareNode(int which) implements Node {}

  /** DJL's ResNetV1 residual unit with 4 filters (stride 2 and a projection when strided). */
  record ResUnitNode(boolean strided) implements Node {}

  /** A SequentialBlock. */
  record SeqNode(List<Node> items) implements Node {}

  /** A ParallelBlock summing its (shape-preserving) branches. */
  record ParNode(List<Node> branches) implements Node {}

  /** Where a holder keeps its children besides DJL's children list. */
  enum Holding {
    FIELDS,
    LIST,
    ARRAY,
    MAP
  }

  /** A container that runs its children in order from fields, a List, an array or a Map. */
  record HolderNode(Holding holding, List<Node> items) implements Node {}

  // ------------------------------------------------------------------ arbitraries

  /** The root: a sequence of 1 to 4 nodes of depth up to 2 below it. */
  static Arbitrary<SeqNode> trees() {
    return node(2, false).list().ofMinSize(1).ofMaxSize(4).map(SeqNode::new);
  }

  static Arbitrary<Node> node(int depth, boolean preserving) {
    Arbitrary<Boolean> flag = Arbitraries.of(false, true);
    Arbitrary<Boolean> stride = preserving ? Arbitraries.just(false) : flag;
    Arbitrary<Node> conv = Combinators.combine(stride, flag).as(ConvNode::new);
    Arbitrary<Node> dense = flag.map(DenseNode::new);
    Arbitrary<Node> norm = Arbitraries.just(new NormNode());
    Arbitrary<Node> pool = Arbitraries.just(new PoolNode());
    Arbitrary<Node> relu = Arbitraries.just(new ReluNode());
    Arbitrary<Node> share = Arbitraries.integers().between(0, 3).map(ShareNode::new);
    Arbitrary<Node> unit = stride.map(ResUnitNode::new);
    if (depth == 0) {
      return Arbitraries.oneOf(conv, dense, norm, pool, relu, share, unit);
    }
    Arbitrary<List<Node>> items = node(depth - 1, preserving).list().ofMinSize(1).ofMaxSize(3);
    Arbitrary<Node> seq = items.map(SeqNode::new);
    Arbitrary<Node> par = node(depth - 1, true).list().ofMinSize(1).ofMaxSize(3).map(ParNode::new);
    Arbitrary<Node> holder =
        Combinators.combine(Arbitraries.of(Holding.class), items)
            .as(
                (h, list) ->
                    new HolderNode(h, h == Holding.FIELDS && list.size() != 2 ? pair(list) : list));
    // Leaves first: lazyOf shrinks towards its first alternatives.
    return Arbitraries.lazyOf(
        () -> conv,
        () -> dense,
        () -> norm,
        () -> pool,
        () -> relu,
        () -> share,
        () -> unit,
        () -> seq,
        () -> par,
        () -> holder,
        () -> holder,
        () -> conv);
  }

  private static List<Node> pair(List<Node> list) {
    return List.of(list.get(0), list.size() > 1 ? list.get(1) : new ReluNode());
  }

  // ------------------------------------------------------------------ building

  /** What building a tree gave: the root and the stride-1 convolutions in build order. */
  static final class Built {
    final SequentialBlock root;
    final List<Conv2d> sharable = new ArrayList<>();
    final Map<Block, Long> units = new IdentityHashMap<>();
    long side;

    Built(SequentialBlock root) {
      this.root = root;
    }
  }

  /** Builds the blocks of a tree; frozen nodes have their parameters frozen. */
  static Built build(SeqNode tree) {
    Built built = new Built(new SequentialBlock());
    long side = INPUT.get(3);
    for (Node n : tree.items()) {
      side = add(built, built.root, n, side);
    }
    built.side = side;
    return built;
  }

  private static long add(Built built, SequentialBlock parent, Node node, long side) {
    long[] out = {side};
    parent.add(block(built, node, side, out));
    return out[0];
  }

  /** One block; {@code out[0]} receives the spatial side after it. */
  private static Block block(Built built, Node node, long side, long[] out) {
    out[0] = side;
    if (node instanceof ConvNode c) {
      Conv2d conv = conv(c.strided() ? 2 : 1);
      if (c.strided()) {
        out[0] = (side - 1) / 2 + 1;
      } else {
        built.sharable.add(conv);
      }
      if (c.frozen()) {
        conv.freezeParameters(true);
      }
      return conv;
    }
    if (node instanceof DenseNode d) {
      Linear linear = Linear.builder().setUnits(side).build();
      built.units.put(linear, side);
      if (d.frozen()) {
        linear.freezeParameters(true);
      }
      return linear;
    }
    if (node instanceof NormNode) {
      return BatchNorm.builder().build();
    }
    if (node instanceof PoolNode) {
      return Pool.maxPool2dBlock(new Shape(3, 3), new Shape(1, 1), new Shape(1, 1));
    }
    if (node instanceof ReluNode) {
      return Activation.reluBlock();
    }
    if (node instanceof ShareNode s) {
      if (built.sharable.isEmpty()) {
        Conv2d conv = conv(1);
        built.sharable.add(conv);
        return conv;
      }
      return built.sharable.get(s.which() % built.sharable.size());
    }
    if (node instanceof ResUnitNode u) {
      int stride = u.strided() ? 2 : 1;
      if (u.strided()) {
        out[0] = (side - 1) / 2 + 1;
      }
      return ResNetV1.residualUnit(4, new Shape(stride, stride), !u.strided(), false, 0.9f);
    }
    if (node instanceof SeqNode s) {
      SequentialBlock seq = new SequentialBlock();
      long at = side;
      for (Node n : s.items()) {
        at = add(built, seq, n, at);
      }
      out[0] = at;
      return seq;
    }
    if (node instanceof ParNode p) {
      List<Block> branches = new ArrayList<>();
      for (Node n : p.branches()) {
        branches.add(block(built, n, side, new long[1]));
      }
      return new ParallelBlock(PropertyTrees::sum, branches);
    }
    HolderNode h = (HolderNode) node;
    List<Block> blocks = new ArrayList<>();
    long at = side;
    for (Node n : h.items()) {
      long[] next = {at};
      blocks.add(block(built, n, at, next));
      at = next[0];
    }
    out[0] = at;
    return switch (h.holding()) {
      case FIELDS -> new FieldHolder(blocks.get(0), blocks.get(1));
      case LIST -> new ListHolder(blocks.toArray(new Block[0]));
      case ARRAY -> new ArrayHolder(blocks);
      case MAP -> new MapHolder(blocks);
    };
  }

  static Conv2d conv(int stride) {
    return conv(stride, 4);
  }

  static Conv2d conv(int stride, int filters) {
    return TrajectoryOracle.conv(filters, stride);
  }

  static NDList sum(List<NDList> outputs) {
    NDArray total = outputs.get(0).singletonOrThrow();
    for (int i = 1; i < outputs.size(); i++) {
      total = total.add(outputs.get(i).singletonOrThrow());
    }
    return new NDList(total);
  }

  // ------------------------------------------------------------------ holders

  /** Runs its children in order from an array field. */
  static final class ArrayHolder extends Fixtures.InOrderHolder {
    final Block[] layers;

    ArrayHolder(List<Block> blocks) {
      layers = new Block[blocks.size()];
      for (int i = 0; i < layers.length; i++) {
        layers[i] = addChildBlock("a", blocks.get(i));
      }
    }

    @Override
    List<Block> layers() {
      return Arrays.asList(layers);
    }
  }

  /** Runs its children in key order from a Map field. */
  static final class MapHolder extends AbstractBlock {
    final Map<String, Block> layers = new LinkedHashMap<>();

    MapHolder(List<Block> blocks) {
      for (int i = 0; i < blocks.size(); i++) {
        layers.put("m" + i, addChildBlock("m", blocks.get(i)));
      }
    }

    @Override
    protected NDList forwardInternal(
        ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
      NDList x = inputs;
      for (Block b : layers.values()) {
        x = b.forward(store, x, training);
      }
      return x;
    }

    @Override
    public void initializeChildBlocks(NDManager manager, DataType dataType, Shape... shapes) {
      Shape[] s = shapes;
      for (Block b : layers.values()) {
        b.initialize(manager, dataType, s);
        s = b.getOutputShapes(s);
      }
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputs) {
      Shape[] s = inputs;
      for (Block b : layers.values()) {
        s = b.getOutputShapes(s);
      }
      return s;
    }
  }

  // ------------------------------------------------------------------ replacement blocks

  /**
   * A convolution or linear layer computed from weight and bias Parameters it is given: the old
   * block's own Parameter objects (adopt) or new ones around the old arrays (rewrap). It computes
   * what the old block computed.
   */
  static final class Holding2d extends AbstractBlock {
    final Parameter weight;
    final Parameter bias;
    final ConvSettings conv; // null for a linear layer

    Holding2d(Block old, Parameter weight, Parameter bias) {
      this.conv = old instanceof Conv2d c ? ConvSettings.of(c) : null;
      this.weight = addParameter(weight);
      this.bias = bias == null ? null : addParameter(bias);
      Shape[] recorded = DjlShapes.recordedInputShapes(old);
      if (recorded != null) {
        DjlShapes.setRecordedInputShapes(this, recorded);
      }
    }

    /** Adopts the old block's very Parameter objects. */
    static Holding2d adopting(Block old) {
      return new Holding2d(old, old.getParameters().get("weight"), old.getParameters().get("bias"));
    }

    /** New Parameter objects around the old block's arrays. */
    static Holding2d rewrapping(Block old) {
      return new Holding2d(old, rewrap(old, "weight"), rewrap(old, "bias"));
    }

    private static Parameter rewrap(Block old, String name) {
      Parameter p = old.getParameters().get(name);
      if (p == null) {
        return null;
      }
      return Parameter.builder()
          .setName(name)
          .setType(p.getType())
          .optRequiresGrad(p.requiresGradient())
          // DJL takes the shape from the builder, not from the array: without it getShape() is
          // null.
          .optShape(p.getArray().getShape())
          .optArray(p.getArray())
          .build();
    }

    @Override
    protected NDList forwardInternal(
        ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
      NDArray x = inputs.singletonOrThrow();
      NDArray w = store.getValue(weight, x.getDevice(), training);
      NDArray b = bias == null ? null : store.getValue(bias, x.getDevice(), training);
      if (conv == null) {
        return Linear.linear(x, w, b);
      }
      return Conv2d.conv2d(x, w, b, conv.stride(), conv.padding(), conv.dilation(), conv.groups());
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputs) {
      Shape in = inputs[0];
      if (conv == null) {
        return new Shape[] {in.slice(0, in.dimension() - 1).add(weight.getShape().get(0))};
      }
      long s = conv.stride().get(0);
      long k = conv.kernel().get(0);
      long p = conv.padding().get(0);
      return new Shape[] {
        new Shape(
            in.get(0),
            conv.filters(),
            (in.get(2) + 2 * p - k) / s + 1,
            (in.get(3) + 2 * p - k) / s + 1)
      };
    }
  }

  /** A convolution's settings (not the block: a block in a field would be a child). */
  record ConvSettings(
      Shape kernel, Shape stride, Shape padding, Shape dilation, int groups, int filters) {
    static ConvSettings of(Conv2d c) {
      return new ConvSettings(
          c.getKernelShape(),
          c.getStride(),
          c.getPadding(),
          c.getDilation(),
          c.getGroups(),
          c.getFilters());
    }
  }

  /** A replacement with children: the old block followed by a fresh stride-1 convolution. */
  static final class Wrapper extends SequentialBlock {
    Block wrapped;
    Block inner; // typed Block: a later surgery may put any block there

    Wrapper(Block wrapped, int channels) {
      this.wrapped = wrapped;
      this.inner = conv(1, channels);
      add(wrapped);
      add(inner);
    }
  }
}
