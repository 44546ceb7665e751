package dev.surgery.samples.report;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import dev.surgery.samples.report.TrainingHistory.BatchLoss;
import dev.surgery.samples.report.TrainingHistory.BlockChange;
import dev.surgery.samples.report.TrainingHistory.EpochMetrics;
import dev.surgery.samples.report.TrainingHistory.ModelChange;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Writes the surgery report of a training run, the page people look at: {@code surgery-report.html}
 * with three charts (loss and accuracy per epoch, training and validation; the training loss of
 * every batch, where a surgery's spike and recovery show; a dashed vertical line at each surgery)
 * saved as PNGs beside it, and the table of what each surgery replaced; and {@code
 * surgery-report.json} with the same facts for machines. Given a {@link BaselineRun} (the same
 * training without surgery), it draws that run on the same charts (dashed) for comparison.
 *
 * <p>The surgeries come from the {@link TrainingHistory} (changes of the block tree, whoever made
 * them) and, when given, from the surgery log a {@code SurgeryListener} wrote (its {@code
 * applications}: algorithm, epoch, changed paths, time), which names the algorithms. The surgery
 * log is the listener's own JSON file; this report includes it under {@code
 * surgery_listener_report}.
 */
public final class SurgeryReportWriter {

  /** The HTML report's file name. */
  public static final String HTML = "surgery-report.html";

  /** The JSON report's file name. */
  public static final String JSON = "surgery-report.json";

  /** The loss chart's file name. */
  public static final String LOSS_PNG = "loss.png";

  /** The accuracy chart's file name. */
  public static final String ACCURACY_PNG = "accuracy.png";

  /** The per-batch training loss chart's file name. */
  public static final String BATCH_LOSS_PNG = "batch-loss.png";

  private static final Gson GSON =
      new GsonBuilder()
          .setFieldNamingPolicy(com.google.gson.FieldNamingPolicy.LOWER_CASE_WITH_UNDERSCORES)
          .serializeSpecialFloatingPointValues()
          .disableHtmlEscaping()
          .setPrettyPrinting()
          .create();

  private final String title;
  private final TrainingHistory history;
  private final JsonObject surgeryLog;
  private final JsonObject run;
  private final JsonArray plans;
  private final BaselineRun baseline;

  private SurgeryReportWriter(Builder builder) {
    this.title = builder.title;
    this.history = builder.history;
    this.surgeryLog = builder.surgeryLog;
    this.run = builder.run;
    this.plans = builder.plans;
    this.baseline = builder.baseline;
  }

  /**
   * A run to compare with, drawn dashed on the same charts: usually the same training without
   * surgery.
   *
   * @param label its name in the legends, e.g. {@code baseline}
   * @param epochs its epochs
   * @param batchLosses its per-batch training losses
   */
  public record BaselineRun(String label, List<EpochMetrics> epochs, List<BatchLoss> batchLosses) {

    /** Copies the lists. */
    public BaselineRun {
      epochs = List.copyOf(epochs);
      batchLosses = List.copyOf(batchLosses);
    }

    /**
     * Takes a run's figures from its history.
     *
     * @param label the legend name
     * @param history what the run recorded
     * @return the run
     */
    public static BaselineRun of(String label, TrainingHistory history) {
      return new BaselineRun(label, history.getEpochs(), history.getBatchLosses());
    }

    /**
     * Reads a run's figures back from the {@value #JSON} a writer wrote (its {@code epochs} and
     * {@code batch_losses}), e.g. of a baseline trained in another process.
     *
     * @param label the legend name
     * @param json the JSON report
     * @return the run
     * @throws IOException if the file cannot be read or is not such a report
     */
    public static BaselineRun read(String label, Path json) throws IOException {
      try {
        JsonObject root =
            JsonParser.parseString(Files.readString(json, StandardCharsets.UTF_8))
                .getAsJsonObject();
        List<EpochMetrics> epochs = new ArrayList<>();
        for (JsonElement e : root.getAsJsonArray("epochs")) {
          epochs.add(GSON.fromJson(e, EpochMetrics.class));
        }
        List<BatchLoss> batches = new ArrayList<>();
        if (root.has("batch_losses")) {
          for (JsonElement e : root.getAsJsonArray("batch_losses")) {
            batches.add(GSON.fromJson(e, BatchLoss.class));
          }
        }
        return new BaselineRun(label, epochs, batches);
      } catch (JsonParseException | IllegalStateException | NullPointerException e) {
        throw new IOException(json + " is not a surgery report with epochs", e);
      }
    }
  }

  /**
   * Creates a builder.
   *
   * @param title the report's title, e.g. the job name
   * @param history what the run recorded
   * @return a new builder
   */
  public static Builder builder(String title, TrainingHistory history) {
    return new Builder(title, history);
  }

  /**
   * One surgery as the report shows it.
   *
   * @param epoch completed epochs when it happened
   * @param step training batches taken when it happened (the surgery log's {@code step}), or -1
   *     when unknown (an older surgery log, or a change only the history saw)
   * @param algorithm the algorithm name, or {@code model change} when unknown
   * @param source where its schedule entry was declared ({@code file:line:column}), or null
   * @param blocks what it replaced
   * @param parametersBefore parameter values before (0 when not given, -1 when the surgery log says
   *     unknown: the model had no shapes yet)
   * @param parametersAfter parameter values after (as {@code parametersBefore})
   * @param millis the time it took, or NaN when unknown
   */
  public record Surgery(
      int epoch,
      long step,
      String algorithm,
      String source,
      List<BlockChange> blocks,
      long parametersBefore,
      long parametersAfter,
      double millis) {}

  /**
   * Returns the surgeries of the run: the listener's applied entries when its surgery log is known,
   * otherwise the tree changes the history saw.
   *
   * @return the surgeries, in order
   */
  public List<Surgery> surgeries() {
    List<Surgery> list = new ArrayList<>();
    if (surgeryLog != null && surgeryLog.has("applications")) {
      for (JsonElement e : surgeryLog.getAsJsonArray("applications")) {
        JsonObject a = e.getAsJsonObject();
        String status = string(a, "status", "applied");
        if (!status.equals("applied")) {
          continue;
        }
        List<BlockChange> blocks = new ArrayList<>();
        if (a.has("changes")) {
          for (JsonElement c : a.getAsJsonArray("changes")) {
            JsonObject o = c.getAsJsonObject();
            blocks.add(
                new BlockChange(
                    string(o, "path", "?"), string(o, "from", "?"), string(o, "to", "?")));
          }
        }
        list.add(
            new Surgery(
                (int) number(a, "epoch", 0),
                (long) number(a, "step", -1),
                string(a, "algorithm", "?"),
                string(a, "source", null),
                blocks,
                parameters(a, "parameters_before"),
                parameters(a, "parameters_after"),
                number(a, "time_ms", Double.NaN)));
      }
      if (!list.isEmpty()) {
        return list;
      }
    }
    for (ModelChange c : history.getChanges()) {
      boolean freezingOnly =
          c.blocks().stream().allMatch(b -> b.newType().startsWith(TrainingHistory.FROZEN));
      list.add(
          new Surgery(
              c.epoch(),
              -1,
              freezingOnly ? "layers frozen" : "model change",
              null,
              c.blocks(),
              c.parametersBefore(),
              c.parametersAfter(),
              Double.NaN));
    }
    return list;
  }

  /**
   * A parameter count: -1 when the log says {@code "parameters_unknown": true} (the model had no
   * shapes yet), 0 when absent.
   */
  private static long parameters(JsonObject o, String key) {
    JsonElement unknown = o.get("parameters_unknown");
    if (unknown != null
        && unknown.isJsonPrimitive()
        && unknown.getAsJsonPrimitive().isBoolean()
        && unknown.getAsBoolean()) {
      return -1;
    }
    return (long) number(o, key, 0);
  }

  /** "3 block(s) replaced", "6 block(s) frozen" (freezing replaces none), or both. */
  private static String blockCount(Surgery s) {
    long frozen =
        s.blocks().stream().filter(b -> b.newType().startsWith(TrainingHistory.FROZEN)).count();
    long replaced = s.blocks().size() - frozen;
    if (frozen == 0) {
      return replaced + " block(s) replaced";
    }
    return replaced == 0
        ? frozen + " block(s) frozen"
        : replaced + " block(s) replaced, " + frozen + " frozen";
  }

  private static String string(JsonObject o, String key, String fallback) {
    return o.has(key) && o.get(key).isJsonPrimitive() ? o.get(key).getAsString() : fallback;
  }

  /**
   * A number field, or the fallback when it is absent, null (a step entry's plan epoch) or text.
   */
  private static double number(JsonObject o, String key, double fallback) {
    JsonElement e = o.get(key);
    return e != null && e.isJsonPrimitive() && e.getAsJsonPrimitive().isNumber()
        ? e.getAsDouble()
        : fallback;
  }

  /**
   * Where a surgery sits. One inside an epoch (its step lies past the batches of the epochs
   * completed before it, within the next one's) is at its batch on every chart; one between epochs
   * at the epoch boundary. The per-batch chart puts batch {@code j} of {@code n} in epoch {@code e}
   * at {@code e - 1 + j / n}, the boundary after epoch {@code k} at {@code k}; the per-epoch charts
   * draw epoch {@code e}'s point at {@code e}, so its batches span {@code e - 0.5} to {@code e +
   * 0.5}: every position there is half an epoch later, and the boundary after epoch {@code k} lies
   * between the points of epochs {@code k} and {@code k + 1}, before any batch of epoch {@code k +
   * 1}.
   *
   * @param batchX its x on the per-batch chart
   * @param epochX its x on the per-epoch charts
   * @param label how the report names the moment, e.g. {@code after epoch 1} or {@code at step 2
   *     (epoch 1)}
   */
  record Position(double batchX, double epochX, String label) {}

  /** Where a surgery sits, from its step and the batches the history recorded. */
  Position position(Surgery s) {
    List<BatchLoss> batches = history.getBatchLosses();
    long before = batches.stream().filter(b -> b.epoch() <= s.epoch()).count();
    long through = batches.stream().filter(b -> b.epoch() <= s.epoch() + 1).count();
    if (s.step() > before && s.step() <= through) {
      BatchLoss b = batches.get((int) s.step() - 1);
      double x = b.epoch() - 1 + (double) b.batch() / (through - before);
      return new Position(x, x + 0.5, "at step " + s.step() + " (epoch " + b.epoch() + ")");
    }
    return new Position(s.epoch(), s.epoch() + 0.5, "after epoch " + s.epoch());
  }

  /**
   * Writes the HTML, the three PNG charts and the JSON into a directory (created if missing), after
   * {@link #checkWritable} found nothing in the way.
   *
   * @param dir the output directory
   * @return the HTML file
   * @throws IOException if a file cannot be written
   */
  public Path write(Path dir) throws IOException {
    checkWritable(dir);
    List<Surgery> surgeries = surgeries();
    List<EpochMetrics> epochs = history.getEpochs();
    List<EpochMetrics> baseEpochs = baseline == null ? List.of() : baseline.epochs();
    ReportCharts charts = new ReportCharts(history, baseline, this::position);
    charts.saveEpochChart(
        dir.resolve(LOSS_PNG),
        "Loss per epoch",
        "loss",
        epochs,
        baseEpochs,
        surgeries,
        EpochMetrics::trainLoss,
        EpochMetrics::validationLoss,
        false);
    charts.saveEpochChart(
        dir.resolve(ACCURACY_PNG),
        "Accuracy per epoch",
        "accuracy",
        epochs,
        baseEpochs,
        surgeries,
        EpochMetrics::trainAccuracy,
        EpochMetrics::validationAccuracy,
        true);
    charts.saveBatchChart(dir.resolve(BATCH_LOSS_PNG), surgeries);
    Files.writeString(dir.resolve(JSON), json(epochs, surgeries), StandardCharsets.UTF_8);
    Path html = dir.resolve(HTML);
    Files.writeString(html, html(epochs, surgeries), StandardCharsets.UTF_8);
    return html;
  }

  /**
   * Checks that the report can be written into a directory before anything is: creates the
   * directory, refuses one of the report's files that exists as something else than a regular file
   * (a directory named {@value #HTML}) or cannot be replaced, and writes and deletes a file there.
   * {@link #write} checks this first, so a refused report leaves nothing half written; a job checks
   * it before training.
   *
   * @param dir the output directory
   * @throws IOException naming the path and what is wrong with it
   */
  public static void checkWritable(Path dir) throws IOException {
    try {
      Files.createDirectories(dir);
    } catch (IOException e) {
      throw new IOException(dir + ": cannot create the directory (" + reason(e) + ")", e);
    }
    for (String name : List.of(HTML, JSON, LOSS_PNG, ACCURACY_PNG, BATCH_LOSS_PNG)) {
      Path file = dir.resolve(name);
      if (Files.exists(file) && !Files.isRegularFile(file)) {
        throw new IOException(file + " exists and is not a file: the report cannot replace it");
      }
      if (Files.exists(file) && !Files.isWritable(file)) {
        throw new IOException(file + " exists and cannot be written: the report cannot replace it");
      }
    }
    try {
      Files.delete(Files.createTempFile(dir, ".write-check", ".tmp"));
    } catch (IOException e) {
      throw new IOException(dir + ": cannot write files there (" + reason(e) + ")", e);
    }
  }

  /** Why a file operation failed, in words: the system's reason rather than the path again. */
  private static String reason(IOException e) {
    if (e instanceof java.nio.file.FileAlreadyExistsException) {
      return "a file of that name is in the way";
    }
    if (e instanceof java.nio.file.AccessDeniedException) {
      return "permission denied";
    }
    if (e instanceof java.nio.file.NoSuchFileException) {
      return "no such file or directory";
    }
    if (e instanceof java.nio.file.FileSystemException f && f.getReason() != null) {
      return f.getReason();
    }
    return String.valueOf(e.getMessage());
  }

  private String json(List<EpochMetrics> epochs, List<Surgery> surgeries) {
    JsonObject root = new JsonObject();
    root.addProperty("title", title);
    root.addProperty("created", Instant.now().toString());
    if (run != null) {
      root.add("run", run);
    }
    root.add("epochs", GSON.toJsonTree(epochs));
    root.add("batch_losses", GSON.toJsonTree(history.getBatchLosses()));
    if (baseline != null) {
      JsonObject b = new JsonObject();
      b.addProperty("label", baseline.label());
      b.add("epochs", GSON.toJsonTree(baseline.epochs()));
      b.add("batch_losses", GSON.toJsonTree(baseline.batchLosses()));
      root.add("baseline", b);
    }
    JsonArray list = new JsonArray();
    for (Surgery s : surgeries) {
      JsonObject o = new JsonObject();
      o.addProperty("epoch", s.epoch());
      if (s.step() >= 0) {
        o.addProperty("step", s.step());
      }
      o.addProperty("algorithm", s.algorithm());
      o.addProperty("blocks_replaced", s.blocks().size());
      o.add("blocks", GSON.toJsonTree(s.blocks()));
      // Left out when unknown (the model had no shapes yet; parameters_unknown in the log), not 0.
      if (s.parametersBefore() >= 0 && s.parametersAfter() >= 0) {
        o.addProperty("parameters_before", s.parametersBefore());
        o.addProperty("parameters_after", s.parametersAfter());
      }
      if (Double.isFinite(s.millis())) {
        o.addProperty("time_ms", s.millis());
      }
      list.add(o);
    }
    root.add("surgeries", list);
    // Whether the list is the surgery log's, or what the job saw itself (then it cannot be
    // complete).
    root.addProperty(
        "surgeries_from",
        surgeryLog != null
            ? "surgery log"
            : "the job's own comparison of the block tree and frozen layers between epochs (no"
                + " surgery log: algorithms not named; changes to neither do not show)");
    root.add("charts", GSON.toJsonTree(List.of(LOSS_PNG, ACCURACY_PNG, BATCH_LOSS_PNG)));
    if (surgeryLog != null) {
      // The key predates the name "surgery log"; readers of this file depend on it.
      root.add("surgery_listener_report", surgeryLog);
    }
    if (plans != null) {
      root.add("plans", plans);
    }
    return GSON.toJson(root);
  }

  private String html(List<EpochMetrics> epochs, List<Surgery> surgeries) {
    StringBuilder h = new StringBuilder();
    h.append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>")
        .append(Html.escape(title))
        .append("</title>\n<style>body{font-family:sans-serif;margin:2em;max-width:1100px}")
        .append("table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;")
        .append("padding:4px 8px;text-align:left}th{background:#f3f3f3}")
        .append("td.n{text-align:right}img{max-width:100%}</style></head><body>\n");
    h.append("<h1>").append(Html.escape(title)).append("</h1>\n");
    if (run != null) {
      h.append("<p>");
      for (var e : run.entrySet()) {
        h.append("<b>").append(Html.escape(e.getKey())).append("</b>: ");
        h.append(
            Html.escape(
                e.getValue().isJsonPrimitive()
                    ? e.getValue().getAsString()
                    : e.getValue().toString()));
        h.append(" &nbsp; ");
      }
      h.append("</p>\n");
    }
    h.append("<p>").append(surgeries.size()).append(" surgery application(s); ");
    h.append(epochs.size())
        .append(" epoch(s). The dashed vertical lines mark the surgeries.</p>\n");
    if (baseline != null) {
      h.append("<p>Dashed curves: <b>")
          .append(Html.escape(baseline.label()))
          .append("</b>, the same training without surgery (")
          .append(baseline.epochs().size())
          .append(" epoch(s)).</p>\n");
    }
    h.append("<img src=\"").append(LOSS_PNG).append("\" alt=\"loss per epoch\">\n");
    h.append("<img src=\"").append(ACCURACY_PNG).append("\" alt=\"accuracy per epoch\">\n");
    h.append("<img src=\"").append(BATCH_LOSS_PNG).append("\" alt=\"training loss per batch\">\n");

    h.append("<h2>Epochs</h2>\n");
    epochTable(h, epochs);
    h.append("<p>seconds: the wall time from the end of the previous epoch (the first: from the")
        .append(" start of training) to the end of this one: loading its data, every")
        .append(" training batch and validation. Work other listeners do at an epoch's end after")
        .append(" the report's history listener (an epoch's surgery) counts towards the next")
        .append(" epoch.</p>\n");
    if (baseline != null) {
      h.append("<h2>Epochs of ").append(Html.escape(baseline.label())).append("</h2>\n");
      epochTable(h, baseline.epochs());
    }

    h.append("<h2>Surgeries</h2>\n");
    if (surgeryLog == null) {
      // Say what the list below cannot hold, rather than let it look complete.
      h.append("<p>No surgery log: the surgeries below are the changes the job saw itself, between")
          .append(" epochs, in the block tree and in which layers are frozen; the algorithms are")
          .append(
              " not named, and a change to neither (weights or a rate only) does not show. Name")
          .append(
              " the log with <code>--surgery-log</code> (the config's <code>report:</code>).</p>\n");
    }
    if (surgeries.isEmpty()) {
      h.append(
          surgeryLog == null
              ? "<p>The job saw no change of the block tree or of the frozen layers.</p>\n"
              : "<p>The model was not changed during training.</p>\n");
    }
    for (Surgery s : surgeries) {
      h.append("<h3>")
          .append(Html.escape(s.algorithm()))
          .append(' ')
          .append(position(s).label())
          .append(": ")
          .append(blockCount(s));
      if (Double.isFinite(s.millis())) {
        h.append(", ").append(format(s.millis())).append(" ms");
      }
      h.append("</h3>\n");
      if (s.parametersBefore() < 0 || s.parametersAfter() < 0) {
        h.append("<p>parameters unknown (the model had no shapes yet)</p>\n");
      } else if (s.parametersBefore() > 0 || s.parametersAfter() > 0) {
        h.append(
            String.format(
                Locale.ROOT,
                "<p>parameters %,d &rarr; %,d</p>%n",
                s.parametersBefore(),
                s.parametersAfter()));
      }
      JsonObject plan = planFor(s);
      h.append("<table><tr><th>block path</th><th>was</th><th>now</th>")
          .append(plan == null ? "" : "<th>planned</th>")
          .append("</tr>\n");
      for (BlockChange b : s.blocks()) {
        h.append("<tr><td><code>")
            .append(Html.escape(b.path()))
            .append("</code></td><td>")
            .append(Html.escape(b.oldType()))
            .append("</td><td>")
            .append(Html.escape(b.newType()))
            .append("</td>")
            .append(plan == null ? "" : "<td>" + plannedCell(plan, b.path()) + "</td>")
            .append("</tr>\n");
      }
      if (plan != null) {
        // What the plan named that the application did not change.
        for (JsonObject step : steps(plan)) {
          String path = string(step, "path", "?");
          if (s.blocks().stream().noneMatch(b -> samePlace(b.path(), path))) {
            h.append("<tr><td><code>")
                .append(Html.escape(path))
                .append("</code></td><td>&ndash;</td><td>not applied</td><td>")
                .append(plannedCell(plan, path))
                .append("</td></tr>\n");
          }
        }
      }
      h.append("</table>\n");
    }
    appendEntriesThatDidNotChange(h);
    h.append("</body></html>\n");
    return h.toString();
  }

  /**
   * Lists the log's entries that changed nothing: applications that failed or were skipped, with
   * their error, and entries that never ran, with the reason (the report showed applied ones only).
   */
  private void appendEntriesThatDidNotChange(StringBuilder h) {
    if (surgeryLog == null) {
      return;
    }
    List<String> rows = new ArrayList<>();
    if (surgeryLog.has("applications")) {
      for (JsonElement e : surgeryLog.getAsJsonArray("applications")) {
        JsonObject a = e.getAsJsonObject();
        String status = string(a, "status", "applied");
        if (!status.equals("applied")) {
          rows.add(entryRow(a, status, string(a, "error", "")));
        }
      }
    }
    if (surgeryLog.has("not_run")) {
      for (JsonElement e : surgeryLog.getAsJsonArray("not_run")) {
        JsonObject n = e.getAsJsonObject();
        rows.add(entryRow(n, "not run", string(n, "reason", "")));
      }
    }
    if (rows.isEmpty()) {
      return;
    }
    h.append("<h2>Entries that did not change the model</h2>\n")
        .append("<table><tr><th>entry</th><th>when</th><th>status</th><th>why</th></tr>\n");
    rows.forEach(h::append);
    h.append("</table>\n");
  }

  private static String entryRow(JsonObject o, String status, String why) {
    String when =
        o.has("when")
            ? string(o, "when", "")
            : o.has("epoch") ? "at epoch " + string(o, "epoch", "?") : "";
    return "<tr><td>"
        + Html.escape(string(o, "algorithm", "?"))
        + (o.has("source") ? " <code>" + Html.escape(string(o, "source", "")) + "</code>" : "")
        + "</td><td>"
        + Html.escape(when)
        + "</td><td>"
        + Html.escape(status)
        + "</td><td>"
        + Html.escape(why)
        + "</td></tr>\n";
  }

  /**
   * Whether two block paths name the same place: segment by segment the same, or the same child
   * number where DJL keyed both by position and class ({@code 01Conv2d} and {@code 01BlurConv2d}).
   * A dry run plans every entry on the model as it was, so a later entry's plan names a block by
   * the key it had before an earlier entry renamed it.
   */
  static boolean samePlace(String a, String b) {
    if (a == null || b == null) {
      return false;
    }
    if (a.equals(b)) {
      return true;
    }
    String[] x = a.split("/", -1);
    String[] y = b.split("/", -1);
    if (x.length != y.length) {
      return false;
    }
    for (int i = 0; i < x.length; i++) {
      if (!x[i].equals(y[i]) && !samePosition(x[i], y[i])) {
        return false;
      }
    }
    return true;
  }

  /** Both keys start with the same child number followed by a class name. */
  private static boolean samePosition(String a, String b) {
    int i = 0;
    while (i < a.length()
        && i < b.length()
        && Character.isDigit(a.charAt(i))
        && a.charAt(i) == b.charAt(i)) {
      i++;
    }
    return i > 0
        && i < a.length()
        && i < b.length()
        && !Character.isDigit(a.charAt(i))
        && !Character.isDigit(b.charAt(i));
  }

  /**
   * The plan of the entry a surgery applied, by what both name: the same algorithm and entry
   * (source position, when the dry run read the same config), else the same algorithm and scheduled
   * epoch (a step or time entry's plan has none: {@code "epoch": null}), else the only plan of that
   * algorithm; null when none was given or the match is ambiguous.
   */
  private JsonObject planFor(Surgery s) {
    if (plans == null) {
      return null;
    }
    List<JsonObject> sameAlgorithm = new ArrayList<>();
    for (JsonElement e : plans) {
      if (e.isJsonObject() && s.algorithm().equals(string(e.getAsJsonObject(), "algorithm", ""))) {
        sameAlgorithm.add(e.getAsJsonObject());
      }
    }
    List<JsonObject> sameEntry =
        sameAlgorithm.stream()
            .filter(p -> s.source() != null && s.source().equals(string(p, "source", null)))
            .toList();
    if (sameEntry.size() == 1) {
      return sameEntry.get(0);
    }
    List<JsonObject> sameEpoch =
        sameAlgorithm.stream().filter(p -> number(p, "epoch", -1) == s.epoch()).toList();
    if (sameEpoch.size() == 1) {
      return sameEpoch.get(0);
    }
    return sameAlgorithm.size() == 1 ? sameAlgorithm.get(0) : null;
  }

  private static List<JsonObject> steps(JsonObject plan) {
    List<JsonObject> out = new ArrayList<>();
    if (plan.has("steps") && plan.get("steps").isJsonArray()) {
      for (JsonElement e : plan.getAsJsonArray("steps")) {
        out.add(e.getAsJsonObject());
      }
    }
    return out;
  }

  /**
   * The planned change of one block path, with its multiply-accumulates per sample and, where the
   * plan was made with a trainer, what happens to each parameter's optimizer state ({@code
   * -removed}, {@code +added}, {@code =kept}).
   */
  private static String plannedCell(JsonObject plan, String path) {
    if (plan.has("error")) {
      return "plan failed: " + Html.escape(string(plan, "error", "?"));
    }
    for (JsonObject step : steps(plan)) {
      if (samePlace(path, string(step, "path", null))) {
        return Html.escape(string(step, "from", "?"))
            + " &rarr; "
            + Html.escape(string(step, "to", "?"))
            + ", MACs "
            + Html.escape(string(step, "macs_before", "unknown"))
            + " &rarr; "
            + Html.escape(string(step, "macs_after", "unknown"))
            + stateCell(step);
      }
    }
    return "not planned";
  }

  /** The optimizer-state fates of a planned step's parameters; empty when none is involved. */
  private static String stateCell(JsonObject step) {
    List<String> fates = new ArrayList<>();
    String[][] lists = {{"removed", "-"}, {"added", "+"}, {"kept", "="}};
    for (String[] list : lists) {
      if (!step.has(list[0]) || !step.get(list[0]).isJsonArray()) {
        continue; // a plan written before the state was planned
      }
      for (JsonElement e : step.getAsJsonArray(list[0])) {
        if (!e.isJsonObject()) {
          continue;
        }
        JsonObject p = e.getAsJsonObject();
        String state = string(p, "state", "none");
        if (!"none".equals(state)) {
          boolean exact =
              p.has("born_exact")
                  && p.get("born_exact").isJsonPrimitive()
                  && p.get("born_exact").getAsBoolean();
          fates.add(
              list[1] + string(p, "name", "?") + " " + state + (exact ? " (born exact)" : ""));
        }
      }
    }
    return fates.isEmpty() ? "" : ", optimizer state: " + Html.escape(String.join(", ", fates));
  }

  private static void epochTable(StringBuilder h, List<EpochMetrics> epochs) {
    h.append("<table><tr><th>epoch</th><th>training loss</th>")
        .append("<th>validation loss</th><th>training accuracy</th><th>validation accuracy</th>")
        .append("<th>seconds</th></tr>\n");
    for (EpochMetrics m : epochs) {
      h.append("<tr><td class=n>").append(m.epoch()).append("</td>");
      for (double v :
          new double[] {
            m.trainLoss(),
            m.validationLoss(),
            m.trainAccuracy(),
            m.validationAccuracy(),
            m.seconds()
          }) {
        h.append("<td class=n>").append(format(v)).append("</td>");
      }
      h.append("</tr>\n");
    }
    h.append("</table>\n");
  }

  private static String format(double v) {
    return Double.isFinite(v) ? String.format(Locale.ROOT, "%.4f", v) : "&ndash;";
  }

  /** Builds a {@link SurgeryReportWriter}. */
  public static final class Builder {

    private final String title;
    private final TrainingHistory history;
    private JsonObject surgeryLog;
    private JsonObject run;
    private JsonArray plans;
    private BaselineRun baseline;

    Builder(String title, TrainingHistory history) {
      this.title = title;
      this.history = history;
    }

    /**
     * Adds the surgery log (JSON) a {@code SurgeryListener} wrote, when the file exists and parses.
     *
     * @param file the surgery log file, or null
     * @return this builder
     * @throws IOException if the file exists but cannot be read
     */
    public Builder optSurgeryLog(Path file) throws IOException {
      if (file != null && Files.isRegularFile(file)) {
        try {
          JsonElement e = JsonParser.parseString(Files.readString(file, StandardCharsets.UTF_8));
          if (e.isJsonObject()) {
            surgeryLog = e.getAsJsonObject();
          }
        } catch (JsonParseException e) {
          throw new IOException("the surgery log " + file + " is not JSON", e);
        }
      }
      return this;
    }

    /**
     * Adds the plans of a dry run (the surgery log the agent writes with {@code dry_run=true} and
     * {@code report:}, its {@code plans} list), shown next to what each surgery applied, when the
     * file exists and parses.
     *
     * @param file the dry run's surgery log, or null
     * @return this builder
     * @throws IOException if the file exists but cannot be read or is not JSON
     */
    public Builder optPlanLog(Path file) throws IOException {
      if (file != null && Files.isRegularFile(file)) {
        try {
          JsonElement e = JsonParser.parseString(Files.readString(file, StandardCharsets.UTF_8));
          if (e.isJsonObject() && e.getAsJsonObject().has("plans")) {
            plans = e.getAsJsonObject().getAsJsonArray("plans");
          }
        } catch (JsonParseException | IllegalStateException e) {
          throw new IOException("the dry run's surgery log " + file + " is not JSON", e);
        }
      }
      return this;
    }

    /**
     * Sets facts about the run shown at the top (dataset, epochs, batch size, devices ...).
     *
     * @param run key to value
     * @return this builder
     */
    public Builder optRun(JsonObject run) {
      this.run = run;
      return this;
    }

    /**
     * Sets a run to draw on the same charts for comparison (dashed), usually the same training
     * without surgery.
     *
     * @param baseline the run, or null for none
     * @return this builder
     */
    public Builder optBaseline(BaselineRun baseline) {
      this.baseline = baseline;
      return this;
    }

    /**
     * Builds the writer.
     *
     * @return the writer
     */
    public SurgeryReportWriter build() {
      return new SurgeryReportWriter(this);
    }
  }
}
