package dev.surgery.agent.testapp;

/**
 * A plain-Java, double-precision oracle for what {@code factorize} starts its two layers from: the
 * best rank-{@code r} approximation of the trained weight (Eckart-Young), written {@code B A} with
 * {@code A = sqrt(S) V^T} and {@code B = U sqrt(S)}. The singular vectors come from a cyclic Jacobi
 * eigen-decomposition of {@code W W^T}, nothing shared with the library.
 */
final class FactorizeOracle {

  private FactorizeOracle() {}

  /**
   * Compares the factors the surgery made with the oracle's.
   *
   * @param w the old weight, {@code out x fanIn} row-major
   * @param a the first layer's weight, {@code r x fanIn}
   * @param b the second layer's weight, {@code out x r}
   * @return {@code {max |BA - W_r| / max |W|, max relative error of the singular values that the
   *     factors' row and column norms imply}}
   */
  static double[] compare(float[] w, int out, int fanIn, float[] a, float[] b, int r) {
    double[][] g = new double[out][out];
    for (int i = 0; i < out; i++) {
      for (int j = 0; j < out; j++) {
        double s = 0;
        for (int k = 0; k < fanIn; k++) {
          s += (double) w[i * fanIn + k] * w[j * fanIn + k];
        }
        g[i][j] = s;
      }
    }
    double[][] vectors = new double[out][out];
    double[] values = jacobi(g, vectors);
    Integer[] order = new Integer[out];
    for (int i = 0; i < out; i++) {
      order[i] = i;
    }
    java.util.Arrays.sort(order, (x, y) -> Double.compare(values[y], values[x]));
    // W_r = U_r U_r^T W.
    double[][] proj = new double[out][out];
    for (int i = 0; i < out; i++) {
      for (int j = 0; j < out; j++) {
        double s = 0;
        for (int k = 0; k < r; k++) {
          s += vectors[i][order[k]] * vectors[j][order[k]];
        }
        proj[i][j] = s;
      }
    }
    double maxW = 0;
    double maxErr = 0;
    for (int i = 0; i < out; i++) {
      for (int k = 0; k < fanIn; k++) {
        double wr = 0;
        for (int j = 0; j < out; j++) {
          wr += proj[i][j] * w[j * fanIn + k];
        }
        double ba = 0;
        for (int t = 0; t < r; t++) {
          ba += (double) b[i * r + t] * a[t * fanIn + k];
        }
        maxW = Math.max(maxW, Math.abs(w[i * fanIn + k]));
        maxErr = Math.max(maxErr, Math.abs(ba - wr));
      }
    }
    // Row t of A and column t of B both have norm sqrt(s_t).
    double maxSigmaErr = 0;
    for (int t = 0; t < r; t++) {
      double sigma = Math.sqrt(Math.max(values[order[t]], 0));
      double rowA = 0;
      double colB = 0;
      for (int k = 0; k < fanIn; k++) {
        rowA += (double) a[t * fanIn + k] * a[t * fanIn + k];
      }
      for (int i = 0; i < out; i++) {
        colB += (double) b[i * r + t] * b[i * r + t];
      }
      maxSigmaErr = Math.max(maxSigmaErr, Math.abs(rowA - sigma) / sigma);
      maxSigmaErr = Math.max(maxSigmaErr, Math.abs(colB - sigma) / sigma);
    }
    return new double[] {maxErr / maxW, maxSigmaErr};
  }

  /** Cyclic Jacobi: the eigenvalues of a symmetric matrix (destroyed), vectors as columns. */
  private static double[] jacobi(double[][] m, double[][] v) {
    int n = m.length;
    for (int i = 0; i < n; i++) {
      v[i][i] = 1;
    }
    for (int sweep = 0; sweep < 100; sweep++) {
      double off = 0;
      for (int p = 0; p < n; p++) {
        for (int q = p + 1; q < n; q++) {
          off += m[p][q] * m[p][q];
        }
      }
      if (off < 1e-30) {
        break;
      }
      for (int p = 0; p < n; p++) {
        for (int q = p + 1; q < n; q++) {
          if (Math.abs(m[p][q]) < 1e-300) {
            continue;
          }
          double theta = (m[q][q] - m[p][p]) / (2 * m[p][q]);
          double t = Math.signum(theta) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
          if (theta == 0) {
            t = 1;
          }
          double c = 1 / Math.sqrt(t * t + 1);
          double s = t * c;
          for (int k = 0; k < n; k++) {
            double mkp = m[k][p];
            double mkq = m[k][q];
            m[k][p] = c * mkp - s * mkq;
            m[k][q] = s * mkp + c * mkq;
          }
          for (int k = 0; k < n; k++) {
            double mpk = m[p][k];
            double mqk = m[q][k];
            m[p][k] = c * mpk - s * mqk;
            m[q][k] = s * mpk + c * mqk;
          }
          for (int k = 0; k < n; k++) {
            double vkp = v[k][p];
            double vkq = v[k][q];
            v[k][p] = c * vkp - s * vkq;
            v[k][q] = s * vkp + c * vkq;
          }
        }
      }
    }
    double[] d = new double[n];
    for (int i = 0; i < n; i++) {
      d[i] = m[i][i];
    }
    return d;
  }
}
