package dev.surgery.agent.testapp;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.training.Trainer;
import ai.djl.training.listener.TrainingListenerAdapter;
import ai.djl.util.Pair;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@link ExactnessApp}'s surgery by hand: built-in algorithms applied through the library's public
 * API ({@code Algorithms.spec(name).create(values).apply(SurgeryContext.live(...))}) with the live
 * trainer, after {@code trainer.initialize} for epoch 0 ({@code @0b}: before it, where the agent
 * applies an epoch-0 entry that needs no shapes) and in the program's own {@code onEpoch}
 * otherwise: the points where the agent's listener applies an {@code epoch:} entry. After a
 * factorization it prints how far the new layers start from a plain-Java oracle's.
 */
final class ExactnessHandSurgery extends TrainingListenerAdapter {

  /** The pseudo-epoch of entries applied before {@code trainer.initialize}. */
  static final int BEFORE_INITIALIZE = -1;

  private record Entry(String name, int epoch, Map<String, Object> values) {}

  private final List<Entry> entries = new ArrayList<>();
  private final int totalEpochs;
  private int completed;

  /**
   * Reads the entries.
   *
   * @param specs {@code name@epoch[:key=value,...]} each ({@code epoch} may be {@code 0b})
   * @param totalEpochs the planned epochs
   */
  ExactnessHandSurgery(List<String> specs, int totalEpochs) {
    this.totalEpochs = totalEpochs;
    for (String spec : specs) {
      String[] head = spec.split(":", 2);
      String[] at = head[0].split("@");
      Map<String, Object> values = new LinkedHashMap<>();
      if (head.length > 1) {
        for (String kv : head[1].split(",")) {
          String[] p = kv.split("=", 2);
          values.put(p[0], value(p[1]));
        }
      }
      int epoch = at[1].equals("0b") ? BEFORE_INITIALIZE : Integer.parseInt(at[1]);
      entries.add(new Entry(at[0], epoch, values));
    }
  }

  private static Object value(String text) {
    if (text.equals("true") || text.equals("false")) {
      return Boolean.parseBoolean(text);
    }
    if (!text.matches("-?[0-9.]+")) {
      return text;
    }
    if (text.contains(".")) {
      return Double.parseDouble(text);
    }
    return Integer.parseInt(text);
  }

  /**
   * Applies the entries due after {@code epoch} completed epochs ({@link #BEFORE_INITIALIZE}: those
   * written {@code @0b}), in the order given.
   */
  void applyDue(Trainer trainer, int epoch) {
    Block model = trainer.getModel().getBlock();
    for (Entry e : entries) {
      if (e.epoch() != epoch) {
        continue;
      }
      Algorithm algorithm = Algorithms.spec(e.name()).create(e.values());
      Map<String, float[]> before = convolutionWeights(model);
      SurgeryChanges changes =
          algorithm.apply(SurgeryContext.live(model, trainer, Math.max(epoch, 0), totalEpochs));
      System.out.println(
          "EXACT: by hand " + e.name() + " at epoch " + epoch + ": " + changes.changes().size());
      printFactorizeOracle(model, before);
    }
  }

  /** The initialized weights of the model's direct {@code Conv2d} children, by index prefix. */
  private static Map<String, float[]> convolutionWeights(Block model) {
    Map<String, float[]> weights = new LinkedHashMap<>();
    for (Pair<String, Block> child : model.getChildren()) {
      if (child.getValue() instanceof Conv2d conv) {
        Parameter weight = conv.getParameters().get("weight");
        if (weight.isInitialized()) {
          weights.put(child.getKey().substring(0, 2), weight.getArray().toFloatArray());
        }
      }
    }
    return weights;
  }

  /**
   * Prints, for each convolution this surgery factorized, how far its two layers' product lies from
   * the {@link FactorizeOracle}'s best rank-r approximation of the weight it had.
   */
  private static void printFactorizeOracle(Block model, Map<String, float[]> before) {
    for (Pair<String, Block> child : model.getChildren()) {
      String key = child.getKey();
      float[] old = before.get(key.substring(0, 2));
      if (!key.endsWith("FactorizedConv2d") || old == null) {
        continue;
      }
      List<Block> layers = new ArrayList<>(child.getValue().getChildren().values());
      NDArray a = layers.get(0).getParameters().get("weight").getArray();
      NDArray b = layers.get(1).getParameters().get("weight").getArray();
      int rank = (int) a.getShape().get(0);
      int out = (int) b.getShape().get(0);
      int fanIn = (int) (a.getShape().size() / rank);
      double[] err =
          FactorizeOracle.compare(old, out, fanIn, a.toFloatArray(), b.toFloatArray(), rank);
      System.out.println(
          "EXACT: oracle factorize "
              + key
              + " rank "
              + rank
              + " of "
              + out
              + "x"
              + fanIn
              + ": max|BA - W_r|/max|W| = "
              + err[0]
              + ", singular values from the factors' norms off by "
              + err[1]);
    }
  }

  @Override
  public void onEpoch(Trainer trainer) {
    completed++;
    applyDue(trainer, completed);
  }
}
