package dev.surgery.samples.report;

import java.awt.BasicStroke;
import java.awt.Color;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Locale;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.Styler;
import org.knowm.xchart.style.markers.SeriesMarkers;

/**
 * The line charts the reports draw (XChart, saved as PNG): curves, dashed vertical markers (a
 * surgery) and dashed horizontal lines (a target), with one look for every report.
 */
public final class Charts {

  /** Blue, orange, green, red, purple, brown, pink, grey: one per curve group. */
  private static final Color[] PALETTE = {
    new Color(31, 119, 180),
    new Color(255, 127, 14),
    new Color(44, 160, 44),
    new Color(214, 39, 40),
    new Color(148, 103, 189),
    new Color(140, 86, 75),
    new Color(227, 119, 194),
    new Color(127, 127, 127)
  };

  private Charts() {}

  /**
   * A curve.
   *
   * @param name its legend label (unique in a chart)
   * @param x the x values
   * @param y the y values, same length
   * @param color the line color
   * @param dashed a dashed line (a second run drawn over the first)
   * @param points a marker at every point
   * @param inLegend listed in the legend (off for further curves of the same group)
   */
  public record Line(
      String name,
      double[] x,
      double[] y,
      Color color,
      boolean dashed,
      boolean points,
      boolean inLegend) {}

  /**
   * Returns the i-th color of the palette (cycling).
   *
   * @param i the index
   * @return the color
   */
  public static Color color(int i) {
    return PALETTE[Math.floorMod(i, PALETTE.length)];
  }

  /**
   * Creates an empty chart with the reports' look: white, 720 x 420, legend below.
   *
   * @param title the title
   * @param xTitle the x axis title
   * @param yTitle the y axis title
   * @return the chart
   */
  public static XYChart newChart(String title, String xTitle, String yTitle) {
    System.setProperty("java.awt.headless", "true");
    XYChart chart =
        new XYChartBuilder()
            .width(720)
            .height(420)
            .title(title)
            .xAxisTitle(xTitle)
            .yAxisTitle(yTitle)
            .build();
    chart.getStyler().setChartBackgroundColor(Color.WHITE);
    chart.getStyler().setLegendPosition(Styler.LegendPosition.OutsideS);
    // XChart formats the axes' numbers in the JVM's default locale: decimal commas or Thai digits
    // (which its font cannot draw) beside the reports' own Locale.ROOT numbers.
    chart.getStyler().setLocale(Locale.ROOT);
    return chart;
  }

  /**
   * Adds a curve; a curve without points is left out.
   *
   * @param chart the chart
   * @param line the curve
   */
  public static void addLine(XYChart chart, Line line) {
    if (line.x().length == 0) {
      return;
    }
    XYSeries series = chart.addSeries(line.name(), line.x(), line.y());
    series.setLineColor(line.color());
    series.setMarkerColor(line.color());
    series.setMarker(line.points() ? SeriesMarkers.CIRCLE : SeriesMarkers.NONE);
    if (line.dashed()) {
      series.setLineStyle(dashed(1.5f));
    }
    series.setShowInLegend(line.inLegend());
  }

  /**
   * Adds a dashed vertical line from {@code low} to {@code high} at {@code x}.
   *
   * @param chart the chart
   * @param name its legend label (unique in a chart)
   * @param x where
   * @param low the lower end
   * @param high the upper end
   * @param color the color
   * @param inLegend listed in the legend
   */
  public static void addVertical(
      XYChart chart,
      String name,
      double x,
      double low,
      double high,
      Color color,
      boolean inLegend) {
    XYSeries marker = chart.addSeries(name, new double[] {x, x}, new double[] {low, high});
    marker.setLineColor(color);
    marker.setLineStyle(dashed(2f));
    marker.setMarker(SeriesMarkers.NONE);
    marker.setShowInLegend(inLegend);
  }

  /**
   * Adds a dashed horizontal line at {@code y} from {@code from} to {@code to}.
   *
   * @param chart the chart
   * @param name its legend label (unique in a chart)
   * @param y where
   * @param from the left end
   * @param to the right end
   * @param color the color
   */
  public static void addHorizontal(
      XYChart chart, String name, double y, double from, double to, Color color) {
    XYSeries line = chart.addSeries(name, new double[] {from, to}, new double[] {y, y});
    line.setLineColor(color);
    line.setLineStyle(dashed(1.5f));
    line.setMarker(SeriesMarkers.NONE);
  }

  /**
   * Saves the chart as a PNG; an empty chart gets a "no data" point, as XChart cannot draw none.
   *
   * @param chart the chart
   * @param file the PNG file
   * @throws IOException if it cannot be written
   */
  public static void save(XYChart chart, Path file) throws IOException {
    if (chart.getSeriesMap().isEmpty()) {
      chart.addSeries("no data", new double[] {0}, new double[] {0});
    }
    BitmapEncoder.saveBitmap(chart, file.toString(), BitmapEncoder.BitmapFormat.PNG);
  }

  private static BasicStroke dashed(float width) {
    return new BasicStroke(
        width, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10f, new float[] {6f, 4f}, 0f);
  }
}
