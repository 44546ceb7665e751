package dev.surgery.trainer;

import ai.djl.nn.Activation;
import ai.djl.nn.LambdaBlock;
import dev.surgery.core.BlockMatcher;
import dev.surgery.core.ReplacementFunction;
import dev.surgery.core.algorithms.AbstractSurgeryAlgorithm;
import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.algorithms.HyperParameter;
import dev.surgery.core.algorithms.HyperParameterValues;
import dev.surgery.core.algorithms.SurgeryContext;
import java.util.LinkedHashMap;
import java.util.List;

/**
 * A test-only eighth algorithm written by the recipe of core/README.md: every {@code ReLU} lambda
 * becomes a leaky ReLU. This file, one line in {@link TestAlgorithms} and its test are all it
 * needs.
 */
final class ToyLeakyRelu extends AbstractSurgeryAlgorithm {

  /** The config name. */
  static final String NAME = "t_leaky_relu";

  /** {@code alpha}: the slope for negative inputs. */
  static final HyperParameter<Double> ALPHA =
      HyperParameter.ofFloat("alpha", 0.01, 0.0, true, 1.0, "slope of the activation below zero");

  /** {@code relu_name}: the name of the lambdas to replace. */
  static final HyperParameter<String> RELU_NAME =
      HyperParameter.ofChoice(
          "relu_name",
          "ReLU",
          List.of("ReLU", "ReLU6"),
          "name of the activation lambdas to replace");

  /** The declaration used by the configuration layer. */
  static final AlgorithmSpec SPEC =
      AlgorithmSpec.of(NAME, List.of(ALPHA, RELU_NAME), ToyLeakyRelu::new);

  private ToyLeakyRelu(HyperParameterValues values) {
    super(values);
  }

  static Builder builder() {
    return new Builder();
  }

  @Override
  protected LinkedHashMap<BlockMatcher, ReplacementFunction> policies(SurgeryContext context) {
    return policy(
        (block, path) -> block instanceof LambdaBlock l && value(RELU_NAME).equals(l.getName()),
        (block, index) -> Activation.leakyReluBlock(value(ALPHA).floatValue()));
  }

  /** Builds {@link ToyLeakyRelu}. */
  static final class Builder extends AlgorithmBuilder<Builder, ToyLeakyRelu> {

    Builder() {
      super(SPEC);
    }

    Builder optAlpha(double alpha) {
      return set(ALPHA, alpha);
    }

    Builder optReluName(String name) {
      return set(RELU_NAME, name);
    }
  }
}
