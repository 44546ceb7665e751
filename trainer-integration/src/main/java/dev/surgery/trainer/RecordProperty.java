package dev.surgery.trainer;

import ai.djl.Model;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.zip.CRC32;

/**
 * The model property that holds the surgery record ({@link SurgeryListener#PROPERTY}), in parts
 * when it is longer than one property can be. DJL writes each property of a model with {@code
 * DataOutputStream.writeUTF}, which refuses a text of more than 65,535 bytes (modified UTF-8): a
 * record of a few hundred replaced blocks would make {@code model.save} fail, leaving a cut file. A
 * record that fits is one {@code surgery} property, as it always was; a longer one is {@code
 * surgery} (its first part), {@code surgery.part2} ... {@code surgery.partN}, and {@code
 * surgery.parts} = "N checksum" (the CRC-32 of the whole record, in hex).
 */
final class RecordProperty {

  /** How many parts the record has, when it has more than one. */
  static final String PARTS = SurgeryListener.PROPERTY + ".parts";

  /** What {@code writeUTF} takes at most, in modified UTF-8 bytes. */
  static final int MAX_PART_BYTES = 65_535;

  private RecordProperty() {}

  /** The property that holds part {@code i} (from 1). */
  static String partKey(int i) {
    return i == 1 ? SurgeryListener.PROPERTY : SurgeryListener.PROPERTY + ".part" + i;
  }

  /**
   * Sets a model's record, in parts when it is long, taking off the parts of a longer record it
   * had.
   *
   * @param model the model
   * @param json the record
   */
  static void write(Model model, String json) {
    List<String> parts = split(json, MAX_PART_BYTES);
    for (int i = 0; i < parts.size(); i++) {
      model.setProperty(partKey(i + 1), parts.get(i));
    }
    boolean countless = removeParts(model, parts.size());
    if (parts.size() > 1) {
      model.setProperty(PARTS, parts.size() + " " + checksum(json));
    } else if (countless) {
      // Properties that cannot be taken off (a copy): a count that matches no parts leaves the
      // first part alone, whole.
      model.setProperty(PARTS, "1 -");
    }
  }

  /**
   * Takes a model's record off, every part of it.
   *
   * @param model the model
   * @throws UnsupportedOperationException when the model's properties are a copy (read-only, or
   *     changeable but not the model's own)
   */
  static void remove(Model model) {
    Map<String, String> properties = model.getProperties();
    properties.remove(SurgeryListener.PROPERTY);
    removeParts(model, 1);
    if (model.getProperty(SurgeryListener.PROPERTY) != null) {
      // The map was a copy that took the removal and dropped it: say the same through setProperty.
      throw new UnsupportedOperationException("the model's properties are a copy");
    }
  }

  /**
   * Reads the record from a model's properties (or a file header's), joining its parts. A set of
   * parts whose count or checksum does not match (a part missing, or parts left by a longer record
   * beside a {@code surgery} property that a plain {@code Model.load} of another file, or an older
   * build, wrote whole) is not joined: the {@code surgery} property alone is then the record.
   *
   * @param properties the properties
   * @return the record, or null when there is none
   */
  static String read(Map<String, String> properties) {
    String first = properties.get(SurgeryListener.PROPERTY);
    String count = properties.get(PARTS);
    if (count == null || first == null) {
      return first;
    }
    String[] fields = count.trim().split(" ");
    if (fields.length != 2 || !fields[0].matches("[1-9][0-9]{0,8}")) {
      return first;
    }
    int n = Integer.parseInt(fields[0]);
    StringBuilder joined = new StringBuilder(first);
    for (int i = 2; i <= n; i++) {
      String part = properties.get(partKey(i));
      if (part == null) {
        return first;
      }
      joined.append(part);
    }
    String whole = joined.toString();
    return fields[1].equals(checksum(whole)) ? whole : first;
  }

  /** The CRC-32 of a record's UTF-8 bytes, in hex: ties a part count to the parts it counts. */
  static String checksum(String record) {
    CRC32 crc = new CRC32();
    crc.update(record.getBytes(StandardCharsets.UTF_8));
    return String.format(Locale.ROOT, "%08x", crc.getValue());
  }

  /**
   * Splits a text into parts of at most {@code maxBytes} bytes of modified UTF-8 each, never
   * between the two halves of a surrogate pair.
   */
  static List<String> split(String text, int maxBytes) {
    List<String> parts = new ArrayList<>();
    int start = 0;
    int bytes = 0;
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      int size = c >= 0x0001 && c <= 0x007F ? 1 : c <= 0x07FF ? 2 : 3;
      if (bytes + size > maxBytes) {
        int end = i;
        if (Character.isLowSurrogate(c)
            && end - 1 > start
            && Character.isHighSurrogate(text.charAt(end - 1))) {
          end--; // the pair goes whole into the next part
        }
        parts.add(text.substring(start, end));
        start = end;
        bytes = 0;
        i = end - 1;
        continue;
      }
      bytes += size;
    }
    parts.add(text.substring(start));
    return parts;
  }

  /**
   * Takes off the parts after the first {@code kept}, and the count; as far as the model lets it.
   *
   * @return whether a count is left that could not be taken off
   */
  private static boolean removeParts(Model model, int kept) {
    Map<String, String> properties = model.getProperties();
    if (!properties.containsKey(PARTS)) {
      return false;
    }
    List<String> stale = new ArrayList<>();
    for (String key : properties.keySet()) {
      if (key.startsWith(SurgeryListener.PROPERTY + ".part") && !key.equals(PARTS)) {
        String index = key.substring((SurgeryListener.PROPERTY + ".part").length());
        if (!(index.matches("[1-9][0-9]{0,8}") && Integer.parseInt(index) <= kept)) {
          stale.add(key);
        }
      }
    }
    try {
      stale.forEach(properties::remove);
      properties.remove(PARTS);
    } catch (UnsupportedOperationException e) {
      // A model whose properties are a read-only view: parts past the count are never read.
      return true;
    }
    // A changeable copy takes the removal and drops it: the count is still there.
    return model.getProperty(PARTS) != null;
  }
}
