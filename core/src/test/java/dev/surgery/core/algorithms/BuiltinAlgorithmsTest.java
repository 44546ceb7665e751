package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.nn.Block;
import ai.djl.training.Trainer;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class BuiltinAlgorithmsTest {

  @BeforeAll
  static void register() {
    LiveTraining.registerBuiltins();
  }

  private static Map<String, Object> map(Object... kv) {
    Map<String, Object> m = new LinkedHashMap<>();
    for (int i = 0; i < kv.length; i += 2) {
      m.put((String) kv[i], kv[i + 1]);
    }
    return m;
  }

  /**
   * A null factory was wrapped in a lambda and accepted: the spec failed with a bare
   * NullPointerException only when a config first named it (an outside probe).
   */
  @Test
  void aSpecWithoutAFactoryIsRefusedWhereItIsMade() {
    NullPointerException e =
        assertThrows(NullPointerException.class, () -> AlgorithmSpec.of("mine", List.of(), null));
    assertEquals("factory must not be null", e.getMessage());
  }

  @Test
  void registeredWithComposersNamesAndDefaults() {
    Map<String, Map<String, Object>> expected = new LinkedHashMap<>();
    expected.put("weight_standardization", map("n_last_layers_ignore", 0));
    expected.put("ghost_batchnorm", map("ghost_batch_size", 32));
    expected.put("squeeze_excite", map("latent_channels", 64.0, "min_channels", 128));
    expected.put(
        "stochastic_depth",
        map(
            "target_layer_name", "ResNetV1Unit",
            "stochastic_method", "block",
            "drop_rate", 0.2,
            "drop_distribution", "linear"));
    expected.put("layer_freezing", map("freeze_start", 0.5, "freeze_level", 1.0));
    expected.put(
        "factorize",
        map(
            "factorize_convs",
            true,
            "factorize_linears",
            true,
            "min_channels",
            512,
            "latent_channels",
            0.25,
            "min_features",
            512,
            "latent_features",
            0.25));
    for (Map.Entry<String, Map<String, Object>> e : expected.entrySet()) {
      AlgorithmSpec spec = Algorithms.spec(e.getKey());
      assertNotNull(spec, e.getKey());
      Algorithm algorithm = spec.create(Map.of());
      assertEquals(e.getKey(), algorithm.name());
      assertEquals(List.copyOf(e.getValue().keySet()), spec.names(), e.getKey());
      assertEquals(e.getValue(), algorithm.hyperparameters(), e.getKey());
      // What a report records is enough to build the same algorithm again (surgery replay).
      assertEquals(
          algorithm.hyperparameters(),
          spec.create(algorithm.hyperparameters()).hyperparameters(),
          e.getKey());
    }
  }

  @Test
  void anUnknownNameIsRefusedListingTheKnownOnesAndFindSaysEmpty() {
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> Algorithms.spec("blur_pool"));
    assertTrue(e.getMessage().startsWith("unknown algorithm 'blur_pool'; known: "), e.getMessage());
    assertTrue(e.getMessage().contains("blurpool"), e.getMessage());
    assertTrue(Algorithms.find("blur_pool").isEmpty());
    assertTrue(Algorithms.find(null).isEmpty());
    assertEquals("blurpool", Algorithms.find("blurpool").orElseThrow().name());
  }

  @Test
  void aLiveContextWithoutATrainerIsRefusedByName() {
    Block block = LiveTraining.smallCnn();
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> SurgeryContext.live(block, null, 1, 0));
    assertTrue(e.getMessage().startsWith("trainer must not be null"), e.getMessage());
    List<Trainer> withNull = new ArrayList<>();
    withNull.add(null);
    assertThrows(IllegalArgumentException.class, () -> new SurgeryContext(block, withNull, 0, 0));
  }
}
