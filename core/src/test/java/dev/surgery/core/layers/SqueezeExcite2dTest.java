package dev.surgery.core.layers;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.training.ParameterStore;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class SqueezeExcite2dTest {

  /**
   * The gate of Hu et al. (as in Composer's SqueezeExcite2d), computed with plain loops in double:
   * {@code y = x * sigmoid(W2 relu(W1 mean_hw(x)))}, down to one channel and one latent channel.
   */
  @ParameterizedTest
  @CsvSource({"1, 1", "4, 1", "5, 3"})
  void gateIsTheSigmoidOfBothLayersOnTheChannelMeans(int channels, int latent) {
    try (NDManager manager = NDManager.newBaseManager()) {
      manager.getEngine().setRandomSeed(channels * 10 + latent);
      int n = 2;
      int h = 3;
      int w = 4;
      Shape in = new Shape(n, channels, h, w);
      SqueezeExcite2d se = new SqueezeExcite2d(channels, latent);
      se.initialize(manager, DataType.FLOAT32, in);
      assertEquals(latent, se.getLatentChannels());
      Block reduce = se.getChildren().get(0).getValue();
      Block expand = se.getChildren().get(1).getValue();
      NDArray w1 = reduce.getParameters().get("weight").getArray(); // (latent, channels)
      NDArray w2 = expand.getParameters().get("weight").getArray(); // (channels, latent)
      w1.set(manager.randomNormal(w1.getShape()).toFloatArray());
      w2.set(manager.randomNormal(w2.getShape()).toFloatArray());
      float[] a = w1.toFloatArray();
      float[] b = w2.toFloatArray();
      NDArray x = manager.randomNormal(in).add(0.3f);
      float[] xs = x.toFloatArray();
      float[] y =
          se.forward(new ParameterStore(manager, false), new NDList(x), false)
              .singletonOrThrow()
              .toFloatArray();
      int area = h * w;
      for (int s = 0; s < n; s++) {
        double[] mean = new double[channels];
        for (int c = 0; c < channels; c++) {
          for (int i = 0; i < area; i++) {
            mean[c] += xs[(s * channels + c) * area + i] / (double) area;
          }
        }
        double[] hidden = new double[latent];
        for (int l = 0; l < latent; l++) {
          for (int c = 0; c < channels; c++) {
            hidden[l] += a[l * channels + c] * mean[c];
          }
          hidden[l] = Math.max(0, hidden[l]);
        }
        for (int c = 0; c < channels; c++) {
          double z = 0;
          for (int l = 0; l < latent; l++) {
            z += b[c * latent + l] * hidden[l];
          }
          double gate = 1 / (1 + Math.exp(-z));
          for (int i = 0; i < area; i++) {
            int at = (s * channels + c) * area + i;
            assertEquals(xs[at] * gate, y[at], 1e-5, "sample " + s + " channel " + c);
          }
        }
      }
    }
  }

  @Test
  void sizesBelowOneAreRefused() {
    assertThrows(IllegalArgumentException.class, () -> new SqueezeExcite2d(0, 1));
    assertThrows(IllegalArgumentException.class, () -> new SqueezeExcite2d(1, 0));
  }
}
