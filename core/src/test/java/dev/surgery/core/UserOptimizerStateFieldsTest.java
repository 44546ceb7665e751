package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * From an outside probe: a hand-written RMSprop (DJL's RmsProp does not step on the PyTorch engine)
 * keeps its per-parameter state exactly as DJL's optimizers do, {@code parameter id -> device ->
 * array}, but declares the field as {@code ConcurrentHashMap<String, Map<Device, NDArray>>} rather
 * than {@code Map<...>}. The engine finds optimizer state only in fields declared {@code Map}
 * (DjlOptimizers.isStateMapType), so with the concrete declaration (1) replaceParamsInOptimizer
 * leaves a weight copy's state behind (the copy restarts from zero, where the guide promises "the
 * optimizer state and update count move with it, so a weight-copying replacement continues exactly
 * where it was"), and (2) freezeParameters/unfreezeParameters keep the stale state (an unfrozen
 * parameter should train "as a fresh optimizer would"). Nothing was logged. The oracle is the same
 * optimizer with the field declared {@code Map}: the arithmetic is identical, so every step must
 * agree bit for bit. Now any map class is read as state; state the engine cannot read (a {@code
 * Map<String, NDArray>}) and a per-id tracker in a field that cannot take the engine's stand-in
 * (one declared {@code FixedPerVarTracker}) are refused, naming the field, with nothing changed.
 */
class UserOptimizerStateFieldsTest {

  /** RMSprop; {@code declaredMap} picks the declaration of the (identical) state map. */
  static final class UserRmsProp extends Optimizer {
    private final boolean declaredMap;
    private final Map<String, Map<Device, NDArray>> declaredAsMap = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<String, Map<Device, NDArray>> declaredConcrete =
        new ConcurrentHashMap<>();

    UserRmsProp(boolean declaredMap) {
      super(new Settings());
      this.declaredMap = declaredMap;
    }

    @Override
    public void update(String parameterId, NDArray weight, NDArray grad) {
      updateCount(parameterId);
      Map<String, Map<Device, NDArray>> states = declaredMap ? declaredAsMap : declaredConcrete;
      NDArray sq =
          withDefaultState(states, parameterId, weight.getDevice(), k -> weight.zerosLike());
      sq.muli(0.9f).addi(grad.square().mul(0.1f));
      weight.subi(grad.div(sq.sqrt().add(1e-6f)).mul(0.01f));
      if (weight.hasGradient()) {
        try (NDArray g = weight.getGradient()) {
          g.subi(g);
        }
      }
    }

    static final class Settings extends OptimizerBuilder<Settings> {
      @Override
      protected Settings self() {
        return this;
      }
    }
  }

  /**
   * Momentum SGD with rates per parameter id; {@code declaredParameterTracker} picks the declared
   * type of the (same) tracker field: {@code ParameterTracker} or {@code FixedPerVarTracker}.
   */
  static final class UserPerIdMomentum extends Optimizer {
    private final boolean declaredParameterTracker;
    private final Map<String, Map<Device, NDArray>> velocities = new ConcurrentHashMap<>();
    private ai.djl.training.tracker.ParameterTracker asParameterTracker;
    private ai.djl.training.tracker.FixedPerVarTracker asFixedPerVarTracker;

    UserPerIdMomentum(
        boolean declaredParameterTracker, ai.djl.training.tracker.FixedPerVarTracker rates) {
      super(new Settings());
      this.declaredParameterTracker = declaredParameterTracker;
      if (declaredParameterTracker) {
        asParameterTracker = rates;
      } else {
        asFixedPerVarTracker = rates;
      }
    }

    @Override
    public void update(String parameterId, NDArray weight, NDArray grad) {
      int n = updateCount(parameterId);
      float lr =
          declaredParameterTracker
              ? asParameterTracker.getNewValue(parameterId, n)
              : asFixedPerVarTracker.getNewValue(parameterId, n);
      NDArray v =
          withDefaultState(velocities, parameterId, weight.getDevice(), k -> weight.zerosLike());
      v.muli(0.9f).addi(grad);
      weight.subi(v.mul(lr));
      if (weight.hasGradient()) {
        try (NDArray g = weight.getGradient()) {
          g.subi(g);
        }
      }
    }

    private static final class Settings extends OptimizerBuilder<Settings> {
      @Override
      protected Settings self() {
        return this;
      }
    }
  }

  private static List<float[]> run(String scenario, boolean declaredMap) {
    Engine.getInstance().setRandomSeed(5);
    List<float[]> afterEachStep = new ArrayList<>();
    try (Model model = Model.newInstance("probe");
        NDManager data = NDManager.newBaseManager()) {
      SequentialBlock net = Fixtures.tanhProbeNet();
      model.setBlock(net);
      Optimizer optimizer = new UserRmsProp(declaredMap);
      if (scenario.startsWith("per-id rate")) {
        // layer-wise rates keyed by the ids the model's parameters have from construction
        optimizer = new UserPerIdMomentum(declaredMap, Fixtures.perIdRates(net, 0.002f, 0.05f));
      }
      NDArray x = data.randomNormal(new Shape(8, 4));
      NDArray y = data.randomInteger(0, 3, new Shape(8), DataType.INT64);
      try (Trainer trainer = Fixtures.probeTrainer(model, optimizer)) {
        for (int step = 1; step <= 12; step++) {
          Fixtures.lossStep(trainer, x, y);
          if (step == 4 && scenario.contains("replaceParamsInOptimizer")) {
            Map<Class<? extends Block>, ReplacementFunction> policies =
                Fixtures.replacingClass(Linear.class, (old, i) -> Fixtures.linearCopyOf(old));
            Map<Block, Block> replaced =
                ModuleSurgery.replaceModuleClasses(net, policies, null, false, null);
            replaced.forEach(
                (old, copy) -> {
                  if (old != copy) {
                    ModuleSurgery.replaceParamsInOptimizer(
                        new ArrayList<>(old.getParameters().values()),
                        new ArrayList<>(copy.getParameters().values()),
                        List.of(trainer));
                  }
                });
          }
          if (step == 4 && scenario.equals("frozen then unfrozen")) {
            List<Parameter> first =
                new ArrayList<>(net.getChildren().get(0).getValue().getParameters().values());
            ModuleSurgery.freezeParameters(first, List.of(trainer));
          }
          if (step == 6 && scenario.equals("frozen then unfrozen")) {
            List<Parameter> first =
                new ArrayList<>(net.getChildren().get(0).getValue().getParameters().values());
            ModuleSurgery.unfreezeParameters(first, List.of(trainer));
          }
          List<Float> all = new ArrayList<>();
          for (var p : net.getParameters()) {
            for (float f : p.getValue().getArray().toFloatArray()) {
              all.add(f);
            }
          }
          float[] flat = new float[all.size()];
          for (int i = 0; i < flat.length; i++) {
            flat[i] = all.get(i);
          }
          afterEachStep.add(flat);
        }
      }
    }
    return afterEachStep;
  }

  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"copy moved by replaceParamsInOptimizer", "frozen then unfrozen"})
  void stateDeclaredAsAConcreteMapFollowsTheSurgeryAsTheMapDeclaredOneDoes(String scenario) {
    List<float[]> oracle = run(scenario, true);
    List<float[]> subject = run(scenario, false);
    for (int i = 0; i < oracle.size(); i++) {
      float[] a = oracle.get(i);
      float[] b = subject.get(i);
      for (int j = 0; j < a.length; j++) {
        assertEquals(
            Float.floatToRawIntBits(a[j]),
            Float.floatToRawIntBits(b[j]),
            scenario
                + ": after step "
                + (i + 1)
                + " element "
                + j
                + " differs ("
                + a[j]
                + " with the field declared as the engine expects, "
                + b[j]
                + " with the concrete declaration)");
      }
    }
  }

  @Test
  void aPerIdTrackerInAFieldThatCannotTakeTheStandInIsRefusedNamingIt() {
    List<float[]> oracle = run("per-id rate of a copy moved by replaceParamsInOptimizer", true);
    org.junit.jupiter.api.Assertions.assertEquals(12, oracle.size(), "the oracle runs through");
    RuntimeException refused =
        org.junit.jupiter.api.Assertions.assertThrows(
            RuntimeException.class,
            () -> run("per-id rate of a copy moved by replaceParamsInOptimizer", false));
    String message = String.valueOf(refused.getMessage()) + " " + refused.getCause();
    org.junit.jupiter.api.Assertions.assertTrue(
        message.contains("asFixedPerVarTracker") && message.contains("declare the field"), message);
  }

  /** Keeps its squares in a map the engine cannot read as per-parameter state. */
  static final class UnreadStateRmsProp extends Optimizer {
    private final Map<String, NDArray> squares = new ConcurrentHashMap<>();

    UnreadStateRmsProp() {
      super(new UserRmsProp.Settings());
    }

    @Override
    public void update(String parameterId, NDArray weight, NDArray grad) {
      updateCount(parameterId);
      NDArray sq = squares.computeIfAbsent(parameterId, k -> weight.zerosLike());
      sq.muli(0.9f).addi(grad.square().mul(0.1f));
      weight.subi(grad.div(sq.sqrt().add(1e-6f)).mul(0.01f));
    }
  }

  @Test
  void stateTheEngineCannotReadIsRefusedBeforeAFreezeDropsNothing() throws Exception {
    Engine.getInstance().setRandomSeed(5);
    try (Model model = Model.newInstance("unread");
        NDManager data = NDManager.newBaseManager()) {
      SequentialBlock net = new SequentialBlock().add(Linear.builder().setUnits(3).build());
      model.setBlock(net);
      NDArray x = data.randomNormal(new Shape(8, 4));
      NDArray y = data.randomInteger(0, 3, new Shape(8), DataType.INT64);
      try (Trainer trainer = Fixtures.probeTrainer(model, new UnreadStateRmsProp())) {
        Fixtures.lossStep(trainer, x, y);
        List<Parameter> layer =
            new ArrayList<>(net.getChildren().get(0).getValue().getParameters().values());
        RuntimeException refused =
            org.junit.jupiter.api.Assertions.assertThrows(
                RuntimeException.class,
                () -> ModuleSurgery.freezeParameters(layer, List.of(trainer)));
        String message = String.valueOf(refused.getMessage()) + " " + refused.getCause();
        org.junit.jupiter.api.Assertions.assertTrue(
            message.contains("'squares'") && message.contains("Map<String, Map<Device, NDArray>>"),
            message);
        for (Parameter p : layer) {
          org.junit.jupiter.api.Assertions.assertTrue(p.requiresGradient(), "left trainable");
        }
      }
    }
  }
}
