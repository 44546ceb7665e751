package dev.surgery.trainer;

import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.util.Pair;
import dev.surgery.core.BlockPaths;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Reads the changes of a surgery record that freeze rather than replace: {@code Conv2d->frozen
 * Conv2d} (layer_freezing froze the layer whole) or {@code Conv2d->frozen Conv2d (bias)} (it froze
 * those of its parameters, the program had frozen the others). A checkpoint's replay holds the
 * layers to what these say, and checks the architecture against the other changes alone.
 */
final class FreezeChanges {

  /** What marks a freeze in a change's text: its new type is {@code frozen} and the old one. */
  static final String MARK = "->frozen ";

  private FreezeChanges() {}

  /**
   * Whether a change froze a layer rather than replaced a block.
   *
   * @param change a record's change, {@code Old->New}
   * @return true for {@code Conv2d->frozen Conv2d} and the like
   */
  static boolean isFreeze(String change) {
    return change.contains(MARK);
  }

  /**
   * The parameters under the layers one record froze ({@code ->frozen}), frozen now: read right
   * after its replay, its paths name the tree as it then is (a later record may wrap the layer).
   * Where the record names the parameters it froze ({@code frozen Conv2d (bias)}: the program had
   * frozen the others), those alone.
   */
  static Set<Parameter> recordedFreezes(Block root, Map<String, String> changes) {
    Set<Parameter> frozen = ParameterSets.identitySet();
    for (Map.Entry<String, String> e : changes.entrySet()) {
      if (!isFreeze(e.getValue())) {
        continue;
      }
      Block layer = BlockPaths.resolve(root, e.getKey());
      if (layer == null) {
        continue;
      }
      List<Parameter> named = frozenBy(layer, e.getValue());
      for (Parameter p : named == null ? List.<Parameter>of() : named) {
        if (!ParameterSets.isStatistic(p) && !p.requiresGradient()) {
          frozen.add(p);
        }
      }
    }
    return frozen;
  }

  /**
   * The parameters of a layer a freeze change names: those in its parentheses ({@code
   * Conv2d->frozen Conv2d (bias)}), else all of them (the layer froze whole); null when the
   * parentheses hold a name the layer does not have (an edited record, which {@link
   * #firstNotFrozen} reports). The names are matched against the layer's own, in its order, so a
   * name holding ", " is read whole, also where one name begins another ({@code w} and {@code w,
   * x}).
   */
  private static List<Parameter> frozenBy(Block layer, String change) {
    String named = frozenNames(change);
    if (named == null) {
      return new ArrayList<>(layer.getParameters().values());
    }
    // Running statistics are never frozen by surgery (they take no gradient): a name of one is
    // no freeze, and the record is refused as one that does not describe the model (a review).
    List<Pair<String, Parameter>> own = new ArrayList<>();
    for (Pair<String, Parameter> p : layer.getDirectParameters()) {
      if (!ParameterSets.isStatistic(p.getValue())) {
        own.add(p);
      }
    }
    List<Parameter> found = new ArrayList<>();
    return readNames(named, 0, own, 0, found) ? found : null;
  }

  /**
   * Reads {@code named} from {@code at} to its end as names of {@code own} from {@code from} on, in
   * their order, joined by ", "; adds what it read to {@code found}. Tries each name that fits in
   * turn, since one may be the start of another.
   */
  private static boolean readNames(
      String named, int at, List<Pair<String, Parameter>> own, int from, List<Parameter> found) {
    for (int i = from; i < own.size(); i++) {
      String name = own.get(i).getKey();
      int end = at + name.length();
      if (!named.startsWith(name, at)) {
        continue;
      }
      found.add(own.get(i).getValue());
      if (end == named.length()
          || named.startsWith(", ", end) && readNames(named, end + 2, own, i + 1, found)) {
        return true;
      }
      found.remove(found.size() - 1);
    }
    return false;
  }

  /**
   * What a freeze change's parentheses hold ({@code bias} of {@code Conv2d->frozen Conv2d (bias)}),
   * or null when it has none. A type name holds no space, so the first " (" after it opens them.
   */
  private static String frozenNames(String change) {
    int open = change.indexOf(" (", change.indexOf(MARK) + MARK.length());
    if (open < 0 || !change.endsWith(")")) {
      return null;
    }
    return change.substring(open + 2, change.length() - 1);
  }

  /**
   * The first layer a record says was frozen that is trainable after the replay, or that is not
   * there, with the reason; else null.
   */
  static String firstNotFrozen(Block root, Map<String, String> changes) {
    for (Map.Entry<String, String> e : changes.entrySet()) {
      if (!isFreeze(e.getValue())) {
        continue;
      }
      Block layer = BlockPaths.resolve(root, e.getKey());
      if (layer == null) {
        return e.getKey() + ", a block this model does not have";
      }
      List<Parameter> named = frozenBy(layer, e.getValue());
      if (named == null) {
        return e.getKey()
            + "'s parameters ("
            + frozenNames(e.getValue())
            + "), which that layer does not have";
      }
      for (Parameter p : named) {
        if (p.requiresGradient()) {
          return e.getKey() + ", which is still trainable";
        }
      }
    }
    return null;
  }

  /**
   * The changes that replace a block: a layer only frozen ({@code Conv2d->frozen Conv2d}) is not.
   */
  static Map<String, String> structural(Map<String, String> changes) {
    Map<String, String> kept = new LinkedHashMap<>();
    for (Map.Entry<String, String> e : changes.entrySet()) {
      if (!isFreeze(e.getValue())) {
        kept.put(e.getKey(), e.getValue());
      }
    }
    return kept;
  }
}
