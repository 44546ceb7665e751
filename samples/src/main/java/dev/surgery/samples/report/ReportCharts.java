package dev.surgery.samples.report;

import dev.surgery.samples.report.SurgeryReportWriter.BaselineRun;
import dev.surgery.samples.report.SurgeryReportWriter.Position;
import dev.surgery.samples.report.SurgeryReportWriter.Surgery;
import dev.surgery.samples.report.TrainingHistory.BatchLoss;
import dev.surgery.samples.report.TrainingHistory.EpochMetrics;
import java.awt.Color;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.TreeMap;
import java.util.function.Function;
import java.util.function.ToDoubleFunction;
import org.knowm.xchart.XYChart;

/**
 * The report's charts: metrics per epoch and training loss per batch, the baseline run dashed
 * beside them, and one vertical line per point where surgery ran.
 */
final class ReportCharts {

  private final TrainingHistory history;
  private final BaselineRun baseline;
  private final Function<Surgery, Position> position;

  /**
   * A chart maker for one run; {@code baseline} may be null, {@code position} places a surgery on
   * the epoch and batch axes.
   */
  ReportCharts(
      TrainingHistory history, BaselineRun baseline, Function<Surgery, Position> position) {
    this.history = history;
    this.baseline = baseline;
    this.position = position;
  }

  /**
   * One metric per epoch, training and validation (and the baseline's, dashed), with a marker per
   * surgery between the epochs it came between.
   */
  void saveEpochChart(
      Path file,
      String chartTitle,
      String yTitle,
      List<EpochMetrics> epochs,
      List<EpochMetrics> baseEpochs,
      List<Surgery> surgeries,
      ToDoubleFunction<EpochMetrics> train,
      ToDoubleFunction<EpochMetrics> validation,
      boolean unitRange)
      throws IOException {
    XYChart chart = Charts.newChart(chartTitle, "epoch", yTitle);
    // Epochs are whole numbers; the surgery markers sit between them. (XChart cannot draw an empty
    // label, hence the space.)
    chart.setCustomXAxisTickLabelsFormatter(
        x -> Math.abs(x - Math.rint(x)) < 1e-9 ? String.valueOf(Math.round(x)) : " ");
    double[] range = {Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY};
    String[] names = {"training", "validation"};
    List<ToDoubleFunction<EpochMetrics>> getters = List.of(train, validation);
    for (int s = 0; s < 2; s++) {
      addEpochLine(chart, names[s], epochs, getters.get(s), Charts.color(s), false, range);
      if (baseline != null) {
        addEpochLine(
            chart,
            baseline.label() + " " + names[s],
            baseEpochs,
            getters.get(s),
            Charts.color(s),
            true,
            range);
      }
    }
    double low = range[0];
    double high = range[1];
    if (unitRange || !Double.isFinite(low)) {
      low = 0;
      high = 1;
    } else if (high - low < 1e-6) {
      high = low + 1;
    }
    chart.getStyler().setYAxisMin(low);
    chart.getStyler().setYAxisMax(high);
    // From 0 to one past the last epoch or surgery, so that whole epochs get ticks even in a
    // one-epoch run.
    int lastX = 1;
    for (EpochMetrics m : epochs) {
      lastX = Math.max(lastX, m.epoch());
    }
    for (EpochMetrics m : baseEpochs) {
      lastX = Math.max(lastX, m.epoch());
    }
    for (Surgery s : surgeries) {
      lastX = Math.max(lastX, (int) Math.ceil(position.apply(s).epochX()));
    }
    chart.getStyler().setXAxisMin(0.0);
    chart.getStyler().setXAxisMax(lastX + 0.5);
    // A surgery after k completed epochs sits between the points of epochs k and k + 1, one inside
    // an epoch at its batch.
    addSurgeryMarkers(chart, surgeries, Position::epochX, low, high);
    Charts.save(chart, file);
  }

  private static void addEpochLine(
      XYChart chart,
      String name,
      List<EpochMetrics> epochs,
      ToDoubleFunction<EpochMetrics> getter,
      Color color,
      boolean dashed,
      double[] range) {
    List<Double> xs = new ArrayList<>();
    List<Double> ys = new ArrayList<>();
    for (EpochMetrics m : epochs) {
      double y = getter.applyAsDouble(m);
      if (Double.isFinite(y)) {
        xs.add((double) m.epoch());
        ys.add(y);
        range[0] = Math.min(range[0], y);
        range[1] = Math.max(range[1], y);
      }
    }
    Charts.addLine(chart, new Charts.Line(name, array(xs), array(ys), color, dashed, true, true));
  }

  /**
   * The training loss of every batch against epochs (batch {@code j} of {@code n} in epoch {@code
   * e} at {@code e - 1 + j / n}), so a surgery after epoch {@code k} sits at {@code x = k}, one
   * after batch {@code j} at that batch.
   */
  void saveBatchChart(Path file, List<Surgery> surgeries) throws IOException {
    XYChart chart = Charts.newChart("Training loss per batch", "epoch", "loss");
    // Ticks fall on batch positions such as 2/3: two decimals say enough.
    java.text.DecimalFormat tick =
        new java.text.DecimalFormat(
            "0.##", java.text.DecimalFormatSymbols.getInstance(Locale.ROOT));
    chart.setCustomXAxisTickLabelsFormatter(tick::format);
    double[] range = {Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY};
    addBatchLine(chart, "training loss per batch", history.getBatchLosses(), 0, false, range);
    if (baseline != null) {
      addBatchLine(
          chart,
          baseline.label() + " training loss per batch",
          baseline.batchLosses(),
          7,
          true,
          range);
    }
    double low = Double.isFinite(range[0]) ? Math.min(0, range[0]) : 0;
    double high = Double.isFinite(range[1]) ? range[1] : 1;
    if (high - low < 1e-6) {
      high = low + 1;
    }
    chart.getStyler().setYAxisMin(low);
    chart.getStyler().setYAxisMax(high);
    chart.getStyler().setXAxisMin(0.0);
    addSurgeryMarkers(chart, surgeries, Position::batchX, low, high);
    Charts.save(chart, file);
  }

  private static void addBatchLine(
      XYChart chart,
      String name,
      List<BatchLoss> losses,
      int color,
      boolean dashed,
      double[] range) {
    java.util.Map<Integer, Integer> perEpoch = new java.util.HashMap<>();
    for (BatchLoss b : losses) {
      perEpoch.merge(b.epoch(), b.batch(), Math::max);
    }
    List<Double> xs = new ArrayList<>();
    List<Double> ys = new ArrayList<>();
    for (BatchLoss b : losses) {
      if (Double.isFinite(b.loss())) {
        xs.add(b.epoch() - 1 + (double) b.batch() / perEpoch.get(b.epoch()));
        ys.add(b.loss());
        range[0] = Math.min(range[0], b.loss());
        range[1] = Math.max(range[1], b.loss());
      }
    }
    Charts.addLine(
        chart,
        new Charts.Line(
            name, array(xs), array(ys), Charts.color(color), dashed, xs.size() <= 60, true));
  }

  /** One dashed vertical line per surgery point, at the x the position gives. */
  private void addSurgeryMarkers(
      XYChart chart,
      List<Surgery> surgeries,
      ToDoubleFunction<Position> x,
      double low,
      double high) {
    // By x, then by the moment's name: the surgeries at one point share a line.
    TreeMap<Double, TreeMap<String, List<String>>> byPoint = new TreeMap<>();
    for (Surgery s : surgeries) {
      Position p = position.apply(s);
      byPoint
          .computeIfAbsent(x.applyAsDouble(p), k -> new TreeMap<>())
          .computeIfAbsent(p.label(), k -> new ArrayList<>())
          .add(s.algorithm());
    }
    int m = 0;
    for (var point : byPoint.entrySet()) {
      for (var e : point.getValue().entrySet()) {
        Charts.addVertical(
            chart,
            "surgery " + e.getKey() + ": " + String.join(", ", e.getValue()),
            point.getKey(),
            low,
            high,
            Charts.color(3 + m++),
            true);
      }
    }
  }

  private static double[] array(List<Double> values) {
    return values.stream().mapToDouble(Double::doubleValue).toArray();
  }
}
