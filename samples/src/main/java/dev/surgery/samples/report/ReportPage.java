package dev.surgery.samples.report;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import dev.surgery.samples.report.SurgeryReportWriter.Surgery;
import dev.surgery.samples.report.TrainingHistory.BlockChange;
import dev.surgery.samples.report.TrainingHistory.EpochMetrics;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.Function;

/**
 * The HTML page of a surgery report: the run's facts, the charts, the table of surgeries (each with
 * its plan when a dry run gave one), the entries that did not change the model and why, and the
 * epochs. {@link SurgeryReportWriter} decides what the report holds and writes the files; this
 * class only lays it out.
 */
final class ReportPage {

  private final String title;
  private final JsonObject surgeryLog;
  private final JsonArray plans;
  private final SurgeryReportWriter.BaselineRun baseline;
  private final JsonObject run;
  private final Function<Surgery, SurgeryReportWriter.Position> position;

  ReportPage(
      String title,
      JsonObject surgeryLog,
      JsonArray plans,
      SurgeryReportWriter.BaselineRun baseline,
      JsonObject run,
      Function<Surgery, SurgeryReportWriter.Position> position) {
    this.title = title;
    this.surgeryLog = surgeryLog;
    this.plans = plans;
    this.baseline = baseline;
    this.run = run;
    this.position = position;
  }

  String html(List<EpochMetrics> epochs, List<Surgery> surgeries) {
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
    h.append("<img src=\"")
        .append(SurgeryReportWriter.LOSS_PNG)
        .append("\" alt=\"loss per epoch\">\n");
    h.append("<img src=\"")
        .append(SurgeryReportWriter.ACCURACY_PNG)
        .append("\" alt=\"accuracy per epoch\">\n");
    h.append("<img src=\"")
        .append(SurgeryReportWriter.BATCH_LOSS_PNG)
        .append("\" alt=\"training loss per batch\">\n");

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
          .append(position.apply(s).label())
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
          String path = SurgeryLogJson.string(step, "path", "?");
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
        String status = SurgeryLogJson.string(a, "status", "applied");
        if (!status.equals("applied")) {
          rows.add(entryRow(a, status, SurgeryLogJson.string(a, "error", "")));
        }
      }
    }
    if (surgeryLog.has("not_run")) {
      for (JsonElement e : surgeryLog.getAsJsonArray("not_run")) {
        JsonObject n = e.getAsJsonObject();
        rows.add(entryRow(n, "not run", SurgeryLogJson.string(n, "reason", "")));
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
            ? SurgeryLogJson.string(o, "when", "")
            : o.has("epoch") ? "at epoch " + SurgeryLogJson.string(o, "epoch", "?") : "";
    return "<tr><td>"
        + Html.escape(SurgeryLogJson.string(o, "algorithm", "?"))
        + (o.has("source")
            ? " <code>" + Html.escape(SurgeryLogJson.string(o, "source", "")) + "</code>"
            : "")
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
      if (e.isJsonObject()
          && s.algorithm().equals(SurgeryLogJson.string(e.getAsJsonObject(), "algorithm", ""))) {
        sameAlgorithm.add(e.getAsJsonObject());
      }
    }
    List<JsonObject> sameEntry =
        sameAlgorithm.stream()
            .filter(
                p ->
                    s.source() != null
                        && s.source().equals(SurgeryLogJson.string(p, "source", null)))
            .toList();
    if (sameEntry.size() == 1) {
      return sameEntry.get(0);
    }
    List<JsonObject> sameEpoch =
        sameAlgorithm.stream()
            .filter(p -> SurgeryLogJson.number(p, "epoch", -1) == s.epoch())
            .toList();
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
      return "plan failed: " + Html.escape(SurgeryLogJson.string(plan, "error", "?"));
    }
    for (JsonObject step : steps(plan)) {
      if (samePlace(path, SurgeryLogJson.string(step, "path", null))) {
        return Html.escape(SurgeryLogJson.string(step, "from", "?"))
            + " &rarr; "
            + Html.escape(SurgeryLogJson.string(step, "to", "?"))
            + ", MACs "
            + Html.escape(SurgeryLogJson.string(step, "macs_before", "unknown"))
            + " &rarr; "
            + Html.escape(SurgeryLogJson.string(step, "macs_after", "unknown"))
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
        String state = SurgeryLogJson.string(p, "state", "none");
        if (!"none".equals(state)) {
          boolean exact =
              p.has("born_exact")
                  && p.get("born_exact").isJsonPrimitive()
                  && p.get("born_exact").getAsBoolean();
          fates.add(
              list[1]
                  + SurgeryLogJson.string(p, "name", "?")
                  + " "
                  + state
                  + (exact ? " (born exact)" : ""));
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
}
