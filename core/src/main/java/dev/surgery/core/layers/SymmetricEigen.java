package dev.surgery.core.layers;

/**
 * Eigenvalues and eigenvectors of a real symmetric matrix, in double precision: Householder
 * reduction to tridiagonal form with the transformations accumulated, then the implicit QL method
 * with Wilkinson-style shifts on the tridiagonal matrix (the classical EISPACK tred2/tql2 pair),
 * deflating against the norm of the whole matrix so that low-rank and degenerate matrices, whose
 * reduction leaves rounding and subnormals, converge like any other. Used by {@link TruncatedSvd}
 * on the Gram matrix of a weight. Entries are expected within about 1e-150 to 1e150 in magnitude
 * (as in EISPACK, a product of two off-diagonal values may underflow or overflow beyond that): the
 * Gram matrix of float32 weights always is, and {@link TruncatedSvd} checks what it gets back.
 */
final class SymmetricEigen {

  private static final double EPS = Math.ulp(1.0);

  private SymmetricEigen() {}

  /**
   * Decomposes {@code a = V diag(lambda) V^T}.
   *
   * @param a the symmetric matrix, n x n; overwritten
   * @param lambda receives the n eigenvalues, in no particular order
   * @return the eigenvectors, one per row: row i belongs to {@code lambda[i]}
   */
  static double[][] decompose(double[][] a, double[] lambda) {
    int n = a.length;
    double[] e = new double[n];
    tridiagonalize(a, lambda, e);
    // a now holds the accumulated transformation with the vectors in its columns; the QL sweeps
    // rotate pairs of vectors, so store them as rows, where a rotation reads memory in order.
    double[][] vt = new double[n][n];
    for (int i = 0; i < n; i++) {
      for (int j = 0; j < n; j++) {
        vt[j][i] = a[i][j];
      }
    }
    ql(lambda, e, vt);
    return vt;
  }

  /**
   * Householder reduction of {@code v} (symmetric, overwritten by the orthogonal transformation) to
   * tridiagonal form: diagonal in {@code d}, subdiagonal in {@code e[1..n-1]}.
   */
  private static void tridiagonalize(double[][] v, double[] d, double[] e) {
    int n = v.length;
    System.arraycopy(v[n - 1], 0, d, 0, n);
    for (int i = n - 1; i > 0; i--) {
      // Scale the row to avoid under- and overflow, then build the reflection for row i.
      double scale = 0;
      double h = 0;
      for (int k = 0; k < i; k++) {
        scale += Math.abs(d[k]);
      }
      if (scale == 0) {
        e[i] = d[i - 1];
        for (int j = 0; j < i; j++) {
          d[j] = v[i - 1][j];
          v[i][j] = 0;
          v[j][i] = 0;
        }
      } else {
        for (int k = 0; k < i; k++) {
          d[k] /= scale;
          h += d[k] * d[k];
        }
        double f = d[i - 1];
        double g = Math.sqrt(h);
        if (f > 0) {
          g = -g;
        }
        e[i] = scale * g;
        h -= f * g;
        d[i - 1] = f - g;
        for (int j = 0; j < i; j++) {
          e[j] = 0;
        }
        // e = A u, using the lower triangle only.
        for (int j = 0; j < i; j++) {
          f = d[j];
          v[j][i] = f;
          g = e[j] + v[j][j] * f;
          for (int k = j + 1; k <= i - 1; k++) {
            double[] vk = v[k];
            g += vk[j] * d[k];
            e[k] += vk[j] * f;
          }
          e[j] = g;
        }
        f = 0;
        for (int j = 0; j < i; j++) {
          e[j] /= h;
          f += e[j] * d[j];
        }
        double hh = f / (h + h);
        for (int j = 0; j < i; j++) {
          e[j] -= hh * d[j];
        }
        // A -= u w^T + w u^T on the lower triangle.
        for (int j = 0; j < i; j++) {
          f = d[j];
          g = e[j];
          for (int k = j; k <= i - 1; k++) {
            v[k][j] -= f * e[k] + g * d[k];
          }
          d[j] = v[i - 1][j];
          v[i][j] = 0;
        }
      }
      d[i] = h;
    }
    // Accumulate the reflections into v.
    for (int i = 0; i < n - 1; i++) {
      v[n - 1][i] = v[i][i];
      v[i][i] = 1;
      double h = d[i + 1];
      if (h != 0) {
        for (int k = 0; k <= i; k++) {
          d[k] = v[k][i + 1] / h;
        }
        for (int j = 0; j <= i; j++) {
          double g = 0;
          for (int k = 0; k <= i; k++) {
            g += v[k][i + 1] * v[k][j];
          }
          for (int k = 0; k <= i; k++) {
            v[k][j] -= g * d[k];
          }
        }
      }
      for (int k = 0; k <= i; k++) {
        v[k][i + 1] = 0;
      }
    }
    for (int j = 0; j < n; j++) {
      d[j] = v[n - 1][j];
      v[n - 1][j] = 0;
    }
    v[n - 1][n - 1] = 1;
    e[0] = 0;
  }

  /**
   * Implicit QL on the tridiagonal matrix (diagonal {@code d}, subdiagonal {@code e[1..]}),
   * rotating the rows of {@code vt} along; leaves the eigenvalues in {@code d}.
   */
  private static void ql(double[] d, double[] e, double[][] vt) {
    int n = d.length;
    for (int i = 1; i < n; i++) {
      e[i - 1] = e[i];
    }
    e[n - 1] = 0;
    // A subdiagonal element is negligible below EPS times the norm of the whole matrix. tql2
    // measures it against the rows seen so far instead, and on a low-rank matrix (a constant one,
    // say) the leading rows hold only the rounding left by the reduction, down to subnormals: they
    // passed as significant, the QL steps on them underflowed, and 0 / 0 spread NaN through every
    // vector. Against the whole norm that block splits off at once, and the eigenvalues keep the
    // absolute accuracy (EPS times the largest) that TruncatedSvd relies on.
    double norm = 0;
    for (int i = 0; i < n; i++) {
      norm = Math.max(norm, Math.abs(d[i]) + Math.abs(e[i]));
    }
    double tst1 = EPS * norm;
    double f = 0;
    for (int l = 0; l < n; l++) {
      // Find a negligible subdiagonal element.
      int m = l;
      while (m < n && Math.abs(e[m]) > tst1) {
        m++;
      }
      if (m > l) {
        int iterations = 0;
        do {
          if (++iterations > 60 * n) {
            throw new ArithmeticException("symmetric eigen-solver did not converge");
          }
          // Shift from the leading 2 x 2 block.
          double g = d[l];
          double p = (d[l + 1] - g) / (2 * e[l]);
          double r = hypot(p, 1);
          if (p < 0) {
            r = -r;
          }
          d[l] = e[l] / (p + r);
          d[l + 1] = e[l] * (p + r);
          double dl1 = d[l + 1];
          double h = g - d[l];
          for (int i = l + 2; i < n; i++) {
            d[i] -= h;
          }
          f += h;
          // Chase the bulge from m up to l.
          p = d[m];
          double c = 1;
          double c2 = c;
          double c3 = c;
          double el1 = e[l + 1];
          double s = 0;
          double s2 = 0;
          for (int i = m - 1; i >= l; i--) {
            c3 = c2;
            c2 = c;
            s2 = s;
            g = c * e[i];
            h = c * p;
            r = hypot(p, e[i]);
            e[i + 1] = s * r;
            if (r == 0) {
              // Nothing to annihilate (a split inside the block): any rotation does, take none.
              s = 0;
              c = 1;
            } else {
              s = e[i] / r;
              c = p / r;
            }
            p = c * d[i] - s * g;
            d[i + 1] = h + s * (c * g + s * d[i]);
            double[] x = vt[i];
            double[] y = vt[i + 1];
            for (int k = 0; k < n; k++) {
              double yk = y[k];
              y[k] = s * x[k] + c * yk;
              x[k] = c * x[k] - s * yk;
            }
          }
          p = -s * s2 * c3 * el1 * e[l] / dl1;
          e[l] = s * p;
          d[l] = c * p;
        } while (Math.abs(e[l]) > tst1);
      }
      d[l] += f;
      e[l] = 0;
    }
  }

  /**
   * sqrt(a^2 + b^2), squaring directly where that can neither underflow nor overflow (cheaper than
   * Math.hypot), and scaled otherwise: squared subnormals are 0, and 0 / 0 is NaN.
   */
  private static double hypot(double a, double b) {
    double x = Math.abs(a);
    double y = Math.abs(b);
    double big = Math.max(x, y);
    double small = Math.min(x, y);
    if (big < 1e150 && small > 1e-150) {
      return Math.sqrt(x * x + y * y);
    }
    if (big == 0) {
      return 0;
    }
    double t = small / big;
    return big * Math.sqrt(1 + t * t);
  }
}
