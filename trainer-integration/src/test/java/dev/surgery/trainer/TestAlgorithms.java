package dev.surgery.trainer;

import ai.djl.ndarray.NDList;
import ai.djl.nn.Block;
import ai.djl.nn.LambdaBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.convolutional.Conv2d;
import dev.surgery.core.BlockInspector;
import dev.surgery.core.BlockMatcher;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.ReplacementFunction;
import dev.surgery.core.SurgeryException;
import dev.surgery.core.SurgeryOptions;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.HyperParameter;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.internal.DjlBlocks;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * Small algorithms registered once for the trainer tests, so that they do not depend on the
 * built-in algorithms. Names start with {@code t_} to stay clear of real ones.
 */
final class TestAlgorithms {

  /** Strided (or {@code stride}) Conv2d -> {@link ScaledConv2d}, adopting the parameters. */
  static final String SCALE_CONV = "t_scale_conv";

  /** Like {@link #SCALE_CONV} but only for convs with {@code min_channels} inputs: needs shapes. */
  static final String SCALE_CONV_MIN = "t_scale_conv_min";

  /** Conv2d (exactly) with {@code stride} -> {@link FreshConv2d}: new parameters. */
  static final String FRESH_CONV = "t_fresh_conv";

  /**
   * Like {@link #FRESH_CONV}, the replacement born frozen: a plugin that freezes its new layer on
   * purpose (a fixed layer in place of a trained one).
   */
  static final String FRESH_FROZEN_CONV = "t_fresh_frozen_conv";

  /** maxPool2d LambdaBlock -> {@link ProbePool}. */
  static final String POOL = "t_pool";

  /** Always fails with a {@link SurgeryException} at the first Conv2d, changing nothing. */
  static final String FAIL = "t_fail";

  /** Changes nothing; records each call in {@link #CALLS} as {@code tag@completed/total}. */
  static final String LOG = "t_log";

  /** Declares one hyperparameter of each type, for config tests. */
  static final String TYPED = "t_typed";

  /** Freezes the first layer and says nothing of it in its changes (as a plugin may). */
  static final String FREEZE_QUIETLY = "t_freeze_quietly";

  /** Calls of {@link #LOG}, in order. */
  static final List<String> CALLS = Collections.synchronizedList(new ArrayList<>());

  static {
    Algorithms.register(
        new AlgorithmSpec(
            SCALE_CONV,
            List.of(
                HyperParameter.ofFloat("factor", 0.5, 0.0, true, 1.0, "output factor"),
                HyperParameter.ofInt("stride", 2, 1, 8, "the stride of the convs to replace")),
            v -> scaleConv(SCALE_CONV, v, (Double) v.get("factor"), (Integer) v.get("stride"), 0)));
    Algorithms.register(
        new AlgorithmSpec(
            SCALE_CONV_MIN,
            List.of(
                HyperParameter.ofFloat("factor", 0.5, 0.0, true, 1.0, "output factor"),
                HyperParameter.ofInt("min_channels", 4, 1, null, "smallest input channels")),
            v ->
                scaleConv(
                    SCALE_CONV_MIN,
                    v,
                    (Double) v.get("factor"),
                    2,
                    (Integer) v.get("min_channels"))));
    Algorithms.register(
        new AlgorithmSpec(
            FRESH_CONV,
            List.of(HyperParameter.ofInt("stride", 1, 1, 8, "the stride of the convs to replace")),
            v -> freshConv(FRESH_CONV, (Integer) v.get("stride"), false)));
    Algorithms.register(
        new AlgorithmSpec(
            FRESH_FROZEN_CONV,
            List.of(HyperParameter.ofInt("stride", 1, 1, 8, "the stride of the convs to replace")),
            v -> freshConv(FRESH_FROZEN_CONV, (Integer) v.get("stride"), true)));
    Algorithms.register(new AlgorithmSpec(POOL, List.of(), v -> pool()));
    Algorithms.register(ToyLeakyRelu.SPEC);
    Algorithms.register(new AlgorithmSpec(FAIL, List.of(), v -> failing()));
    Algorithms.register(
        new AlgorithmSpec(
            FREEZE_QUIETLY,
            List.of(),
            v ->
                new SimpleAlgorithm(FREEZE_QUIETLY, Map.of(), false) {
                  @Override
                  public SurgeryChanges apply(SurgeryContext context) {
                    Block first = context.model().getChildren().get(0).getValue();
                    dev.surgery.core.ModuleSurgery.freezeParameters(
                        first.getParameters().values(), context.trainers());
                    return new SurgeryChanges(name(), hyperparameters(), List.of(), 0, 0, 1);
                  }
                }));
    Algorithms.register(
        new AlgorithmSpec(
            LOG,
            List.of(HyperParameter.ofChoice("tag", "a", List.of("a", "b", "c", "d"), "label")),
            v -> logging((String) v.get("tag"))));
    Algorithms.register(
        new AlgorithmSpec(
            TYPED,
            List.of(
                HyperParameter.ofInt("min_channels", 16, 1, 4096, "channels"),
                HyperParameter.ofFloat("drop_rate", 0.2, 0.0, false, 1.0, "rate"),
                HyperParameter.ofBoolean("blur_first", true, "flag"),
                HyperParameter.ofChoice(
                    "stochastic_method", "block", List.of("block", "sample"), "method")),
            v ->
                new SimpleAlgorithm(TYPED, Map.of(), false) {
                  @Override
                  public SurgeryChanges apply(SurgeryContext context) {
                    return new SurgeryChanges(name(), hyperparameters(), List.of(), 0, 0, 1);
                  }
                }));
  }

  private TestAlgorithms() {}

  /** Touch this to register the algorithms. */
  static void ensureRegistered() {
    // the static initializer did the work
  }

  private static Algorithm scaleConv(
      String name, Map<String, Object> hp, double factor, int stride, int minChannels) {
    return new SimpleAlgorithm(name, hp, minChannels > 0) {
      @Override
      public SurgeryChanges apply(SurgeryContext context) {
        BlockMatcher matcher =
            (block, path) -> {
              if (!(block instanceof Conv2d c)
                  || block instanceof ScaledConv2d
                  || c.getStride().get(0) != stride) {
                return false;
              }
              if (minChannels == 0) {
                return true;
              }
              long channels = BlockInspector.inputChannels(c);
              if (channels < 0) {
                throw new SurgeryException(path, "input channels unknown: initialize the model");
              }
              return channels >= minChannels;
            };
        ReplacementFunction f = (block, i) -> new ScaledConv2d((Conv2d) block, (float) factor);
        return replace(context, matcher, f, this);
      }
    };
  }

  private static Algorithm freshConv(String name, int stride, boolean frozen) {
    return new SimpleAlgorithm(name, Map.of("stride", stride), false) {
      @Override
      public SurgeryChanges apply(SurgeryContext context) {
        BlockMatcher matcher =
            (block, path) ->
                block.getClass() == Conv2d.class && ((Conv2d) block).getStride().get(0) == stride;
        ReplacementFunction f =
            (block, i) -> {
              Block fresh = new FreshConv2d((Conv2d) block);
              if (frozen) {
                // A fresh block is born trainable: only the frozen variant needs a call.
                fresh.freezeParameters(true);
              }
              return fresh;
            };
        return replace(context, matcher, f, this);
      }
    };
  }

  private static Algorithm pool() {
    return new SimpleAlgorithm(POOL, Map.of(), false) {
      @Override
      public SurgeryChanges apply(SurgeryContext context) {
        BlockMatcher matcher = BlockMatcher.lambdaNamed("maxPool2d");
        ReplacementFunction f =
            (block, i) -> {
              @SuppressWarnings("unchecked")
              Function<NDList, NDList> fn =
                  (Function<NDList, NDList>) DjlBlocks.lambdaFunction((LambdaBlock) block);
              return new ProbePool(fn);
            };
        return replace(context, matcher, f, this);
      }
    };
  }

  private static Algorithm failing() {
    return new SimpleAlgorithm(FAIL, Map.of(), false) {
      @Override
      public SurgeryChanges apply(SurgeryContext context) {
        String path = null;
        for (Map.Entry<Block, String> e : BlockPaths.index(context.model()).entrySet()) {
          if (e.getKey() instanceof Conv2d) {
            path = e.getValue();
            break;
          }
        }
        throw new SurgeryException(path, "injected failure");
      }
    };
  }

  private static Algorithm logging(String tag) {
    return new SimpleAlgorithm(LOG, Map.of("tag", tag), false) {
      @Override
      public SurgeryChanges apply(SurgeryContext context) {
        CALLS.add(tag + "@" + context.completedEpochs() + "/" + context.totalEpochs());
        return new SurgeryChanges(name(), hyperparameters(), List.of(), 0, 0, 1);
      }
    };
  }

  static SurgeryChanges replace(
      SurgeryContext context, BlockMatcher matcher, ReplacementFunction f, Algorithm algorithm) {
    long start = System.nanoTime();
    Map<Block, String> paths = BlockPaths.index(context.model());
    long before = countParameters(context.model());
    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(matcher, f);
    Map<Block, Block> replaced =
        ModuleSurgery.replaceModules(
            context.model(),
            policies,
            SurgeryOptions.builder().optTrainers(context.trainers()).build());
    List<SurgeryChanges.Change> changes = new ArrayList<>();
    for (Map.Entry<Block, Block> e : replaced.entrySet()) {
      changes.add(
          new SurgeryChanges.Change(
              paths.get(e.getKey()),
              BlockPaths.typeName(e.getKey()),
              BlockPaths.typeName(e.getValue())));
    }
    return new SurgeryChanges(
        algorithm.name(),
        algorithm.hyperparameters(),
        changes,
        before,
        countParameters(context.model()),
        System.nanoTime() - start);
  }

  static long countParameters(Block block) {
    long n = 0;
    for (Parameter p : block.getParameters().values()) {
      if (p.isInitialized()) {
        n += p.getArray().size();
      }
    }
    return n;
  }

  /** An algorithm without hyperparameters whose apply is the given function. */
  static Algorithm applying(
      String name, java.util.function.Function<SurgeryContext, SurgeryChanges> apply) {
    return new SimpleAlgorithm(name, Map.of(), false) {
      @Override
      public SurgeryChanges apply(SurgeryContext context) {
        return apply.apply(context);
      }
    };
  }

  /** An algorithm with a fixed name and hyperparameters. */
  abstract static class SimpleAlgorithm implements Algorithm {
    private final String name;
    private final Map<String, Object> hyperparameters;
    private final boolean needsInit;

    SimpleAlgorithm(String name, Map<String, Object> hyperparameters, boolean needsInit) {
      this.name = name;
      this.hyperparameters = new LinkedHashMap<>(hyperparameters);
      this.needsInit = needsInit;
    }

    @Override
    public String name() {
      return name;
    }

    @Override
    public Map<String, Object> hyperparameters() {
      return hyperparameters;
    }

    @Override
    public boolean needsInitializedModel() {
      return needsInit;
    }
  }
}
