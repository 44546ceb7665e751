package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.nn.Block;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.core.algorithms.HyperParameterValues;
import dev.surgery.core.algorithms.LayerFreezing;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.layers.BlurConv2d;
import dev.surgery.core.layers.FactorizedConv2d;
import dev.surgery.core.layers.FactorizedLinear;
import dev.surgery.core.layers.GhostBatchNormBlock;
import dev.surgery.core.testing.TinyModels;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A null where the public API takes an object is refused by name: an outside probe met 174 of 391
 * null arguments as a bare NullPointerException from deep inside the library or the JDK ("Cannot
 * invoke ... because 'x' is null"), naming nothing the caller wrote.
 */
class NullArgumentsTest {

  private static final Block ROOT = new SequentialBlock().add(Linear.builder().setUnits(2).build());

  private static final Map<BlockMatcher, ReplacementFunction> NONE = Map.of();

  private static Arguments call(String what, String named, Executable call) {
    return Arguments.of(what, named, call);
  }

  static Stream<Arguments> calls() {
    Map<BlockMatcher, ReplacementFunction> nullFunction = new HashMap<>();
    nullFunction.put(BlockMatcher.ofClass(Linear.class), null);
    Map<Class<? extends Block>, ReplacementFunction> nullClassFunction = new HashMap<>();
    nullClassFunction.put(Linear.class, null);
    SurgeryOptions options = SurgeryOptions.defaults();
    Function<HyperParameterValues, Algorithm> noFactory = null;
    return Stream.of(
        call(
            "countModuleInstances(null, classes)",
            "module",
            () -> ModuleSurgery.countModuleInstances(null, Linear.class)),
        call(
            "countModuleInstances(root, (BlockMatcher) null)",
            "matcher",
            () -> ModuleSurgery.countModuleInstances(ROOT, (BlockMatcher) null)),
        call(
            "countModuleInstances(null, matcher)",
            "module",
            () -> ModuleSurgery.countModuleInstances(null, BlockMatcher.ofClass(Linear.class))),
        call(
            "countModuleInstances(root, (Class[]) null)",
            "moduleClasses",
            () -> ModuleSurgery.countModuleInstances(ROOT, (Class<?>[]) null)),
        call(
            "countModuleInstances(root, a null class)",
            "classes",
            () -> ModuleSurgery.countModuleInstances(ROOT, Linear.class, null)),
        call(
            "replaceModules(null, ...)",
            "module",
            () -> ModuleSurgery.replaceModules(null, NONE, options)),
        call(
            "replaceModules(root, null, ...)",
            "policies",
            () -> ModuleSurgery.replaceModules(ROOT, null, options)),
        call(
            "replaceModules(root, policies, null)",
            "options",
            () -> ModuleSurgery.replaceModules(ROOT, NONE, null)),
        call(
            "replaceModules with a null function",
            "replacement function",
            () -> ModuleSurgery.replaceModules(ROOT, nullFunction, options)),
        call(
            "replaceModuleClasses(root, null, trainers, ...)",
            "policies",
            () -> ModuleSurgery.replaceModuleClasses(ROOT, null, List.of(), false, null)),
        call(
            "replaceModuleClasses with a null function",
            "replacement function",
            () -> ModuleSurgery.replaceModuleClasses(ROOT, nullClassFunction)),
        call("plan(root, null, ...)", "policies", () -> ModuleSurgery.plan(ROOT, null, options)),
        call("plan(root, policies, null)", "options", () -> ModuleSurgery.plan(ROOT, NONE, null)),
        call(
            "freezeParameters(null, ...)",
            "parameters",
            () -> ModuleSurgery.freezeParameters(null, List.of())),
        call(
            "unfreezeParameters(null, ...)",
            "parameters",
            () -> ModuleSurgery.unfreezeParameters(null, List.of())),
        call(
            "planFreeze(null, ...)", "parameters", () -> ModuleSurgery.planFreeze(null, List.of())),
        call(
            "updateParamsInOptimizer(null, ...)",
            "oldParams",
            () -> ModuleSurgery.updateParamsInOptimizer(null, List.of(), List.of())),
        call(
            "updateParamsInOptimizer(old, null, ...)",
            "newParams",
            () -> ModuleSurgery.updateParamsInOptimizer(List.of(), null, List.of())),
        call(
            "replaceParamsInOptimizer(null, ...)",
            "oldParams",
            () -> ModuleSurgery.replaceParamsInOptimizer(null, List.of(), List.of())),
        call(
            "replaceParamsInOptimizer(old, null, ...)",
            "newParams",
            () -> ModuleSurgery.replaceParamsInOptimizer(List.of(), null, List.of())),
        call(
            "BlockMatcher.ofClass(a null class)",
            "classes",
            () -> BlockMatcher.ofClass(Linear.class, null)),
        call(
            "BlockMatcher.lambdaNamed(null name)",
            "names",
            () -> BlockMatcher.lambdaNamed("relu", null)),
        call("BlockMatcher.pathGlob(null)", "glob", () -> BlockMatcher.pathGlob(null)),
        call("BlockMatcher.and(null)", "other", () -> BlockMatcher.ofClass(Linear.class).and(null)),
        call("BlockMatcher.or(null)", "other", () -> BlockMatcher.ofClass(Linear.class).or(null)),
        call(
            "Targets.include(null pattern)",
            "include patterns",
            () -> Targets.include("type:Conv2d", null)),
        call(
            "Targets.exclude(null pattern)",
            "exclude patterns",
            () -> Targets.include("type:Conv2d").exclude((String) null)),
        call(
            "Targets.of(a list holding null)",
            "include patterns",
            () -> Targets.of(Collections.singletonList(null), List.of())),
        call("WeightCopy.into(null, block)", "fresh", () -> WeightCopy.into(null, ROOT)),
        call(
            "WeightCopy.into(block, null)",
            "from",
            () -> WeightCopy.into(Linear.builder().setUnits(2).build(), null)),
        call("BlurPool.apply(null)", "context", () -> BlurPool.builder().build().apply(null)),
        call("BlurPool.plan(null)", "context", () -> BlurPool.builder().build().plan(null)),
        call(
            "LayerFreezing.apply(null)",
            "context",
            () -> LayerFreezing.builder().build().apply(null)),
        call(
            "LayerFreezing.plan(null)",
            "context",
            () -> LayerFreezing.builder().build().plan(null)),
        call("BlurConv2d.fromConv2d(null, ...)", "conv", () -> BlurConv2d.fromConv2d(null, true)),
        call("FactorizedConv2d.from(null, ...)", "conv", () -> FactorizedConv2d.from(null, 2)),
        call("FactorizedLinear.from(null, ...)", "linear", () -> FactorizedLinear.from(null, 2)),
        call("GhostBatchNormBlock.from(null, ...)", "bn", () -> GhostBatchNormBlock.from(null, 4)),
        call(
            "new SurgeryChanges(name, null hyperparameters, ...)",
            "hyperparameters",
            () -> new SurgeryChanges("mine", null, List.of(), 0, 0, 0)),
        call(
            "new SurgeryChanges(name, ..., null changes, ...)",
            "changes",
            () -> new SurgeryChanges("mine", Map.of(), null, 0, 0, 0)),
        // Its Javadoc names an element too: List.copyOf's NullPointerException had no message.
        call(
            "new SurgeryChanges(name, ..., changes holding null, ...)",
            "changes",
            () ->
                new SurgeryChanges(
                    "mine",
                    Map.of(),
                    java.util.Arrays.asList((SurgeryChanges.Change) null),
                    0,
                    0,
                    0)),
        call(
            "AlgorithmSpec.of(..., null factory)",
            "factory",
            () -> AlgorithmSpec.of("mine", List.of(), noFactory)));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("calls")
  void aNullArgumentIsRefusedByName(String what, String named, Executable call) {
    NullPointerException e = assertThrows(NullPointerException.class, call, what);
    String message = String.valueOf(e.getMessage());
    assertTrue(message.contains(named), what + ": " + message);
    assertTrue(
        message.contains("must not be null")
            || message.contains("must not hold null")
            || message.contains("has no"),
        what + ": " + message);
  }

  /**
   * A null among the trainers is refused by name and by its position in the caller's list, at every
   * entry that takes trainers, before anything runs: with nothing to change, a call that skipped
   * the check would return normally, or fail later without naming the element.
   */
  @Test
  void aNullAmongTheTrainersIsRefusedByNameAndPosition() {
    try (Model model = TinyModels.model("null-trainers", Linear.builder().setUnits(2).build());
        Trainer trainer = model.newTrainer(new DefaultTrainingConfig(Loss.l2Loss()))) {
      List<Trainer> withNull = Arrays.asList(trainer, null);
      Map<String, Executable> calls = new LinkedHashMap<>();
      calls.put(
          "replaceModuleClasses",
          () -> ModuleSurgery.replaceModuleClasses(ROOT, Map.of(), withNull, false, null));
      calls.put("freezeParameters", () -> ModuleSurgery.freezeParameters(List.of(), withNull));
      calls.put("unfreezeParameters", () -> ModuleSurgery.unfreezeParameters(List.of(), withNull));
      calls.put("planFreeze", () -> ModuleSurgery.planFreeze(List.of(), withNull));
      calls.put(
          "replaceParamsInOptimizer",
          () -> ModuleSurgery.replaceParamsInOptimizer(List.of(), List.of(), withNull));
      calls.put(
          "updateParamsInOptimizer",
          () -> ModuleSurgery.updateParamsInOptimizer(List.of(), List.of(), withNull));
      calls.put("SurgeryOptions.optTrainers", () -> SurgeryOptions.builder().optTrainers(withNull));
      calls.forEach(
          (what, call) -> {
            NullPointerException e = assertThrows(NullPointerException.class, call, what);
            String named = what.startsWith("SurgeryOptions") ? "trainers" : "optimizers";
            assertEquals(named + " must not contain null (at 1)", e.getMessage(), what);
          });
    }
  }
}
