package dev.surgery.trainer.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/** The schedule keys: epoch, step, at (time strings), every; and entries without a schedule. */
class ScheduleConfigTest {

  /** The message of a config refused as a whole. */
  private static String refusal(String yaml) {
    return assertThrows(SurgeryConfigException.class, () -> SurgeryConfig.parse(yaml, "s.yaml"))
        .getMessage();
  }

  private static List<Trigger> triggers(String yaml) {
    return SurgeryConfig.parse(yaml, "s.yaml").getAlgorithms().stream()
        .map(ScheduledAlgorithm::trigger)
        .toList();
  }

  @Test
  void everyScheduleKeyReadsAsItsTrigger() {
    assertEquals(
        List.of(
            Trigger.atEpoch(2),
            Trigger.atEpoch(3),
            Trigger.atStep(100),
            Trigger.atStep(7),
            new Trigger(Trigger.Kind.DURATION, 0, 0.5),
            new Trigger(Trigger.Kind.EVERY_EPOCHS, 2, 0),
            new Trigger(Trigger.Kind.EVERY_STEPS, 50, 0)),
        triggers(
            "algorithms:\n"
                + "  - {name: blurpool, epoch: 2}\n"
                + "  - {name: squeeze_excite, at: 3ep}\n"
                + "  - {name: weight_standardization, step: 100}\n"
                + "  - {name: ghost_batchnorm, at: 7ba}\n"
                + "  - {name: factorize, at: 0.5dur}\n"
                + "  - {name: stochastic_depth, every: 2ep}\n"
                + "  - {name: layer_freezing, every: 50ba}\n"
                + "total_steps: 1000\n"));
  }

  @Test
  void aBuiltinWithoutScheduleIsRefusedAtItsEntry() {
    SurgeryConfigException e =
        assertThrows(
            SurgeryConfigException.class,
            () -> SurgeryConfig.parse("algorithms:\n  - name: blurpool\n", "s.yaml"));
    assertTrue(
        e.getMessage().contains("s.yaml:2:5: algorithms entry 1 ('blurpool') has no 'epoch'")
            && e.getMessage().contains("Only an algorithm that reacts to events"),
        e.getMessage());
  }

  @Test
  void aStepAfterTotalStepsAndATimeStringOfTheWrongTypeAreRefusedWhereTheyAre() {
    SurgeryConfigException e =
        assertThrows(
            SurgeryConfigException.class,
            () ->
                SurgeryConfig.parse(
                    "algorithms:\n"
                        + "  - {name: blurpool, step: 11}\n"
                        + "  - {name: squeeze_excite, at: 3}\n"
                        + "  - {name: factorize, every: 0ba}\n"
                        + "total_steps: 10\n",
                    "s.yaml"));
    String m = e.getMessage();
    assertTrue(m.contains("s.yaml:2:28: step 11 is after the last step (total_steps: 10)"), m);
    assertTrue(m.contains("s.yaml:3:32: at takes a time string such as '2ep'"), m);
    assertTrue(m.contains("s.yaml:4:30: every must be at least 1ep or 1ba"), m);
  }

  @Test
  void triggersInCodeAreCheckedWhereTheyAreMade() {
    // Built in code, not read from YAML: an epoch past MAX_EPOCH used to pass the trigger and fail
    // in build() as an ArithmeticException naming no entry.
    IllegalArgumentException epoch =
        assertThrows(
            IllegalArgumentException.class,
            () -> new Trigger(Trigger.Kind.EPOCH, 3_000_000_000L, 0));
    assertTrue(epoch.getMessage().contains("<= " + SurgeryConfig.MAX_EPOCH), epoch.getMessage());
    assertThrows(
        IllegalArgumentException.class,
        () -> new Trigger(Trigger.Kind.EVERY_EPOCHS, SurgeryConfig.MAX_EPOCH + 1L, 0));
    new Trigger(Trigger.Kind.EVERY_STEPS, 3_000_000_000L, 0); // steps may be many
    // An entry's epoch is 0 for triggers not placed by epoch, as its Javadoc says.
    IllegalArgumentException step =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                new ScheduledAlgorithm(
                    dev.surgery.core.algorithms.Algorithms.spec("blurpool")
                        .create(java.util.Map.of()),
                    5,
                    0,
                    "x",
                    Trigger.atStep(10)));
    assertTrue(step.getMessage().contains("disagrees with the trigger"), step.getMessage());
  }

  @Test
  void theLastEpochAndStepAreAcceptedAndTheFirstAfterThemIsRefused() {
    // At the boundary: an entry at the planned length runs at the last epoch's end or the last
    // step, so it is accepted (and warned of at training's end if it changes a model nothing trains
    // afterwards); one past it never runs.
    assertEquals(
        List.of(
            Trigger.atEpoch(5),
            new Trigger(Trigger.Kind.EVERY_EPOCHS, 5, 0),
            Trigger.atEpoch(5),
            Trigger.atStep(10),
            new Trigger(Trigger.Kind.EVERY_STEPS, 10, 0),
            Trigger.atStep(10)),
        triggers(
            "algorithms:\n"
                + "  - {name: blurpool, epoch: 5}\n"
                + "  - {name: squeeze_excite, every: 5ep}\n"
                + "  - {name: factorize, at: 5ep}\n"
                + "  - {name: weight_standardization, step: 10}\n"
                + "  - {name: ghost_batchnorm, every: 10ba}\n"
                + "  - {name: stochastic_depth, at: 10ba}\n"
                + "total_epochs: 5\n"
                + "total_steps: 10\n"));
    String m =
        refusal(
            "algorithms:\n"
                + "  - {name: blurpool, epoch: 6}\n"
                + "  - {name: squeeze_excite, every: 6ep}\n"
                + "  - {name: factorize, at: 6ep}\n"
                + "  - {name: weight_standardization, step: 11}\n"
                + "  - {name: ghost_batchnorm, every: 11ba}\n"
                + "  - {name: stochastic_depth, at: 11ba}\n"
                + "total_epochs: 5\n"
                + "total_steps: 10\n");
    assertTrue(m.contains("s.yaml:2:29: epoch 6 is after the last epoch (total_epochs: 5)"), m);
    assertTrue(m.contains("s.yaml:3:35: every 6 epochs first runs after epoch 6"), m);
    assertTrue(m.contains("s.yaml:4:27: epoch 6 is after the last epoch"), m);
    assertTrue(m.contains("s.yaml:5:42: step 11 is after the last step (total_steps: 10)"), m);
    assertTrue(m.contains("s.yaml:6:36: every 11 steps first runs at step 11"), m);
    assertTrue(m.contains("s.yaml:7:34: step 11 is after the last step"), m);
  }

  @Test
  void stepsAndEpochsAreAcceptedUpToTheirLimitsAndRefusedBeyond() {
    assertEquals(
        List.of(
            Trigger.atStep(1),
            new Trigger(Trigger.Kind.EVERY_STEPS, 1, 0),
            Trigger.atStep(SurgeryConfig.MAX_STEP),
            Trigger.atEpoch(SurgeryConfig.MAX_EPOCH),
            Trigger.atEpoch(SurgeryConfig.MAX_EPOCH)),
        triggers(
            "algorithms:\n"
                + "  - {name: blurpool, at: 1ba}\n"
                + "  - {name: squeeze_excite, every: 1ba}\n"
                + "  - {name: factorize, at: "
                + SurgeryConfig.MAX_STEP
                + "ba}\n"
                + "  - {name: ghost_batchnorm, at: "
                + SurgeryConfig.MAX_EPOCH
                + "ep}\n"
                + "  - {name: stochastic_depth, epoch: "
                + SurgeryConfig.MAX_EPOCH
                + "}\n"));
    String m =
        refusal(
            "algorithms:\n"
                + "  - {name: blurpool, at: 0ba}\n"
                + "  - {name: factorize, at: "
                + (SurgeryConfig.MAX_STEP + 1)
                + "ba}\n"
                + "  - {name: ghost_batchnorm, at: "
                + (SurgeryConfig.MAX_EPOCH + 1)
                + "ep}\n"
                + "  - {name: stochastic_depth, epoch: "
                + (SurgeryConfig.MAX_EPOCH + 1)
                + "}\n");
    assertTrue(m.contains("s.yaml:2:26: at: a step must be in [1, " + SurgeryConfig.MAX_STEP), m);
    assertTrue(m.contains("s.yaml:3:27: at: a step must be in [1, " + SurgeryConfig.MAX_STEP), m);
    assertTrue(m.contains("s.yaml:4:33: at: an epoch must be at most 1000000"), m);
    assertTrue(m.contains("s.yaml:5:37: epoch must be a whole number in [0, 1,000,000]"), m);
  }
}
