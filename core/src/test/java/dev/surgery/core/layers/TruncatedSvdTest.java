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
  @CsvSource({"5, 7", "7, 5", "6, 6", "1, 4", "4, 1", "12, 3"})
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
    // At full rank the null directions (an exactly zero singular value) add nothing, not NaN.
    int q = s.length;
    double[] full = product(svd.leftFactor(q), svd.rightFactor(q), rows, q, cols);
    for (int i = 0; i < a.length; i++) {
      assertEquals(a[i], full[i], 1e-5, "element " + i + " at full rank");
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
    assertThrows(IllegalArgumentException.class, () -> svd.rightFactor(r + 1));
    assertThrows(IllegalArgumentException.class, () -> svd.leftFactor(0));
    assertThrows(IllegalArgumentException.class, () -> svd.rightFactor(0));
    assertThrows(IllegalArgumentException.class, () -> svd.tailNorm(-1));
    // Rank 0 keeps nothing: the whole matrix is left out, ||A||_F.
    float[] a = random(rows, cols, 99);
    double frobenius = 0;
    for (float x : a) {
      frobenius += (double) x * x;
    }
    assertEquals(Math.sqrt(frobenius), svd.tailNorm(0), 1e-9 * Math.sqrt(frobenius));
  }

  /** A weight array whose length is not rows x cols is refused on both paths. */
  @ParameterizedTest
  @CsvSource({"4, 5, 1", "4, 5, -1", "64, 70, 1", "70, 64, -1", "0, 5, 0"})
  void anArrayOfTheWrongSizeIsRefused(int rows, int cols, int extra) {
    float[] a = new float[rows * cols + extra];
    assertThrows(IllegalArgumentException.class, () -> TruncatedSvd.of(a, rows, cols));
  }

  /**
   * The SVD of {@code cA} is {@code c} times that of {@code A}, with the same vectors: powers of
   * two scale floats exactly, so the singular values must scale to working precision and both
   * factors stay orthogonal. The Jacobi rotation's stopping test is relative to the columns' own
   * norms; measured in absolute terms it would stop rotating small weights at once.
   */
  @ParameterizedTest
  @CsvSource({"6, 5, -20", "5, 6, -20", "6, 5, 20", "64, 80, -20", "80, 64, 20"})
  void singularValuesScaleWithTheMatrix(int rows, int cols, int exponent) {
    float[] a = random(rows, cols, 17);
    double c = Math.scalb(1.0, exponent);
    float[] scaled = new float[a.length];
    for (int i = 0; i < a.length; i++) {
      scaled[i] = (float) (a[i] * c);
    }
    double[] s = TruncatedSvd.viaJacobi(a, rows, cols).singularValues();
    TruncatedSvd svd = TruncatedSvd.of(scaled, rows, cols);
    double[] sc = svd.singularValues();
    double tolerance = rows < 64 && cols < 64 ? 1e-12 : 1e-6;
    for (int i = 0; i < s.length; i++) {
      assertEquals(c * s[i], sc[i], tolerance * c * s[0], "singular value " + i);
    }
    assertFactorsOrthogonal(svd, sc, rows, cols, s.length);
  }

  /**
   * A consistent eigen-decomposition of the Gram matrix is used, not thrown away for the slow exact
   * path: the singular values are the square roots of the solver's eigenvalues. Short sides that
   * are not multiples of four take the Gram product's remainder rows; the zero weight's Gram matrix
   * has trace 0, which its eigenvalues match exactly.
   */
  @ParameterizedTest
  @CsvSource({
    "random, 67, 150",
    "random, 150, 65",
    "random, 66, 130",
    "large, 64, 100",
    "zero, 64, 64"
  })
  void aConsistentEigenDecompositionIsUsed(String kind, int m, int cols) {
    float[] a = kind.equals("zero") ? new float[m * cols] : random(m, cols, 23);
    if (kind.equals("large")) {
      // A trace of about 2^32: the invariants' tolerances must be relative to it.
      for (int i = 0; i < a.length; i++) {
        a[i] *= 1024;
      }
    }
    double[][] seen = new double[1][];
    TruncatedSvd.EigenSolver spy =
        (g, lambda) -> {
          double[][] v = SymmetricEigen.decompose(g, lambda);
          seen[0] = lambda.clone();
          return v;
        };
    double[] s = TruncatedSvd.viaGram(a, m, cols, spy).singularValues();
    double[] expected = seen[0].clone();
    java.util.Arrays.sort(expected);
    assertEquals(Math.min(m, cols), s.length);
    for (int i = 0; i < s.length; i++) {
      assertEquals(
          Math.sqrt(Math.max(0, expected[s.length - 1 - i])), s[i], 0.0, "singular value " + i);
    }
    // And it is right: the exact path's values, to the Gram path's accuracy.
    double[] exact = TruncatedSvd.viaJacobi(a, m, cols).singularValues();
    for (int i = 0; i < s.length; i++) {
      assertEquals(exact[i], s[i], 1e-6 * Math.max(1, exact[0]), "singular value " + i);
    }
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

  /**
   * A = U diag(s) V^T with random orthonormal U, V (Gram-Schmidt on Gaussians, in double) and
   * singular values decaying geometrically from 1 to {@code smallest}, rounded to float as weights
   * are.
   */
  private static float[] withSpectrum(int rows, int cols, double smallest, long seed) {
    int q = Math.min(rows, cols);
    double[][] u = orthonormal(q, rows, new Random(seed));
    double[][] v = orthonormal(q, cols, new Random(seed + 1));
    float[] a = new float[rows * cols];
    for (int k = 0; k < q; k++) {
      double sk = Math.pow(smallest, k / (double) (q - 1));
      for (int i = 0; i < rows; i++) {
        for (int j = 0; j < cols; j++) {
          a[i * cols + j] += (float) (sk * u[k][i] * v[k][j]);
        }
      }
    }
    return a;
  }

  private static double[][] orthonormal(int count, int length, Random rnd) {
    double[][] out = new double[count][length];
    for (int k = 0; k < count; k++) {
      for (int i = 0; i < length; i++) {
        out[k][i] = rnd.nextGaussian();
      }
      for (int pass = 0; pass < 2; pass++) { // twice is enough (Kahan)
        for (int m = 0; m < k; m++) {
          double d = 0;
          for (int i = 0; i < length; i++) {
            d += out[k][i] * out[m][i];
          }
          for (int i = 0; i < length; i++) {
            out[k][i] -= d * out[m][i];
          }
        }
      }
      double n = 0;
      for (int i = 0; i < length; i++) {
        n += out[k][i] * out[k][i];
      }
      for (int i = 0; i < length; i++) {
        out[k][i] /= Math.sqrt(n);
      }
    }
    return out;
  }

  private static double reconstructionError(
      TruncatedSvd svd, float[] a, int rows, int cols, int r) {
    double[] approx = product(svd.leftFactor(r), svd.rightFactor(r), rows, r, cols);
    double err = 0;
    for (int i = 0; i < a.length; i++) {
      err += (a[i] - approx[i]) * (a[i] - approx[i]);
    }
    return Math.sqrt(err);
  }

  /**
   * The Gram path (what {@code of} uses from a short side of 64 on) against the QR + Jacobi SVD,
   * exact to working precision, as the oracle: the same singular values, and rank-r truncations
   * whose error is the optimal one (the exact SVD's tail) up to the float rounding of the factors,
   * on a Gaussian matrix and on spectra falling to 1e-3 and 1e-6 of the largest value.
   */
  @ParameterizedTest
  @CsvSource({
    "96, 300, 0",
    "300, 96, 0",
    "96, 300, 1e-3",
    "300, 96, 1e-3",
    "96, 300, 1e-6",
    "80, 80, 1e-6",
    "64, 100, 0",
    "67, 150, 1e-3"
  })
  void gramPathTruncatesAsWellAsTheExactSvd(int rows, int cols, double smallest) {
    float[] a = smallest == 0 ? random(rows, cols, 7) : withSpectrum(rows, cols, smallest, 11);
    TruncatedSvd exact = TruncatedSvd.viaJacobi(a, rows, cols);
    TruncatedSvd gram = TruncatedSvd.viaGram(a, rows, cols);
    assertEquals(
        java.util.Arrays.toString(gram.singularValues()),
        java.util.Arrays.toString(TruncatedSvd.of(a, rows, cols).singularValues()),
        "of() takes the Gram path from a short side of " + TruncatedSvd.GRAM_MIN_SIDE);
    double[] se = exact.singularValues();
    double[] sg = gram.singularValues();
    assertEquals(Math.min(rows, cols), sg.length);
    double norm = 0;
    for (double x : se) {
      norm += x * x;
    }
    norm = Math.sqrt(norm);
    for (int i = 0; i < se.length; i++) {
      assertEquals(se[i], sg[i], 1e-6 * se[0], "singular value " + i);
    }
    // The float32 factors round each entry at 2^-24 relative: that much error any SVD has.
    double rounding = 2e-7 * norm;
    int q = se.length;
    for (int r : new int[] {1, q / 4, q / 2, q - 1, q}) {
      double optimal = exact.tailNorm(r);
      assertEquals(optimal, gram.tailNorm(r), 1e-6 * se[0], "tail at rank " + r);
      double error = reconstructionError(gram, a, rows, cols, r);
      assertTrue(
          error <= optimal * (1 + 1e-4) + rounding,
          "rank " + r + ": error " + error + " vs optimal " + optimal);
    }
    // Both factors' directions stay orthogonal: (U sqrt(S))^T (U sqrt(S)) = S.
    assertFactorsOrthogonal(gram, sg, rows, cols, q / 2);
  }

  @ParameterizedTest
  @CsvSource({"64, 200", "200, 64"})
  void gramPathOnARankDeficientMatrixLeavesNoErrorAtItsRank(int rows, int cols) {
    // Rank 3: the rest of the spectrum is rounding, and a rank-3 truncation reproduces A.
    float[] a = new float[rows * cols];
    Random rnd = new Random(3);
    for (int k = 0; k < 3; k++) {
      double[] x = new double[rows];
      double[] y = new double[cols];
      for (int i = 0; i < rows; i++) {
        x[i] = rnd.nextGaussian();
      }
      for (int j = 0; j < cols; j++) {
        y[j] = rnd.nextGaussian();
      }
      for (int i = 0; i < rows; i++) {
        for (int j = 0; j < cols; j++) {
          a[i * cols + j] += (float) (x[i] * y[j]);
        }
      }
    }
    TruncatedSvd gram = TruncatedSvd.viaGram(a, rows, cols);
    double[] s = gram.singularValues();
    assertTrue(s[3] <= 1e-5 * s[0], "s[3] = " + s[3]);
    double norm = 0;
    for (float x : a) {
      norm += x * x;
    }
    assertTrue(reconstructionError(gram, a, rows, cols, 3) <= 1e-6 * Math.sqrt(norm));
    // The full rank works too: the null directions get unit vectors scaled to nothing.
    assertTrue(reconstructionError(gram, a, rows, cols, s.length) <= 1e-6 * Math.sqrt(norm));
  }

  /**
   * Low-rank and degenerate weights on the path {@code of} takes for them (the Gram path from a
   * short side of 64): constant (every filter equal), block-constant ({@code A[i][j] = (i % 4 == j
   * % 4)}), rank 1 and zero, whose singular values are known in closed form, and Gaussian ones
   * against the QR + Jacobi SVD. The eigen-solver once returned NaN on the first two, and a
   * constant 128 x 1152 came out with a largest singular value of 0. Everything must be finite, and
   * a rank-r truncation must leave exactly the oracle's discarded singular values as error
   * (Eckart-Young).
   */
  @ParameterizedTest
  @CsvSource({
    "constant, 64, 200",
    "constant, 96, 300",
    "constant, 128, 1152",
    "constant, 192, 200",
    "constant, 256, 260",
    "constant, 300, 96",
    "block, 64, 200",
    "block, 96, 300",
    "block, 128, 1152",
    "block, 192, 200",
    "block, 256, 260",
    "block, 300, 96",
    "rank1, 64, 200",
    "rank1, 256, 260",
    "rank1, 300, 96",
    "zero, 64, 64",
    "zero, 128, 130",
    "random, 64, 200",
    "random, 300, 96"
  })
  void degenerateAndLowRankMatricesTruncateOptimally(String kind, int rows, int cols) {
    float[] a = new float[rows * cols];
    int q = Math.min(rows, cols);
    double[] expected = new double[q]; // the oracle's singular values, largest first
    Random rnd = new Random(rows * 7L + cols);
    switch (kind) {
      case "constant" -> {
        java.util.Arrays.fill(a, 0.01f);
        expected[0] = 0.01f * Math.sqrt((double) rows * cols);
      }
      case "block" -> {
        // A direct sum of four all-ones blocks, one per residue: sqrt(rows_c * cols_c) each.
        for (int i = 0; i < rows; i++) {
          for (int j = i % 4; j < cols; j += 4) {
            a[i * cols + j] = 1;
          }
        }
        for (int c = 0; c < 4; c++) {
          expected[c] = Math.sqrt((double) ((rows - c + 3) / 4) * ((cols - c + 3) / 4));
        }
        java.util.Arrays.sort(expected, 0, 4);
        for (int c = 0; c < 2; c++) {
          double t = expected[c];
          expected[c] = expected[3 - c];
          expected[3 - c] = t;
        }
      }
      case "rank1" -> {
        double[] x = rnd.doubles(rows).map(v -> v - 0.5).toArray();
        double[] y = rnd.doubles(cols).map(v -> v - 0.5).toArray();
        for (int i = 0; i < rows; i++) {
          for (int j = 0; j < cols; j++) {
            a[i * cols + j] = (float) (x[i] * y[j]);
          }
        }
        expected[0] =
            Math.sqrt(
                java.util.Arrays.stream(x).map(v -> v * v).sum()
                    * java.util.Arrays.stream(y).map(v -> v * v).sum());
      }
      case "random" -> {
        a = random(rows, cols, rows * 7L + cols);
        expected = TruncatedSvd.viaJacobi(a, rows, cols).singularValues();
      }
      default -> {}
    }
    assertTrue(q >= TruncatedSvd.GRAM_MIN_SIDE, "of() takes the Gram path");
    TruncatedSvd svd = TruncatedSvd.of(a, rows, cols);
    double[] s = svd.singularValues();
    double norm = 0;
    for (float x : a) {
      norm += x * x;
    }
    norm = Math.sqrt(norm);
    for (int i = 0; i < q; i++) {
      assertTrue(Double.isFinite(s[i]), "singular value " + i + " = " + s[i]);
      assertEquals(expected[i], s[i], 1e-6 * norm, "singular value " + i);
    }
    for (int r : new int[] {1, 2, 4, q / 4}) {
      for (float x : svd.leftFactor(r)) {
        assertTrue(Float.isFinite(x), "left factor at rank " + r + " holds " + x);
      }
      for (float x : svd.rightFactor(r)) {
        assertTrue(Float.isFinite(x), "right factor at rank " + r + " holds " + x);
      }
      double tail = 0;
      for (int i = r; i < q; i++) {
        tail += expected[i] * expected[i];
      }
      tail = Math.sqrt(tail);
      // The float32 factors round each entry at 2^-24 relative: that much error any SVD has.
      assertEquals(tail, reconstructionError(svd, a, rows, cols, r), 1e-6 * norm, "rank " + r);
      assertEquals(tail, svd.tailNorm(r), 1e-6 * norm, "tail norm at rank " + r);
    }
  }

  /**
   * An eigen-solver that returns NaN, or a spectrum that contradicts the Gram matrix (its trace and
   * Frobenius norm), makes the Gram path fall back to the exact one rather than hand out NaN or
   * wrong factors: the result is then the QR + Jacobi SVD's.
   */
  @ParameterizedTest
  @CsvSource({"nan, 64, 100", "wrong, 100, 64"})
  void aFailingEigenSolverFallsBackToTheExactPath(String failure, int rows, int cols) {
    float[] a = random(rows, cols, 5);
    TruncatedSvd.EigenSolver broken =
        (g, lambda) -> {
          int n = g.length;
          double[][] v = new double[n][n];
          for (int i = 0; i < n; i++) {
            v[i][i] = failure.equals("nan") ? Double.NaN : 1;
            lambda[i] = 1; // the trace of a Gaussian Gram matrix is far from n
          }
          return v;
        };
    TruncatedSvd gram = TruncatedSvd.viaGram(a, rows, cols, broken);
    TruncatedSvd exact = TruncatedSvd.viaJacobi(a, rows, cols);
    double[] se = exact.singularValues();
    double[] sg = gram.singularValues();
    for (int i = 0; i < se.length; i++) {
      assertEquals(se[i], sg[i], 1e-9 * se[0], "singular value " + i);
    }
    int r = 16;
    assertEquals(
        exact.tailNorm(r), reconstructionError(gram, a, rows, cols, r), 1e-5 * se[0], "rank " + r);
  }

  @ParameterizedTest
  @CsvSource({"NaN, 4, 5", "NaN, 64, 70", "Infinity, 64, 70", "-Infinity, 70, 64"})
  void nonFiniteWeightsAreRefusedWithTheirPosition(float bad, int rows, int cols) {
    float[] a = random(rows, cols, 1);
    a[cols + 2] = bad;
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> TruncatedSvd.of(a, rows, cols));
    assertTrue(e.getMessage().contains("(1, 2)"), e.getMessage());
  }

  /**
   * Both factors' directions are orthogonal and carry the singular values: (U sqrt(S))^T (U
   * sqrt(S)) = S, and the same for V, for the first {@code r} of them.
   */
  private static void assertFactorsOrthogonal(
      TruncatedSvd svd, double[] singular, int rows, int cols, int r) {
    float[] left = svd.leftFactor(r);
    float[] right = svd.rightFactor(r);
    for (int i = 0; i < r; i++) {
      for (int j = 0; j < r; j++) {
        double dl = 0;
        for (int k = 0; k < rows; k++) {
          dl += (double) left[k * r + i] * left[k * r + j];
        }
        double dr = 0;
        for (int k = 0; k < cols; k++) {
          dr += (double) right[i * cols + k] * right[j * cols + k];
        }
        assertEquals(i == j ? singular[i] : 0, dl, 1e-5 * singular[0], "U " + i + "," + j);
        assertEquals(i == j ? singular[i] : 0, dr, 1e-5 * singular[0], "V " + i + "," + j);
      }
    }
  }
}
