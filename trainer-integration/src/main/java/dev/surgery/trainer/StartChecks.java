package dev.surgery.trainer;

import ai.djl.nn.Block;
import ai.djl.training.Trainer;
import ai.djl.training.listener.SaveModelTrainingListener;
import ai.djl.training.listener.TrainingListener;
import ai.djl.training.loss.AbstractCompositeLoss;
import ai.djl.training.loss.L2Loss;
import ai.djl.training.loss.Loss;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.SurgeryException;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.events.Event;
import dev.surgery.core.internal.BlockFields;
import dev.surgery.core.internal.CapturedFunctions;
import dev.surgery.core.internal.ClosedPackageException;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import dev.surgery.trainer.config.Trigger;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * What {@link SurgeryListener} checks before a trainer's first step, so that a mistake shows there
 * and not epochs into training: patterns that select nothing because of a letter's case, block
 * classes whose fields a later surgery could not read, a save listener that would checkpoint the
 * changed model with the old model's metrics, entries that can no longer run or still lack the
 * planned length at the first batch, DJL's L2Loss, whose gradients a garbage collection can spoil,
 * and a listener that the initialized trainer does not list (it would hear of no epoch end).
 */
final class StartChecks {

  private final SurgeryListener owner;
  private final EntryRunner runner;
  private final FailedEntries failures;
  private final NotRunEntries notRun;
  private final TrainingLength length;
  private final Set<Event> observable;
  private final ListenerWarnings warnings;

  /** Whether the listener-order warning was given (once per listener, not per trial). */
  private final AtomicBoolean saveOrderWarned = new AtomicBoolean();

  /** Whether the warning of DJL's L2Loss was given (once per listener). */
  private final AtomicBoolean l2LossWarned = new AtomicBoolean();

  StartChecks(
      SurgeryListener owner,
      EntryRunner runner,
      FailedEntries failures,
      NotRunEntries notRun,
      TrainingLength length,
      Set<Event> observable,
      ListenerWarnings warnings) {
    this.owner = owner;
    this.runner = runner;
    this.failures = failures;
    this.notRun = notRun;
    this.length = length;
    this.observable = observable;
    this.warnings = warnings;
  }

  /** At a trainer's start: its patterns checked once, and the order of the save listener. */
  void atTrainingBegin(Trainer trainer, TrainerState st) {
    checkModelOnce(trainer, st);
    warnSaveAfterSurgery(trainer, st);
    warnLossReadingFreedMemory(trainer);
  }

  /** Right after the trainer's initialization. */
  void atInitialized(Trainer trainer, TrainerState st) {
    checkModelOnce(trainer, st);
  }

  /**
   * Warns, once per trainer, when this listener is not among the trainer's training listeners: a
   * program that built it and called {@code onInitialized} but never added it to the config gets
   * its epoch-0 entries and none after (DJL never tells it of a batch or an epoch end), which was
   * silent. A loop may still report those itself ({@code onEvent}), so this is no refusal. The
   * trainer's state is made only for a listener the trainer does not list.
   */
  void warnIfNotListed(Trainer trainer, TrainerRegistry registry) {
    List<TrainingListener> registered;
    try {
      registered = DjlTrainers.listeners(trainer);
    } catch (RuntimeException e) {
      return; // the agent's start-up check names a DJL that changed
    }
    if (registered == null || registered.stream().anyMatch(l -> l == owner)) {
      return;
    }
    TrainerState st = registry.state(trainer);
    if (st.unregisteredWarned || st.begun) {
      return; // training began for it: a listener of the program's forwards DJL's events to it
    }
    st.unregisteredWarned = true;
    warnings.warn(
        "Surgery: this SurgeryListener is not one of trainer "
            + st.ordinal
            + "'s training listeners, so DJL will not tell it of batches and epoch ends: only"
            + " epoch-0 entries run, unless the training loop reports those events to it itself"
            + " (listener.onEvent). Add it to the training config before model.newTrainer(config):"
            + " config.addTrainingListeners(listener)");
  }

  /**
   * Before the first step: an entry that cannot run any more (no length will be announced, an
   * initialization it waits for was never reported, its moment passed before the listener saw the
   * trainer) fails or is listed here, not epochs into training; one still waiting for a length a
   * fit may yet announce (under a driver that reports fit starts) is warned of.
   */
  void atFirstBatch(Trainer trainer, TrainerState st) {
    checkModelOnce(trainer, st);
    Schedule schedule = st.schedule;
    for (int i = 0; i < schedule.size(); i++) {
      ScheduledAlgorithm entry = schedule.entry(i);
      if (schedule.status(i) == EntryStatus.AWAITING_LENGTH
          || (schedule.isPending(i)
              && entry.trigger().kind() != Trigger.Kind.EVENTS
              && !observable.contains(Event.FIT_START)
              && length.lacks(st, entry))) {
        // Training starts without the length an entry needs, and this listener's driver reports
        // no fit start (DJL's callbacks alone: no SurgeryTrain, no agent), so nothing announces
        // it from now on: the entry fails (or is skipped) here, before the first step, naming
        // where to set it, not epochs into training. (Under the agent a warm-up batch may come
        // before EasyTrain.fit announces the length.)
        runner.apply(trainer, st, i, Event.FIT_START);
        continue;
      }
      if (schedule.isPending(i)
          && entry.trigger().kind() != Trigger.Kind.EVENTS
          && length.lacks(st, entry)) {
        // A fit may still announce the length (the agent sees EasyTrain.fit; a warm-up batch may
        // come first), so the entry waits; a loop of its own never announces it, and the entry
        // would fail only when due, epochs into training: said now.
        warnings.warn(
            "Surgery: "
                + entry.describe()
                + " needs the planned number of epochs, and nothing has announced it by the first"
                + " batch: "
                + length.hint()
                + ". A training loop that does not call such a fit leaves it unknown, and the entry"
                + " fails when it is due");
      }
      if (schedule.status(i) == EntryStatus.DEFERRED) {
        String cause =
            "needs an initialized model and is still waiting: call"
                + " surgeryListener.onInitialized(trainer) right after trainer.initialize(...)"
                + " (the surgery agent does it for the listener it adds, not for one the program"
                + " adds itself), or schedule it at epoch 1 or later";
        // Named as what stopped training, not left for the end to blame the loop.
        failures.stopsTrainingBeforeItStarts(st, i, cause);
        throw new IllegalStateException("Surgery: " + entry.describe() + " " + cause);
      }
      if (schedule.isPendingBeforeTraining(i)) {
        notRun.missed(
            st,
            i,
            "the listener did not see onTrainingBegin for this trainer (it was added after the"
                + " Trainer was created): add it to the training config before"
                + " model.newTrainer(config), or call listener.onInitialized(trainer) right"
                + " after trainer.initialize(...)");
      }
    }
  }

  /** The checks of the model's blocks, once per trainer, at the first event that has the model. */
  private void checkModelOnce(Trainer trainer, TrainerState st) {
    if (st.modelChecked) {
      return;
    }
    st.modelChecked = true;
    Block root = trainer.getModel().getBlock();
    if (root == null) {
      return;
    }
    warnClosedPackages(root, st);
    refuseMisspeltPatterns(root, st);
  }

  /**
   * Fails, before training, each open entry whose include or exclude pattern selects nothing in the
   * model but would with case ignored ({@code type:Conv2D}): a typo that would otherwise fail the
   * entry only when it runs, epochs into training. Once per trainer; on_error decides as for any
   * failure of the entry (fail: training stops here; skip: the entry is dropped).
   */
  private void refuseMisspeltPatterns(Block root, TrainerState st) {
    for (int i = 0; i < st.schedule.size(); i++) {
      Algorithm algorithm = st.schedule.entry(i).algorithm();
      if (!st.schedule.isOpen(i) || algorithm.targets().isAll()) {
        continue;
      }
      String typo = algorithm.targets().caseMismatch(root);
      if (typo != null) {
        failures.failed(
            st,
            i,
            Event.FIT_START,
            new SurgeryException(null, algorithm.name() + ": the " + typo),
            0);
      }
    }
  }

  /**
   * Warns, before training, of a block class whose named module does not open its package to DJL
   * Surgery: a surgery that needs its fields (a block below it replaced, a checkpoint replayed)
   * will be refused and rolled back when it runs, epochs into training. A block class of such a
   * module, or a lambda block running a function of one that captured values, is named once per
   * package, kind and trainer.
   */
  private void warnClosedPackages(Block root, TrainerState st) {
    boolean open = false;
    for (int i = 0; i < st.schedule.size() && !open; i++) {
      open = st.schedule.isOpen(i);
    }
    if (!open) {
      return;
    }
    Set<String> warned = new HashSet<>();
    for (Map.Entry<Block, String> e : BlockPaths.index(root).entrySet()) {
      Block block = e.getKey();
      Class<?> owner = BlockFields.closedFieldOwner(block.getClass());
      Class<?> function = owner == null ? CapturedFunctions.closedFunctionClass(block) : null;
      Class<?> closed = owner != null ? owner : function;
      // Once per module package and kind (one directive opens them all, but a lambda named first
      // must not hide the block class whose fields a surgery needs).
      if (closed == null
          || !warned.add(
              closed.getModule().getName()
                  + "/"
                  + closed.getPackageName()
                  + (owner != null ? "#fields" : "#function"))) {
        continue;
      }
      warnings.warn(
          "Surgery: block "
              + BlockPaths.display(e.getValue())
              + (owner != null
                  ? " is a " + owner.getName() + ", whose fields"
                  : " runs a function of class " + function.getName() + ", whose captured values")
              + " the engine cannot read: "
              + ClosedPackageException.advice(closed)
              + ". Until then a surgery that needs them (a block below it or one it calls"
              + " replaced, a checkpoint replayed) is refused and rolled back when it runs");
    }
  }

  /**
   * Warns once of DJL's {@code L2Loss} on the PyTorch engine: it multiplies by the Java number 0.5,
   * which the engine makes a tensor over a buffer it does not own and keeps for the backward pass,
   * so a garbage collection between forward and backward makes that step's gradients wrong. Not
   * surgery's doing, but a run that trains a wrong model silently, and twin runs that differ, are
   * what a user of this library checks for.
   */
  private void warnLossReadingFreedMemory(Trainer trainer) {
    if (l2LossWarned.get()
        || !"PyTorch".equals(trainer.getManager().getEngine().getEngineName())
        || !holdsDjlsL2Loss(trainer.getLoss())
        || !l2LossWarned.compareAndSet(false, true)) {
      return;
    }
    warnings.warn(
        "Surgery: the trainer's loss is DJL's L2Loss, which on the PyTorch engine keeps a"
            + " Java-owned 0.5 for the backward pass: a garbage collection between forward and"
            + " backward makes that step's gradients wrong (DJL 0.36, with or without surgery)."
            + " Multiply by an array the engine makes instead (see the user guide, 'A DJL trap"
            + " outside surgery').");
  }

  /** Whether the loss is DJL's own L2Loss, or a composite loss holding one. */
  private static boolean holdsDjlsL2Loss(Loss loss) {
    if (loss == null) {
      return false;
    }
    if (loss.getClass() == L2Loss.class) {
      return true;
    }
    if (loss instanceof AbstractCompositeLoss composite) {
      for (Loss component : composite.getComponents()) {
        if (holdsDjlsL2Loss(component)) {
          return true;
        }
      }
    }
    return false;
  }

  /**
   * Warns when DJL's {@link SaveModelTrainingListener} comes after this listener in a trainer's
   * list and an entry may run at an epoch end: there the checkpoint it saves would hold the changed
   * model, while the epoch's metrics (and the {@code Accuracy} a save callback sets from them)
   * belong to the model before the surgery. Said once per listener; the agent adds its listener
   * last, where this cannot happen.
   */
  private void warnSaveAfterSurgery(Trainer trainer, TrainerState st) {
    if (saveOrderWarned.get() || !runsAtEpochEnds(st.schedule)) {
      return;
    }
    boolean after = false;
    for (TrainingListener listener : DjlTrainers.listeners(trainer)) {
      if (listener == owner) {
        after = true;
      } else if (after && listener instanceof SaveModelTrainingListener) {
        if (!saveOrderWarned.compareAndSet(false, true)) {
          return;
        }
        warnings.warn(
            "Surgery: this SurgeryListener comes before DJL's SaveModelTrainingListener in the"
                + " trainer's listeners, so at an epoch end where surgery runs the checkpoint holds"
                + " the changed model while the epoch's metrics (and an Accuracy a save callback"
                + " sets from them) belong to the model before the surgery. Add the"
                + " SurgeryListener after the SaveModelTrainingListener (the agent adds its"
                + " listener last)");
        return;
      }
    }
  }

  /** Whether an entry of a schedule may run at an epoch end (not only before training). */
  private static boolean runsAtEpochEnds(Schedule schedule) {
    for (int i = 0; i < schedule.size(); i++) {
      Trigger trigger = schedule.entry(i).trigger();
      switch (trigger.kind()) {
        case EPOCH:
          if (trigger.amount() > 0) {
            return true;
          }
          break;
        case EVERY_EPOCHS:
          return true;
        case EVENTS:
          if (schedule.entry(i).algorithm().events().contains(Event.EPOCH_END)) {
            return true;
          }
          break;
        default:
          break;
      }
    }
    return false;
  }
}
