package dev.surgery.trainer;

import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.internal.WeakIdentityMap;
import java.lang.ref.WeakReference;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Tells whether a model's surgery record still describes its blocks. A block a recorded surgery
 * made, replaced afterwards through the core API (a new head for another task), leaves a record
 * whose replay builds another architecture than the one the file holds: every load that replays it
 * (SurgeryCheckpoint.load, Model.load under the agent) refuses the file. Said when the model is
 * about to be saved, once per block and record.
 */
final class StaleRecords {

  /** The record text each root block was last warned of. */
  private static final WeakIdentityMap<Block, String> WARNED = new WeakIdentityMap<>();

  private StaleRecords() {}

  /**
   * Warns, once per block and record, when the record names a block its replay would make that the
   * model no longer has.
   *
   * @param root the model's block
   * @param json the record it carries
   */
  static void warnIfStale(Block root, String json) {
    if (root == null || json == null || json.isBlank()) {
      return;
    }
    String stale;
    try {
      stale = firstStale(root, SurgeryJson.recordsFromJson(json));
    } catch (IllegalArgumentException e) {
      return; // not a record of ours: nothing it says can be checked
    }
    synchronized (WARNED) {
      if (stale == null || json.equals(WARNED.get(root))) {
        return;
      }
      WARNED.put(root, json);
    }
    ListenerLog.logger()
        .warn(
            "Surgery: the model's surgery record no longer describes it: {} (a block replaced"
                + " through the core API after the recorded surgery?). A checkpoint saved now does"
                + " not load with its replay (SurgeryCheckpoint.load, or Model.load under the"
                + " agent refuse it); build the model as it is now and load the file with DJL's"
                + " Model.load without the agent, or make such changes with an algorithm the"
                + " record holds",
            stale);
  }

  /**
   * Notes the parameter shapes of the blocks a root's records made, as they are now that it carries
   * them (a listener applied one more, or a replay made them): a block of the same type put in
   * one's place later, with other shapes, would be refused by the file's replay, and only these
   * tell it.
   *
   * @param root the root block
   * @param json the records it carries now; null: none
   */
  static void noteCarried(Block root, String json) {
    if (root == null) {
      return;
    }
    Map<String, Made> shapes = new HashMap<>();
    if (json != null) {
      try {
        for (Map.Entry<String, String[]> e : made(SurgeryJson.recordsFromJson(json)).entrySet()) {
          Block block = resolveRenamed(root, e.getValue()[2]);
          if (block != null) {
            shapes.put(e.getKey(), Made.of(block));
          }
        }
      } catch (IllegalArgumentException e) {
        shapes.clear(); // not a record of ours: nothing it says can be checked
      }
    }
    synchronized (MADE) {
      if (shapes.isEmpty()) {
        MADE.remove(root);
      } else {
        MADE.put(root, Map.copyOf(shapes));
      }
    }
  }

  /**
   * What {@link #noteCarried} noted for a root (null: nothing), to be put back by a failed load.
   */
  record Noted(Map<String, Made> byPlace) {}

  /** What {@link #noteCarried} noted for a root, for {@link #restoreNoted}. */
  static Noted noted(Block root) {
    synchronized (MADE) {
      return new Noted(MADE.get(root));
    }
  }

  /** Puts back what {@link #noted} returned (a failed load undoes what its replay noted). */
  static void restoreNoted(Block root, Noted noted) {
    synchronized (MADE) {
      if (noted.byPlace() == null) {
        MADE.remove(root);
      } else {
        MADE.put(root, noted.byPlace());
      }
    }
  }

  /**
   * A block a record made, with its parameter shapes when it was noted (null: unknown then). A
   * block without shapes yet (made by an {@code epoch: 0} entry before initialization) is held
   * strongly until a check finds its shapes known (then only weakly, with them), or the root
   * carries other records: a program may replace it once it is initialized, and only it tells its
   * shapes then. (A program's block that held its own root would keep the root alive that long.)
   */
  record Made(Block unshaped, WeakReference<Block> block, List<Shape> shapes) {

    static Made of(Block block) {
      List<Shape> shapes = shapesOf(block);
      return new Made(shapes == null ? block : null, new WeakReference<>(block), shapes);
    }

    /** Whether it is held for its shapes, which are known now. */
    boolean shapedSince() {
      return unshaped != null && shapesOf(unshaped) != null;
    }

    /** The same, held weakly with its shapes (see {@link #shapedSince}). */
    Made weakened() {
      return Made.of(unshaped);
    }

    /** The block made, or null once it is gone. */
    Block instance() {
      return unshaped != null ? unshaped : block.get();
    }

    /** Its shapes as noted, else as they are now; null when unknown. */
    List<Shape> knownShapes() {
      if (shapes != null) {
        return shapes;
      }
      Block b = instance();
      return b == null ? null : shapesOf(b);
    }
  }

  /** Per root block, what its carried records made, by place (see {@link #noteCarried}). */
  private static final WeakIdentityMap<Block, Map<String, Made>> MADE = new WeakIdentityMap<>();

  /** A block's parameter shapes in DJL's order; null when one is not known yet. */
  private static List<Shape> shapesOf(Block block) {
    List<Shape> shapes = new ArrayList<>();
    for (Parameter p : block.getParameters().values()) {
      if (p.getShape() == null) {
        return null;
      }
      shapes.add(p.getShape());
    }
    return shapes;
  }

  /**
   * The first block a record's changes made that the tree no longer has, described; null when every
   * one is there (or replaced by a later recorded change at or above its place). A block of the
   * made type that is not the one made, and whose parameter shapes differ from those the made one
   * had, counts as gone: the replay would build the made one, whose shapes the file does not hold.
   */
  static String firstStale(Block root, List<SurgeryRecord> records) {
    Map<String, Made> noted;
    synchronized (MADE) {
      noted = MADE.get(root);
    }
    if (noted != null && noted.values().stream().anyMatch(Made::shapedSince)) {
      // Blocks held for their shapes are held weakly once those are known (a new map: a noted
      // one is never changed, a failed load may put it back).
      Map<String, Made> weakened = new HashMap<>();
      noted.forEach(
          (place, made) -> weakened.put(place, made.shapedSince() ? made.weakened() : made));
      synchronized (MADE) {
        if (MADE.get(root) == noted) {
          MADE.put(root, Map.copyOf(weakened));
        }
      }
      noted = weakened;
    }
    for (Map.Entry<String, String[]> e : made(records).entrySet()) {
      String type = e.getValue()[0];
      String madeAt = e.getValue()[1] + " made a " + type + " at " + e.getValue()[2];
      Block block = resolveRenamed(root, e.getValue()[2]);
      String actual = block == null ? null : BlockPaths.typeName(block);
      if (!type.equals(actual)) {
        return madeAt + ", the model has " + (actual == null ? "no block there" : "a " + actual);
      }
      Made made = noted == null ? null : noted.get(e.getKey());
      if (made != null && made.instance() != block) {
        List<Shape> madeShapes = made.knownShapes();
        List<Shape> now = shapesOf(block);
        if (madeShapes != null && now != null && !madeShapes.equals(now)) {
          return madeAt
              + " with parameters of shapes "
              + madeShapes
              + ", the model has another "
              + type
              + " there, of shapes "
              + now;
        }
      }
    }
    return null;
  }

  /**
   * The last recorded type at each place the records made a block, by place: algorithm, type and
   * the recorded path.
   */
  private static Map<String, String[]> made(List<SurgeryRecord> records) {
    // The last recorded type at each place: a later change there (blur, then weight
    // standardization of the blurred layer) replaces an earlier one.
    Map<String, String[]> made = new LinkedHashMap<>();
    for (SurgeryRecord r : records) {
      if (r.changes() == null) {
        continue;
      }
      for (Map.Entry<String, String> c : r.changes().entrySet()) {
        String change = c.getValue();
        int arrow = change.indexOf("->");
        if (arrow < 0 || change.startsWith("frozen ", arrow + 2)) {
          continue; // a layer frozen in place: no block made
        }
        // Places compared by number where a key has one: a later record names the place by
        // its renamed key (03Conv2d, blurred, is 03BlurConv2d to the next algorithm).
        String place = place(c.getKey());
        // A later change above this place made its subtree anew.
        made.keySet().removeIf(p -> p.startsWith(place + "/"));
        made.remove(place);
        made.put(place, new String[] {change.substring(arrow + 2), r.algorithm(), c.getKey()});
      }
    }
    return made;
  }

  /**
   * Finds a block by a recorded path, whose keys may have been renamed since: the surgery renames a
   * key DJL derived from the old block's class ({@code 12Linear} becomes {@code
   * 12FactorizedLinear}), so a key not found is looked for by its number.
   */
  static Block resolveRenamed(Block root, String path) {
    Block current = root;
    for (String key : path.split("/")) {
      ai.djl.nn.BlockList children = BlockPaths.children(current);
      Block next = children.get(key);
      String number = leadingDigits(key);
      for (int i = 0; next == null && !number.isEmpty() && i < children.size(); i++) {
        if (leadingDigits(children.keyAt(i)).equals(number)) {
          next = children.valueAt(i);
        }
      }
      if (next == null) {
        // A key that holds '/' itself (a review): the path as DJL Surgery gives it, unrenamed.
        return BlockPaths.resolve(root, path);
      }
      current = next;
    }
    return current;
  }

  /** A path with each key taken by its number where it has one (see resolveRenamed). */
  private static String place(String path) {
    StringBuilder place = new StringBuilder();
    for (String key : path.split("/")) {
      String number = leadingDigits(key);
      place.append(place.length() == 0 ? "" : "/").append(number.isEmpty() ? key : number);
    }
    return place.toString();
  }

  private static String leadingDigits(String key) {
    int i = 0;
    while (i < key.length() && Character.isDigit(key.charAt(i))) {
      i++;
    }
    return key.substring(0, i);
  }
}
