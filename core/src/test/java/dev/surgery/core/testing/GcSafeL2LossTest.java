package dev.surgery.core.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import ai.djl.training.loss.Loss;
import org.junit.jupiter.api.Test;

/**
 * The tests' L2 loss keeps its gradient when a garbage collection falls between forward and
 * backward, where DJL's {@code L2Loss} on the PyTorch engine reads freed memory; and {@link
 * FreedMemory} exposes such a read.
 */
class GcSafeL2LossTest {

  private static final int TRIALS = 40;

  @Test
  void theGradientIsExactWhenACollectionFallsBetweenForwardAndBackward() {
    assertEquals(0, wrongGradients(new GcSafeL2Loss()), "trials with a wrong gradient");
    // The harness has teeth: DJL's own loss reads the freed 0.5 (all 40 trials when this was
    // written). Should this fail, either DJL no longer keeps a Java-owned operand (GcSafeL2Loss
    // can go) or FreedMemory no longer exposes such a read, and the collections between forward
    // and backward in DeterminismTest and StochasticResidualTest prove nothing.
    int wrongWithDjls = wrongGradients(Loss.l2Loss());
    assertTrue(
        wrongWithDjls >= TRIALS / 2,
        "DJL's L2Loss gave a wrong gradient in only " + wrongWithDjls + " of " + TRIALS);
  }

  @Test
  void theLossAndItsGradientAreDjlsWithoutACollection() {
    try (NDManager manager = NDManager.newBaseManager()) {
      manager.getEngine().setRandomSeed(5);
      NDArray x = manager.randomNormal(new Shape(4, 3));
      NDArray y = manager.randomNormal(new Shape(4, 3));
      float[][] ours = lossAndGradient(new GcSafeL2Loss(), x, y, false);
      float[][] djls = lossAndGradient(Loss.l2Loss(), x, y, false);
      ExactnessOracle.assertBitsEqual(djls[0], ours[0], "loss");
      ExactnessOracle.assertBitsEqual(djls[1], ours[1], "gradient");
    }
  }

  /** Trials, each with a collection between forward and backward, whose gradient is wrong. */
  private static int wrongGradients(Loss loss) {
    int wrong = 0;
    try (NDManager manager = NDManager.newBaseManager()) {
      manager.getEngine().setRandomSeed(3);
      for (int trial = 0; trial < TRIALS; trial++) {
        try (NDManager scope = manager.newSubManager()) {
          NDArray x = scope.randomNormal(new Shape(4, 3));
          NDArray y = scope.randomNormal(new Shape(4, 3));
          float[] gradient = lossAndGradient(loss, x, y, true)[1];
          // d/dx mean(0.5 (y - x)^2) over 12 elements is (x - y) / 12.
          float[] expected = x.sub(y).div(scope.full(new Shape(), 12f)).toFloatArray();
          for (int i = 0; i < expected.length; i++) {
            if (Math.abs(gradient[i] - expected[i]) > 1e-6f * Math.max(1f, Math.abs(expected[i]))) {
              wrong++;
              break;
            }
          }
        }
      }
    }
    return wrong;
  }

  private static float[][] lossAndGradient(Loss loss, NDArray x, NDArray y, boolean collect) {
    try (NDManager scope = x.getManager().newSubManager()) {
      NDArray input = x.duplicate();
      input.attach(scope);
      input.setRequiresGradient(true);
      float[] value;
      try (GradientCollector collector = Engine.getInstance().newGradientCollector()) {
        NDArray l = loss.evaluate(new NDList(y), new NDList(input));
        value = l.toFloatArray();
        if (collect) {
          FreedMemory.collectAndOverwrite();
        }
        collector.backward(l);
      }
      return new float[][] {value, input.getGradient().toFloatArray()};
    }
  }
}
