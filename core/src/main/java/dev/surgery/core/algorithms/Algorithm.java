package dev.surgery.core.algorithms;

import ai.djl.ndarray.types.Shape;
import dev.surgery.core.SurgeryPlan;
import dev.surgery.core.Targets;
import dev.surgery.core.events.Event;
import dev.surgery.core.events.State;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * A model-surgery algorithm: a named, configured change to a DJL block tree, such as BlurPool.
 *
 * <p>An algorithm applies to a model, optionally with its live trainers (their parameter stores and
 * optimizer state are kept exact through {@link dev.surgery.core.ModuleSurgery}), and reports what
 * it changed. Applying it is all-or-nothing: on failure the model and trainers are as they were.
 * Applying it twice changes nothing the second time.
 *
 * <p>An algorithm also has Composer's event shape: at each training {@link Event} the host asks
 * {@link #match(Event, State)} and, when it answers true, calls {@link #apply(Event, State)}. The
 * defaults keep a plain surgery algorithm a scheduled one: it matches nothing by itself (a schedule
 * such as {@code epoch: 2} decides when it runs), and {@code apply(event, state)} runs {@link
 * #apply(SurgeryContext)} on {@link State#surgeryContext()}. "Apply at epoch N" written in the
 * event shape is the one-liner {@code return event == Event.EPOCH_END && state.completedEpochs() ==
 * N;} in {@code match}. An algorithm that reacts to events by itself (such as an exponential moving
 * average of the weights) overrides {@link #events()}, {@link #match} and {@link #apply(Event,
 * State)}; config entries without a schedule run it whenever it matches.
 *
 * <p>Algorithms from other jars are found through {@link AlgorithmProvider} (a {@link
 * java.util.ServiceLoader} service) and named in YAML like the built-ins.
 */
public interface Algorithm {

  /**
   * Returns the configuration name used in YAML, logs and reports, for example {@code blurpool}.
   *
   * @return the config name
   */
  String name();

  /**
   * Returns the hyperparameters this instance uses, by their snake_case config names, in a stable
   * order. Recorded in reports and checkpoints so that a surgery can be replayed.
   *
   * @return hyperparameter name to value
   */
  Map<String, Object> hyperparameters();

  /**
   * Tells whether this configured algorithm can only decide what to replace on an initialized model
   * (for example BlurPool's {@code min_channels} needs each convolution's input channels). Such an
   * algorithm scheduled before training must run right after {@code Trainer.initialize}; on an
   * uninitialized model it fails with a {@link dev.surgery.core.SurgeryException} instead of
   * guessing.
   *
   * @return true when input shapes are needed
   */
  default boolean needsInitializedModel() {
    return false;
  }

  /**
   * Tells whether this algorithm follows a schedule over the planned length of training (for
   * example layer freezing), so that it cannot run while {@link SurgeryContext#totalEpochs()} is
   * unknown. A caller that cannot supply the length reports it before applying, naming where the
   * user can set it.
   *
   * @return true when {@link SurgeryContext#totalEpochs()} must be positive
   */
  default boolean needsTotalEpochs() {
    return false;
  }

  /**
   * Applies the algorithm.
   *
   * @param context the model, its trainers and where training stands
   * @return what changed
   * @throws dev.surgery.core.SurgeryException if the surgery failed; nothing was changed then
   */
  SurgeryChanges apply(SurgeryContext context);

  /**
   * Lists the events at which this algorithm may {@link #match} by itself, so that a host can
   * refuse a config whose events its training loop cannot report (never skip them silently) and ask
   * only at these events. Empty by default: the algorithm runs where its schedule says.
   *
   * @return the events, empty for a purely scheduled algorithm
   */
  default Set<Event> events() {
    return Set.of();
  }

  /**
   * Tells whether this algorithm wants to run at an event (Composer's {@code match}). Called only
   * for the events listed by {@link #events()}, and only for config entries without a schedule. It
   * must not change anything.
   *
   * @param event the event being reported
   * @param state the training state at the event
   * @return true to have {@link #apply(Event, State)} called now; false by default
   */
  default boolean match(Event event, State state) {
    return false;
  }

  /**
   * Runs the algorithm at an event (Composer's {@code apply}). The default runs the structural
   * surgery {@link #apply(SurgeryContext)} on {@link State#surgeryContext()}, which is only
   * possible at events where surgery is exact ({@link Event#allowsSurgery()}).
   *
   * @param event the event being reported
   * @param state the training state at the event
   * @return what changed in the block tree, recorded by the host (and replayed when a checkpoint
   *     loads); null when the algorithm changed no structure (for example it only updated parameter
   *     values), which the host does not record as a surgery
   * @throws dev.surgery.core.SurgeryException if a surgery failed; nothing was changed then
   * @throws IllegalStateException if the event does not allow surgery
   */
  default SurgeryChanges apply(Event event, State state) {
    return apply(state.surgeryContext());
  }

  /**
   * Tells what {@link #apply} would do on this context, without changing anything: the model, the
   * trainers' parameter stores and optimizer state stay exactly as they are.
   *
   * @param context the model, its trainers and where training stands
   * @return the blocks that would change, with their old and new types and parameters
   * @throws dev.surgery.core.SurgeryException if the apply would fail
   * @throws PlanUnavailableException if this algorithm cannot plan (no failure: a dry run says "no
   *     plan")
   */
  default SurgeryPlan plan(SurgeryContext context) {
    throw new PlanUnavailableException(name() + " cannot tell its plan");
  }

  /**
   * Tells what {@link #apply} would do, as {@link #plan(SurgeryContext)} does, with each step's
   * multiply-accumulates per sample for one forward of the model on {@code inputShape} where the
   * layer types allow it ({@link dev.surgery.core.ModuleSurgery#plan(ai.djl.nn.Block,
   * java.util.Map, dev.surgery.core.SurgeryOptions, Shape)}). The default plans without counts.
   *
   * @param context the model, its trainers and where training stands
   * @param inputShape the model's input, batch axis first; null for no counts
   * @return the blocks that would change, with their old and new types, parameters and costs
   * @throws dev.surgery.core.SurgeryException if the apply would fail
   * @throws PlanUnavailableException if this algorithm cannot plan (no failure: a dry run says "no
   *     plan")
   */
  default SurgeryPlan plan(SurgeryContext context, Shape inputShape) {
    return plan(context);
  }

  /**
   * Returns where this algorithm applies; {@link Targets#ALL} unless set with {@link #withTargets}.
   *
   * @return the targets
   */
  default Targets targets() {
    return Targets.ALL;
  }

  /**
   * Returns a copy of this algorithm that applies only to the given targets: its own rule still
   * decides what to change among them. With include patterns, an application fails when a pattern
   * matches no block or when nothing among the targets would change.
   *
   * @param targets the targets
   * @return the narrowed algorithm
   * @throws UnsupportedOperationException if this algorithm cannot be narrowed
   */
  default Algorithm withTargets(Targets targets) {
    if (targets.isAll()) {
      return this;
    }
    throw new UnsupportedOperationException(name() + " cannot be limited to targets");
  }

  /**
   * Returns the hyperparameters and, when set, the {@code include} and {@code exclude} lists: all
   * that is needed to build the same algorithm again with {@link AlgorithmSpec#create}.
   *
   * @return setting name to value, in a stable order
   */
  default Map<String, Object> settings() {
    Map<String, Object> settings = new LinkedHashMap<>(hyperparameters());
    targets().putInto(settings);
    return settings;
  }
}
