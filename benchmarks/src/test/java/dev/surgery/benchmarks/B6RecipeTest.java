package dev.surgery.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.trainer.config.ScheduledAlgorithm;
import dev.surgery.trainer.config.SurgeryConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** B6's recipe notation, and the YAML recipe users get, describe the same schedule. */
class B6RecipeTest {

  private static Path samplesDir() {
    // Surefire runs in benchmarks/; the recipe ships with the samples next to it.
    Path here = Path.of("").toAbsolutePath();
    Path sibling = here.resolveSibling("samples");
    return Files.isDirectory(sibling.resolve("configs")) ? sibling : here.resolve("samples");
  }

  private record Scheduled(String name, int epoch, Map<String, Object> settings) {}

  @Test
  void theDefaultRecipeIsTheShippedYaml() {
    SurgeryConfig config = SurgeryConfig.load(samplesDir().resolve("configs/recipe.yaml"));
    assertEquals(3, config.getTotalEpochs());
    List<Scheduled> fromYaml = new ArrayList<>();
    for (ScheduledAlgorithm a : config.getAlgorithms()) {
      fromYaml.add(new Scheduled(a.algorithm().name(), a.epoch(), a.algorithm().settings()));
    }
    List<Scheduled> fromSpec = new ArrayList<>();
    B6TimeToAccuracy.Variant recipe =
        B6TimeToAccuracy.Variant.parse("recipe", B6TimeToAccuracy.DEFAULT_RECIPE);
    for (B6TimeToAccuracy.Entry e : recipe.entries()) {
      for (int epoch : e.epochs()) {
        var algorithm = dev.surgery.core.algorithms.Algorithms.spec(e.name()).create(e.settings());
        fromSpec.add(new Scheduled(e.name(), epoch, algorithm.settings()));
      }
    }
    assertEquals(fromYaml, fromSpec);
  }

  @Test
  void badRecipesAreRefusedBeforeAnyRun() {
    IllegalArgumentException noEpoch =
        assertThrows(
            IllegalArgumentException.class, () -> B6TimeToAccuracy.Variant.parse("r", "blurpool"));
    assertTrue(noEpoch.getMessage().contains("needs @epoch"), noEpoch.getMessage());
    IllegalArgumentException unknown =
        assertThrows(
            IllegalArgumentException.class,
            () -> B6TimeToAccuracy.Variant.parse("r", "blurpool@0+blur_pool@1"));
    assertTrue(
        unknown.getMessage().contains("unknown algorithm 'blur_pool'"), unknown.getMessage());
    IllegalArgumentException setting =
        assertThrows(
            IllegalArgumentException.class,
            () -> B6TimeToAccuracy.Variant.parse("r", "layer_freezing:freeze_start=2.0@1"));
    assertTrue(setting.getMessage().contains("freeze_start"), setting.getMessage());
  }

  /**
   * The verdict needs the saving to stand out of the spread of identical work (a recipe that
   * replaces nothing measured 0.77 of the baseline when the baseline carried the JVM's warm-up).
   */
  @Test
  void theVerdictNeedsAMarginBeyondTheSpreadOfIdenticalWork() {
    assertEquals("yes", B6TimeToAccuracy.verdict(true, 0.66, 0.05));
    assertEquals("no (within the spread)", B6TimeToAccuracy.verdict(true, 0.77, 0.12));
    assertEquals("no", B6TimeToAccuracy.verdict(true, 0.85, 0.01));
    assertEquals("no", B6TimeToAccuracy.verdict(false, 0.5, 0.01));
    assertEquals("n/a (1 seed: no spread)", B6TimeToAccuracy.verdict(true, 0.66, Double.NaN));
  }
}
