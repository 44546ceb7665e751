package dev.surgery.core.layers;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class TruncatedSvdTest {

  private static float[] random(int rows, int cols, long seed) {
    Random rnd = new Random(seed);
    float[] a = new float[rows * cols];
    for (int i = 0; i < a.length; i++) {
      a[i] = (float) rnd.nextGaussian();
    }
    return a;
  }

  /** (rows x r) times (r x cols). */
  private static double[] product(float[] left, float[] right, int rows, int r, int cols) {
    double[] out = new double[rows * cols];
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < cols; j++) {
        double sum = 0;
        for (int k = 0; k < r; k++) {
          sum += (double) left[i * r + k] * right[k * cols + j];
        }
        out[i * cols + j] = sum;
      }
    }
    return out;
  }

  @ParameterizedTest
  @CsvSource({"5, 7", "7, 5", "6, 6", "1, 4", "12, 3"})
  void fullRankReconstructsAndTruncationErrorIsTheTail(int rows, int cols) {
    float[] a = random(rows, cols, rows * 31L + cols);
    TruncatedSvd svd = TruncatedSvd.of(a, rows, cols);
    double[] s = svd.singularValues();
    assertEquals(Math.min(rows, cols), s.length);
    for (int i = 1; i < s.length; i++) {
      assertTrue(s[i - 1] >= s[i], "decreasing");
    }
    double frob = 0;
    for (float x : a) {
      frob += x * x;
    }
    double sumSq = 0;
    for (double x : s) {
      sumSq += x * x;
    }
    assertEquals(frob, sumSq, 1e-6 * frob, "sum of squared singular values = ||A||^2");
    for (int r = 1; r <= s.length; r++) {
      double[] approx = product(svd.leftFactor(r), svd.rightFactor(r), rows, r, cols);
      double err = 0;
      for (int i = 0; i < a.length; i++) {
        err += (a[i] - approx[i]) * (a[i] - approx[i]);
      }
      assertEquals(svd.tailNorm(r), Math.sqrt(err), 1e-5, "rank " + r);
    }
    assertEquals(0, svd.tailNorm(s.length));
  }

  @ParameterizedTest
  @CsvSource({"6, 3", "3, 6"})
  void rankDeficientMatrix(int rows, int cols) {
    // Column (or row) 1 is zero and 2 is twice 0: rank 1.
    float[] a = new float[rows * cols];
    for (int i = 0; i < Math.max(rows, cols); i++) {
      float x = i + 1;
      int[] idx =
          rows > cols
              ? new int[] {i * cols, i * cols + 1, i * cols + 2}
              : new int[] {i, cols + i, 2 * cols + i};
      a[idx[0]] = x;
      a[idx[2]] = 2 * x;
    }
    TruncatedSvd svd = TruncatedSvd.of(a, rows, cols);
    double[] s = svd.singularValues();
    assertEquals(0, s[1], 1e-9);
    assertEquals(0, svd.tailNorm(1), 1e-9);
    double[] approx = product(svd.leftFactor(1), svd.rightFactor(1), rows, 1, cols);
    for (int i = 0; i < a.length; i++) {
      assertEquals(a[i], approx[i], 1e-5, "element " + i);
    }
  }

  @ParameterizedTest
  @CsvSource({"4, 6", "6, 4"})
  void factorsHaveOrthogonalDirections(int rows, int cols) {
    TruncatedSvd svd = TruncatedSvd.of(random(rows, cols, 99), rows, cols);
    int r = Math.min(rows, cols);
    float[] right = svd.rightFactor(r); // rows of sqrt(s) V^T are orthogonal
    double[] s = svd.singularValues();
    for (int i = 0; i < r; i++) {
      for (int j = 0; j < r; j++) {
        double dot = 0;
        for (int k = 0; k < cols; k++) {
          dot += (double) right[i * cols + k] * right[j * cols + k];
        }
        assertEquals(i == j ? s[i] : 0, dot, 1e-5, i + "," + j);
      }
    }
    assertThrows(IllegalArgumentException.class, () -> svd.leftFactor(r + 1));
  }

  @ParameterizedTest
  @CsvSource({"24, 216", "216, 24"})
  void wideAndTallWeightsReconstructAndBothFactorsAreOrthogonal(int rows, int cols) {
    // A conv weight's shape (out x in*k*k) and its transpose: the tall bidiagonalization path.
    float[] a = random(rows, cols, 5);
    TruncatedSvd svd = TruncatedSvd.of(a, rows, cols);
    int r = Math.min(rows, cols);
    double[] approx = product(svd.leftFactor(r), svd.rightFactor(r), rows, r, cols);
    for (int i = 0; i < a.length; i++) {
      assertEquals(a[i], approx[i], 1e-4, "element " + i);
    }
    double[] s = svd.singularValues();
    float[] left = svd.leftFactor(r); // columns of U sqrt(s) are orthogonal
    for (int i = 0; i < r; i++) {
      for (int j = 0; j < r; j++) {
        double dot = 0;
        for (int k = 0; k < rows; k++) {
          dot += (double) left[k * r + i] * left[k * r + j];
        }
        assertEquals(i == j ? s[i] : 0, dot, 1e-4 * s[0], i + "," + j);
      }
    }
  }
}
