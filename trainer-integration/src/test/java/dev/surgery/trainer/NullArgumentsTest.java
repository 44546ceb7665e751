package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import dev.surgery.core.events.Event;
import dev.surgery.trainer.config.SurgeryConfig;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A null where the listener, the config or the checkpoint API takes an object is refused by name,
 * not met as a bare NullPointerException deep inside (an outside probe's sweep).
 */
class NullArgumentsTest {

  private static Arguments call(String what, String named, Executable call) {
    return Arguments.of(what, named, call);
  }

  static Stream<Arguments> calls() {
    SurgeryConfig config =
        SurgeryConfig.parse("algorithms:\n  - name: blurpool\n    epoch: 1\n", "c.yaml");
    Set<Event> withNull = new HashSet<>();
    withNull.add(null);
    return Stream.of(
        call("SurgeryListener.fromYaml(null)", "config", () -> SurgeryListener.fromYaml(null)),
        call(
            "SurgeryListener.fromYaml(null, events)",
            "config",
            () -> SurgeryListener.fromYaml(null, Set.of())),
        call("SurgeryListener.fromConfig(null)", "config", () -> SurgeryListener.fromConfig(null)),
        call(
            "SurgeryListener.fromConfig(config, null)",
            "observable",
            () -> SurgeryListener.fromConfig(config, null)),
        call(
            "SurgeryListener.fromConfig(config, a set holding null)",
            "observable",
            () -> SurgeryListener.fromConfig(config, withNull)),
        call("SurgeryConfig.load(null)", "file", () -> SurgeryConfig.load(null)),
        call("SurgeryConfig.parse(null, name)", "text", () -> SurgeryConfig.parse(null, "c.yaml")),
        call(
            "SurgeryConfig.checkReportPath(null)",
            "report",
            () -> SurgeryConfig.checkReportPath(null)),
        call(
            "SurgeryCheckpoint.load(null, ...)",
            "model",
            () -> SurgeryCheckpoint.load(null, Path.of("."), "m")),
        call(
            "SurgeryCheckpoint.load(model, null, ...)",
            "dir",
            () -> {
              try (Model model = Model.newInstance("m")) {
                SurgeryCheckpoint.load(model, null, "m");
              }
            }),
        call(
            "SurgeryCheckpoint.replay(null, file)",
            "model",
            () -> SurgeryCheckpoint.replay(null, Path.of("m.params"))),
        call(
            "SurgeryCheckpoint.replay(null block, ...)",
            "block",
            () -> SurgeryCheckpoint.replay(null, List.of(), null, null, null, "x")),
        call(
            "SurgeryCheckpoint.readRecord(null)",
            "paramsFile",
            () -> SurgeryCheckpoint.readRecord(null)),
        call(
            "SurgeryCheckpoint.readHeader(null)",
            "paramsFile",
            () -> SurgeryCheckpoint.readHeader(null)));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("calls")
  void aNullArgumentIsRefusedByName(String what, String named, Executable call) {
    NullPointerException e = assertThrows(NullPointerException.class, call, what);
    String message = String.valueOf(e.getMessage());
    assertTrue(message.startsWith(named + " must not"), what + ": " + message);
  }
}
