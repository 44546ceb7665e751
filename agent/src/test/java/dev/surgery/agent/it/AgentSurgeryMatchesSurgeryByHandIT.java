package dev.surgery.agent.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.agent.testapp.ExactnessApp;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * Exactness of the surgery the agent drives, over the 24 Adam, AdamW or Sgd steps of {@link
 * ExactnessApp}: the program trained under the agent against a twin run of the same program without
 * the agent that makes the same change itself at the same point. Loss of every step and every
 * parameter's bits must be equal. Two kinds of twin:
 *
 * <ul>
 *   <li>the library applied by hand through its public API ({@code Algorithms.spec(name)
 *       .create(values).apply(SurgeryContext.live(...))}) with the live trainer, after {@code
 *       trainer.initialize} for epoch 0 and in the program's own {@code onEpoch} otherwise;
 *   <li>where DJL alone can express the change, no DJL Surgery at all ({@code ExactnessReference}):
 *       blocks that switch to BlurPool's form or gain a squeeze-excite gate (initialized then, from
 *       the engine's generator) keeping their own parameters, DJL's own {@code freezeParameters},
 *       and for born parameters DJL's optimizer with a fresh optimizer's rules (bias correction of
 *       the parameter's own update count, the schedule at the model's step).
 * </ul>
 */
class AgentSurgeryMatchesSurgeryByHandIT {

  private static final String SE = "squeeze_excite@%d:min_channels=16,latent_channels=0.25";
  private static final String FACTORIZE = "factorize@1:min_channels=16,latent_channels=0.25";

  @Test
  void blurPoolAtEpochOneUnderAdamMatchesADjlOnlyTwinAndItsOwnRerun() throws Exception {
    Run agent = underAgent("blurpool-1", "adam", List.of("blurpool@1"));
    Run twin = reference("blurpool-1", "adam", "--ref-blur", "1");
    assertTrue(agent.structure().contains("03BlurConv2d"), agent.result().toString());
    assertTrue(agent.structure().contains("05BlurConv2d"), agent.result().toString());
    assertTrue(agent.structure().contains("07BlurMaxPool2d"), agent.result().toString());
    assertSameTrajectory(twin.valuesWithoutNames(), agent.valuesWithoutNames(), agent);
    // The surgery changed the trajectory: it is not two plain runs that agree.
    Run plain = reference("plain", "adam");
    assertNotEquals(plain.values(), agent.values(), agent.result().toString());
    // The same agent run again: the same bits.
    Run again = underAgent("blurpool-1-again", "adam", List.of("blurpool@1"));
    assertSameTrajectory(agent.values(), again.values(), again);
  }

  @Test
  void blurPoolAtEpochZeroUnderAdamMatchesADjlOnlyTwin() throws Exception {
    Run agent = underAgent("blurpool-0", "adam", List.of("blurpool@0"));
    Run twin = reference("blurpool-0", "adam", "--ref-blur", "0");
    assertTrue(agent.structure().contains("05BlurConv2d"), agent.result().toString());
    assertSameTrajectory(twin.valuesWithoutNames(), agent.valuesWithoutNames(), agent);
  }

  @Test
  void squeezeExciteAtEpochOneUnderAdamWWithACosineScheduleMatchesAFreshOptimizersTwin()
      throws Exception {
    Run agent = underAgent("se-1", "adamw-cosine", List.of(String.format(SE, 1)));
    Run twin = reference("se-1", "fresh-adamw-cosine", "--ref-se", "1");
    assertTrue(agent.structure().contains("SqueezeExcite2d"), agent.result().toString());
    assertSameTrajectory(twin.valuesWithoutNames(), agent.valuesWithoutNames(), agent);
  }

  @Test
  void squeezeExciteAtEpochTwoUnderSgdWithMomentumMatchesAFreshOptimizersTwin() throws Exception {
    Run agent = underAgent("se-2-sgd", "sgd-momentum-cosine", List.of(String.format(SE, 2)));
    Run twin = reference("se-2-sgd", "fresh-sgd-momentum-cosine", "--ref-se", "2");
    assertSameTrajectory(twin.valuesWithoutNames(), agent.valuesWithoutNames(), agent);
  }

  /**
   * A step-level entry in the middle of an epoch, with batches in a random order (DJL's sampler
   * draws from its host generator) and a validation pass at each epoch end.
   */
  @Test
  void squeezeExciteAtAStepMidEpochWithShuffledBatchesMatchesAFreshOptimizersTwin()
      throws Exception {
    String[] options = {"--shuffle", "--validate"};
    Run agent =
        underAgent("se-step-9", "adam", List.of(String.format(SE, 9).replace("@", "@s")), options);
    Run twin =
        reference(
            "se-step-9",
            "fresh-adam",
            "--ref-se",
            "99",
            "--ref-step",
            "9",
            "--shuffle",
            "--validate");
    assertTrue(agent.structure().contains("SqueezeExcite2d"), agent.result().toString());
    assertSameTrajectory(twin.valuesWithoutNames(), agent.valuesWithoutNames(), agent);
  }

  @Test
  void layerFreezingAtTwoEpochsMatchesDjlsOwnFreezing() throws Exception {
    List<String> entries =
        List.of("layer_freezing@2:freeze_start=0.0", "layer_freezing@3:freeze_start=0.0");
    Run agent = underAgent("freezing", "adamw-cosine", entries);
    Run twin = reference("freezing", "adamw-cosine", "--ref-freeze", "2:1", "--ref-freeze", "3:2");
    assertEquals(4, agent.countFrozen(), agent.result().toString());
    assertSameTrajectory(twin.valuesWithoutNames(), agent.valuesWithoutNames(), agent);
  }

  @Test
  void factorizeThenSqueezeExciteUnderAMultiFactorScheduleMatchTheLibraryByHand() throws Exception {
    List<String> entries = List.of(FACTORIZE, String.format(SE, 2));
    Run agent = underAgent("factorize-se", "adamw-multifactor", entries);
    Run hand = byHand("factorize-se", "adamw-multifactor", entries);
    assertTrue(agent.structure().contains("FactorizedConv2d"), agent.result().toString());
    assertTrue(agent.structure().contains("SqueezeExcite2d"), agent.result().toString());
    assertSameTrajectory(hand.values(), agent.values(), agent);
    // The factorized layers started from the trained weights' best rank-r approximation, as a
    // plain-Java double-precision SVD finds it (to float rounding).
    List<String> oracle =
        hand.result().stdout().lines().filter(l -> l.startsWith("EXACT: oracle")).toList();
    assertEquals(2, oracle.size(), hand.result().toString());
    for (String line : oracle) {
      Matcher m = Pattern.compile("= (\\S+), .* off by (\\S+)$").matcher(line);
      assertTrue(m.find(), line);
      assertTrue(Double.parseDouble(m.group(1)) < 1e-6, line);
      assertTrue(Double.parseDouble(m.group(2)) < 1e-6, line);
    }
  }

  @Test
  void factorizeThenLayerFreezingUnderAdamMatchTheLibraryByHand() throws Exception {
    List<String> entries = List.of(FACTORIZE, "layer_freezing@3:freeze_start=0.0");
    Run agent = underAgent("factorize-freezing", "adam", entries);
    Run hand = byHand("factorize-freezing", "adam", entries);
    assertTrue(agent.countFrozen() > 0, agent.result().toString());
    assertSameTrajectory(hand.values(), agent.values(), agent);
  }

  /** Asserts two runs' lines equal, naming the first that differs. */
  private static void assertSameTrajectory(List<String> expected, List<String> actual, Run run) {
    for (int i = 0; i < Math.min(expected.size(), actual.size()); i++) {
      if (!expected.get(i).equals(actual.get(i))) {
        throw new AssertionError(
            "first difference at line "
                + (i + 1)
                + ":\n  twin:  "
                + expected.get(i)
                + "\n  agent: "
                + actual.get(i)
                + "\n"
                + run.result());
      }
    }
    assertEquals(expected.size(), actual.size(), run.result()::toString);
  }

  /** What a run printed: its step losses, parameters and final structure. */
  private record Run(ForkedJvm.Result result) {

    Run {
      assertEquals(0, result.exitCode(), result::toString);
      assertTrue(result.stdout().contains("EXACT: done"), result::toString);
    }

    /** The loss of every step and every parameter's name, shape and bits, in order. */
    List<String> values() {
      List<String> lines =
          result.stdout().lines().filter(l -> l.matches("EXACT: (step|param) .*")).toList();
      assertEquals(
          ExactnessApp.SAMPLES / ExactnessApp.BATCH * 4,
          lines.stream().filter(l -> l.startsWith("EXACT: step")).count(),
          result::toString);
      for (String l : lines) {
        assertTrue(!l.contains("NaN") && !l.contains("Infinity"), result::toString);
      }
      return lines;
    }

    /** {@link #values} without parameter names (the DJL-only twins name their blocks otherwise). */
    List<String> valuesWithoutNames() {
      List<String> out = new ArrayList<>();
      for (String l : values()) {
        out.add(l.replaceFirst("^EXACT: param \\S+ ", "EXACT: param "));
      }
      return out;
    }

    String structure() {
      return result.findOut("EXACT: structure (.*)");
    }

    long countFrozen() {
      return result.stdout().lines().filter(l -> l.contains(" trains=false ")).count();
    }
  }

  private static Run underAgent(
      String name, String optimizer, List<String> entries, String... options) throws Exception {
    Path dir = AgentConfigs.dir("exactness-" + name);
    AgentConfigs.write(dir, "surgery.yaml", yaml(entries));
    List<String> args = new ArrayList<>(List.of("--optimizer", optimizer));
    args.addAll(List.of(options));
    return new Run(
        ForkedJvm.main(ExactnessApp.class.getName(), args.toArray(String[]::new))
            .agent("config=surgery.yaml")
            .workDir(dir)
            .run());
  }

  private static Run byHand(String name, String optimizer, List<String> entries) throws Exception {
    List<String> args = new ArrayList<>(List.of("--optimizer", optimizer));
    for (String e : entries) {
      args.add("--hand");
      args.add(e);
    }
    return new Run(
        ForkedJvm.main(ExactnessApp.class.getName(), args.toArray(String[]::new))
            .classpath(ForkedJvm.appClasspath(true))
            .workDir(AgentConfigs.dir("exactness-hand-" + name))
            .run());
  }

  private static Run reference(String name, String optimizer, String... options) throws Exception {
    List<String> args = new ArrayList<>(List.of("--optimizer", optimizer));
    args.addAll(List.of(options));
    return new Run(
        ForkedJvm.main(ExactnessApp.class.getName(), args.toArray(String[]::new))
            .workDir(AgentConfigs.dir("exactness-reference-" + name))
            .run());
  }

  /**
   * The agent's config for entries written {@code name@epoch[:key=value,...]}, or {@code
   * name@sK...} for {@code step: K}.
   */
  private static String yaml(List<String> entries) {
    StringBuilder sb = new StringBuilder("algorithms:\n");
    for (String e : entries) {
      String[] head = e.split(":", 2);
      String[] at = head[0].split("@");
      sb.append("  - name: ").append(at[0]).append('\n');
      if (at[1].startsWith("s")) {
        sb.append("    step: ").append(at[1].substring(1)).append('\n');
      } else {
        sb.append("    epoch: ").append(at[1]).append('\n');
      }
      if (head.length > 1) {
        for (String kv : head[1].split(",")) {
          String[] p = kv.split("=", 2);
          sb.append("    ").append(p[0]).append(": ").append(p[1]).append('\n');
        }
      }
    }
    return sb.append("on_error: fail\n").toString();
  }
}
