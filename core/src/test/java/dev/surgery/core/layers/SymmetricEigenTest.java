package dev.surgery.core.layers;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class SymmetricEigenTest {

  /**
   * Degenerate symmetric matrices whose spectra are known in closed form (the oracle): a constant c
   * has n c once and 0 n - 1 times; the block-constant {@code G[i][j] = (i % 4 == j % 4)} has n / 4
   * four times; {@code u u^T} has {@code |u|^2} once; zero has zeros. The solver once returned NaN
   * vectors on the first two at every size from 64 to 512 (here up to 256, to stay fast). Each
   * decomposition must be finite, orthonormal, and satisfy {@code G v = lambda v}, with the
   * closed-form eigenvalues.
   */
  @ParameterizedTest
  @CsvSource({
    "constant, 64",
    "constant, 96",
    "constant, 128",
    "constant, 192",
    "constant, 256",
    "block, 64",
    "block, 96",
    "block, 128",
    "block, 192",
    "block, 256",
    "rank1, 64",
    "rank1, 192",
    "rank1, 256",
    "zero, 64",
    "zero, 128"
  })
  void degenerateMatricesHaveTheirClosedFormSpectrum(String kind, int n) {
    double[][] g = new double[n][n];
    double[] expected = new double[n];
    double[] u = new double[n];
    Random rnd = new Random(n);
    for (int i = 0; i < n; i++) {
      u[i] = rnd.nextGaussian();
    }
    for (int i = 0; i < n; i++) {
      for (int j = 0; j < n; j++) {
        g[i][j] =
            switch (kind) {
              case "constant" -> 0.0576;
              case "block" -> i % 4 == j % 4 ? 1 : 0;
              case "rank1" -> u[i] * u[j];
              default -> 0;
            };
      }
    }
    switch (kind) {
      case "constant" -> expected[n - 1] = 0.0576 * n;
      case "block" -> Arrays.fill(expected, n - 4, n, n / 4.0);
      case "rank1" -> expected[n - 1] = Arrays.stream(u).map(x -> x * x).sum();
      default -> {}
    }
    double[][] original = new double[n][];
    for (int i = 0; i < n; i++) {
      original[i] = g[i].clone();
    }
    double[] lambda = new double[n];
    double[][] v = SymmetricEigen.decompose(g, lambda);
    double scale = Math.max(1, Arrays.stream(expected).max().getAsDouble());
    for (int k = 0; k < n; k++) {
      assertTrue(Double.isFinite(lambda[k]), "lambda " + k + " = " + lambda[k]);
      for (int i = 0; i < n; i++) {
        assertTrue(Double.isFinite(v[k][i]), "vector " + k + " holds " + v[k][i]);
      }
    }
    double[] sorted = lambda.clone();
    Arrays.sort(sorted);
    for (int k = 0; k < n; k++) {
      assertEquals(expected[k], sorted[k], 1e-12 * n * scale, "eigenvalue " + k);
    }
    // Residual and orthonormality on a sample of the vectors (all of them costs n^3 per check).
    for (int k = 0; k < n; k += Math.max(1, n / 16)) {
      for (int i = 0; i < n; i++) {
        double gv = 0;
        for (int j = 0; j < n; j++) {
          gv += original[i][j] * v[k][j];
        }
        assertEquals(lambda[k] * v[k][i], gv, 1e-12 * n * scale, "residual " + k + "," + i);
      }
      for (int l = 0; l < n; l++) {
        double dot = 0;
        for (int j = 0; j < n; j++) {
          dot += v[k][j] * v[l][j];
        }
        assertEquals(k == l ? 1 : 0, dot, 1e-12 * n, "v" + k + " . v" + l);
      }
    }
  }
}
