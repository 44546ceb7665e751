package dev.surgery.core;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import dev.surgery.core.internal.NoTrainerRegistered;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The reminder that a trainer must follow a surgery made without one is said once per process at
 * INFO (slf4j-simple's default level in these tests, written to {@code System.err}); a job that
 * changes trees without a trainer again and again is not flooded with it. A tree that was never
 * initialized gets no reminder: no trainer can have registered its parameters.
 */
class TrainerlessReminderTest {

  private static final Map<BlockMatcher, ReplacementFunction> LINEAR_TO_LINEAR =
      Map.of(
          BlockMatcher.ofClass(Linear.class),
          (block, index) -> Linear.builder().setUnits(2).build());

  /** Runs {@code surgeries} trainerless surgeries and returns the reminder lines logged. */
  private static long reminders(int surgeries, boolean initialized) {
    return reminders(surgeries, initialized, false);
  }

  /**
   * As above; {@code arraysFreed} frees the parameters' arrays after the initialization, as a
   * checkpoint's replay does (shapes recorded, no array a trainer could hold).
   */
  private static long reminders(int surgeries, boolean initialized, boolean arraysFreed) {
    return reminders(surgeries, initialized, arraysFreed, "without a trainer");
  }

  /** As above, counting the lines that hold {@code marker}. */
  private static long reminders(
      int surgeries, boolean initialized, boolean arraysFreed, String marker) {
    PrintStream original = System.err;
    ByteArrayOutputStream captured = new ByteArrayOutputStream();
    System.setErr(new PrintStream(captured, true, UTF_8));
    try (NDManager manager = NDManager.newBaseManager()) {
      for (int i = 0; i < surgeries; i++) {
        SequentialBlock root = new SequentialBlock().add(Linear.builder().setUnits(2).build());
        if (initialized) {
          root.initialize(manager, DataType.FLOAT32, new Shape(1, 3));
        }
        if (arraysFreed) {
          root.getParameters().values().forEach(p -> p.close());
        }
        assertEquals(
            1,
            ModuleSurgery.replaceModules(root, LINEAR_TO_LINEAR, SurgeryOptions.defaults()).size());
      }
    } finally {
      System.setErr(original);
    }
    return captured.toString(UTF_8).lines().filter(l -> l.contains(marker)).count();
  }

  @Test
  void theReminderIsSaidOnceAtInfoThenOnlyAtDebug() {
    ModuleSurgery.TRAINERLESS_REMINDED.set(false);
    assertEquals(1, reminders(3, true));
  }

  /** One replaced block is said as one (the line read "Surgery replaced 1 blocks"). */
  @Test
  void oneReplacedBlockIsSaidAsOne() {
    ModuleSurgery.TRAINERLESS_REMINDED.set(false);
    assertEquals(1, reminders(1, true, false, "Surgery replaced 1 block without a trainer: "));
  }

  @Test
  void noReminderForShapesWithoutArrays() {
    ModuleSurgery.TRAINERLESS_REMINDED.set(false);
    assertEquals(0, reminders(2, true, true));
    assertFalse(ModuleSurgery.TRAINERLESS_REMINDED.get());
  }

  /**
   * A caller that knows none of the trainers it serves registered the parameters (the training
   * listener before its trainer's first forward, on a loaded model) declares it: the reminder then
   * speaks only of another trainer of the model, which the caller cannot see (a reviewer: one the
   * listener does not serve that trained the model before crashed at its next step, told nothing).
   */
  @Test
  void whereTheCallerDeclaresItsTrainersHoldNothingTheReminderSpeaksOfOtherTrainers() {
    ModuleSurgery.TRAINERLESS_REMINDED.set(false);
    boolean previous = NoTrainerRegistered.declare(true);
    try {
      assertEquals(
          1, reminders(2, true, false, "before the trainer's first step: another Trainer"));
    } finally {
      NoTrainerRegistered.restore(previous);
    }
    assertEquals(false, NoTrainerRegistered.declared());
    ModuleSurgery.TRAINERLESS_REMINDED.set(false);
    assertEquals(1, reminders(1, true));
  }

  @Test
  void noReminderBeforeInitialization() {
    ModuleSurgery.TRAINERLESS_REMINDED.set(false);
    assertEquals(0, reminders(2, false));
    // Not used up either: the first surgery that could matter still says it at INFO.
    assertFalse(ModuleSurgery.TRAINERLESS_REMINDED.get());
    assertEquals(1, reminders(1, true));
  }
}
