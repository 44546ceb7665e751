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
 * {@code Q} only when a factor asks for them, and only as many as the rank needs.
 *
 * <p>From a short side of {@value #GRAM_MIN_SIDE} on (every weight {@code factorize} meets in a
 * ResNet), the QR and Jacobi sweeps cost seconds (4.8 s of CPU for 512 x 4608), so the short side's
 * Gram matrix {@code G = B^T B} is formed in double precision and decomposed by a symmetric
 * eigen-solver (Householder tridiagonalization, then implicit QL): {@code G = V diag(s^2) V^T}. The
 * long-side vectors {@code B v_k / ||B v_k||} are formed only for the ranks a factor asks for.
 * Squaring the matrix costs relative accuracy in the smallest singular values only: their absolute
 * error is about {@code q * 2^-52 * s_max^2 / s_k}, below the float32 rounding of the weights for
 * every {@code s_k} above {@code 1e-7 s_max}, and a rank-{@code r} truncation's error stays that of
 * the exact SVD to within the float rounding of the factors ({@code TruncatedSvdTest} compares both
 * paths on well- and ill-conditioned matrices). A decomposition of {@code G} that is not finite or
 * contradicts its trace or Frobenius norm falls back to the exact path, and a weight holding NaN or
 * an infinity is refused: no path returns NaN or silently wrong factors.
 */
public final class TruncatedSvd {

  private static final int MAX_SWEEPS = 80;
  private static final double TOLERANCE = 1e-15;

  /** The short side from which the Gram matrix and a symmetric eigen-solver are used. */
  static final int GRAM_MIN_SIDE = 64;

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
  private final double[][] columns; // the columns of B, for B v_k; null on the QR + Jacobi path
  private final double[] longNorms; // ||B v_k|| of each long vector formed (Gram path only)

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
    this.columns = null;
    this.longNorms = null;
  }

  private TruncatedSvd(
      int rows, int cols, boolean transposed, double[] s, double[][] shortVectors, double[][] b) {
    this.rows = rows;
    this.cols = cols;
    this.transposed = transposed;
    this.longSide = b[0].length;
    this.s = s;
    this.shortVectors = shortVectors;
    this.reduced = null;
    this.householder = null;
    this.betas = null;
    this.longVectors = new double[s.length][];
    this.columns = b;
    this.longNorms = new double[s.length];
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
    return of(widened(a), rows, cols);
  }

  /**
   * Decomposes a row-major {@code rows x cols} matrix given in double precision (a float64 layer's
   * weight, whose digits a float copy would drop). The accuracy argument of the class comment holds
   * with double rounding in place of the weights' float rounding: on the Gram path a singular value
   * far below the largest carries an error of about {@code q 2^-52 s_max^2 / s_k}, yet at full rank
   * the factors still give back the matrix to double resolution.
   *
   * @param a the values, row-major
   * @param rows the number of rows
   * @param cols the number of columns
   * @return the decomposition, singular values in decreasing order
   */
  public static TruncatedSvd of(double[] a, int rows, int cols) {
    return Math.min(rows, cols) >= GRAM_MIN_SIDE
        ? viaGram(a, rows, cols)
        : viaJacobi(a, rows, cols);
  }

  /** The same values in double precision (exact). */
  static double[] widened(float[] a) {
    double[] out = new double[a.length];
    for (int i = 0; i < a.length; i++) {
      out[i] = a[i];
    }
    return out;
  }

  private static void checkSize(double[] a, int rows, int cols) {
    if (rows < 1 || cols < 1 || a.length != (long) rows * cols) {
      throw new IllegalArgumentException(
          "expected " + rows + " x " + cols + " values, got " + a.length);
    }
  }

  /** The columns of the tall matrix B (A, or A^T when A is wide), in double precision. */
  private static double[][] tallColumns(double[] a, int rows, int cols) {
    boolean transposed = rows < cols;
    int p = transposed ? cols : rows;
    int q = transposed ? rows : cols;
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
    return work;
  }

  /** The Gram matrix and symmetric eigen-solver path (see the class comment). */
  static TruncatedSvd viaGram(float[] a, int rows, int cols) {
    return viaGram(widened(a), rows, cols);
  }

  /** The Gram path on double-precision values. */
  static TruncatedSvd viaGram(double[] a, int rows, int cols) {
    return viaGram(a, rows, cols, SymmetricEigen::decompose);
  }

  /** A symmetric eigen-solver with the contract of {@link SymmetricEigen#decompose}. */
  @FunctionalInterface
  interface EigenSolver {
    double[][] decompose(double[][] a, double[] lambda);
  }

  /**
   * The Gram path with the given eigen-solver (tests pass a failing one). A decomposition that is
   * not finite, or whose eigenvalues disagree with the invariants of G, falls back to the exact
   * path: a wrong spectrum would otherwise turn into NaN or silently wrong weights.
   */
  static TruncatedSvd viaGram(float[] a, int rows, int cols, EigenSolver solver) {
    return viaGram(widened(a), rows, cols, solver);
  }

  /** The Gram path with the given eigen-solver, on double-precision values. */
  static TruncatedSvd viaGram(double[] a, int rows, int cols, EigenSolver solver) {
    checkSize(a, rows, cols);
    checkFinite(a, cols);
    double[][] b = tallColumns(a, rows, cols);
    int q = b.length;
    double[][] g = gram(b);
    // The solver overwrites g: keep what its eigenvalues must reproduce.
    double trace = 0;
    double frobenius = 0;
    for (int i = 0; i < q; i++) {
      trace += g[i][i];
      for (int j = 0; j < q; j++) {
        frobenius += g[i][j] * g[i][j];
      }
    }
    double[] lambda = new double[q];
    double[][] vectors = solver.decompose(g, lambda); // vectors[i]: eigenvector i
    if (!consistent(lambda, vectors, trace, frobenius)) {
      return viaJacobi(a, rows, cols);
    }
    Integer[] order = new Integer[q];
    for (int i = 0; i < q; i++) {
      order[i] = i;
    }
    Arrays.sort(order, Comparator.comparingDouble((Integer i) -> -lambda[i]));
    double[] values = new double[q];
    double[][] shortVectors = new double[q][];
    for (int r = 0; r < q; r++) {
      // Rounding can leave the eigenvalue of a null direction slightly negative.
      values[r] = Math.sqrt(Math.max(0, lambda[order[r]]));
      shortVectors[r] = vectors[order[r]];
    }
    return new TruncatedSvd(rows, cols, rows < cols, values, shortVectors, b);
  }

  /**
   * Whether an eigen-decomposition of a Gram matrix is usable: every value finite, the eigenvalues
   * summing to its trace and their squares to its squared Frobenius norm (both invariant under the
   * orthogonal similarity), each to far more than the solver's rounding, and every vector of unit
   * length. O(q^2), against the O(q^3) of the solve.
   */
  static boolean consistent(double[] lambda, double[][] vectors, double trace, double frobenius) {
    double sum = 0;
    double squares = 0;
    for (int i = 0; i < lambda.length; i++) {
      double l = lambda[i];
      double length = 0;
      for (double x : vectors[i]) {
        length += x * x;
      }
      if (!Double.isFinite(l) || !(Math.abs(length - 1) <= 1e-6)) {
        return false; // !(<=) also rejects NaN
      }
      sum += l;
      squares += l * l;
    }
    return Math.abs(sum - trace) <= 1e-6 * trace
        && Math.abs(squares - frobenius) <= 1e-6 * frobenius;
  }

  /** NaN or an infinity in a weight has no SVD; say where rather than return NaN factors. */
  private static void checkFinite(double[] a, int cols) {
    for (int i = 0; i < a.length; i++) {
      if (!Double.isFinite(a[i])) {
        throw new IllegalArgumentException(
            "cannot decompose a matrix holding "
                + a[i]
                + " at ("
                + i / cols
                + ", "
                + i % cols
                + ")");
      }
    }
  }

  /**
   * {@code G[i][j] = b[i] . b[j]}, in blocks: four rows of B share each pass over a fifth, and the
   * long side is cut into chunks that stay in the cache.
   */
  private static double[][] gram(double[][] b) {
    int q = b.length;
    int p = b[0].length;
    double[][] g = new double[q][q];
    final int chunk = 512;
    for (int k0 = 0; k0 < p; k0 += chunk) {
      int k1 = Math.min(p, k0 + chunk);
      int i = 0;
      for (; i + 3 < q; i += 4) {
        double[] b0 = b[i];
        double[] b1 = b[i + 1];
        double[] b2 = b[i + 2];
        double[] b3 = b[i + 3];
        for (int j = i; j < q; j++) {
          double[] y = b[j];
          double s0 = 0;
          double s1 = 0;
          double s2 = 0;
          double s3 = 0;
          for (int k = k0; k < k1; k++) {
            double v = y[k];
            s0 += b0[k] * v;
            s1 += b1[k] * v;
            s2 += b2[k] * v;
            s3 += b3[k] * v;
          }
          g[i][j] += s0;
          g[i + 1][j] += s1;
          g[i + 2][j] += s2;
          g[i + 3][j] += s3;
        }
      }
      for (; i < q; i++) {
        for (int j = i; j < q; j++) {
          double sum = 0;
          for (int k = k0; k < k1; k++) {
            sum += b[i][k] * b[j][k];
          }
          g[i][j] += sum;
        }
      }
    }
    // Rows i+1..i+3 also summed the entries left of their diagonal (j from i): keep the upper
    // triangle, which each row computed over j >= its own index, and mirror it.
    for (int i = 0; i < q; i++) {
      for (int j = i + 1; j < q; j++) {
        g[j][i] = g[i][j];
      }
    }
    return g;
  }

  /** The Householder QR and one-sided Jacobi path, exact to working precision. */
  static TruncatedSvd viaJacobi(float[] a, int rows, int cols) {
    return viaJacobi(widened(a), rows, cols);
  }

  /** The exact path on double-precision values. */
  static TruncatedSvd viaJacobi(double[] a, int rows, int cols) {
    checkSize(a, rows, cols);
    checkFinite(a, cols);
    boolean transposed = rows < cols;
    int p = transposed ? cols : rows; // long side
    int q = transposed ? rows : cols; // short side
    // work[j] is column j of the tall matrix B (A, or A^T when A is wide).
    double[][] work = tallColumns(a, rows, cols);
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
    if (longVectors[k] == null && columns != null) {
      // u_k = B v_k / ||B v_k||, and the factors scale by sqrt(||B v_k||) (factorScale), so the
      // kept term is exactly B v_k v_k^T even where lambda_k is rounding noise.
      double[] v = shortVectors[k];
      double[] y = new double[longSide];
      for (int j = 0; j < columns.length; j++) {
        double c = v[j];
        if (c != 0) {
          double[] col = columns[j];
          for (int i = 0; i < longSide; i++) {
            y[i] += c * col[i];
          }
        }
      }
      double norm = Math.sqrt(dot(y, y));
      longNorms[k] = norm;
      if (norm > 0) {
        for (int i = 0; i < longSide; i++) {
          y[i] /= norm;
        }
      }
      longVectors[k] = y;
    } else if (longVectors[k] == null) {
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

  /**
   * The square root of the k-th singular value, as the factors carry it. On the Gram path it is
   * {@code ||B v_k||}, not {@code sqrt(lambda_k)}: near zero the eigenvalue is rounding noise,
   * while {@code ||B v_k||} is exact for the direction found, so each kept term is exactly {@code B
   * v_k v_k^T} and a noise direction adds nothing.
   */
  private double factorScale(int k) {
    if (columns != null) {
      longVector(k);
      return Math.sqrt(longNorms[k]);
    }
    return Math.sqrt(s[k]);
  }

  /** The k-th left singular vector of A (length rows; the decomposition's own array). */
  double[] left(int k) {
    return transposed ? shortVectors[k] : longVector(k);
  }

  /** The k-th right singular vector of A (length cols; the decomposition's own array). */
  double[] right(int k) {
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
   * @throws IllegalArgumentException for a rank outside that range
   */
  public float[] leftFactor(int r) {
    return narrowed(leftFactorValues(r));
  }

  /**
   * Returns the left factor of rank {@code r}, {@code U_r sqrt(S_r)}, row-major {@code rows x r},
   * in double precision.
   *
   * @param r the rank, from 1 to {@code min(rows, cols)}
   * @return the values
   * @throws IllegalArgumentException for a rank outside that range
   */
  public double[] leftFactorValues(int r) {
    checkRank(r);
    double[] out = new double[rows * r];
    for (int k = 0; k < r; k++) {
      double[] u = left(k);
      double scale = factorScale(k);
      for (int i = 0; i < rows; i++) {
        out[i * r + k] = u[i] * scale;
      }
    }
    return out;
  }

  /** The values rounded to float. */
  private static float[] narrowed(double[] a) {
    float[] out = new float[a.length];
    for (int i = 0; i < a.length; i++) {
      out[i] = (float) a[i];
    }
    return out;
  }

  /**
   * Returns the right factor of rank {@code r}, {@code sqrt(S_r) V_r^T}, row-major {@code r x
   * cols}.
   *
   * @param r the rank, from 1 to {@code min(rows, cols)}
   * @return the values
   * @throws IllegalArgumentException for a rank outside that range
   */
  public float[] rightFactor(int r) {
    return narrowed(rightFactorValues(r));
  }

  /**
   * Returns the right factor of rank {@code r}, {@code sqrt(S_r) V_r^T}, row-major {@code r x
   * cols}, in double precision.
   *
   * @param r the rank, from 1 to {@code min(rows, cols)}
   * @return the values
   * @throws IllegalArgumentException for a rank outside that range
   */
  public double[] rightFactorValues(int r) {
    checkRank(r);
    double[] out = new double[r * cols];
    for (int k = 0; k < r; k++) {
      double[] v = right(k);
      double scale = factorScale(k);
      for (int j = 0; j < cols; j++) {
        out[k * cols + j] = v[j] * scale;
      }
    }
    return out;
  }

  /**
   * Returns the Frobenius norm of what a rank-{@code r} truncation leaves out: {@code sqrt(sum of
   * s_i^2 for i >= r)}.
   *
   * @param r the rank, from 0 (nothing kept) to the number of singular values (nothing left out)
   * @return the truncation error
   * @throws IllegalArgumentException for a rank outside that range
   */
  public double tailNorm(int r) {
    if (r < 0 || r > s.length) {
      throw new IllegalArgumentException("rank must be in [0, " + s.length + "], got " + r);
    }
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
