package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.nn.pooling.Pool;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.core.algorithms.GhostBatchNorm;
import dev.surgery.core.algorithms.LayerFreezing;
import dev.surgery.core.algorithms.NothingTargetedException;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.algorithms.WeightStandardization;
import dev.surgery.core.layers.BlurConv2d;
import dev.surgery.core.testing.TinyModels;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Include/exclude targets on DJL's ResNetV1 (20 layers, 1x28x28): the exact paths patterns select,
 * exclusions winning, algorithms limited to their targets, and the errors for bad patterns and for
 * includes that select nothing. The expected sets are written out or derived from the plain list of
 * paths by string tests, not by the glob matcher under test.
 */
class TargetsTest {

  private NDManager manager;
  private Block resnet;

  @BeforeEach
  void setUp() {
    manager = NDManager.newBaseManager();
    manager.getEngine().setRandomSeed(11);
    resnet = initializedResNet20();
  }

  @AfterEach
  void tearDown() {
    manager.close();
  }

  /** DJL's ResNetV1 for 1x28x28 inputs, initialized on this test's seeded manager. */
  private Block initializedResNet20() {
    Block block = TinyModels.resNet20();
    block.initialize(manager, DataType.FLOAT32, new Shape(2, 1, 28, 28));
    return block;
  }

  /** BlurPool limited to {@code targets}. */
  private static Algorithm blurPoolWithin(Targets targets) {
    return BlurPool.builder().build().withTargets(targets);
  }

  /** Applies {@link #blurPoolWithin} to the ResNet, asserting it is refused with {@code type}. */
  private <E extends Throwable> E assertBlurPoolRefused(Class<E> type, Targets targets) {
    return assertThrows(type, () -> blurPoolWithin(targets).apply(SurgeryContext.of(resnet)));
  }

  private Set<String> selected(Targets targets) {
    return selectedPaths(resnet, targets);
  }

  /** The paths of the blocks of {@code root} that {@code targets} selects, sorted. */
  private static Set<String> selectedPaths(Block root, Targets targets) {
    Targets.Selection selection = targets.select(root);
    Set<String> paths = new TreeSet<>();
    for (Map.Entry<Block, String> e : BlockPaths.index(root).entrySet()) {
      if (selection.contains(e.getKey())) {
        paths.add(e.getValue());
      }
    }
    return paths;
  }

  private Set<String> allPaths() {
    return new TreeSet<>(BlockPaths.index(resnet).values());
  }

  private Set<String> pathsOf(Class<?> type) {
    return BlockPaths.index(resnet).entrySet().stream()
        .filter(e -> type.isInstance(e.getKey()))
        .map(Map.Entry::getValue)
        .collect(Collectors.toCollection(TreeSet::new));
  }

  /**
   * A type or path written in the wrong case selects nothing, and is named with the model's own
   * spelling; patterns that select something, or nothing even with case ignored (blocks an earlier
   * surgery may create), are not judged.
   */
  @Test
  void aPatternThatSelectsOnlyWithCaseIgnoredIsACaseMismatch() {
    assertEquals(
        "include pattern 'type:Conv2D' selects no block of the model, but 'type:Conv2d' differs"
            + " from it only in case (block types and paths are case-sensitive)",
        Targets.include("type:Conv2D").caseMismatch(resnet));
    String firstConv = pathsOf(Conv2d.class).iterator().next();
    String misspelt = firstConv.replace("Conv2d", "conv2d");
    String problem = Targets.include("type:Conv2d").exclude(misspelt).caseMismatch(resnet);
    assertTrue(problem.startsWith("exclude pattern '" + misspelt + "'"), problem);
    assertTrue(problem.contains("but '"), problem);
    assertNull(Targets.include("type:Conv2d", firstConv).caseMismatch(resnet));
    assertNull(Targets.include("type:BlurConv2d", "**/01BlurConv2d").caseMismatch(resnet));
    assertNull(Targets.ALL.caseMismatch(resnet));
  }

  @Test
  void doubleStarSegmentMatchesZeroOrMoreSegments() {
    assertEquals(
        Set.of(
            "05ParallelBlock/01SequentialBlock/01Conv2d",
            "05ParallelBlock/02SequentialBlock/01Conv2d"),
        selected(Targets.include("05ParallelBlock/**/01Conv2d")));
    // zero segments between: the stem convolution and every shortcut convolution
    assertEquals(
        Set.of(
            "01Conv2d",
            "02ParallelBlock/01SequentialBlock/01Conv2d",
            "02ParallelBlock/02SequentialBlock/01Conv2d",
            "03ParallelBlock/01SequentialBlock/01Conv2d",
            "04ParallelBlock/01SequentialBlock/01Conv2d",
            "05ParallelBlock/01SequentialBlock/01Conv2d",
            "05ParallelBlock/02SequentialBlock/01Conv2d",
            "06ParallelBlock/01SequentialBlock/01Conv2d",
            "07ParallelBlock/01SequentialBlock/01Conv2d",
            "08ParallelBlock/01SequentialBlock/01Conv2d",
            "08ParallelBlock/02SequentialBlock/01Conv2d",
            "09ParallelBlock/01SequentialBlock/01Conv2d",
            "10ParallelBlock/01SequentialBlock/01Conv2d"),
        selected(Targets.include("**/01Conv2d")));
  }

  @Test
  void aMatchedBlockBringsItsSubtreeAndTrailingDoubleStarOnlyWhatIsBelow() {
    Set<String> subtree =
        allPaths().stream()
            .filter(p -> p.equals("05ParallelBlock") || p.startsWith("05ParallelBlock/"))
            .collect(Collectors.toCollection(TreeSet::new));
    assertEquals(10, subtree.size());
    assertEquals(subtree, selected(Targets.include("05ParallelBlock")));
    assertEquals(subtree.size(), Targets.include("05ParallelBlock").select(resnet).size());
    subtree.remove("05ParallelBlock");
    assertEquals(subtree, selected(Targets.include("05ParallelBlock/**")));
  }

  @Test
  void singleStarAndQuestionMarkStayWithinOneSegment() {
    Set<String> expected =
        pathsOf(Conv2d.class).stream()
            .filter(p -> p.startsWith("0") && p.contains("ParallelBlock/01SequentialBlock/"))
            .collect(Collectors.toCollection(TreeSet::new));
    assertEquals(16, expected.size()); // units 02..09, two convolutions each; not 10
    assertEquals(expected, selected(Targets.include("0?ParallelBlock/01SequentialBlock/*Conv2d")));
    // '*' does not cross '/': it cannot reach 05ParallelBlock/01SequentialBlock/01Conv2d
    Targets.Selection none = Targets.include("05*Conv2d").select(resnet);
    assertEquals(0, none.size());
    assertEquals(List.of("05*Conv2d"), none.unmatchedIncludes());
  }

  @Test
  void typePatternsMatchClassAndLambdaNames() {
    assertEquals(pathsOf(BatchNorm.class), selected(Targets.include("type:BatchNorm")));
    assertEquals(22, pathsOf(Conv2d.class).size()); // stem, 9 units x 2, 3 shortcuts
    assertEquals(pathsOf(Conv2d.class), selected(Targets.include("type:Conv*")));
    assertEquals(
        Set.of(
            "03ParallelBlock/02SequentialBlock/01LambdaBlock",
            "04ParallelBlock/02SequentialBlock/01LambdaBlock",
            "06ParallelBlock/02SequentialBlock/01LambdaBlock",
            "07ParallelBlock/02SequentialBlock/01LambdaBlock",
            "09ParallelBlock/02SequentialBlock/01LambdaBlock",
            "10ParallelBlock/02SequentialBlock/01LambdaBlock"),
        selected(Targets.include("type:identity")));
  }

  /**
   * What a {@code type:} pattern with wildcards selects on a small DJL tree, as the docs say: NAME
   * matches the whole of a block's lambda name, class simple name or full class name, letter case
   * as written; {@code *} any run of characters (the dots of a full name too), {@code ?} one; a
   * subclass is not its parent ({@code BlurConv2d} extends {@code Conv2d}).
   */
  @Test
  void typePatternWildcardsMatchWholeNamesCaseSensitivelyAndNoSubclass() {
    Block root = smallTree();
    assertTrue(Conv2d.class.isAssignableFrom(BlurConv2d.class));
    Set<String> convs = Set.of("01Conv2d", "05SequentialBlock/01Conv2d");
    assertEquals(convs, selected(root, "type:Conv2d"));
    assertEquals(convs, selected(root, "type:Conv*"));
    assertEquals(convs, selected(root, "type:?onv2d"));
    assertEquals(convs, selected(root, "type:*.Conv2d")); // the full name only has the dot
    assertEquals(
        Set.of("01Conv2d", "05SequentialBlock/01Conv2d", "06BlurConv2d"),
        selected(root, "type:*Conv2d"));
    assertEquals(
        Set.of("02BatchNorm", "05SequentialBlock/02BatchNorm"), selected(root, "type:*Norm"));
    assertEquals(Set.of("04LambdaBlock"), selected(root, "type:*Pool*")); // maxPool2d
    // Every lambda's class is LambdaBlock; a selected SequentialBlock brings its subtree.
    assertEquals(
        Set.of(
            "03LambdaBlock",
            "04LambdaBlock",
            "05SequentialBlock",
            "05SequentialBlock/01Conv2d",
            "05SequentialBlock/02BatchNorm",
            "07LambdaBlock"),
        selected(root, "type:*Block"));
    Set<String> djl = new TreeSet<>(BlockPaths.index(root).values());
    djl.remove(""); // the root is never selected by a pattern
    assertEquals(10, djl.size());
    assertEquals(djl, selected(root, "type:*"));
    djl.remove("06BlurConv2d"); // dev.surgery.core.layers
    assertEquals(djl, selected(root, "type:ai.djl.nn.*"));
    // Letter case counts: nothing selected, and the start check names the model's spelling.
    assertEquals(Set.of(), selected(root, "type:conv*"));
    assertEquals(
        List.of("type:conv*"), Targets.include("type:conv*").select(root).unmatchedIncludes());
    assertTrue(
        Targets.include("type:conv*").caseMismatch(root).contains("'type:Conv2d' differs"),
        Targets.include("type:conv*").caseMismatch(root));
    assertNull(Targets.include("type:*Conv3d").caseMismatch(root));
  }

  /**
   * Convolutions (one nested, one {@code BlurConv2d}), batch norms, named lambdas (ReLU, maxPool2d,
   * batchFlatten) and a linear head: a small tree with every kind of type name.
   */
  private static Block smallTree() {
    return new SequentialBlock()
        .add(Conv2d.builder().setKernelShape(new Shape(3, 3)).setFilters(4).build())
        .add(BatchNorm.builder().build())
        .add(Activation.reluBlock())
        .add(Pool.maxPool2dBlock(new Shape(2, 2)))
        .add(
            new SequentialBlock()
                .add(Conv2d.builder().setKernelShape(new Shape(3, 3)).setFilters(4).build())
                .add(BatchNorm.builder().build()))
        .add(BlurConv2d.blurBuilder().setKernelShape(new Shape(3, 3)).setFilters(4).build())
        .add(Blocks.batchFlattenBlock())
        .add(Linear.builder().setUnits(10).build());
  }

  private static Set<String> selected(Block root, String pattern) {
    return selectedPaths(root, Targets.include(pattern));
  }

  /**
   * A wildcard type pattern that selects nothing is refused as any include is, listing the model's
   * types; the hint to use a wildcard is not repeated to one who wrote it.
   */
  @Test
  void aTypePatternOfTheWrongCaseIsRefusedNamingTheRightSpelling() {
    // An outside probe: a plan (the agent's dry run) of 'type:conv2d' said that 'type:*conv2d'
    // also matches, which selects nothing either; the listener's check before training named
    // type:Conv2d. Both now say the same.
    Set<String> before = describe(resnet);
    NothingTargetedException e =
        assertBlurPoolRefused(NothingTargetedException.class, Targets.include("type:conv2d"));
    assertEquals(
        "blurpool: the include pattern 'type:conv2d' selects no block of the model, but"
            + " 'type:Conv2d' differs from it only in case (block types and paths are"
            + " case-sensitive)",
        e.getMessage());
    assertEquals(before, describe(resnet));
  }

  @Test
  void aWildcardTypePatternThatMatchesNothingIsRefusedListingTheModelsTypes() {
    Set<String> before = describe(resnet);
    NothingTargetedException e =
        assertBlurPoolRefused(NothingTargetedException.class, Targets.include("type:*Conv3d"));
    assertTrue(e.getMessage().contains("pattern 'type:*Conv3d' matches no block"), e.getMessage());
    assertTrue(e.getMessage().contains("block types here: "), e.getMessage());
    assertTrue(e.getMessage().contains("Conv2d"), e.getMessage());
    assertFalse(e.getMessage().contains("also matches"), e.getMessage());
    assertEquals(before, describe(resnet));
  }

  @Test
  void exclusionsWin() {
    // the residual branches' convolutions: every Conv2d but the stem and the shortcuts
    Set<String> expected =
        pathsOf(Conv2d.class).stream()
            .filter(p -> p.contains("/01SequentialBlock/"))
            .collect(Collectors.toCollection(TreeSet::new));
    assertEquals(18, expected.size());
    assertEquals(
        expected,
        selected(Targets.include("type:Conv2d").exclude("**/02SequentialBlock", "01Conv2d")));
    // an exclusion of a subtree wins over an include of a block inside it
    assertEquals(
        Set.of(),
        selected(
            Targets.include("05ParallelBlock/01SequentialBlock/01Conv2d")
                .exclude("05ParallelBlock")));
    // excludes alone: everything else
    Set<String> rest = allPaths();
    rest.remove("");
    rest.removeIf(p -> p.startsWith("02ParallelBlock"));
    assertEquals(rest, selected(Targets.of(List.of(), List.of("02ParallelBlock"))));
  }

  /**
   * A block held by two parents is one block at two paths: a pattern naming it at its second path
   * selects it, and an exclusion at either place keeps it (and so both places) untouched. Before,
   * only the first path counted: {@code exclude: [02SequentialBlock]} still standardized the
   * convolution inside it, and {@code include: [02SequentialBlock/01Conv2d]} was refused as
   * matching no block of the model.
   */
  @Test
  void aSharedBlockIsSelectedAtEveryPlaceAndExcludedAtAny() {
    Conv2d shared = conv(4, 1);
    Block model =
        new SequentialBlock()
            .add(new SequentialBlock().add(shared).add(BatchNorm.builder().build()))
            .add(new SequentialBlock().add(shared).add(Activation.reluBlock()))
            .add(conv(4, 1));
    model.initialize(manager, DataType.FLOAT32, new Shape(1, 4, 6, 6));
    String first = "01SequentialBlock/01Conv2d";

    assertEquals(
        Set.of(first), selectedPaths(model, Targets.include("02SequentialBlock/01Conv2d")));
    assertEquals(
        Set.of(first, "02SequentialBlock", "02SequentialBlock/02LambdaBlock"),
        selectedPaths(model, Targets.include("02SequentialBlock")));
    assertEquals(
        Set.of("01SequentialBlock", "01SequentialBlock/02BatchNorm", "03Conv2d"),
        selectedPaths(model, Targets.of(List.of(), List.of("02SequentialBlock"))));
    assertEquals(
        Set.of("02SequentialBlock/02LambdaBlock"),
        selectedPaths(model, Targets.include("02SequentialBlock/**").exclude(first)));

    SurgeryChanges excluded =
        WeightStandardization.builder()
            .build()
            .withTargets(Targets.of(List.of(), List.of("02SequentialBlock")))
            .apply(SurgeryContext.of(model));
    assertEquals(Set.of("03Conv2d"), changedPaths(excluded));
    assertSame(shared, BlockPaths.resolve(model, "02SequentialBlock/01Conv2d"));

    SurgeryChanges included =
        WeightStandardization.builder()
            .build()
            .withTargets(Targets.include("02SequentialBlock/01Conv2d"))
            .apply(SurgeryContext.of(model));
    assertEquals(Set.of(first), changedPaths(included));
    assertSame(
        BlockPaths.resolve(model, first), BlockPaths.resolve(model, "02SequentialBlock/01Conv2d"));
    assertFalse(BlockPaths.resolve(model, first) instanceof Conv2d);
    // a second path written in the wrong case is told before training, as a first path is
    String typo =
        Targets.include("02SequentialBlock/01weightStandardizedConv2d").caseMismatch(model);
    assertTrue(
        typo != null && typo.contains("'02SequentialBlock/01WeightStandardizedConv2d' differs"),
        typo);
  }

  @Test
  void algorithmsChangeOnlyTheirTargets() {
    // control: without targets BlurPool replaces the strided convolutions of units 05 and 08
    Block control = initializedResNet20();
    SurgeryChanges all = BlurPool.builder().build().apply(SurgeryContext.of(control));
    assertEquals(
        Set.of(
            "05ParallelBlock/01SequentialBlock/01Conv2d",
            "05ParallelBlock/02SequentialBlock/01Conv2d",
            "08ParallelBlock/01SequentialBlock/01Conv2d",
            "08ParallelBlock/02SequentialBlock/01Conv2d"),
        changedPaths(all));

    Algorithm limited = blurPoolWithin(Targets.include("05ParallelBlock/**"));
    SurgeryChanges report = limited.apply(SurgeryContext.of(resnet));
    assertEquals(
        Set.of(
            "05ParallelBlock/01SequentialBlock/01Conv2d",
            "05ParallelBlock/02SequentialBlock/01Conv2d"),
        changedPaths(report));
    assertTrue(
        BlockPaths.resolve(resnet, "08ParallelBlock/01SequentialBlock/01Conv2d") instanceof Conv2d);
    assertEquals(List.of("05ParallelBlock/**"), report.hyperparameters().get("include"));

    Set<String> batchNorms = pathsOf(BatchNorm.class);
    batchNorms.removeIf(p -> p.startsWith("02ParallelBlock/"));
    SurgeryChanges ghost =
        GhostBatchNorm.builder()
            .build()
            .withTargets(Targets.include("type:BatchNorm").exclude("02ParallelBlock"))
            .apply(SurgeryContext.of(resnet));
    assertEquals(batchNorms, changedPaths(ghost));
  }

  @Test
  void settingsRebuildTheSameTargetedAlgorithm() {
    Algorithm a =
        BlurPool.builder()
            .optMinChannels(8)
            .build()
            .withTargets(Targets.include("05ParallelBlock").exclude("**/02SequentialBlock"));
    Map<String, Object> settings = a.settings();
    assertEquals(List.of("05ParallelBlock"), settings.get("include"));
    assertEquals(List.of("**/02SequentialBlock"), settings.get("exclude"));
    Algorithm b = Algorithms.spec("blurpool").create(settings);
    assertEquals(a.targets(), b.targets());
    assertEquals(a.settings(), b.settings());
    assertEquals(
        Set.of("05ParallelBlock/01SequentialBlock/01Conv2d"),
        changedPaths(b.apply(SurgeryContext.of(resnet))));
  }

  @Test
  void anIncludeThatMatchesNoBlockIsAnErrorAndChangesNothing() {
    Set<String> before = describe(resnet);
    SurgeryException e =
        assertBlurPoolRefused(
            SurgeryException.class, Targets.include("05ParallelBlock/**/01Conv2d", "**/07Conv2d"));
    assertTrue(e.getMessage().contains("pattern '**/07Conv2d' matches no block"), e.getMessage());
    assertFalse(e.getMessage().contains("05ParallelBlock/**"), e.getMessage());
    assertEquals(before, describe(resnet));
  }

  @Test
  void aTypePatternThatMatchesNothingIsTheTypedRefusalListingTheModelsTypes() {
    // After weight standardization no block is exactly a Conv2d: the message must not tell the
    // user to write the type:Conv2d they wrote, but show the classes the model has.
    WeightStandardization.builder().build().apply(SurgeryContext.of(resnet));
    Set<String> before = describe(resnet);
    NothingTargetedException e =
        assertBlurPoolRefused(NothingTargetedException.class, Targets.include("type:Conv2d"));
    assertTrue(e.getMessage().contains("pattern 'type:Conv2d' matches no block"), e.getMessage());
    assertTrue(
        e.getMessage()
                .contains(
                    "a type pattern matches whole class or lambda names, case-sensitively, not"
                        + " subclasses; block types here: ")
            && e.getMessage().contains("WeightStandardizedConv2d")
            && e.getMessage().contains("'type:*Conv2d' also matches")
            && !e.getMessage().contains("type patterns are written type:Conv2d"),
        e.getMessage());
    assertEquals(before, describe(resnet));
  }

  @Test
  void anIncludeWhereTheRuleChangesNothingIsAnErrorButNoIncludeIsNot() {
    // unit 02 has no strided convolution
    SurgeryException e =
        assertBlurPoolRefused(SurgeryException.class, Targets.include("02ParallelBlock"));
    assertTrue(e.getMessage().contains("nothing among the included blocks"), e.getMessage());
    // excludes only: an empty result stays a (logged) no-op, as without targets
    SurgeryChanges report =
        blurPoolWithin(Targets.of(List.of(), List.of("05ParallelBlock", "08ParallelBlock")))
            .apply(SurgeryContext.of(resnet));
    assertTrue(report.isEmpty());
    SurgeryException freeze =
        assertThrows(
            SurgeryException.class,
            () ->
                LayerFreezing.builder()
                    .build()
                    .withTargets(Targets.include("**/03LambdaBlock"))
                    .apply(new SurgeryContext(resnet, List.of(), 2, 2)));
    assertTrue(freeze.getMessage().contains("no included block"), freeze.getMessage());
  }

  @Test
  void badPatternsNameTheCharacter() {
    assertBad("", 0, "must not be empty");
    assertBad("/01Conv2d", 0, "do not start with '/'");
    assertBad("05ParallelBlock/", 15, "does not end with '/'");
    assertBad("05ParallelBlock//01Conv2d", 16, "empty path segment");
    assertBad("05ParallelBlock/a**", 17, "whole path segment");
    assertBad("0{1,2}Conv2d", 1, "'{' is not supported");
    assertBad("01Conv2d ", 8, "no whitespace");
    assertBad("type:", 5, "needs a class or lambda name");
    assertBad("type:a/b", 6, "one name");
    assertBad("type:Conv**", 9, "'**' is for paths; use '*' in a type name");
    // A type pattern inside a path glob would select nothing, silently: refused at the segment.
    assertBad("**/type:LSTM", 3, "'type:' begins a whole pattern ('type:LSTM'");
    assertBad("05ParallelBlock/type:Conv2d/**", 16, "not a path segment");
    assertDoesNotThrow(() -> Targets.include("**/*type:*"), "'type:' later in a segment is a glob");
  }

  /**
   * The position in the message counts characters as a reader does (an emoji is one), while {@code
   * getIndex} stays the index into the Java string.
   */
  @Test
  void aBadCharacterAfterAnEmojiIsNamedByItsCharacterCount() {
    String pattern = "\uD83D\uDE00/0{1}Conv2d"; // U+1F600, two chars in Java
    Targets.InvalidPatternException e =
        assertThrows(Targets.InvalidPatternException.class, () -> Targets.include(pattern));
    assertEquals(4, e.getIndex());
    assertEquals(
        "invalid block pattern '"
            + pattern
            + "' at character 4: '{' is not supported: use *, ** and ? (or several patterns)",
        e.getMessage());
    // A null pattern (a YAML entry left empty) is refused as a bad pattern, at its first character.
    Targets.InvalidPatternException missing =
        assertThrows(Targets.InvalidPatternException.class, () -> Targets.validate(null));
    assertEquals(
        "invalid block pattern 'null' at character 1: a pattern must not be empty",
        missing.getMessage());
  }

  /**
   * The case-mismatch hint suggests the name the pattern nearly matched: a lambda's own name, the
   * simple class name every lambda shares, or a full class name, as the user wrote it.
   */
  @Test
  void aCaseMismatchSuggestsTheKindOfTypeNameThePatternWasWrittenAs() {
    Block root = smallTree();
    assertEquals(
        "include pattern 'type:MaxPool2d' selects no block of the model, but 'type:maxPool2d'"
            + " differs from it only in case (block types and paths are case-sensitive)",
        Targets.include("type:MaxPool2d").caseMismatch(root));
    String lambda = Targets.include("type:lambdaBlock").caseMismatch(root);
    assertTrue(lambda.contains("but 'type:LambdaBlock' differs"), lambda);
    String full = Targets.include("type:AI.DJL.NN.CONVOLUTIONAL.CONV2D").caseMismatch(root);
    assertTrue(full.contains("but 'type:ai.djl.nn.convolutional.Conv2d' differs"), full);
  }

  /**
   * Targets are values: rebuilt from settings they equal the original (a composition compares
   * them), and they show as a config would write them, in messages.
   */
  @Test
  void targetsAreValuesShownAsInAConfig() {
    Targets both = Targets.include("05ParallelBlock").exclude("**/02SequentialBlock");
    Targets same = Targets.of(List.of("05ParallelBlock"), List.of("**/02SequentialBlock"));
    assertEquals(both, same);
    assertEquals(both.hashCode(), same.hashCode());
    assertEquals(List.of("**/02SequentialBlock"), both.excludes());
    assertEquals(List.of("05ParallelBlock"), both.includes());
    assertFalse(both.isAll());
    assertFalse(both.equals(Targets.include("05ParallelBlock")));
    assertFalse(Targets.include("a").equals(Targets.of(List.of(), List.of("a"))));
    assertFalse(Targets.include("a").equals("include: [a]"));
    assertEquals("include: [05ParallelBlock], exclude: [**/02SequentialBlock]", both.toString());
    assertEquals("include: [a]", Targets.include("a").toString());
    assertEquals("exclude: [a, b]", Targets.of(null, List.of("a", "b")).toString());
    assertEquals("all blocks", Targets.ALL.toString());
    assertSame(Targets.ALL, Targets.of(List.of(), null));
  }

  private static void assertBad(String pattern, int index, String fragment) {
    Targets.InvalidPatternException e =
        assertThrows(Targets.InvalidPatternException.class, () -> Targets.include(pattern));
    assertEquals(index, e.getIndex(), e.getMessage());
    assertEquals(pattern, e.getPattern());
    assertTrue(e.getMessage().contains(fragment), e.getMessage());
  }

  private static Conv2d conv(int filters, int stride) {
    return Conv2d.builder()
        .setFilters(filters)
        .setKernelShape(new Shape(3, 3))
        .optStride(new Shape(stride, stride))
        .optPadding(new Shape(1, 1))
        .build();
  }

  private static Set<String> changedPaths(SurgeryChanges report) {
    return report.changes().stream()
        .map(SurgeryChanges.Change::path)
        .collect(Collectors.toCollection(TreeSet::new));
  }

  private static Set<String> describe(Block root) {
    Set<String> out = new TreeSet<>();
    BlockPaths.index(root).forEach((b, p) -> out.add(p + "=" + BlockPaths.typeName(b)));
    return out;
  }
}
