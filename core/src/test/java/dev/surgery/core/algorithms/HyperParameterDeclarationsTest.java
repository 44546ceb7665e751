package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.math.BigInteger;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/**
 * Each hyperparameter has one declaration: the builders start from its default, {@code
 * hyperparameters()} lists every declared value in declaration order, config values are converted
 * and checked by it, and its description explains a refused value.
 */
class HyperParameterDeclarationsTest {

  /** Every built-in algorithm's spec with its builder's defaults. */
  private static final Map<AlgorithmSpec, Supplier<Algorithm>> BUILDERS = new LinkedHashMap<>();

  static {
    BUILDERS.put(BlurPool.SPEC, () -> BlurPool.builder().build());
    BUILDERS.put(WeightStandardization.SPEC, () -> WeightStandardization.builder().build());
    BUILDERS.put(GhostBatchNorm.SPEC, () -> GhostBatchNorm.builder().build());
    BUILDERS.put(SqueezeExcite.SPEC, () -> SqueezeExcite.builder().build());
    BUILDERS.put(StochasticDepth.SPEC, () -> StochasticDepth.builder().build());
    BUILDERS.put(LayerFreezing.SPEC, () -> LayerFreezing.builder().build());
    BUILDERS.put(Factorize.SPEC, () -> Factorize.builder().build());
  }

  @Test
  void everyBuiltinAlgorithmIsCovered() {
    for (AlgorithmSpec spec : BUILDERS.keySet()) {
      assertSame(spec, Algorithms.spec(spec.name()));
    }
    assertEquals(7, BUILDERS.size());
  }

  @Test
  void everyBuilderDefaultIsItsDeclarationsDefault() {
    for (Map.Entry<AlgorithmSpec, Supplier<Algorithm>> e : BUILDERS.entrySet()) {
      AlgorithmSpec spec = e.getKey();
      Map<String, Object> declared = new LinkedHashMap<>();
      for (HyperParameter<?> h : spec.hyperParameters()) {
        declared.put(h.name(), h.defaultValue());
        assertTrue(h.valueClass().isInstance(h.defaultValue()), h.name());
        assertTrue(!h.description().isBlank(), h.name());
      }
      Algorithm built = e.getValue().get();
      assertEquals(spec.name(), built.name());
      // same keys, same order, same values (and so the same boxed types)
      assertEquals(
          List.copyOf(declared.entrySet()), List.copyOf(built.hyperparameters().entrySet()));
      assertEquals(declared, spec.create(Map.of()).hyperparameters(), spec.name());
    }
  }

  /**
   * A plugin's declaration that would let every value through is refused when declared: a NaN bound
   * (every comparison false), choices on a number, a range on a string (both ignored).
   */
  @Test
  void declarationsThatCheckNothingAreRefused() {
    Map<String, Runnable> declarations = new LinkedHashMap<>();
    declarations.put(
        "a bound of its range is NaN",
        () -> HyperParameter.ofFloat("nanr", 0.5, Double.NaN, false, 1.0, "rate"));
    declarations.put(
        "choices [a, b] are for a string, not a INT",
        () ->
            new HyperParameter<>(
                "ic",
                HyperParameter.Type.INT,
                Integer.class,
                1,
                null,
                null,
                false,
                List.of("a", "b"),
                "count"));
    declarations.put(
        "a range (min, max) is for a number, not a STRING",
        () ->
            new HyperParameter<>(
                "sr",
                HyperParameter.Type.STRING,
                String.class,
                "x",
                0.0,
                1.0,
                false,
                List.of(),
                "text"));
    for (Map.Entry<String, Runnable> d : declarations.entrySet()) {
      IllegalArgumentException e =
          assertThrows(IllegalArgumentException.class, d.getValue()::run, d.getKey());
      assertTrue(e.getMessage().contains(d.getKey()), e.getMessage());
    }
  }

  @Test
  void aRefusedValueSaysWhatTheKeyMeans() {
    IllegalArgumentException config =
        assertThrows(
            IllegalArgumentException.class,
            () -> GhostBatchNorm.SPEC.create(Map.of("ghost_batch_size", 0)));
    assertTrue(config.getMessage().contains("ghost_batch_size must be >= 1, got 0"));
    assertTrue(
        config.getMessage().contains("samples per chunk normalized separately in training"),
        config.getMessage());
    IllegalArgumentException builder =
        assertThrows(
            IllegalArgumentException.class, () -> GhostBatchNorm.builder().optGhostBatchSize(0));
    assertEquals(config.getMessage(), builder.getMessage());
  }

  @Test
  void configValuesAreConvertedToTheDeclaredTypeInOnePlace() {
    // whole numbers as parsers produce them, for an int and a float hyperparameter
    Algorithm se =
        SqueezeExcite.SPEC.create(
            Map.of("latent_channels", 8L, "min_channels", BigInteger.valueOf(4)));
    assertEquals(8.0, se.hyperparameters().get("latent_channels"));
    assertEquals(4, se.hyperparameters().get("min_channels"));
    assertEquals(Integer.valueOf(7), SqueezeExcite.MIN_CHANNELS.convert(7L));
    assertEquals(Double.valueOf(0.5), SqueezeExcite.LATENT_CHANNELS.convert(0.5f));
    IllegalArgumentException real =
        assertThrows(IllegalArgumentException.class, () -> SqueezeExcite.MIN_CHANNELS.convert(2.5));
    assertTrue(real.getMessage().contains("min_channels must be an integer >= 0, got 2.5"));
    IllegalArgumentException huge =
        assertThrows(
            IllegalArgumentException.class, () -> Factorize.MIN_FEATURES.convert(1L << 33));
    assertTrue(huge.getMessage().contains("fit an int"), huge.getMessage());
  }

  @Test
  void valuesRefuseADeclarationOfAnotherAlgorithm() {
    HyperParameterValues values =
        HyperParameterValues.of(
            GhostBatchNorm.NAME, GhostBatchNorm.SPEC.hyperParameters(), Map.of());
    assertEquals(32, values.get(GhostBatchNorm.GHOST_BATCH_SIZE));
    assertThrows(IllegalArgumentException.class, () -> values.get(BlurPool.MIN_CHANNELS));
  }

  @Test
  void exclusiveBoundsRefuseTheBoundItselfAndSaySo() {
    HyperParameter<Double> open = HyperParameter.ofFloat("rate", 0.5, 0.0, true, 1.0, true, "rate");
    assertEquals(" in (0, 1)", open.range());
    for (double bad : new double[] {0.0, 1.0, -0.1, 1.1}) {
      assertEquals("rate must be in (0, 1), got " + bad + " (rate: rate)", open.problemWith(bad));
    }
    for (double good : new double[] {Double.MIN_VALUE, 0.5, Math.nextDown(1.0)}) {
      assertEquals(null, open.problemWith(good), "value " + good);
    }
    HyperParameter<Double> below = HyperParameter.ofFloat("x", 0.0, null, false, 2.0, true, "x");
    assertEquals(" < 2", below.range());
    assertEquals("x must be < 2, got 2.0 (x: x)", below.problemWith(2.0));
    assertEquals(" in [0, 1]", HyperParameter.ofFloat("y", 0.0, 0.0, false, 1.0, "y").range());
  }

  /**
   * A plugin's mistakes in its declarations are refused where it registers, naming what is wrong: a
   * name that is no config name (null broke every later "did you mean"), a hyperparameter taking a
   * key the config entry uses itself (epoch: 7 would schedule, not set it), one declared twice, a
   * default outside its own range or choices, a minimum above the maximum, a value class that is
   * not the type's.
   */
  @Test
  void badDeclarationsAreRefusedWhereTheyAreRegistered() {
    HyperParameter<Integer> ok = HyperParameter.ofInt("width", 4, 1, 64, "a width");
    Map<String, Supplier<AlgorithmSpec>> refusals = new LinkedHashMap<>();
    refusals.put("snake_case", () -> new AlgorithmSpec(null, List.of(ok), v -> null));
    refusals.put("got 'My Algo'", () -> new AlgorithmSpec("My Algo", List.of(ok), v -> null));
    refusals.put("got ''", () -> new AlgorithmSpec("", List.of(ok), v -> null));
    refusals.put(
        "takes a key a config entry uses",
        () ->
            new AlgorithmSpec(
                "plug", List.of(HyperParameter.ofInt("epoch", 1, 0, 9, "x")), v -> null));
    refusals.put(
        "declared twice",
        () ->
            new AlgorithmSpec(
                "plug", List.of(ok, HyperParameter.ofInt("width", 8, 1, 9, "y")), v -> null));
    refusals.put(
        "invalid default",
        () ->
            new AlgorithmSpec(
                "plug", List.of(HyperParameter.ofInt("depth", -5, 0, 9, "z")), v -> null));
    refusals.put(
        "minimum above its maximum",
        () ->
            new AlgorithmSpec(
                "plug",
                List.of(
                    new HyperParameter<>(
                        "rate",
                        HyperParameter.Type.FLOAT,
                        Double.class,
                        0.5,
                        1.0,
                        0.0,
                        false,
                        List.of(),
                        "r")),
                v -> null));
    refusals.put(
        "must hold Integer values",
        () ->
            new AlgorithmSpec(
                "plug",
                List.of(
                    new HyperParameter<>(
                        "count",
                        HyperParameter.Type.INT,
                        Long.class,
                        3L,
                        0.0,
                        9.0,
                        false,
                        List.of(),
                        "c")),
                v -> null));
    for (Map.Entry<String, Supplier<AlgorithmSpec>> r : refusals.entrySet()) {
      IllegalArgumentException e =
          assertThrows(IllegalArgumentException.class, () -> r.getValue().get(), r.getKey());
      assertTrue(e.getMessage().contains(r.getKey()), r.getKey() + ": " + e.getMessage());
    }
  }
}
