package dev.surgery.core.algorithms;

import java.util.AbstractList;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * The rules for combining the built-in algorithms in one schedule (a recipe).
 *
 * <p>The convolution algorithms compose in either order: weight standardization is a property of
 * the project's convolutions that BlurPool, Factorize and squeeze-excite carry over, and they
 * replace convolutions wherever those sit (inside a factorized or gated layer too). Stochastic
 * depth recognises residual units whatever the others made of their convolutions and batch norms. A
 * few combinations cannot do what they say, and a schedule that holds one is refused before
 * training rather than left to change nothing, or less than asked, at epoch N:
 *
 * <ul>
 *   <li>an algorithm after an earlier entry of itself that already did everything it could do
 *       (every built-in is idempotent): {@code ghost_batchnorm} and {@code stochastic_depth}
 *       always; {@code blurpool} unless it blurs something the earlier one left (lower {@code
 *       min_channels}, or convolutions or max pools the earlier one skipped); {@code
 *       weight_standardization} after one that ignores no more last layers ({@code
 *       n_last_layers_ignore} no larger), unless a {@code factorize} ran in between; {@code
 *       squeeze_excite} unless its {@code min_channels} is lower; {@code factorize} unless it
 *       selects layers the earlier one left (lower thresholds, another latent size, a layer kind
 *       the earlier one skipped, or linears after a {@code squeeze_excite} that added gate layers).
 *       {@code layer_freezing} freezes more as training goes on, so it may repeat at later epochs,
 *       but not at the same epoch with a schedule that freezes no more, on the same layers (its
 *       fraction is of the layers it targets), with no {@code factorize} or {@code squeeze_excite}
 *       between (they add layers, so the same fraction may reach further).
 * </ul>
 *
 * <p>An algorithm of the program's own (a plugin) between two entries may make anything: a rule
 * that depends on what ran between (the repeats of {@code weight_standardization}, of {@code
 * factorize} for linears, of {@code layer_freezing} at one epoch) refuses only with built-ins
 * between that cannot give the later entry more to do.
 *
 * <p>The earlier entry must cover the whole model, or have the same {@code include} and {@code
 * exclude} as the later one with no entry between them (another entry can change block paths, and
 * so what the patterns select); an earlier entry limited to other targets leaves other blocks.
 */
public final class Composition {

  /** Built-ins that make no new convolution a weight standardization would select. */
  private static final Set<String> MAKE_NO_CONVOLUTION =
      Set.of(
          BlurPool.NAME,
          WeightStandardization.NAME,
          SqueezeExcite.NAME,
          GhostBatchNorm.NAME,
          StochasticDepth.NAME,
          LayerFreezing.NAME);

  /** Built-ins that make no new linear a factorize would select. */
  private static final Set<String> MAKE_NO_LINEAR =
      Set.of(
          BlurPool.NAME,
          WeightStandardization.NAME,
          Factorize.NAME,
          GhostBatchNorm.NAME,
          StochasticDepth.NAME,
          LayerFreezing.NAME);

  /** Built-ins that keep the model's layers as layer freezing counts them, in their order. */
  private static final Set<String> KEEP_THE_LAYERS =
      Set.of(
          BlurPool.NAME,
          WeightStandardization.NAME,
          GhostBatchNorm.NAME,
          StochasticDepth.NAME,
          LayerFreezing.NAME);

  private Composition() {}

  /**
   * A pair of schedule entries that cannot be combined.
   *
   * @param earlier the position of the entry that runs first, in the list given to {@link #check}
   * @param later the position of the entry that cannot follow it
   * @param reason why, in a sentence
   */
  public record Conflict(int earlier, int later, String reason) {}

  /**
   * Finds the entries of a schedule that cannot follow an earlier one; at most one conflict per
   * later entry (with the first earlier entry that forbids it).
   *
   * @param applicationOrder the algorithms in the order they will be applied
   * @return the conflicts, by later entry; empty when the schedule composes
   */
  public static List<Conflict> check(List<? extends Algorithm> applicationOrder) {
    return check(applicationOrder, null);
  }

  /**
   * Like {@link #check(List)}, knowing the epoch of every entry: {@code layer_freezing} after an
   * earlier one at the same epoch that freezes at least as much is a conflict too.
   *
   * @param applicationOrder the algorithms in the order they will be applied
   * @param epochs the epoch of each, same order; null when unknown
   * @return the conflicts, by later entry; empty when the schedule composes
   * @throws IllegalArgumentException when the epochs are not one per algorithm
   */
  public static List<Conflict> check(
      List<? extends Algorithm> applicationOrder, List<Integer> epochs) {
    return check(applicationOrder, epochs, Unplaced.NONE);
  }

  /**
   * What may run between two entries of a schedule besides the entries the application order puts
   * between them: a schedule entry refused for a problem of its own may turn out to be any
   * algorithm, at any place its declaration allows, once fixed. A caller stands for it with one
   * algorithm of each name it may have ({@link #conflict} reads only the names of the entries
   * between two), so that a conflict is found only where it holds wherever that entry runs.
   */
  @FunctionalInterface
  public interface Unplaced {

    /** Nothing but the entries of the order. */
    Unplaced NONE = (earlier, later) -> List.of();

    /**
     * Tells what may run between two entries.
     *
     * @param earlier the position of the earlier entry in the application order
     * @param later the position of the later entry
     * @return the algorithms that may run between them besides those of the order; empty for none
     */
    List<? extends Algorithm> between(int earlier, int later);
  }

  /**
   * Like {@link #check(List, List)}, with entries whose place in the order is unknown.
   *
   * @param applicationOrder the algorithms in the order they will be applied
   * @param epochs the epoch of each, same order; null when unknown
   * @param unplaced what may run between two entries besides the order's
   * @return the conflicts, by later entry; empty when the schedule composes
   * @throws IllegalArgumentException when the epochs are not one per algorithm
   * @throws NullPointerException when {@code unplaced} is null ({@link Unplaced#NONE} for none)
   */
  public static List<Conflict> check(
      List<? extends Algorithm> applicationOrder, List<Integer> epochs, Unplaced unplaced) {
    Objects.requireNonNull(unplaced, "unplaced must not be null");
    if (epochs != null && epochs.size() != applicationOrder.size()) {
      throw new IllegalArgumentException(
          "one epoch per algorithm: "
              + applicationOrder.size()
              + " algorithms, "
              + epochs.size()
              + " epochs");
    }
    List<Conflict> conflicts = new ArrayList<>();
    for (int j = 1; j < applicationOrder.size(); j++) {
      for (int i = 0; i < j; i++) {
        List<? extends Algorithm> others = unplaced.between(i, j);
        List<? extends Algorithm> between =
            others.isEmpty()
                ? applicationOrder.subList(i + 1, j)
                : concatenation(applicationOrder.subList(i + 1, j), others);
        String reason = conflict(applicationOrder.get(i), applicationOrder.get(j), between);
        if (reason == null
            && epochs != null
            && epochs.get(i).equals(epochs.get(j))
            && LayerFreezing.NAME.equals(applicationOrder.get(i).name())
            && LayerFreezing.NAME.equals(applicationOrder.get(j).name())) {
          reason = freezesNoMore(applicationOrder.get(i), applicationOrder.get(j), between);
        }
        if (reason != null) {
          conflicts.add(new Conflict(i, j, reason));
          break;
        }
      }
    }
    return conflicts;
  }

  /** Two lists read as one, without a copy: a schedule of n entries has n * n / 2 pairs. */
  private static List<Algorithm> concatenation(
      List<? extends Algorithm> first, List<? extends Algorithm> second) {
    return new AbstractList<>() {
      @Override
      public Algorithm get(int index) {
        return index < first.size() ? first.get(index) : second.get(index - first.size());
      }

      @Override
      public int size() {
        return first.size() + second.size();
      }
    };
  }

  /**
   * Tells why two entries whose order is known only during training (a step or duration schedule
   * beside others) cannot both run, whichever goes first, or null when one order works: each is
   * checked after the other with every other entry assumed to run between them.
   *
   * @param a one algorithm
   * @param b the other
   * @param others the schedule's other algorithms
   * @return the reason {@code b} cannot follow {@code a} when neither order composes, else null
   */
  public static String conflictEitherOrder(
      Algorithm a, Algorithm b, List<? extends Algorithm> others) {
    String aFirst = conflict(a, b, others);
    return aFirst != null && conflict(b, a, others) != null ? aFirst : null;
  }

  /**
   * Tells why {@code later} cannot follow {@code earlier}, or null when it can.
   *
   * @param earlier the algorithm applied first
   * @param later the algorithm applied after it
   * @param between the algorithms applied between the two, in order
   * @return the reason, or null
   */
  public static String conflict(
      Algorithm earlier, Algorithm later, List<? extends Algorithm> between) {
    String first = earlier.name();
    String second = later.name();
    boolean sameScope =
        earlier.targets().isAll()
            // The same include/exclude right after: the later entry sees the blocks the earlier
            // one saw, as they left them. With an entry between, that entry may have moved blocks
            // into the patterns' reach (a wrapper changes paths): then the later one may do more.
            || (earlier.targets().equals(later.targets()) && between.isEmpty());
    if (!first.equals(second) || !sameScope) {
      // an earlier entry limited to other targets left other blocks for the later one
      return null;
    }
    Map<String, Object> a = earlier.hyperparameters();
    Map<String, Object> b = later.hyperparameters();
    String noOp = "the earlier entry already did everything this one would do, so it would change";
    switch (second) {
      case GhostBatchNorm.NAME:
        return noOp + " nothing: every BatchNorm is a GhostBatchNormBlock, never replaced again";
      case StochasticDepth.NAME:
        return noOp + " nothing: every residual branch is wrapped, and never wrapped again";
      case BlurPool.NAME:
        boolean convsCovered =
            !bool(b, "replace_convs")
                || (bool(a, "replace_convs") && num(b, "min_channels") >= num(a, "min_channels"));
        boolean poolsCovered = !bool(b, "replace_maxpools") || bool(a, "replace_maxpools");
        return convsCovered && poolsCovered
            ? noOp
                + " nothing: a blurred layer is never blurred again (lower min_channels to blur"
                + " more)"
            : null;
      case WeightStandardization.NAME:
        double n0 = num(a, "n_last_layers_ignore");
        double n1 = num(b, "n_last_layers_ignore");
        // Factorize between splits convolutions into new, unstandardized layers (and an algorithm
        // of the program's own may make any): whatever the earlier entry ignored, the later one
        // may have those to standardize.
        boolean structureKept = onlyBetween(between, MAKE_NO_CONVOLUTION);
        return structureKept && n1 >= n0
            ? noOp + " nothing: every convolution it selects already standardizes its weight"
            : null;
      case SqueezeExcite.NAME:
        return num(b, "min_channels") >= num(a, "min_channels")
            ? noOp
                + " nothing: a gated convolution is never gated again (lower min_channels to"
                + " gate more)"
            : null;
      case Factorize.NAME:
        boolean convs = covered(a, b, "factorize_convs", "min_channels", "latent_channels");
        // Squeeze-excite between adds gate linears (and an algorithm of the program's own may).
        boolean gatesAdded = !onlyBetween(between, MAKE_NO_LINEAR);
        boolean linears =
            covered(a, b, "factorize_linears", "min_features", "latent_features")
                && (!bool(b, "factorize_linears") || !gatesAdded);
        return convs && linears
            ? noOp
                + " nothing: the layers it selects are factorized already, and the layers of a"
                + " factorized block are never factorized again"
            : null;
      default:
        return null;
    }
  }

  /**
   * Layer freezing at the same epoch freezes more only with a later start or a higher level, on
   * other layers, or after an entry that adds layers (factorize, squeeze-excite, or an algorithm of
   * the program's own): the fraction is of the layers an entry targets, so the same fraction of
   * other layers, or of more, may reach past the prefix the earlier one froze.
   */
  private static String freezesNoMore(
      Algorithm earlier, Algorithm later, List<? extends Algorithm> between) {
    boolean sameLayers =
        (earlier.targets().isAll() && later.targets().isAll())
            // Another entry between may move blocks into (or out of) the patterns' reach.
            || (earlier.targets().equals(later.targets()) && between.isEmpty());
    if (!sameLayers || !onlyBetween(between, KEEP_THE_LAYERS)) {
      return null;
    }
    Map<String, Object> a = earlier.hyperparameters();
    Map<String, Object> b = later.hyperparameters();
    return num(b, "freeze_start") >= num(a, "freeze_start")
            && num(b, "freeze_level") <= num(a, "freeze_level")
        ? "at the same epoch, the earlier entry already froze every layer this one would freeze,"
            + " so it would change nothing"
        : null;
  }

  /**
   * Whether the later factorize selects, for one layer kind, only what the earlier one did: a layer
   * is selected when it is wide enough and its latent size is small enough, so a threshold as high
   * and a latent size at least as large (both fractions or both counts, each monotone in its value)
   * select a subset of the earlier one's layers, all factorized already.
   */
  private static boolean covered(
      Map<String, Object> a, Map<String, Object> b, String flag, String min, String latent) {
    double latentA = num(a, latent);
    double latentB = num(b, latent);
    boolean sameKind = (latentA < 1) == (latentB < 1);
    return !bool(b, flag)
        || (bool(a, flag) && num(b, min) >= num(a, min) && sameKind && latentB >= latentA);
  }

  /** Whether every algorithm between is one of the named built-ins. */
  private static boolean onlyBetween(List<? extends Algorithm> between, Set<String> names) {
    for (Algorithm a : between) {
      if (!names.contains(a.name())) {
        return false;
      }
    }
    return true;
  }

  private static boolean bool(Map<String, Object> values, String key) {
    return Boolean.TRUE.equals(values.get(key));
  }

  private static double num(Map<String, Object> values, String key) {
    return ((Number) values.get(key)).doubleValue();
  }
}
