package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import dev.surgery.core.SurgeryPlan.PlannedParameter;
import dev.surgery.core.SurgeryPlan.StateFate;
import dev.surgery.core.internal.DjlOptimizers;
import dev.surgery.core.testing.GcSafeL2Loss;
import dev.surgery.core.testing.OptimizerKind;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Supplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The optimizer-state fates a plan tells for the cases the algorithms' plans do not reach: a
 * parameter frozen through DJL with its state left in the optimizer, a frozen layer rewrapped
 * trainable under an optimizer the stand-in does not know, a trainer of another model given too,
 * and {@link ModuleSurgery#planFreeze}. Each plan is checked against what the apply then does.
 */
class StateFatesTest {

  private final List<AutoCloseable> open = new ArrayList<>();

  @AfterEach
  void close() throws Exception {
    for (int i = open.size() - 1; i >= 0; i--) {
      open.get(i).close();
    }
  }

  /**
   * Three Linear layers (6, 6, 3 units, 6 inputs) and a trainer that has taken one step (so its
   * store holds them all).
   */
  private record Rig(SequentialBlock net, Trainer trainer, Optimizer optimizer, NDManager data) {
    Block middle() {
      return net.getChildren().get(1).getValue();
    }

    Parameter middleWeight() {
      return middle().getParameters().get("weight");
    }

    void step() {
      NDArray x = data.randomNormal(new Shape(4, 6));
      NDArray y = data.randomNormal(new Shape(4, 3));
      try (GradientCollector gc = trainer.newGradientCollector()) {
        NDList out = trainer.forward(new NDList(x));
        gc.backward(trainer.getLoss().evaluate(new NDList(y), out));
      }
      trainer.step();
    }
  }

  private Rig rig(OptimizerKind kind, boolean middleFrozenFromTheStart) {
    return rig(kind::create, middleFrozenFromTheStart);
  }

  private Rig rig(Supplier<Optimizer> optimizers, boolean middleFrozenFromTheStart) {
    SequentialBlock net =
        new SequentialBlock()
            .add(Linear.builder().setUnits(6).build())
            .add(Linear.builder().setUnits(6).build())
            .add(Linear.builder().setUnits(3).build());
    Model model = Model.newInstance("state-fates");
    open.add(model);
    model.setBlock(net);
    NDManager data = NDManager.newBaseManager();
    open.add(data);
    data.getEngine().setRandomSeed(11);
    Optimizer optimizer = optimizers.get();
    Trainer trainer =
        model.newTrainer(new DefaultTrainingConfig(new GcSafeL2Loss()).optOptimizer(optimizer));
    open.add(trainer);
    trainer.initialize(new Shape(4, 6));
    Rig rig = new Rig(net, trainer, optimizer, data);
    if (middleFrozenFromTheStart) {
      rig.middle().freezeParameters(true);
    }
    rig.step();
    return rig;
  }

  /** Replaces the middle layer by a new Linear around its arrays, trainable or frozen. */
  private static Map<BlockMatcher, ReplacementFunction> rewrapMiddle(Rig rig, boolean trainable) {
    Block middle = rig.middle();
    ReplacementFunction function =
        (block, index) -> {
          Linear fresh = Linear.builder().setUnits(6).build();
          fresh
              .getParameters()
              .forEach(
                  p -> p.getValue().setArray(middle.getParameters().get(p.getKey()).getArray()));
          fresh.freezeParameters(!trainable);
          return fresh;
        };
    return Map.of(BlockMatcher.byBlock(b -> b == middle), function);
  }

  private static SurgeryPlan.Step onlyStep(SurgeryPlan plan) {
    assertEquals(1, plan.steps().size(), plan.toTable("plan"));
    return plan.steps().get(0);
  }

  private static PlannedParameter weight(List<PlannedParameter> parameters) {
    return parameters.stream().filter(p -> p.name().equals("weight")).findFirst().orElseThrow();
  }

  private static boolean hasState(Optimizer optimizer, Parameter p) {
    if (DjlOptimizers.updateCounts(optimizer).containsKey(p.getId())) {
      return true;
    }
    return DjlOptimizers.optimizerStates(optimizer).values().stream()
        .anyMatch(byId -> byId.containsKey(p.getId()));
  }

  /**
   * Rewrapped trainable, a frozen layer starts fresh; "born exact" only where the stand-in takes
   * the optimizer (DJL's Adam, AdamW, Sgd), not under a user's own.
   */
  @Test
  void aFrozenLayerRewrappedTrainableStartsFreshExactOnlyUnderAnOptimizerTheStandInKnows() {
    for (OptimizerKind kind : List.of(OptimizerKind.ADAM, OptimizerKind.USER)) {
      Rig rig = rig(kind, true);
      Parameter old = rig.middleWeight();
      SurgeryPlan.Step step =
          onlyStep(
              ModuleSurgery.plan(
                  rig.net(),
                  rewrapMiddle(rig, true),
                  SurgeryOptions.builder().optTrainers(List.of(rig.trainer())).build()));
      PlannedParameter added = weight(step.added());
      assertEquals(StateFate.FRESH, added.state(), kind.name());
      assertEquals(kind == OptimizerKind.ADAM, added.bornExact(), kind.name());
      // It never trained: nothing to drop.
      assertEquals(StateFate.NONE, weight(step.removed()).state(), kind.name());
      assertFalse(hasState(rig.optimizer(), old), kind.name());
    }
  }

  /**
   * Frozen through DJL after training, a layer keeps its state in the optimizer: rewrapped frozen,
   * that state moves to the new parameter; rewrapped trainable, it is dropped (the new one starts
   * fresh). Plans say so, and the applies do so.
   */
  @Test
  void stateLeftByAFreezeThroughDjlMovesWithAFrozenRewrapAndIsDroppedByATrainableOne() {
    // Adam and the user's optimizer count updates; the uncounted one has only its state map.
    Map<String, Supplier<Optimizer>> optimizers =
        Map.of(
            "adam", OptimizerKind.ADAM::create,
            "user", OptimizerKind.USER::create,
            "uncounted", UncountedMomentum::new);
    for (Map.Entry<String, Supplier<Optimizer>> kind : optimizers.entrySet()) {
      for (boolean trainable : new boolean[] {false, true}) {
        stateLeftByAFreezeThroughDjl(kind.getKey(), kind.getValue(), trainable);
      }
    }
  }

  private void stateLeftByAFreezeThroughDjl(
      String kind, Supplier<Optimizer> optimizer, boolean trainable) {
    {
      Rig rig = rig(optimizer, false);
      rig.middle().freezeParameters(true);
      Parameter old = rig.middleWeight();
      assertTrue(hasState(rig.optimizer(), old));
      Map<BlockMatcher, ReplacementFunction> policies = rewrapMiddle(rig, trainable);
      SurgeryOptions options = SurgeryOptions.builder().optTrainers(List.of(rig.trainer())).build();
      SurgeryPlan.Step step = onlyStep(ModuleSurgery.plan(rig.net(), policies, options));
      String what = kind + ", trainable " + trainable;
      assertEquals(
          trainable ? StateFate.DROPPED : StateFate.MOVED, weight(step.removed()).state(), what);
      assertEquals(
          trainable ? StateFate.FRESH : StateFate.MOVED, weight(step.added()).state(), what);

      ModuleSurgery.replaceModules(rig.net(), policies, options);
      Parameter now = rig.middleWeight();
      assertFalse(hasState(rig.optimizer(), old), what);
      assertEquals(!trainable, hasState(rig.optimizer(), now), what);
    }
  }

  /**
   * A parameter that joins the model while every receiving trainer holds it already (one that left
   * the model without the trainer being told, back again) keeps its entry and state, as
   * TrainerSurgery.add leaves it: moved, not fresh. Asked of the decision directly: the plan lists
   * only parameters the model did not have, and no public surgery builds this case simply.
   */
  @Test
  void aJoiningParameterEveryReceiverHoldsAlreadyKeepsItsState() {
    Rig rig = rig(OptimizerKind.ADAM, false);
    List<Parameter> leaving = parameters(rig.middle());
    List<Parameter> joining = parameters(rig.net().getChildren().get(0).getValue());
    List<Trainer> trainers = List.of(rig.trainer());
    Map<Parameter, StateFates.Fate> fates =
        StateFates.of(
            leaving,
            joining,
            List.of(),
            trainers,
            Map.of(),
            StillUsed.of(rig.net(), trainers, leaving, joining));
    for (Parameter p : joining) {
      assertEquals(new StateFates.Fate(StateFate.MOVED, false), fates.get(p), p.getName());
    }
    for (Parameter p : leaving) {
      assertEquals(new StateFates.Fate(StateFate.DROPPED, false), fates.get(p), p.getName());
    }
  }

  private static List<Parameter> parameters(Block block) {
    List<Parameter> out = new ArrayList<>();
    block.getParameters().forEach(p -> out.add(p.getValue()));
    return out;
  }

  /**
   * A block put in the model after the trainer's last step is not in its store: adopted by a
   * wrapper, its parameters have no state to carry.
   */
  @Test
  void anAdoptedBlockTheTrainerHasNotRunYetHasNoStateToCarry() {
    Rig rig = rig(OptimizerKind.ADAM, false);
    Linear late = Linear.builder().setUnits(3).build();
    late.initialize(rig.data(), DataType.FLOAT32, new Shape(4, 3));
    rig.net().add(late);
    Map<BlockMatcher, ReplacementFunction> policies =
        Map.of(
            BlockMatcher.byBlock(b -> b == late),
            (block, index) -> PropertyTrees.Holding2d.adopting(block));
    SurgeryOptions options = SurgeryOptions.builder().optTrainers(List.of(rig.trainer())).build();
    SurgeryPlan.Step step = onlyStep(ModuleSurgery.plan(rig.net(), policies, options));
    assertEquals(StateFate.NONE, weight(step.kept()).state(), step.toString());
    ModuleSurgery.replaceModules(rig.net(), policies, options);
    assertFalse(hasState(rig.optimizer(), late.getParameters().get("weight")));
  }

  /**
   * Only the trainers that held the frozen layer decide whether its fresh start is exact: an Adam
   * trainer of another model given beside a user optimizer's does not make it so.
   */
  @Test
  void anotherModelsTrainerDoesNotMakeAFreshStartExact() {
    Rig user = rig(OptimizerKind.USER, true);
    Rig adam = rig(OptimizerKind.ADAM, false);
    SurgeryPlan.Step step =
        onlyStep(
            ModuleSurgery.plan(
                user.net(),
                rewrapMiddle(user, true),
                SurgeryOptions.builder()
                    .optTrainers(List.of(user.trainer(), adam.trainer()))
                    .build()));
    PlannedParameter added = weight(step.added());
    assertEquals(StateFate.FRESH, added.state());
    assertFalse(added.bornExact(), step.toString());
  }

  /**
   * Freezing drops the state of a parameter a trainer holds, and of one whose state only the
   * trainer's (shared) optimizer has; a parameter no given trainer knows has nothing to lose.
   */
  @Test
  void planFreezeDropsOnlyStateAGivenTrainerHas() {
    Rig rig = rig(OptimizerKind.ADAM, false);
    Parameter held = rig.middleWeight();
    Linear outside = Linear.builder().setUnits(2).build();
    outside.initialize(rig.data(), DataType.FLOAT32, new Shape(1, 3));
    Parameter stranger = outside.getParameters().get("weight");
    assertEquals(
        List.of(StateFate.DROPPED, StateFate.NONE),
        ModuleSurgery.planFreeze(List.of(held, stranger), List.of(rig.trainer())));

    // A second trainer, of another model, sharing the first one's optimizer: it does not hold
    // the parameter, but its optimizer has state for it, which freezing through it drops.
    Model other = Model.newInstance("state-fates-other");
    open.add(other);
    other.setBlock(Linear.builder().setUnits(3).build());
    Trainer sharing =
        other.newTrainer(
            new DefaultTrainingConfig(new GcSafeL2Loss()).optOptimizer(rig.optimizer()));
    open.add(sharing);
    sharing.initialize(new Shape(4, 6));
    assertEquals(
        List.of(StateFate.DROPPED), ModuleSurgery.planFreeze(List.of(held), List.of(sharing)));
    ModuleSurgery.freezeParameters(List.of(held), List.of(sharing));
    assertFalse(hasState(rig.optimizer(), held));
  }

  /** A user's momentum optimizer that keeps state arrays but never calls updateCount. */
  static final class UncountedMomentum extends Optimizer {
    private final Map<String, Map<Device, NDArray>> velocities = new ConcurrentHashMap<>();

    UncountedMomentum() {
      super(new Settings());
    }

    @Override
    public void update(String parameterId, NDArray weight, NDArray grad) {
      NDArray velocity =
          withDefaultState(velocities, parameterId, weight.getDevice(), k -> weight.zerosLike());
      velocity.muli(0.9f).addi(grad);
      weight.subi(velocity.mul(0.01f));
    }

    private static final class Settings extends OptimizerBuilder<Settings> {
      @Override
      protected Settings self() {
        return this;
      }
    }
  }
}
