package dev.surgery.trainer.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.events.Event;
import java.util.List;
import java.util.Map;
import java.util.Set;
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
    Algorithms.register(
        new AlgorithmSpec("t_events_throw", List.of(), v -> new Plugin("t_events_throw")));
    Algorithms.register(
        new AlgorithmSpec("t_events_null", List.of(), v -> new Plugin("t_events_null")));
    Algorithms.register(
        new AlgorithmSpec("t_events_none", List.of(), v -> new Plugin("t_events_none")));
  }

  /**
   * A plugin that cannot be narrowed to targets (the interface's default) and whose {@code
   * events()} is what its name says: throws, returns null, or returns no event.
   */
  private record Plugin(String name) implements Algorithm {
    @Override
    public Map<String, Object> hyperparameters() {
      return Map.of();
    }

    @Override
    public SurgeryChanges apply(SurgeryContext context) {
      throw new AssertionError("never applied while a config is read");
    }

    @Override
    public Set<Event> events() {
      switch (name) {
        case "t_events_throw":
          throw new IllegalStateException("the plugin's events are not ready");
        case "t_events_null":
          return null;
        default:
          return Set.of();
      }
    }
  }

  private static SurgeryConfigException refused(String yaml) {
    return assertThrows(
        SurgeryConfigException.class, () -> SurgeryConfig.parse(yaml, "plugins.yaml"));
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

  @Test
  void targetsOnAPluginThatCannotBeNarrowedAreRefusedAtTheTargetsKey() {
    SurgeryConfigException e =
        refused(
            "algorithms:\n"
                + "  - name: t_events_none\n"
                + "    epoch: 1\n"
                + "    include: ['**']\n"
                + "  - name: t_events_none\n"
                + "    epoch: 2\n"
                + "    exclude: ['head']\n");
    assertEquals(2, e.getProblems().size(), e.getMessage());
    ConfigProblem include = e.getProblems().get(0);
    assertEquals(List.of(4, 14), List.of(include.line(), include.column()), include.toString());
    assertTrue(
        include.message().contains("t_events_none cannot be limited to targets"), e.getMessage());
    ConfigProblem exclude = e.getProblems().get(1);
    assertEquals(List.of(7, 14), List.of(exclude.line(), exclude.column()), exclude.toString());
    assertTrue(
        exclude.message().contains("t_events_none cannot be limited to targets"), e.getMessage());
  }

  @Test
  void aPluginWhoseEventsFailOrAreNullIsAProblemOfItsEntry() {
    SurgeryConfigException e =
        refused(
            "algorithms:\n"
                + "  - name: t_events_throw\n"
                + "    epoch: 1\n"
                + "  - name: t_events_null\n"
                + "    epoch: 1\n");
    assertEquals(2, e.getProblems().size(), e.getMessage());
    ConfigProblem thrown = e.getProblems().get(0);
    assertEquals(List.of(2, 5), List.of(thrown.line(), thrown.column()), thrown.toString());
    // Named with the jar (here the folder) it came from, then the plugin's own exception.
    assertTrue(
        thrown.message().startsWith("t_events_throw failed in events() (algorithm from ")
            && thrown
                .message()
                .endsWith("): java.lang.IllegalStateException: the plugin's events are not ready"),
        thrown.message());
    ConfigProblem nothing = e.getProblems().get(1);
    assertEquals(List.of(4, 5), List.of(nothing.line(), nothing.column()), nothing.toString());
    assertTrue(
        nothing.message().startsWith("t_events_null failed in events() (algorithm from ")
            && nothing.message().endsWith("): java.lang.NullPointerException: it returned null"),
        nothing.message());
  }

  @Test
  void aPluginWithoutScheduleThatReactsToNoEventIsRefusedAtItsEntry() {
    SurgeryConfigException e = refused("algorithms:\n  - name: t_events_none\n");
    assertEquals(1, e.getProblems().size(), e.getMessage());
    ConfigProblem p = e.getProblems().get(0);
    assertEquals(List.of(2, 5), List.of(p.line(), p.column()), p.toString());
    assertTrue(
        p.message().contains("algorithms entry 1 ('t_events_none') has no 'epoch'"), p.message());
    // With a schedule the same plugin is read: only the schedule-less entry needs events.
    assertEquals(
        1,
        SurgeryConfig.parse("algorithms:\n  - name: t_events_none\n    epoch: 1\n", "p.yaml")
            .getAlgorithms()
            .size());
  }
}
