package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
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

  /**
   * A whole number is an int only where it fits one: the largest and smallest ints pass, one beyond
   * (as a parser's Long or BigInteger) is refused, never wrapped to the other end of the range.
   */
  @Test
  void wholeNumbersConvertToIntUpToItsLimitsAndAreRefusedBeyond() {
    HyperParameter<Integer> any = HyperParameter.ofInt("n", 0, null, null, "a count");
    assertEquals(Integer.MAX_VALUE, any.convert((long) Integer.MAX_VALUE));
    assertEquals(Integer.MIN_VALUE, any.convert((long) Integer.MIN_VALUE));
    assertEquals(Integer.MAX_VALUE, any.convert(BigInteger.valueOf(Integer.MAX_VALUE)));
    assertEquals(Integer.MIN_VALUE, any.convert(BigInteger.valueOf(Integer.MIN_VALUE)));
    List<Object> beyond =
        List.of(
            Integer.MAX_VALUE + 1L,
            Integer.MIN_VALUE - 1L,
            BigInteger.ONE.shiftLeft(31),
            BigInteger.ONE.shiftLeft(31).negate().subtract(BigInteger.ONE));
    for (Object value : beyond) {
      IllegalArgumentException e =
          assertThrows(IllegalArgumentException.class, () -> any.convert(value));
      assertEquals("n must fit an int, got " + value + " (n: a count)", e.getMessage());
    }
    HyperParameter<Integer> kernel = HyperParameter.ofInt("k", 3, null, 7, "kernel size");
    assertEquals(" <= 7", kernel.range());
    assertEquals(7, kernel.convert(7L));
    assertEquals("k must be <= 7, got 8 (k: kernel size)", kernel.problemWith(8));
    assertEquals(
        "k must be <= 7 and fit an int, got 4294967296 (k: kernel size)",
        kernel.problemWith(1L << 32));
  }

  @Test
  void booleanAndChoiceDeclarationsTakeTheirOwnValuesAndRefuseOthers() {
    HyperParameter<Boolean> flag = HyperParameter.ofBoolean("blur_first", true, "blur first");
    assertEquals(HyperParameter.Type.BOOLEAN, flag.type());
    assertEquals(true, flag.defaultValue());
    assertEquals(false, flag.convert(false));
    assertEquals(
        "blur_first must be true or false, got 'yes' (blur_first: blur first)",
        flag.problemWith("yes"));
    HyperParameter<String> fan =
        HyperParameter.ofChoice("fan", "in", List.of("in", "out"), "which fan scales");
    assertEquals(HyperParameter.Type.STRING, fan.type());
    assertEquals("in", fan.defaultValue());
    assertEquals("out", fan.convert("out"));
    assertEquals(
        "fan must be one of [in, out], got 'both' (fan: which fan scales)",
        fan.problemWith("both"));
    assertEquals("fan must be a string, got 1 (fan: which fan scales)", fan.problemWith(1));
    HyperParameter<String> free = HyperParameter.ofString("tag", "", "a tag");
    assertEquals(HyperParameter.Type.STRING, free.type());
    assertEquals("", free.defaultValue());
    assertEquals(List.of(), free.choices());
    assertEquals("anything", free.convert("anything"));
    assertNull(free.problemWith("anything, even 'quoted'"));
    assertEquals("tag must be a string, got 1 (tag: a tag)", free.problemWith(1));
    assertEquals("tag must be a string, got true (tag: a tag)", free.problemWith(true));
  }

  @Test
  void aRealValueMustBeAFiniteNumber() {
    HyperParameter<Double> rate = HyperParameter.ofFloat("rate", 0.5, 0.0, true, 1.0, "drop rate");
    assertEquals(0.25, rate.convert(0.25f));
    assertEquals(1.0, rate.convert(BigInteger.ONE));
    assertEquals(
        "rate must be a number in (0, 1], got 'half' (rate: drop rate)", rate.problemWith("half"));
    assertEquals(
        "rate must be a finite number in (0, 1], got NaN (rate: drop rate)",
        rate.problemWith(Double.NaN));
    assertEquals(
        "rate must be a finite number in (0, 1], got Infinity (rate: drop rate)",
        rate.problemWith(Double.POSITIVE_INFINITY));
  }

  /** The values of one algorithm, as logs and checkpoints show them: in declaration order. */
  @Test
  void valuesKeepTheirDeclarationsAndShowInDeclarationOrder() {
    HyperParameterValues values =
        HyperParameterValues.of(
            BlurPool.NAME, BlurPool.SPEC.hyperParameters(), Map.of("min_channels", 8L));
    assertEquals(BlurPool.SPEC.hyperParameters(), values.declarations());
    assertEquals(BlurPool.NAME, values.algorithm());
    assertEquals(
        "{replace_convs=true, replace_maxpools=true, blur_first=true, min_channels=8}",
        values.toString());
  }
}
