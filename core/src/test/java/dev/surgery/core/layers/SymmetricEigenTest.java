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

  /**
   * A direct sum of 2 x 2 blocks {@code [[a, b], [b, c]]} and 1 x 1 blocks, whose eigenvalues are
   * {@code (a + c) / 2 +- sqrt(((a - c) / 2)^2 + b^2)} and the 1 x 1 entries. Rows whose part left
   * of the diagonal is zero take the reduction's no-reflection branch, right after rows that do
   * not.
   */
  @ParameterizedTest
  @CsvSource({"3", "9", "30"})
  void directSumOfSmallBlocksHasTheirEigenvalues(int n) {
    Random rnd = new Random(n);
    double[][] g = new double[n][n];
    double[] expected = new double[n];
    for (int i = 0; i < n; i += 3) {
      double a = rnd.nextGaussian();
      double b = rnd.nextGaussian();
      double c = rnd.nextGaussian();
      double d = rnd.nextGaussian();
      g[i][i] = a;
      g[i][i + 1] = b;
      g[i + 1][i] = b;
      g[i + 1][i + 1] = c;
      g[i + 2][i + 2] = d;
      double root = Math.hypot((a - c) / 2, b);
      expected[i] = (a + c) / 2 + root;
      expected[i + 1] = (a + c) / 2 - root;
      expected[i + 2] = d;
    }
    assertDecomposes(g, expected, 1e-13);
  }

  /**
   * The adjacency matrix of a path of n nodes has the eigenvalues {@code 2 cos(k pi / (n + 1))}, k
   * = 1..n; turned dense by a Householder reflection {@code P T P} (same spectrum) and scaled by a
   * power of two c (exact), its eigenvalues are c times those. Deflation is relative to the
   * matrix's norm, and the plane rotations must neither underflow nor overflow near 1e-150 and
   * 1e150.
   */
  @ParameterizedTest
  @CsvSource({"12, 0", "12, -40", "12, 40", "12, -500", "12, 500", "40, -500", "40, 500"})
  void pathGraphSpectrumScalesWithTheMatrix(int n, int exponent) {
    double[][] t = new double[n][n];
    for (int i = 0; i + 1 < n; i++) {
      t[i][i + 1] = 1;
      t[i + 1][i] = 1;
    }
    Random rnd = new Random(n);
    double[] w = new double[n];
    double ww = 0;
    for (int i = 0; i < n; i++) {
      w[i] = rnd.nextGaussian();
      ww += w[i] * w[i];
    }
    double[][] p = new double[n][n];
    for (int i = 0; i < n; i++) {
      for (int j = 0; j < n; j++) {
        p[i][j] = (i == j ? 1 : 0) - 2 * w[i] * w[j] / ww;
      }
    }
    double c = Math.scalb(1.0, exponent);
    double[][] ptp = multiply(multiply(p, t), p);
    double[][] g = new double[n][n];
    double[] expected = new double[n];
    for (int i = 0; i < n; i++) {
      for (int j = 0; j < n; j++) {
        g[i][j] = c * (ptp[i][j] + ptp[j][i]) / 2; // symmetric to the last bit
      }
      expected[i] = c * 2 * Math.cos((i + 1) * Math.PI / (n + 1));
    }
    assertDecomposes(g, expected, 1e-13);
  }

  private static double[][] multiply(double[][] x, double[][] y) {
    int n = x.length;
    double[][] out = new double[n][n];
    for (int i = 0; i < n; i++) {
      for (int j = 0; j < n; j++) {
        for (int k = 0; k < n; k++) {
          out[i][j] += x[i][k] * y[k][j];
        }
      }
    }
    return out;
  }

  /**
   * Decomposes g and checks the eigenvalues against expected (any order) and every vector: unit
   * length, orthogonal, G v = lambda v, each to {@code tolerance} relative to the largest
   * eigenvalue.
   */
  private static void assertDecomposes(double[][] g, double[] expected, double tolerance) {
    int n = g.length;
    double[][] original = new double[n][];
    for (int i = 0; i < n; i++) {
      original[i] = g[i].clone();
    }
    double scale = Arrays.stream(expected).map(Math::abs).max().getAsDouble();
    double[] lambda = new double[n];
    double[][] v = SymmetricEigen.decompose(g, lambda);
    double[] sorted = lambda.clone();
    Arrays.sort(sorted);
    double[] want = expected.clone();
    Arrays.sort(want);
    for (int k = 0; k < n; k++) {
      assertEquals(want[k], sorted[k], tolerance * n * scale, "eigenvalue " + k);
    }
    for (int k = 0; k < n; k++) {
      for (int i = 0; i < n; i++) {
        double gv = 0;
        for (int j = 0; j < n; j++) {
          gv += original[i][j] * v[k][j];
        }
        assertEquals(lambda[k] * v[k][i], gv, tolerance * n * scale, "residual " + k + "," + i);
      }
      for (int l = 0; l < n; l++) {
        double dot = 0;
        for (int j = 0; j < n; j++) {
          dot += v[k][j] * v[l][j];
        }
        assertEquals(k == l ? 1 : 0, dot, tolerance * n, "v" + k + " . v" + l);
      }
    }
  }
}
