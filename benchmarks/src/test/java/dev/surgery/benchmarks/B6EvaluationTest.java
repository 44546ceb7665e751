package dev.surgery.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.ndarray.types.Shape;
import ai.djl.training.dataset.RandomAccessDataset;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * B6's evaluations leave training alone: the same seed trains the same way whether it is evaluated
 * after every batch or only at epoch ends (they used to reseed the shuffle from a generator each
 * evaluation had drawn from, so the next epoch's batch order depended on how many ran).
 */
class B6EvaluationTest {

  @Test
  void theTrainingTrajectoryDoesNotDependOnHowOftenItIsEvaluated() throws Exception {
    int batch = 16;
    RandomAccessDataset[] data =
        B5AlgorithmAccuracy.open("synthetic", Path.of("unused"), 64, 32, batch);
    Shape image = new Shape(3, 28, 28);
    B6TimeToAccuracy.Variant baseline = B6TimeToAccuracy.Variant.baseline();
    B6TimeToAccuracy.Run often =
        B6TimeToAccuracy.run("synthetic", baseline, data, image, batch, 2, 1, 1, 0);
    B6TimeToAccuracy.Run seldom =
        B6TimeToAccuracy.run("synthetic", baseline, data, image, batch, 2, 4, 1, 1);
    assertEquals(8, often.checkpoints().size());
    assertEquals(2, seldom.checkpoints().size());
    // Each epoch's training loss (the sum over its batches) and the accuracies at its end.
    assertEquals(epochEnds(seldom), epochEnds(often));
    List<Double> oftenLoss = epochLossSums(often, 4);
    List<Double> seldomLoss = epochLossSums(seldom, 4);
    for (int e = 0; e < 2; e++) {
      assertEquals(seldomLoss.get(e), oftenLoss.get(e), 1e-5 * seldomLoss.get(e), "epoch " + e);
    }
  }

  private static List<List<Double>> epochEnds(B6TimeToAccuracy.Run run) {
    List<List<Double>> ends = new ArrayList<>();
    for (B6TimeToAccuracy.Checkpoint c : run.checkpoints()) {
      if (c.epochs() == Math.rint(c.epochs())) {
        ends.add(List.of(c.epochs(), c.accuracy(), c.evalAccuracy()));
      }
    }
    return ends;
  }

  /** A checkpoint's loss is the mean over the batches since the previous one. */
  private static List<Double> epochLossSums(B6TimeToAccuracy.Run run, int perEpoch) {
    List<Double> sums = new ArrayList<>(List.of(0.0, 0.0));
    int previous = 0;
    for (B6TimeToAccuracy.Checkpoint c : run.checkpoints()) {
      int epoch = (c.batches() - 1) / perEpoch;
      sums.set(epoch, sums.get(epoch) + c.trainLoss() * (c.batches() - previous));
      previous = c.batches();
    }
    return sums;
  }
}
