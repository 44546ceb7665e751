package dev.surgery.trainer.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.algorithms.Algorithms;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A plugin whose factory fails while the config is read (an {@code Error} of its own, null, an
 * algorithm of another name) is a problem of its entry, at its line and column, naming the
 * algorithm: it escaped raw, or (another name) recorded and replayed the other algorithm.
 */
class PluginFailureConfigTest {

  @BeforeAll
  static void register() {
    Algorithms.register(
        new AlgorithmSpec(
            "t_factory_error",
            List.of(),
            v -> {
              throw new AssertionError("the plugin's own assertion");
            }));
    Algorithms.register(new AlgorithmSpec("t_factory_null", List.of(), v -> null));
    Algorithms.register(
        new AlgorithmSpec(
            "t_wrong_name", List.of(), v -> Algorithms.spec("blurpool").create(Map.of())));
  }

  private static ConfigProblem problemOf(String name) {
    SurgeryConfigException e =
        assertThrows(
            SurgeryConfigException.class,
            () ->
                SurgeryConfig.parse(
                    "algorithms:\n  - name: blurpool\n    epoch: 1\n  - name: "
                        + name
                        + "\n    epoch: 2\n",
                    "plugins.yaml"));
    assertEquals(1, e.getProblems().size(), e.getMessage());
    ConfigProblem p = e.getProblems().get(0);
    assertEquals(4, p.line(), p.toString());
    assertEquals(5, p.column(), p.toString());
    return p;
  }

  @Test
  void aFactoryThatThrowsAnErrorIsAProblemOfItsEntry() {
    String m = problemOf("t_factory_error").message();
    assertTrue(m.startsWith("t_factory_error failed while building it"), m);
    assertTrue(m.contains("AssertionError: the plugin's own assertion"), m);
  }

  @Test
  void aFactoryThatReturnsNullOrAnotherAlgorithmIsAProblemOfItsEntry() {
    String nullMessage = problemOf("t_factory_null").message();
    assertTrue(
        nullMessage.contains("the factory of algorithm 't_factory_null' returned null"),
        nullMessage);
    String other = problemOf("t_wrong_name").message();
    assertTrue(
        other.contains(
            "the factory of algorithm 't_wrong_name' returned an algorithm named 'blurpool'"),
        other);
  }
}
