package dev.surgery.samples.report;

import com.google.gson.GsonBuilder;
import java.awt.Color;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.function.ToDoubleFunction;
import org.knowm.xchart.XYChart;

/**
 * Writes the time-to-accuracy page of a benchmark that trains a baseline and a recipe: for each
 * dataset, validation accuracy against training CPU time, wall time and epochs, one curve per run
 * (one color per variant), a dashed vertical line at each surgery and the target accuracy as a
 * dashed horizontal line; then the benchmark's text tables. Files: {@value #HTML}, {@value #JSON}
 * (the plotted data) and three PNGs per dataset.
 */
public final class TimeToAccuracyPage {

  /** The page's file name. */
  public static final String HTML = "time-to-accuracy.html";

  /** The data's file name. */
  public static final String JSON = "time-to-accuracy.json";

  /** The x axes drawn, as file-name suffixes. */
  public static final List<String> AXES = List.of("cpu", "wall", "epochs");

  private final String title;
  private final Map<String, String> facts;

  private TimeToAccuracyPage(Builder builder) {
    this.title = builder.title;
    this.facts = new LinkedHashMap<>(builder.facts);
  }

  /**
   * Creates a builder.
   *
   * @param title the page title
   * @return the builder
   */
  public static Builder builder(String title) {
    return new Builder(title);
  }

  /**
   * One evaluation of a run.
   *
   * @param cpuSeconds the training thread's CPU time so far (evaluation excluded)
   * @param wallSeconds the training wall time so far (evaluation excluded)
   * @param epochs the epochs trained so far (fractional)
   * @param accuracy the validation accuracy
   */
  public record Point(double cpuSeconds, double wallSeconds, double epochs, double accuracy) {}

  /**
   * One run's curve.
   *
   * @param group the variant (one color per variant)
   * @param label the run, e.g. {@code recipe seed 2}
   * @param points its evaluations, in order
   */
  public record Curve(String group, String label, List<Point> points) {}

  /**
   * One surgery of a run.
   *
   * @param group the run's variant
   * @param label what ran, e.g. {@code blurpool @0}
   * @param cpuSeconds the training CPU time when it had run
   * @param wallSeconds the training wall time when it had run
   * @param epoch the completed epochs when it ran
   */
  public record Marker(
      String group, String label, double cpuSeconds, double wallSeconds, double epoch) {}

  /**
   * One dataset's runs.
   *
   * @param dataset the dataset's name (also the PNG files' prefix)
   * @param target the target accuracy
   * @param groups the variants, in legend order
   * @param curves every run
   * @param markers every surgery
   */
  public record Panel(
      String dataset,
      double target,
      List<String> groups,
      List<Curve> curves,
      List<Marker> markers) {}

  /**
   * Returns a PNG's file name.
   *
   * @param dataset the dataset
   * @param axis one of {@link #AXES}
   * @return e.g. {@code mnist-accuracy-cpu.png}
   */
  public static String png(String dataset, String axis) {
    return dataset.replaceAll("[^A-Za-z0-9_-]", "_") + "-accuracy-" + axis + ".png";
  }

  /**
   * Writes the page, its charts and its data into a directory (created if missing).
   *
   * @param dir the directory
   * @param panels one per dataset
   * @param tables text tables shown under the charts (preformatted)
   * @return the HTML file
   * @throws IOException if a file cannot be written
   */
  public Path write(Path dir, List<Panel> panels, List<String> tables) throws IOException {
    Files.createDirectories(dir);
    for (Panel p : panels) {
      chart(p, "cpu", Point::cpuSeconds, Marker::cpuSeconds, "training thread CPU time (s)")
          .save(dir);
      chart(p, "wall", Point::wallSeconds, Marker::wallSeconds, "training wall time (s)").save(dir);
      chart(p, "epochs", Point::epochs, Marker::epoch, "epochs").save(dir);
    }
    Map<String, Object> data = new LinkedHashMap<>();
    data.put("title", title);
    data.put("facts", facts);
    data.put("panels", panels);
    data.put("tables", tables);
    Files.writeString(
        dir.resolve(JSON),
        new GsonBuilder()
            .setPrettyPrinting()
            .serializeSpecialFloatingPointValues()
            .create()
            .toJson(data),
        StandardCharsets.UTF_8);
    Path html = dir.resolve(HTML);
    Files.writeString(html, html(panels, tables), StandardCharsets.UTF_8);
    return html;
  }

  /**
   * Reads back the page a run wrote ({@value #JSON}) and writes it again into the same directory,
   * e.g. after a change of the charts' look, without training again.
   *
   * @param dir the directory holding {@value #JSON}
   * @return the HTML file
   * @throws IOException if the data cannot be read or the page written
   */
  public static Path rewrite(Path dir) throws IOException {
    com.google.gson.Gson gson = new GsonBuilder().serializeSpecialFloatingPointValues().create();
    com.google.gson.JsonObject root =
        com.google.gson.JsonParser.parseString(
                Files.readString(dir.resolve(JSON), StandardCharsets.UTF_8))
            .getAsJsonObject();
    Builder builder = builder(root.get("title").getAsString());
    for (Map.Entry<String, com.google.gson.JsonElement> e :
        root.getAsJsonObject("facts").entrySet()) {
      builder.addFact(e.getKey(), e.getValue().getAsString());
    }
    List<Panel> panels = new ArrayList<>();
    for (com.google.gson.JsonElement e : root.getAsJsonArray("panels")) {
      panels.add(gson.fromJson(e, Panel.class));
    }
    List<String> tables = new ArrayList<>();
    if (root.has("tables")) {
      for (com.google.gson.JsonElement e : root.getAsJsonArray("tables")) {
        tables.add(e.getAsString());
      }
    }
    return builder.build().write(dir, panels, tables);
  }

  /**
   * Re-draws a page from its data: {@code TimeToAccuracyPage DIR}.
   *
   * @param args the directory
   * @throws IOException if it cannot be read or written
   */
  public static void main(String[] args) throws IOException {
    System.out.println(rewrite(Path.of(args[0])));
  }

  private record Drawn(XYChart chart, String file) {
    void save(Path dir) throws IOException {
      Charts.save(chart, dir.resolve(file));
    }
  }

  private static Drawn chart(
      Panel p,
      String axis,
      ToDoubleFunction<Point> x,
      ToDoubleFunction<Marker> markerX,
      String xTitle) {
    XYChart chart =
        Charts.newChart(
            p.dataset() + ": validation accuracy against " + xTitle, xTitle, "accuracy");
    double low = p.target();
    double maxX = 0;
    for (Curve c : p.curves()) {
      for (Point pt : c.points()) {
        if (Double.isFinite(pt.accuracy())) {
          low = Math.min(low, pt.accuracy());
        }
        maxX = Math.max(maxX, x.applyAsDouble(pt));
      }
    }
    low = Double.isFinite(low) ? Math.max(0, Math.floor(low * 10) / 10) : 0;
    Set<String> listed = new HashSet<>();
    for (Curve c : p.curves()) {
      int g = Math.max(0, p.groups().indexOf(c.group()));
      double[] xs = c.points().stream().mapToDouble(x).toArray();
      double[] ys = c.points().stream().mapToDouble(Point::accuracy).toArray();
      // The legend lists each variant once, for all of its runs.
      boolean first = listed.add("curve " + c.group());
      Charts.addLine(
          chart,
          new Charts.Line(
              first ? c.group() + " (one curve per run)" : c.label(),
              xs,
              ys,
              Charts.color(g),
              g > 0,
              true,
              first));
    }
    List<String> kinds = new ArrayList<>();
    int n = 0;
    for (Marker m : p.markers()) {
      String legend = m.group() + ": " + m.label();
      boolean first = listed.add("marker " + legend);
      if (first) {
        kinds.add(legend);
      }
      Charts.addVertical(
          chart,
          first ? "surgery " + legend : "surgery " + legend + " #" + (++n),
          markerX.applyAsDouble(m),
          low,
          1.0,
          Charts.color(3 + kinds.indexOf(legend)),
          first);
    }
    if (Double.isFinite(p.target())) {
      Charts.addHorizontal(
          chart,
          String.format(Locale.ROOT, "target %.4f", p.target()),
          p.target(),
          0,
          maxX,
          Color.BLACK);
    }
    chart.getStyler().setYAxisMin(low);
    chart.getStyler().setYAxisMax(1.0);
    chart.getStyler().setXAxisMin(0.0);
    return new Drawn(chart, png(p.dataset(), axis));
  }

  private String html(List<Panel> panels, List<String> tables) {
    StringBuilder h = new StringBuilder();
    h.append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>")
        .append(Html.escape(title))
        .append("</title>\n<style>body{font-family:sans-serif;margin:2em;max-width:1100px}")
        .append("pre{font-size:12px;overflow-x:auto}img{max-width:100%}</style></head><body>\n");
    h.append("<h1>").append(Html.escape(title)).append("</h1>\n<p>");
    for (Map.Entry<String, String> e : facts.entrySet()) {
      h.append("<b>")
          .append(Html.escape(e.getKey()))
          .append("</b>: ")
          .append(Html.escape(e.getValue()))
          .append("<br>\n");
    }
    h.append("</p>\n<p>Each curve is one run (one color per variant; all seeds), each point one")
        .append(" evaluation of the validation set; time is training time only (evaluation is off")
        .append(" the clock). Dashed vertical lines: surgeries. Dashed horizontal line: the")
        .append(" target.</p>\n");
    for (Panel p : panels) {
      h.append("<h2>").append(Html.escape(p.dataset())).append("</h2>\n");
      h.append(String.format(Locale.ROOT, "<p>target accuracy %.4f</p>%n", p.target()));
      for (String axis : AXES) {
        h.append("<img src=\"")
            .append(png(p.dataset(), axis))
            .append("\" alt=\"")
            .append(Html.escape(p.dataset()))
            .append(" accuracy against ")
            .append(axis)
            .append("\">\n");
      }
    }
    if (!tables.isEmpty()) {
      h.append("<h2>Tables</h2>\n");
      for (String t : tables) {
        h.append("<pre>").append(Html.escape(t)).append("</pre>\n");
      }
    }
    h.append("</body></html>\n");
    return h.toString();
  }

  /** Builds a {@link TimeToAccuracyPage}. */
  public static final class Builder {
    private final String title;
    private final Map<String, String> facts = new LinkedHashMap<>();

    Builder(String title) {
      this.title = title;
    }

    /**
     * Adds a fact shown at the top (machine, command, recipe ...).
     *
     * @param key the name
     * @param value the value
     * @return this builder
     */
    public Builder addFact(String key, String value) {
      facts.put(key, value);
      return this;
    }

    /**
     * Builds the page writer.
     *
     * @return the writer
     */
    public TimeToAccuracyPage build() {
      return new TimeToAccuracyPage(this);
    }
  }
}
