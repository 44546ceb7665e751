package dev.surgery.core;

import ai.djl.training.Trainer;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * How {@link ModuleSurgery#replaceModules} runs: which live trainers to keep exact, whether
 * replacements are visited too, and whether a replacement may change output shapes.
 */
public final class SurgeryOptions {

  private final List<Trainer> trainers;
  private final boolean recurseOnReplacements;
  private final boolean allowShapeChange;
  private final Map<Object, Integer> indices;

  private SurgeryOptions(Builder builder) {
    trainers = List.copyOf(builder.trainers);
    recurseOnReplacements = builder.recurseOnReplacements;
    allowShapeChange = builder.allowShapeChange;
    indices = builder.indices;
  }

  /**
   * Returns the default options: model only, no recursion, shapes must be kept.
   *
   * @return the defaults
   */
  public static SurgeryOptions defaults() {
    return builder().build();
  }

  /**
   * Creates a builder.
   *
   * @return a new builder
   */
  public static Builder builder() {
    return new Builder();
  }

  /**
   * Returns the trainers whose parameter stores and optimizers follow the surgery.
   *
   * @return the trainers, possibly empty
   */
  public List<Trainer> getTrainers() {
    return trainers;
  }

  /**
   * Tells whether replacements and their children are visited too.
   *
   * @return true to recurse on replacements
   */
  public boolean isRecurseOnReplacements() {
    return recurseOnReplacements;
  }

  /**
   * Tells whether a replacement may produce other output shapes than the block it replaces.
   *
   * @return true to allow shape changes
   */
  public boolean isAllowShapeChange() {
    return allowShapeChange;
  }

  /**
   * Returns the mutable per-policy call counters, keyed by policy key (a class or a matcher).
   *
   * @return the counters; updated in place when a surgery's traversal ends (not during it)
   */
  public Map<Object, Integer> getIndices() {
    return indices;
  }

  /** Builds {@link SurgeryOptions}. */
  public static final class Builder {

    private final List<Trainer> trainers = new ArrayList<>();
    private boolean recurseOnReplacements;
    private boolean allowShapeChange;
    private Map<Object, Integer> indices = new HashMap<>();

    Builder() {}

    /**
     * Sets the live trainers to keep exact (null or empty: change the model only).
     *
     * @param trainers the trainers
     * @return this builder
     * @throws NullPointerException if {@code trainers} holds a null
     */
    public Builder optTrainers(Collection<Trainer> trainers) {
      ModuleSurgery.requireNoNullTrainer(trainers, "trainers");
      this.trainers.clear();
      if (trainers != null) {
        this.trainers.addAll(trainers);
      }
      return this;
    }

    /**
     * Sets whether replacements and their children are visited too. A chain of replacements of
     * replacements (counting the blocks a replacement holds as deep as it) longer than 1,000 is
     * refused as a policy that never stops matching its own output.
     *
     * @param recurse true to recurse
     * @return this builder
     */
    public Builder optRecurseOnReplacements(boolean recurse) {
      this.recurseOnReplacements = recurse;
      return this;
    }

    /**
     * Allows replacements whose output shapes differ from the replaced block's.
     *
     * @param allow true to allow
     * @return this builder
     */
    public Builder optAllowShapeChange(boolean allow) {
      this.allowShapeChange = allow;
      return this;
    }

    /**
     * Sets the per-policy counters to start from and update (Composer's {@code indices}).
     *
     * @param indices the mutable counters, keyed by policy key; null for counters of the options'
     *     own, all starting at 0 (as {@link ModuleSurgery#replaceModuleClasses} takes null indices)
     * @return this builder
     */
    public Builder optIndices(Map<Object, Integer> indices) {
      // Null was kept as null: a plan took it for fresh counters, but the surgery itself failed on
      // it (a NullPointerException wrapped as a rolled-back SurgeryException at the first match).
      this.indices = indices != null ? indices : new HashMap<>();
      return this;
    }

    /**
     * Builds the options.
     *
     * @return the options
     */
    public SurgeryOptions build() {
      return new SurgeryOptions(this);
    }
  }
}
