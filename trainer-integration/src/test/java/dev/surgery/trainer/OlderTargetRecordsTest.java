package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.MalformedModelException;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import dev.surgery.core.algorithms.LayerFreezing;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Records an earlier build wrote for entries this build refuses before they run: a checkpoint that
 * holds one must still load where the record says the entry changed nothing.
 */
class OlderTargetRecordsTest {

  private static final Shape[] INPUT = {new Shape(1, 4, 6, 6)};

  private static Block model() {
    return new SequentialBlock().add(conv()).add(conv()).add(Linear.builder().setUnits(2).build());
  }

  private static Conv2d conv() {
    return Conv2d.builder()
        .setFilters(4)
        .setKernelShape(new Shape(3, 3))
        .optPadding(new Shape(1, 1))
        .build();
  }

  private static SurgeryRecord layerFreezingOf(String include) {
    Map<String, Object> settings = new LinkedHashMap<>(LayerFreezing.builder().build().settings());
    settings.put("include", List.of(include));
    return new SurgeryRecord(LayerFreezing.NAME, settings, 2, 2, Map.of(), null);
  }

  /**
   * Before ecec2fd6, {@code layer_freezing} with {@code include: [01Conv2d]} (one layer, the last
   * of the targeted ones, which never freezes) ran, froze nothing and was recorded with no changes;
   * this build refuses such an include, and its replay refused the checkpoint ("cannot be replayed
   * on this architecture: ... can ever freeze"). The record and the replay agree that nothing
   * changes: the checkpoint loads, nothing frozen. An include that selects nothing here is still
   * another architecture.
   */
  @Test
  void aRecordOfAnIncludeThatCouldNeverFreezeReplaysAsNothing() throws Exception {
    try (NDManager manager = NDManager.newBaseManager()) {
      Block fresh = model();
      SurgeryCheckpoint.replay(
          fresh, List.of(layerFreezingOf("01Conv2d")), manager, DataType.FLOAT32, INPUT, "old");
      List<String> frozen = new ArrayList<>();
      for (Parameter p : fresh.getParameters().values()) {
        if (!p.requiresGradient()) {
          frozen.add(p.getName());
        }
      }
      assertEquals(List.of(), frozen);

      MalformedModelException other =
          assertThrows(
              MalformedModelException.class,
              () ->
                  SurgeryCheckpoint.replay(
                      model(),
                      List.of(layerFreezingOf("05Conv2d")),
                      manager,
                      DataType.FLOAT32,
                      INPUT,
                      "other"));
      assertTrue(
          other.getMessage().contains("cannot be replayed on this architecture")
              && other.getMessage().contains("'05Conv2d' matches no block"),
          other.getMessage());
    }
  }
}
