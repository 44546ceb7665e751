package dev.surgery.samples.report;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;

/**
 * Lenient reads of the surgery log's JSON, which other builds of the listener may have written: a
 * field that is absent, null or of another kind gives the fallback rather than an exception.
 */
final class SurgeryLogJson {

  private SurgeryLogJson() {}

  /**
   * A parameter count: -1 when the log says {@code "parameters_unknown": true} (the model had no
   * shapes yet), 0 when absent.
   */
  static long parameters(JsonObject o, String key) {
    JsonElement unknown = o.get("parameters_unknown");
    if (unknown != null
        && unknown.isJsonPrimitive()
        && unknown.getAsJsonPrimitive().isBoolean()
        && unknown.getAsBoolean()) {
      return -1;
    }
    return (long) number(o, key, 0);
  }

  static String string(JsonObject o, String key, String fallback) {
    return o.has(key) && o.get(key).isJsonPrimitive() ? o.get(key).getAsString() : fallback;
  }

  /**
   * A number field, or the fallback when it is absent, null (a step entry's plan epoch) or text.
   */
  static double number(JsonObject o, String key, double fallback) {
    JsonElement e = o.get(key);
    return e != null && e.isJsonPrimitive() && e.getAsJsonPrimitive().isNumber()
        ? e.getAsDouble()
        : fallback;
  }
}
