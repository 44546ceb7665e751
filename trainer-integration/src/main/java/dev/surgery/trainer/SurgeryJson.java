package dev.surgery.trainer;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonNull;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import com.google.gson.JsonPrimitive;
import com.google.gson.ToNumberPolicy;
import com.google.gson.reflect.TypeToken;
import dev.surgery.core.SurgeryPlan;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.trainer.config.SurgeryConfig;
import dev.surgery.trainer.config.Trigger;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The JSON forms of the surgery record (the model's {@code surgery} property, {@link
 * SurgeryRecord}) and of the surgery log (the file a {@link SurgeryListener} writes, {@link
 * SurgeryOutcome}s).
 */
final class SurgeryJson {

  /** Integers stay integers (Long), so that replayed hyperparameters keep their types. */
  private static final Gson GSON =
      new GsonBuilder()
          .setObjectToNumberStrategy(ToNumberPolicy.LONG_OR_DOUBLE)
          .serializeSpecialFloatingPointValues()
          .disableHtmlEscaping()
          .create();

  private static final Gson PRETTY =
      new GsonBuilder()
          .serializeSpecialFloatingPointValues()
          .disableHtmlEscaping()
          .setPrettyPrinting()
          .create();

  private SurgeryJson() {}

  // ------------------------------------------------------------------ records

  /**
   * The format of the surgery records this build writes and reads: a record written in a later one
   * (by a newer DJL Surgery) is refused rather than read as far as this build understands it. A
   * record without the field (written before it existed) is format 1.
   */
  static final int RECORD_FORMAT = 1;

  /** A record in a format later than {@link #RECORD_FORMAT}: written by a newer DJL Surgery. */
  static final class NewerRecordFormatException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    NewerRecordFormatException(String message) {
      super(message);
    }
  }

  static String recordsToJson(List<SurgeryRecord> records) {
    JsonArray array = new JsonArray();
    for (SurgeryRecord r : records) {
      JsonObject o = new JsonObject();
      o.addProperty("format", RECORD_FORMAT);
      o.addProperty("algorithm", r.algorithm());
      o.add("hyperparameters", GSON.toJsonTree(r.hyperparameters()));
      o.addProperty("epoch", r.epoch());
      o.addProperty("total_epochs", r.totalEpochs());
      if (r.changes() != null) {
        o.add("changes", GSON.toJsonTree(r.changes()));
      }
      if (r.bornFrozen() != null) {
        // Optional within format 1: an earlier build ignores it and infers the freezes as before.
        o.add("born_frozen", GSON.toJsonTree(r.bornFrozen()));
      }
      if (r.step() >= 0) {
        // Optional within format 1 too: which entry of a restarted schedule made it.
        o.addProperty("step", r.step());
      }
      if (r.trigger() != null) {
        o.addProperty("trigger", r.trigger());
      }
      array.add(o);
    }
    return GSON.toJson(array);
  }

  /**
   * Whether two sets of hyperparameters are the same once written as a record and read back: key
   * order, integer against floating-point spelling ({@code 64} and {@code 64.0}) and a float
   * against the double its text reads as ({@code 0.1f} and {@code 0.1}) do not count.
   */
  static boolean sameHyperparameters(Map<String, Object> a, Map<String, Object> b) {
    return JsonParser.parseString(GSON.toJson(a)).equals(JsonParser.parseString(GSON.toJson(b)));
  }

  private static boolean isWhole(JsonElement e) {
    if (e == null || !e.isJsonPrimitive() || !e.getAsJsonPrimitive().isNumber()) {
      return false;
    }
    double v = e.getAsDouble();
    return v == Math.rint(v) && Math.abs(v) <= Integer.MAX_VALUE;
  }

  /**
   * Parses the {@code surgery} property.
   *
   * @throws IllegalArgumentException describing what is malformed
   */
  static List<SurgeryRecord> recordsFromJson(String json) {
    JsonElement root;
    try {
      root = JsonParser.parseString(json);
    } catch (JsonParseException e) {
      throw new IllegalArgumentException("the surgery record is not JSON: " + e.getMessage(), e);
    }
    if (!root.isJsonArray()) {
      throw new IllegalArgumentException("the surgery record must be a JSON array");
    }
    // A later format first, whatever else an entry holds: a newer build may shape entries anew.
    int n = 0;
    for (JsonElement e : root.getAsJsonArray()) {
      n++;
      JsonObject o = e.isJsonObject() ? e.getAsJsonObject() : new JsonObject();
      if (o.has("format") && (!isWhole(o.get("format")) || o.get("format").getAsInt() < 1)) {
        throw new IllegalArgumentException(
            "surgery record entry " + n + ": 'format' must be a whole number from 1");
      }
      if (o.has("format") && o.get("format").getAsInt() > RECORD_FORMAT) {
        throw new NewerRecordFormatException(
            "surgery record entry "
                + n
                + " is in record format "
                + o.get("format").getAsInt()
                + ", written by a newer DJL Surgery; this one reads format "
                + RECORD_FORMAT
                + ": load it with the version that wrote it, or a newer one");
      }
    }
    List<SurgeryRecord> records = new ArrayList<>();
    int i = 0;
    for (JsonElement e : root.getAsJsonArray()) {
      i++;
      if (!e.isJsonObject()
          || !e.getAsJsonObject().has("algorithm")
          || !e.getAsJsonObject().has("epoch")) {
        throw new IllegalArgumentException(
            "surgery record entry " + i + " must be an object with 'algorithm' and 'epoch'");
      }
      JsonObject o = e.getAsJsonObject();
      Map<String, Object> hyperparameters = new LinkedHashMap<>();
      if (o.has("hyperparameters") && !o.get("hyperparameters").isJsonObject()) {
        throw new IllegalArgumentException(
            "surgery record entry " + i + ": 'hyperparameters' must be an object");
      }
      if (!isWhole(o.get("epoch")) || (o.has("total_epochs") && !isWhole(o.get("total_epochs")))) {
        throw new IllegalArgumentException(
            "surgery record entry " + i + ": 'epoch' and 'total_epochs' must be whole numbers");
      }
      if (o.has("hyperparameters")) {
        hyperparameters =
            GSON.fromJson(
                o.get("hyperparameters"),
                new TypeToken<LinkedHashMap<String, Object>>() {}.getType());
      }
      try {
        Map<String, String> changes = null;
        if (o.has("changes")) {
          if (!o.get("changes").isJsonObject()) {
            throw new IllegalArgumentException(
                "'changes' must be an object of block paths, got " + o.get("changes"));
          }
          changes = new LinkedHashMap<>();
          for (Map.Entry<String, JsonElement> c : o.getAsJsonObject("changes").entrySet()) {
            if (!c.getValue().isJsonPrimitive() || !c.getValue().getAsJsonPrimitive().isString()) {
              throw new IllegalArgumentException(
                  "'changes' of " + c.getKey() + " must be a string such as 'Conv2d->BlurConv2d'");
            }
            changes.put(c.getKey(), c.getValue().getAsString());
          }
        }
        List<String> bornFrozen = null;
        if (o.has("born_frozen")) {
          JsonElement born = o.get("born_frozen");
          bornFrozen = new ArrayList<>();
          boolean names = born.isJsonArray();
          for (JsonElement name : names ? born.getAsJsonArray() : new JsonArray()) {
            names &= name.isJsonPrimitive() && name.getAsJsonPrimitive().isString();
            bornFrozen.add(names ? name.getAsString() : null);
          }
          if (!names) {
            throw new IllegalArgumentException(
                "'born_frozen' must be an array of parameter names, got " + born);
          }
        }
        long step = -1;
        if (o.has("step")) {
          JsonElement st = o.get("step");
          // Steps may pass an int (a step: entry may name up to 10^12).
          boolean whole =
              st.isJsonPrimitive()
                  && st.getAsJsonPrimitive().isNumber()
                  && st.getAsDouble() == Math.rint(st.getAsDouble())
                  && st.getAsDouble() >= 0
                  && st.getAsDouble() <= 1L << 53;
          if (!whole) {
            throw new IllegalArgumentException(
                "'step' must be a whole number from 0, got " + o.get("step"));
          }
          step = o.get("step").getAsLong();
        }
        String trigger = null;
        if (o.has("trigger")) {
          JsonElement t = o.get("trigger");
          if (!t.isJsonPrimitive() || !t.getAsJsonPrimitive().isString()) {
            throw new IllegalArgumentException(
                "'trigger' must be a string such as 'at epoch 2', got " + t);
          }
          trigger = t.getAsString();
        }
        records.add(
            new SurgeryRecord(
                o.get("algorithm").getAsString(),
                hyperparameters,
                o.get("epoch").getAsInt(),
                o.has("total_epochs") ? o.get("total_epochs").getAsInt() : 0,
                changes,
                bornFrozen,
                step,
                trigger));
      } catch (RuntimeException ex) {
        throw new IllegalArgumentException(
            "surgery record entry " + i + " is malformed: " + ex.getMessage(), ex);
      }
    }
    return records;
  }

  // ------------------------------------------------------------------ surgery log file

  /**
   * The surgery log: the outcomes under {@code applications}, the entries that never ran under
   * {@code not_run}, and, first, {@code "cut_short": true} while a trainer's training runs and when
   * the program ended before it did (a complete run's log has no such key).
   */
  static String log(List<SurgeryOutcome> outcomes, List<JsonObject> notRun, boolean cutShort) {
    return logOfItems(
        outcomes.stream().map(SurgeryJson::outcomeItem).toList(),
        notRun.stream().map(SurgeryJson::item).toList(),
        cutShort);
  }

  /**
   * The surgery log from its items as {@link #outcomeItem} and {@link #item} print them: the same
   * text as the whole tree pretty-printed at once, but an item printed once can be kept and put in
   * every later write (a long search's log is written several times per trial; printing every
   * outcome again each time made each trial slower than the one before).
   */
  static String logOfItems(List<String> outcomes, List<String> notRun, boolean cutShort) {
    StringBuilder sb = new StringBuilder(64 + 512 * (outcomes.size() + notRun.size()));
    sb.append("{\n");
    if (cutShort) {
      sb.append("  \"cut_short\": true,\n");
    }
    // "applications" is the file's key since the first release; readers depend on it.
    sb.append("  \"applications\": ");
    array(sb, outcomes);
    sb.append(",\n  \"not_run\": ");
    array(sb, notRun);
    return sb.append("\n}").toString();
  }

  private static void array(StringBuilder sb, List<String> items) {
    if (items.isEmpty()) {
      sb.append("[]");
      return;
    }
    sb.append("[\n");
    for (int i = 0; i < items.size(); i++) {
      sb.append(items.get(i)).append(i + 1 < items.size() ? ",\n" : "\n");
    }
    sb.append("  ]");
  }

  /** An application as an item of the log's {@code applications}, printed and indented. */
  static String outcomeItem(SurgeryOutcome a) {
    return item(outcome(a));
  }

  /** An object pretty-printed as an item of one of the log's top-level arrays. */
  static String item(JsonObject o) {
    return "    " + PRETTY.toJson(o).replace("\n", "\n    ");
  }

  /**
   * The surgery log of a dry run: no applications, and each entry's plan ({@code steps} with path,
   * {@code from}/{@code to} types as in {@code changes}, parameters removed, added and kept, each
   * with its optimizer {@code state} ({@code moved}, {@code dropped}, {@code fresh}, {@code none})
   * and {@code born_exact}, and multiply-accumulates per sample, null where unknown; then the
   * plan's totals, {@code optimizer_state} counting the parameters per state).
   */
  static String plans(List<EntryPlan> plans) {
    JsonObject root = new JsonObject();
    root.addProperty("dry_run", true);
    root.add("applications", new JsonArray());
    root.add("not_run", new JsonArray());
    JsonArray array = new JsonArray();
    for (EntryPlan p : plans) {
      JsonObject o = new JsonObject();
      o.addProperty("algorithm", p.entry().algorithm().name());
      o.add("hyperparameters", PRETTY.toJsonTree(p.entry().algorithm().settings()));
      // An entry with another schedule (a step, a time, events) has no epoch: say when it runs.
      boolean byEpoch = p.entry().trigger().kind() == Trigger.Kind.EPOCH;
      o.addProperty("epoch", byEpoch ? p.entry().epoch() : null);
      o.addProperty("when", p.entry().trigger().describe());
      o.addProperty("source", p.entry().source());
      SurgeryPlan plan = p.plan();
      if (plan == null) {
        boolean unplannable = p.error().startsWith(EntryPlan.NO_PLAN);
        o.addProperty(unplannable ? "no_plan" : "error", p.error());
        array.add(o);
        continue;
      }
      o.addProperty("input_shape", plan.inputShape() == null ? null : plan.inputShape().toString());
      JsonArray steps = new JsonArray();
      for (SurgeryPlan.Step s : plan.steps()) {
        JsonObject st = new JsonObject();
        st.addProperty("path", s.path());
        st.addProperty("from", s.oldType());
        st.addProperty("to", s.newType());
        st.add("removed", planned(s.removed()));
        st.add("added", planned(s.added()));
        st.add("kept", planned(s.kept()));
        st.addProperty("macs_before", s.macsBefore());
        st.addProperty("macs_after", s.macsAfter());
        steps.add(st);
      }
      o.add("steps", steps);
      if (plan.parametersKnown()) {
        o.addProperty("parameters_before", plan.parametersBefore());
        o.addProperty("parameters_after", plan.parametersAfter());
      } else {
        o.addProperty("parameters_unknown", true); // not initialized: unknown, not 0
      }
      o.addProperty("macs_change", plan.macsChange());
      JsonObject fates = new JsonObject();
      plan.stateCounts().forEach((fate, count) -> fates.addProperty(fate.label(), count));
      o.add("optimizer_state", fates);
      array.add(o);
    }
    root.add("plans", array);
    return PRETTY.newBuilder().serializeNulls().create().toJson(root);
  }

  private static JsonArray planned(List<SurgeryPlan.PlannedParameter> parameters) {
    JsonArray array = new JsonArray();
    for (SurgeryPlan.PlannedParameter p : parameters) {
      JsonObject o = new JsonObject();
      o.addProperty("name", p.name());
      o.addProperty("shape", p.shape() == null ? null : p.shape().toString());
      o.addProperty("state", p.state().label());
      o.addProperty("born_exact", p.bornExact());
      array.add(o);
    }
    return array;
  }

  static JsonObject outcome(SurgeryOutcome a) {
    JsonObject o = new JsonObject();
    o.addProperty("trainer", a.trainer());
    o.addProperty("algorithm", a.algorithm());
    o.add("hyperparameters", PRETTY.toJsonTree(a.hyperparameters()));
    o.addProperty("epoch", a.epoch());
    o.addProperty("step", a.step());
    o.addProperty("source", a.source());
    o.addProperty("status", a.status().name().toLowerCase(java.util.Locale.ROOT));
    o.addProperty("time_ms", a.nanos() / 1e6);
    SurgeryChanges r = a.changes();
    if (r != null) {
      o.addProperty("blocks_replaced", r.changes().size());
      JsonArray changes = new JsonArray();
      for (SurgeryChanges.Change c : r.changes()) {
        JsonObject ch = new JsonObject();
        ch.addProperty("path", c.path());
        ch.addProperty("from", c.oldType());
        ch.addProperty("to", c.newType());
        changes.add(ch);
      }
      o.add("changes", changes);
      if (r.parametersBefore() == SurgeryChanges.UNKNOWN_PARAMETERS
          || r.parametersAfter() == SurgeryChanges.UNKNOWN_PARAMETERS) {
        // The model had no shapes yet (before Trainer.initialize): unknown, not 0.
        o.addProperty("parameters_unknown", true);
      } else {
        o.addProperty("parameters_before", r.parametersBefore());
        o.addProperty("parameters_after", r.parametersAfter());
      }
      if (!r.warnings().isEmpty()) {
        JsonArray warnings = new JsonArray();
        r.warnings().forEach(warnings::add);
        o.add("warnings", warnings);
      }
    }
    if (a.error() != null) {
      o.addProperty("error", a.error());
    }
    o.add("loss_before", loss(a.lossBefore(), a.lossBeforeBatches()));
    o.add("loss_after", loss(a.lossAfter(), a.lossAfterBatches()));
    return o;
  }

  private static JsonElement loss(Double mean, int batches) {
    if (mean == null) {
      return JsonNull.INSTANCE;
    }
    JsonObject o = new JsonObject();
    o.add("mean", new JsonPrimitive(mean));
    o.addProperty("batches", batches);
    return o;
  }

  /** Writes through a temporary file and a rename, so a reader never sees half a file. */
  static void write(Path file, String json) throws IOException {
    Path absolute = file.toAbsolutePath();
    Path dir = absolute.getParent();
    if (dir != null) {
      Files.createDirectories(dir);
    }
    Path tmp = absolute.resolveSibling(absolute.getFileName() + SurgeryConfig.REPORT_TEMP_SUFFIX);
    Files.writeString(tmp, json + System.lineSeparator(), StandardCharsets.UTF_8);
    try {
      Files.move(
          tmp, absolute, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    } catch (AtomicMoveNotSupportedException e) {
      Files.move(tmp, absolute, StandardCopyOption.REPLACE_EXISTING);
    }
  }
}
