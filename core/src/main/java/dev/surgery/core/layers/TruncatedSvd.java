package dev.surgery.core.layers;

import java.util.Arrays;
import java.util.Comparator;

/**
 * The singular value decomposition {@code A = U diag(s) V^T} of a small dense matrix, computed on
 * the CPU in double precision by one-sided Jacobi rotations (Hestenes' method), which is accurate
 * to working precision and needs no library. DJL has no SVD operator, and this runs once per
 * factorized layer, so a plain Java implementation is enough.
 */
public final class TruncatedSvd {

  private static final int MAX_SWEEPS = 80;
  private static final double TOLERANCE = 1e-15;

  private final int rows;
  private final int cols;
  private final double[][] u; // u[i] = i-th left singular vector, length rows
  private final double[] s;
  private final double[][] v; // v[i] = i-th right singular vector, length cols

  private TruncatedSvd(int rows, int cols, double[][] u, double[] s, double[][] v) {
    this.rows = rows;
    this.cols = cols;
    this.u = u;
    this.s = s;
    this.v = v;
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
    if (a.length != (long) rows * cols) {
      throw new IllegalArgumentException(
          "expected " + rows + " x " + cols + " values, got " + a.length);
    }
    boolean transpose = rows < cols;
    int p = transpose ? cols : rows; // length of the columns being orthogonalized
    int q = transpose ? rows : cols; // number of them
    // work[j] is column j of B, where B = A (p x q) or A^T when A is wide.
    double[][] work = new double[q][p];
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < cols; j++) {
        if (transpose) {
          work[i][j] = a[i * cols + j];
        } else {
          work[j][i] = a[i * cols + j];
        }
      }
    }
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
          if (Math.abs(gamma) <= TOLERANCE * Math.sqrt(alpha * beta) || gamma == 0) {
            continue;
          }
          rotated = true;
          double zeta = (beta - alpha) / (2 * gamma);
          double t = Math.signum(zeta) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
          if (zeta == 0) {
            t = 1;
          }
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
    double[] sigma = new double[q];
    for (int i = 0; i < q; i++) {
      sigma[i] = Math.sqrt(dot(work[i], work[i]));
      if (sigma[i] > 0) {
        for (int k = 0; k < p; k++) {
          work[i][k] /= sigma[i];
        }
      }
    }
    Integer[] order = new Integer[q];
    for (int i = 0; i < q; i++) {
      order[i] = i;
    }
    Arrays.sort(order, Comparator.comparingDouble((Integer i) -> -sigma[i]));
    double[][] left = new double[q][];
    double[][] right = new double[q][];
    double[] values = new double[q];
    for (int r = 0; r < q; r++) {
      int i = order[r];
      values[r] = sigma[i];
      // B = W diag(sigma) R^T with W = work, R = rot; for a wide A, A = B^T swaps the roles.
      left[r] = transpose ? rot[i] : work[i];
      right[r] = transpose ? work[i] : rot[i];
    }
    return new TruncatedSvd(rows, cols, left, values, right);
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
    for (int i = 0; i < rows; i++) {
      for (int k = 0; k < r; k++) {
        out[i * r + k] = (float) (u[k][i] * Math.sqrt(s[k]));
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
      double scale = Math.sqrt(s[k]);
      for (int j = 0; j < cols; j++) {
        out[k * cols + j] = (float) (v[k][j] * scale);
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
