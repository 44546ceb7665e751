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
        String status = SurgeryLogJson.string(a, "status", "applied");
        if (!status.equals("applied")) {
          continue;
        }
        List<BlockChange> blocks = new ArrayList<>();
        if (a.has("changes")) {
          for (JsonElement c : a.getAsJsonArray("changes")) {
            JsonObject o = c.getAsJsonObject();
            blocks.add(
                new BlockChange(
                    SurgeryLogJson.string(o, "path", "?"),
                    SurgeryLogJson.string(o, "from", "?"),
                    SurgeryLogJson.string(o, "to", "?")));
          }
        }
        list.add(
            new Surgery(
                (int) SurgeryLogJson.number(a, "epoch", 0),
                (long) SurgeryLogJson.number(a, "step", -1),
                SurgeryLogJson.string(a, "algorithm", "?"),
                SurgeryLogJson.string(a, "source", null),
                blocks,
                SurgeryLogJson.parameters(a, "parameters_before"),
                SurgeryLogJson.parameters(a, "parameters_after"),
                SurgeryLogJson.number(a, "time_ms", Double.NaN)));
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
    Files.writeString(
        html,
        new ReportPage(title, surgeryLog, plans, baseline, run, this::position)
            .html(epochs, surgeries),
        StandardCharsets.UTF_8);
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
