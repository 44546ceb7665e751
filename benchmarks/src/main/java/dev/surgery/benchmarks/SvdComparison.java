package dev.surgery.benchmarks;

import dev.surgery.core.layers.SvdPaths;
import dev.surgery.core.layers.TruncatedSvd;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.Supplier;
import org.ejml.data.DMatrixRMaj;
import org.ejml.dense.row.CommonOps_DDRM;
import org.ejml.dense.row.NormOps_DDRM;
import org.ejml.dense.row.SingularOps_DDRM;
import org.ejml.dense.row.decomposition.svd.SvdImplicitQrDecompose_DDRM;
import org.ejml.dense.row.decomposition.svd.SvdImplicitQrDecompose_MT_DDRM;
import org.ejml.interfaces.decomposition.SingularValueDecomposition_F64;

/**
 * Factorize's SVD: core's hand-written Householder QR + Jacobi ({@code TruncatedSvd}) against
 * EJML's SVD (issue 13 asked whether the library should replace it), on the weight shapes {@code
 * factorize} meets in ResNet-50 (up to 512 x 4608, the 3 x 3 convolutions of the last stage) and
 * smaller ones. For each shape and implementation: the time of one decomposition with U and V
 * (median and range over the runs, implementations alternating within a run; wall time and the
 * thread's CPU time, which other processes barely change), the reconstruction error {@code ||A - U
 * S V^T||_F / ||A||_F} and the orthogonality errors {@code ||U^T U - I||_max}, {@code ||V^T V -
 * I||_max}, all in double precision. The matrices are Gaussian with a decaying spectrum, like
 * trained weights.
 *
 * <p>Run: {@code mvn -B -q -pl benchmarks exec:exec@svd -Dbench.args="--runs 5"}; {@code --shapes
 * 64x576,512x4608} picks shapes.
 */
public final class SvdComparison {

  private static final String DEFAULT_SHAPES =
      "64x576,256x2304,512x1024,1000x2048,2048x512,512x4608";

  // Thread CPU time: what the decomposition costs when other processes share the cores.
  private static final ThreadMXBean THREADS = ManagementFactory.getThreadMXBean();

  /** The command line. */
  static final BenchFlags FLAGS =
      BenchFlags.of("SvdComparison", "factorize's SVD: core's paths against EJML's")
          .count("runs", 3, 1, "measured runs per shape")
          .text("shapes", DEFAULT_SHAPES, "matrix shapes, RxC,RxC...")
          .toggle("core-only", "core's implementations only, no EJML");

  private SvdComparison() {}

  /** What the command line asks for. */
  record Options(int runs, List<int[]> shapes, boolean coreOnly) {}

  /** Reads the flags, refusing a shape that is not {@code RxC} with positive sides. */
  static Options options(BenchFlags.Values v) {
    List<int[]> shapes = new ArrayList<>();
    for (String shape : v.list("shapes")) {
      String[] rc = shape.split("x", -1);
      try {
        int r = Integer.parseInt(rc[0]);
        int c = Integer.parseInt(rc[1]);
        if (rc.length != 2 || r < 1 || c < 1) {
          throw new NumberFormatException();
        }
        shapes.add(new int[] {r, c});
      } catch (RuntimeException e) {
        throw new IllegalArgumentException(
            "--shapes: '" + shape + "' is not ROWSxCOLUMNS with positive sides, e.g. 64x576");
      }
    }
    if (shapes.isEmpty()) {
      throw new IllegalArgumentException("--shapes needs at least one shape, e.g. 64x576");
    }
    return new Options(v.count("runs"), shapes, v.has("core-only"));
  }

  /** One SVD result in double precision: U (rows x k), singular values, V (cols x k). */
  record Result(DMatrixRMaj u, double[] s, DMatrixRMaj v) {}

  /** An implementation under comparison. */
  private record Variant(String name, Decomposer decomposer) {}

  /** Decomposes a row-major float matrix. */
  @FunctionalInterface
  private interface Decomposer {
    Result decompose(float[] a, int rows, int cols);
  }

  /**
   * Runs the comparison.
   *
   * @param args {@code --runs N} (default 3), {@code --shapes RxC,...}, {@code --core-only} (core's
   *     implementations only, no EJML)
   */
  public static void main(String[] args) {
    Options o = FLAGS.orExit(args, SvdComparison::options);
    int runs = o.runs();
    System.out.println(
        "SVD comparison "
            + Instant.now()
            + ", "
            + BenchSupport.machine()
            + ", load "
            + BenchSupport.loadAverage()
            + "; command: mvn -B -q -pl benchmarks exec:exec@svd -Dbench.args=\""
            + String.join(" ", args)
            + "\"");
    List<Variant> variants = variants();
    if (o.coreOnly()) {
      // On a busy machine EJML's three variants take most of the run: compare core's two paths.
      variants = variants.stream().filter(v -> v.name().startsWith("core")).toList();
    }
    List<List<String>> rows = new ArrayList<>();
    for (int[] rc : o.shapes()) {
      int r = rc[0];
      int c = rc[1];
      String shape = r + "x" + c;
      float[] a = matrix(r, c, 7L * r + c);
      List<List<Double>> times = new ArrayList<>();
      List<List<Double>> cpuTimes = new ArrayList<>();
      List<Result> results = new ArrayList<>();
      for (int v = 0; v < variants.size(); v++) {
        times.add(new ArrayList<>());
        cpuTimes.add(new ArrayList<>());
        results.add(null);
      }
      for (int run = 0; run <= runs; run++) { // run 0 warms up
        for (int k = 0; k < variants.size(); k++) {
          int v = run % 2 == 0 ? k : variants.size() - 1 - k; // alternate the order
          long cpuStart = THREADS.getCurrentThreadCpuTime();
          long start = System.nanoTime();
          Result result = variants.get(v).decomposer().decompose(a, r, c);
          double ms = BenchSupport.millisSince(start);
          double cpuMs = (THREADS.getCurrentThreadCpuTime() - cpuStart) / 1e6;
          if (run > 0) {
            times.get(v).add(ms);
            cpuTimes.get(v).add(cpuMs);
          }
          results.set(v, result);
        }
      }
      for (int v = 0; v < variants.size(); v++) {
        Result result = results.get(v);
        rows.add(
            List.of(
                shape,
                variants.get(v).name(),
                BenchSupport.f("%.1f", BenchSupport.median(times.get(v))),
                BenchSupport.range(times.get(v), "%.1f"),
                variants.get(v).name().contains("multi")
                    ? "-"
                    : BenchSupport.f("%.1f", BenchSupport.median(cpuTimes.get(v))),
                BenchSupport.f("%.1e", reconstructionError(a, r, c, result)),
                BenchSupport.f("%.1e", orthogonalityError(result.u())),
                BenchSupport.f("%.1e", orthogonalityError(result.v()))));
      }
      // One table per shape as soon as it is measured: the largest take minutes on a busy machine.
      BenchSupport.printTable(
          shape
              + ": factorize's SVD with U and V, medians of "
              + runs
              + " runs, load "
              + BenchSupport.loadAverage(),
          header(),
          rows);
      System.out.flush();
      rows.clear();
    }
    System.out.println(
        "Issue 15 goal 4: factorize's SVD on 512 x 4608 in under 1 s on 2 cores: the thread CPU"
            + " ms of the row \"factors at rank min/4 only\" (the decomposition and both factors)"
            + " against the QR + Jacobi row measured beside it.");
  }

  private static List<String> header() {
    return List.of(
        "shape",
        "implementation",
        "median ms",
        "min..max ms",
        "thread CPU ms",
        "||A - USV'||/||A||",
        "max|U'U - I|",
        "max|V'V - I|");
  }

  private static List<Variant> variants() {
    return List.of(
        new Variant(
            "core TruncatedSvd.of (Gram + symmetric eigen from a short side of 64), all of U and V",
            SvdComparison::handWritten),
        new Variant(
            "core TruncatedSvd.of, factors at rank min/4 only (factorize's work; error ="
                + " truncation)",
            SvdComparison::factorizeWork),
        new Variant(
            "core QR + Jacobi (the hand-written SVD before)",
            (a, r, c) -> vectors(viaJacobi(a, r, c), r, c, Math.min(r, c))),
        new Variant(
            "EJML, tall bidiagonal",
            (a, r, c) ->
                ejml(a, r, c, () -> new SvdImplicitQrDecompose_DDRM(true, true, true, true))),
        new Variant(
            "EJML, default factory",
            (a, r, c) ->
                ejml(a, r, c, () -> new SvdImplicitQrDecompose_DDRM(true, true, true, false))),
        new Variant(
            "EJML, multi-threaded, tall",
            (a, r, c) ->
                ejml(a, r, c, () -> new SvdImplicitQrDecompose_MT_DDRM(true, true, true, true))));
  }

  /**
   * Core's SVD, with its singular vectors in double precision: read through its private {@code
   * left(k)} and {@code right(k)}, since the public factors are rounded to float.
   */
  static Result handWritten(float[] a, int rows, int cols) {
    return vectors(TruncatedSvd.of(a, rows, cols), rows, cols, Math.min(rows, cols));
  }

  /** What factorize computes: the decomposition and both factors at a quarter of the short side. */
  static Result factorizeWork(float[] a, int rows, int cols) {
    TruncatedSvd svd = TruncatedSvd.of(a, rows, cols);
    int rank = Math.max(1, Math.min(rows, cols) / 4);
    svd.leftFactor(rank);
    svd.rightFactor(rank);
    return vectors(svd, rows, cols, rank);
  }

  /** The QR + Jacobi path, package-private in core: the SVD before the Gram path. */
  private static TruncatedSvd viaJacobi(float[] a, int rows, int cols) {
    return SvdPaths.viaJacobi(a, rows, cols);
  }

  /** The first k singular triplets of a decomposition, in double precision. */
  private static Result vectors(TruncatedSvd svd, int rows, int cols, int k) {
    DMatrixRMaj u = new DMatrixRMaj(rows, k);
    DMatrixRMaj v = new DMatrixRMaj(cols, k);
    for (int j = 0; j < k; j++) {
      double[] uj = SvdPaths.left(svd, j);
      double[] vj = SvdPaths.right(svd, j);
      for (int i = 0; i < rows; i++) {
        u.set(i, j, uj[i]);
      }
      for (int i = 0; i < cols; i++) {
        v.set(i, j, vj[i]);
      }
    }
    return new Result(u, svd.singularValues(), v);
  }

  private static Result ejml(
      float[] a,
      int rows,
      int cols,
      Supplier<? extends SingularValueDecomposition_F64<DMatrixRMaj>> factory) {
    DMatrixRMaj m = new DMatrixRMaj(rows, cols);
    for (int i = 0; i < a.length; i++) {
      m.data[i] = a[i];
    }
    SingularValueDecomposition_F64<DMatrixRMaj> svd = factory.get();
    if (!svd.decompose(m)) {
      throw new IllegalStateException("EJML's SVD failed on " + rows + " x " + cols);
    }
    DMatrixRMaj u = svd.getU(null, false);
    DMatrixRMaj w = svd.getW(null);
    DMatrixRMaj v = svd.getV(null, false);
    SingularOps_DDRM.descendingOrder(u, false, w, v, false);
    double[] s = new double[Math.min(rows, cols)];
    for (int i = 0; i < s.length; i++) {
      s[i] = w.get(i, i);
    }
    return new Result(u, s, v);
  }

  /** {@code ||A - U diag(s) V^T||_F / ||A||_F}. */
  static double reconstructionError(float[] a, int rows, int cols, Result r) {
    DMatrixRMaj us = r.u().copy();
    for (int i = 0; i < us.numRows; i++) {
      for (int j = 0; j < us.numCols; j++) {
        us.set(i, j, us.get(i, j) * r.s()[j]);
      }
    }
    DMatrixRMaj approx = new DMatrixRMaj(rows, cols);
    CommonOps_DDRM.multTransB(us, r.v(), approx);
    DMatrixRMaj original = new DMatrixRMaj(rows, cols);
    for (int i = 0; i < a.length; i++) {
      original.data[i] = a[i];
    }
    double norm = NormOps_DDRM.normF(original);
    CommonOps_DDRM.subtractEquals(approx, original);
    return NormOps_DDRM.normF(approx) / norm;
  }

  /** {@code max |Q^T Q - I|} over the entries. */
  static double orthogonalityError(DMatrixRMaj q) {
    DMatrixRMaj gram = new DMatrixRMaj(q.numCols, q.numCols);
    CommonOps_DDRM.multTransA(q, q, gram);
    double worst = 0;
    for (int i = 0; i < gram.numRows; i++) {
      for (int j = 0; j < gram.numCols; j++) {
        worst = Math.max(worst, Math.abs(gram.get(i, j) - (i == j ? 1 : 0)));
      }
    }
    return worst;
  }

  /** Gaussian entries times a decaying column scale (a spectrum like a trained weight's). */
  static float[] matrix(int rows, int cols, long seed) {
    Random random = new Random(seed);
    float[] a = new float[rows * cols];
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < cols; j++) {
        a[i * cols + j] = (float) (random.nextGaussian() / Math.sqrt(1 + 0.05 * j));
      }
    }
    return a;
  }
}
