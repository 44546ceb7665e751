package dev.surgery.core.layers;

import java.util.Arrays;
import java.util.Comparator;

/**
 * The singular value decomposition {@code A = U diag(s) V^T} of a dense matrix, computed on the CPU
 * in double precision, accurate to working precision and with no library: DJL has no SVD operator,
 * and this runs once per factorized layer.
 *
 * <p>The long side is first reduced by a Householder QR ({@code B = QR}, with {@code B} the matrix
 * or its transpose, whichever is tall), then the small square {@code R} is decomposed by one-sided
 * Jacobi rotations (Hestenes' method). Singular vectors on the long side are expanded through
 * {@code Q} only when a factor asks for them, and only as many as the rank needs. A 512 x 4608
 * convolution weight takes seconds instead of the half minute plain Jacobi needs.
 */
public final class TruncatedSvd {

  private static final int MAX_SWEEPS = 80;
  private static final double TOLERANCE = 1e-15;

  private final int rows;
  private final int cols;
  private final boolean transposed; // the tall matrix B is A^T
  private final int longSide;
  private final double[] s;
  private final double[][] shortVectors; // singular vectors of length q (V of B), sorted
  private final double[][] reduced; // left vectors of R, length q, sorted
  private final double[][] householder; // v_j, stored from index j; null without QR
  private final double[] betas;
  private final double[][] longVectors; // expanded on demand

  private TruncatedSvd(
      int rows,
      int cols,
      boolean transposed,
      int longSide,
      double[] s,
      double[][] shortVectors,
      double[][] reduced,
      double[][] householder,
      double[] betas) {
    this.rows = rows;
    this.cols = cols;
    this.transposed = transposed;
    this.longSide = longSide;
    this.s = s;
    this.shortVectors = shortVectors;
    this.reduced = reduced;
    this.householder = householder;
    this.betas = betas;
    this.longVectors = new double[s.length][];
  }

  /**
   * Decomposes a row-major {@code rows x cols} matrix.
   *
   * @param a the values, row-major
   * @param rows the number of rows
   * @param cols the number of columns
   * @return the decomposition, singular values in decreasing order
   */
  public static TruncatedSvd of(float[] a, int rows, int cols) {
    if (rows < 1 || cols < 1 || a.length != (long) rows * cols) {
      throw new IllegalArgumentException(
          "expected " + rows + " x " + cols + " values, got " + a.length);
    }
    boolean transposed = rows < cols;
    int p = transposed ? cols : rows; // long side
    int q = transposed ? rows : cols; // short side
    // work[j] is column j of the tall matrix B (A, or A^T when A is wide).
    double[][] work = new double[q][p];
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < cols; j++) {
        if (transposed) {
          work[i][j] = a[i * cols + j];
        } else {
          work[j][i] = a[i * cols + j];
        }
      }
    }
    double[][] householder = null;
    double[] betas = null;
    if (p > q) {
      householder = new double[q][];
      betas = new double[q];
      for (int j = 0; j < q; j++) {
        betas[j] = reflect(work, j, householder);
      }
      // Keep R only: column k holds R[0..k][k].
      for (int k = 0; k < q; k++) {
        work[k] = Arrays.copyOf(work[k], q);
      }
    }
    double[][] rot = jacobi(work);
    double[] sigma = new double[q];
    for (int i = 0; i < q; i++) {
      sigma[i] = Math.sqrt(dot(work[i], work[i]));
      if (sigma[i] > 0) {
        for (int k = 0; k < work[i].length; k++) {
          work[i][k] /= sigma[i];
        }
      }
    }
    Integer[] order = new Integer[q];
    for (int i = 0; i < q; i++) {
      order[i] = i;
    }
    Arrays.sort(order, Comparator.comparingDouble((Integer i) -> -sigma[i]));
    double[] values = new double[q];
    double[][] shortVectors = new double[q][];
    double[][] reduced = new double[q][];
    for (int r = 0; r < q; r++) {
      values[r] = sigma[order[r]];
      shortVectors[r] = rot[order[r]];
      reduced[r] = work[order[r]];
    }
    return new TruncatedSvd(
        rows, cols, transposed, p, values, shortVectors, reduced, householder, betas);
  }

  /**
   * Applies the j-th Householder reflection to columns j.. of {@code work}, zeroing column j below
   * the diagonal, and stores its vector.
   */
  private static double reflect(double[][] work, int j, double[][] householder) {
    double[] x = work[j];
    int p = x.length;
    double norm = 0;
    for (int k = j; k < p; k++) {
      norm += x[k] * x[k];
    }
    norm = Math.sqrt(norm);
    double[] v = new double[p];
    if (norm == 0) {
      householder[j] = v;
      return 0;
    }
    double alpha = x[j] > 0 ? -norm : norm;
    System.arraycopy(x, j, v, j, p - j);
    v[j] -= alpha;
    double vv = 0;
    for (int k = j; k < p; k++) {
      vv += v[k] * v[k];
    }
    double beta = vv == 0 ? 0 : 2 / vv;
    householder[j] = v;
    x[j] = alpha;
    Arrays.fill(x, j + 1, p, 0);
    for (int c = j + 1; c < work.length; c++) {
      applyReflection(v, beta, j, work[c]);
    }
    return beta;
  }

  private static void applyReflection(double[] v, double beta, int from, double[] y) {
    double d = 0;
    for (int k = from; k < y.length; k++) {
      d += v[k] * y[k];
    }
    d *= beta;
    if (d != 0) {
      for (int k = from; k < y.length; k++) {
        y[k] -= d * v[k];
      }
    }
  }

  /** One-sided Jacobi: orthogonalizes the columns in place; returns the accumulated rotation. */
  private static double[][] jacobi(double[][] work) {
    int q = work.length;
    double[][] rot = new double[q][q];
    for (int i = 0; i < q; i++) {
      rot[i][i] = 1;
    }
    for (int sweep = 0; sweep < MAX_SWEEPS; sweep++) {
      boolean rotated = false;
      for (int i = 0; i < q - 1; i++) {
        for (int j = i + 1; j < q; j++) {
          double alpha = dot(work[i], work[i]);
          double beta = dot(work[j], work[j]);
          double gamma = dot(work[i], work[j]);
          if (gamma == 0 || Math.abs(gamma) <= TOLERANCE * Math.sqrt(alpha * beta)) {
            continue;
          }
          rotated = true;
          double zeta = (beta - alpha) / (2 * gamma);
          double t =
              zeta == 0 ? 1 : Math.signum(zeta) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
          double c = 1 / Math.sqrt(1 + t * t);
          double sn = c * t;
          rotate(work[i], work[j], c, sn);
          rotate(rot[i], rot[j], c, sn);
        }
      }
      if (!rotated) {
        break;
      }
    }
    return rot;
  }

  private static double dot(double[] x, double[] y) {
    double sum = 0;
    for (int k = 0; k < x.length; k++) {
      sum += x[k] * y[k];
    }
    return sum;
  }

  private static void rotate(double[] x, double[] y, double c, double s) {
    for (int k = 0; k < x.length; k++) {
      double xi = x[k];
      double yi = y[k];
      x[k] = c * xi - s * yi;
      y[k] = s * xi + c * yi;
    }
  }

  /** The k-th left singular vector of the tall matrix B (length {@code longSide}). */
  private double[] longVector(int k) {
    if (longVectors[k] == null) {
      double[] y = Arrays.copyOf(reduced[k], longSide);
      if (householder != null) {
        // Q = H_0 H_1 ... H_{q-1}: apply the last reflection first.
        for (int j = householder.length - 1; j >= 0; j--) {
          applyReflection(householder[j], betas[j], j, y);
        }
      }
      longVectors[k] = y;
    }
    return longVectors[k];
  }

  /** The k-th left singular vector of A (length rows). */
  private double[] left(int k) {
    return transposed ? shortVectors[k] : longVector(k);
  }

  /** The k-th right singular vector of A (length cols). */
  private double[] right(int k) {
    return transposed ? longVector(k) : shortVectors[k];
  }

  /**
   * Returns the singular values, largest first ({@code min(rows, cols)} of them).
   *
   * @return a copy of the singular values
   */
  public double[] singularValues() {
    return s.clone();
  }

  /**
   * Returns the left factor of rank {@code r}, {@code U_r sqrt(S_r)}, row-major {@code rows x r}.
   *
   * @param r the rank, from 1 to {@code min(rows, cols)}
   * @return the values
   */
  public float[] leftFactor(int r) {
    checkRank(r);
    float[] out = new float[rows * r];
    for (int k = 0; k < r; k++) {
      double[] u = left(k);
      double scale = Math.sqrt(s[k]);
      for (int i = 0; i < rows; i++) {
        out[i * r + k] = (float) (u[i] * scale);
      }
    }
    return out;
  }

  /**
   * Returns the right factor of rank {@code r}, {@code sqrt(S_r) V_r^T}, row-major {@code r x
   * cols}.
   *
   * @param r the rank, from 1 to {@code min(rows, cols)}
   * @return the values
   */
  public float[] rightFactor(int r) {
    checkRank(r);
    float[] out = new float[r * cols];
    for (int k = 0; k < r; k++) {
      double[] v = right(k);
      double scale = Math.sqrt(s[k]);
      for (int j = 0; j < cols; j++) {
        out[k * cols + j] = (float) (v[j] * scale);
      }
    }
    return out;
  }

  /**
   * Returns the Frobenius norm of what a rank-{@code r} truncation leaves out: {@code sqrt(sum of
   * s_i^2 for i >= r)}.
   *
   * @param r the rank
   * @return the truncation error
   */
  public double tailNorm(int r) {
    double sum = 0;
    for (int i = r; i < s.length; i++) {
      sum += s[i] * s[i];
    }
    return Math.sqrt(sum);
  }

  private void checkRank(int r) {
    if (r < 1 || r > s.length) {
      throw new IllegalArgumentException("rank must be in [1, " + s.length + "], got " + r);
    }
  }
}
