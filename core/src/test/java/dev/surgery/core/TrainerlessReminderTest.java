package dev.surgery.core;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The reminder that a trainer must follow a surgery made without one is said once per process at
 * INFO (slf4j-simple's default level in these tests, written to {@code System.err}); a job that
 * changes trees without a trainer again and again is not flooded with it.
 */
class TrainerlessReminderTest {

  @Test
  void theReminderIsSaidOnceAtInfoThenOnlyAtDebug() {
    ModuleSurgery.TRAINERLESS_REMINDED.set(false);
    PrintStream original = System.err;
    ByteArrayOutputStream captured = new ByteArrayOutputStream();
    System.setErr(new PrintStream(captured, true, UTF_8));
    try {
      for (int i = 0; i < 3; i++) {
        SequentialBlock root = new SequentialBlock().add(Linear.builder().setUnits(2).build());
        Map<BlockMatcher, ReplacementFunction> policy =
            Map.of(
                BlockMatcher.ofClass(Linear.class),
                (block, index) -> Linear.builder().setUnits(2).build());
        assertEquals(
            1, ModuleSurgery.replaceModules(root, policy, SurgeryOptions.defaults()).size());
      }
    } finally {
      System.setErr(original);
    }
    long reminders =
        captured.toString(UTF_8).lines().filter(l -> l.contains("without a trainer")).count();
    assertEquals(1, reminders, captured.toString(UTF_8));
  }
}
