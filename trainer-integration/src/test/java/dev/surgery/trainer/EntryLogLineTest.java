package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryChanges.Change;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The INFO line an applied entry logs ({@link AppliedEntries#logLine}), worked out by hand from its
 * documented shape: {@code Surgery: <algorithm> <when> replaced|froze <n> block(s)|layer(s)
 * (<old->new> x<count>, ...), parameters <before> -> <after>, <ms> ms}.
 */
class EntryLogLineTest {

  private static SurgeryChanges changes(long before, long after, Change... changes) {
    return new SurgeryChanges("a", Map.of(), List.of(changes), before, after, 0);
  }

  @Test
  void countsReplacedBlocksByTypePairInTheOrderSeen() {
    assertEquals(
        "Surgery: a at epoch 1 replaced no blocks, parameters 10 -> 10, 0 ms",
        AppliedEntries.logLine("a", "at epoch 1", changes(10, 10), 0));
    // layer_freezing's run that froze nothing says so in its own words (an outside probe: it read
    // "replaced no blocks" where its other runs read "froze N layers").
    assertEquals(
        "Surgery: layer_freezing at epoch 1 froze no layers, parameters 10 -> 10, 0 ms",
        AppliedEntries.logLine("layer_freezing", "at epoch 1", changes(10, 10), 0));
    assertEquals(
        "Surgery: a at epoch 2 replaced 1 block (Conv2d->BlurConv2d x1), parameters 1,234,567 ->"
            + " 1,234,570, 3 ms",
        AppliedEntries.logLine(
            "a",
            "at epoch 2",
            changes(1_234_567, 1_234_570, new Change("p", "Conv2d", "BlurConv2d")),
            2_500_000));
    assertEquals(
        "Surgery: a every 9ba replaced 3 blocks (Linear->B x2, Conv2d->C x1), parameters 5 -> 4,"
            + " 1 ms",
        AppliedEntries.logLine(
            "a",
            "every 9ba",
            changes(
                5,
                4,
                new Change("p", "Linear", "B"),
                new Change("q", "Conv2d", "C"),
                new Change("r", "Linear", "B")),
            1_499_999));
  }

  @Test
  void aFreezeSaysLayersFrozenOnlyWhenEveryChangeIsOne() {
    assertEquals(
        "Surgery: f at epoch 1 froze 1 layer (Conv2d->frozen Conv2d x1), parameters 3 -> 3, 0 ms",
        AppliedEntries.logLine(
            "f", "at epoch 1", changes(3, 3, new Change("p", "Conv2d", "frozen Conv2d")), 0));
    assertEquals(
        "Surgery: f at epoch 1 froze 2 layers (Conv2d->frozen Conv2d x2), parameters 3 -> 3, 0 ms",
        AppliedEntries.logLine(
            "f",
            "at epoch 1",
            changes(
                3,
                3,
                new Change("p", "Conv2d", "frozen Conv2d"),
                new Change("q", "Conv2d", "frozen Conv2d")),
            0));
    // A replacement beside a freeze: blocks were replaced.
    assertEquals(
        "Surgery: f at epoch 1 replaced 2 blocks (Conv2d->frozen Conv2d x1, Linear->B x1),"
            + " parameters 3 -> 3, 0 ms",
        AppliedEntries.logLine(
            "f",
            "at epoch 1",
            changes(
                3, 3, new Change("p", "Conv2d", "frozen Conv2d"), new Change("q", "Linear", "B")),
            0));
  }

  @Test
  void anUnknownParameterCountOnEitherSideIsSaidUnknown() {
    long unknown = SurgeryChanges.UNKNOWN_PARAMETERS;
    String line = ", parameters unknown (model not initialized), 0 ms";
    assertEquals(
        "Surgery: a at epoch 0 replaced no blocks" + line,
        AppliedEntries.logLine("a", "at epoch 0", changes(unknown, 7), 0));
    assertEquals(
        "Surgery: a at epoch 0 replaced no blocks" + line,
        AppliedEntries.logLine("a", "at epoch 0", changes(7, unknown), 0));
  }
}
