package dev.surgery.core.layers;

import org.ejml.data.DMatrixRMaj;
import org.ejml.dense.row.SingularOps_DDRM;
import org.ejml.dense.row.decomposition.svd.SvdImplicitQrDecompose_DDRM;

/**
 * The singular value decomposition {@code A = U diag(s) V^T} of a dense matrix, computed on the CPU
 * in double precision by EJML (DJL has no SVD operator), and the rank-{@code r} factors {@code
 * factorize} starts from.
 *
 * <p>EJML's implicit-QR SVD runs with its tall bidiagonalization (a QR of the long side first),
 * which on the wide convolution weights {@code factorize} meets (up to 512 x 4608) is the fastest
 * of its variants; benchmark {@code SvdComparison} measures it against the hand-written Householder
 * QR + Jacobi this class held before (docs/benchmarks.md).
 */
public final class TruncatedSvd {

  private final int rows;
  private final int cols;
  private final double[] s;
  private final DMatrixRMaj u; // rows x k, columns in the order of s
  private final DMatrixRMaj v; // cols x k, columns in the order of s

  private TruncatedSvd(int rows, int cols, double[] s, DMatrixRMaj u, DMatrixRMaj v) {
    this.rows = rows;
    this.cols = cols;
    this.s = s;
    this.u = u;
    this.v = v;
  }

  /**
   * Decomposes a row-major {@code rows x cols} matrix.
   *
   * @param a the values, row-major
   * @param rows the number of rows
   * @param cols the number of columns
   * @return the decomposition, singular values in decreasing order
   * @throws IllegalArgumentException if the values do not fill {@code rows x cols}, or are not
   *     finite
   */
  public static TruncatedSvd of(float[] a, int rows, int cols) {
    if (rows < 1 || cols < 1 || a.length != (long) rows * cols) {
      throw new IllegalArgumentException(
          "expected " + rows + " x " + cols + " values, got " + a.length);
    }
    DMatrixRMaj matrix = new DMatrixRMaj(rows, cols);
    double[] data = matrix.data;
    for (int i = 0; i < a.length; i++) {
      if (!Float.isFinite(a[i])) {
        // EJML would iterate on NaN without converging; a typed error names the place instead.
        throw new IllegalArgumentException(
            "value at (" + i / cols + ", " + i % cols + ") is not finite: " + a[i]);
      }
      data[i] = a[i];
    }
    // compact U and V, both needed; tall bidiagonalization (QR of the long side first).
    SvdImplicitQrDecompose_DDRM svd = new SvdImplicitQrDecompose_DDRM(true, true, true, true);
    if (!svd.decompose(matrix)) {
      throw new IllegalStateException("the SVD of a " + rows + " x " + cols + " matrix failed");
    }
    DMatrixRMaj u = svd.getU(null, false);
    DMatrixRMaj w = svd.getW(null);
    DMatrixRMaj v = svd.getV(null, false);
    SingularOps_DDRM.descendingOrder(u, false, w, v, false);
    int k = Math.min(rows, cols);
    double[] s = new double[k];
    for (int i = 0; i < k; i++) {
      s[i] = w.get(i, i);
    }
    return new TruncatedSvd(rows, cols, s, u, v);
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
      double scale = Math.sqrt(s[k]);
      for (int i = 0; i < rows; i++) {
        out[i * r + k] = (float) (u.get(i, k) * scale);
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
        out[k * cols + j] = (float) (v.get(j, k) * scale);
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
