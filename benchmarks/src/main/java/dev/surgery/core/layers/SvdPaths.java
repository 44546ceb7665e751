package dev.surgery.core.layers;

/**
 * The benchmarks' way to the package-private parts of {@link TruncatedSvd} that {@code
 * SvdComparison} measures (the QR + Jacobi path, singular vectors as computed): declared in core's
 * package on the class path, so a rename in core breaks this build rather than a run.
 */
public final class SvdPaths {

  private SvdPaths() {}

  /**
   * The QR + Jacobi decomposition, the path before the Gram matrix.
   *
   * @param a the matrix, row-major
   * @param rows its rows
   * @param cols its columns
   * @return the decomposition
   */
  public static TruncatedSvd viaJacobi(float[] a, int rows, int cols) {
    return TruncatedSvd.viaJacobi(a, rows, cols);
  }

  /**
   * The k-th left singular vector.
   *
   * @param svd a decomposition
   * @param k the index, largest singular value first
   * @return the vector (length rows), not to be changed
   */
  public static double[] left(TruncatedSvd svd, int k) {
    return svd.left(k);
  }

  /**
   * The k-th right singular vector.
   *
   * @param svd a decomposition
   * @param k the index, largest singular value first
   * @return the vector (length cols), not to be changed
   */
  public static double[] right(TruncatedSvd svd, int k) {
    return svd.right(k);
  }
}
