package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.Dataset;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import dev.surgery.core.internal.BirthAwareOptimizer;
import dev.surgery.core.internal.DjlOptimizers;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.testing.ExactnessOracle;
import dev.surgery.core.testing.OptimizerKind;
import dev.surgery.core.testing.TinyModels;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * A subject model and a control twin built alike, with the same initial values and the same
 * optimizer settings, trained on the same batches. The control never undergoes surgery, so after a
 * failed (rolled back) surgery the subject must match it bit for bit: parameters, optimizer state,
 * update counts, birth marks and the optimizer object its parameter server holds, before and after
 * more training. A successful surgery both are to share goes through {@link #surgeryOnBoth}.
 */
final class ControlTwin implements AutoCloseable {

  final Block subjectRoot;
  final Trainer subjectTrainer;
  private final Block controlRoot;
  private final Trainer controlTrainer;
  private final Model subject;
  private final Model control;
  private final Optimizer subjectOptimizerObject;

  ControlTwin(String name, Supplier<Block> net, OptimizerKind kind, Shape input) {
    subjectRoot = net.get();
    controlRoot = net.get();
    subject = TinyModels.model(name, subjectRoot);
    control = TinyModels.model(name + "-control", controlRoot);
    subjectOptimizerObject = kind.create();
    subjectTrainer = subject.newTrainer(config(subjectOptimizerObject));
    controlTrainer = control.newTrainer(config(kind.create()));
    subjectTrainer.initialize(input);
    controlTrainer.initialize(input);
    List<Parameter> from = parameters(subjectRoot);
    List<Parameter> to = parameters(controlRoot);
    assertEquals(from.size(), to.size(), "the twins are built alike");
    for (int i = 0; i < from.size(); i++) {
      from.get(i).getArray().copyTo(to.get(i).getArray());
    }
  }

  private static DefaultTrainingConfig config(Optimizer optimizer) {
    return new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss()).optOptimizer(optimizer);
  }

  /**
   * Trains subject and control one epoch each on the same data.
   *
   * @param data the batches, iterated in order
   */
  void fit(Dataset data) throws Exception {
    EasyTrain.fit(subjectTrainer, 1, data, null);
    EasyTrain.fit(controlTrainer, 1, data, null);
  }

  /**
   * Asserts that the subject is the control: same structure, every parameter element bitwise, every
   * optimizer state element bitwise, the same update counts, the store holding exactly the model's
   * parameters, and the user's optimizer object itself held by the parameter server (no stand-in
   * left behind when the control has none).
   *
   * @param when what has happened, for messages
   */
  void assertSubjectIsTheControl(String when) {
    assertEquals(controlRoot.toString(), subjectRoot.toString(), "structure " + when);
    assertEquals(
        Fixtures.modelIds(subjectRoot), Fixtures.storeIds(subjectTrainer), "store " + when);
    List<Parameter> mine = parameters(subjectRoot);
    List<Parameter> theirs = parameters(controlRoot);
    assertEquals(theirs.size(), mine.size(), "parameters " + when);
    Optimizer subjectOptimizer = DjlTrainers.optimizer(subjectTrainer);
    Optimizer controlOptimizer = DjlTrainers.optimizer(controlTrainer);
    Map<String, Map<String, Map<Device, NDArray>>> subjectStates =
        DjlOptimizers.optimizerStates(subjectOptimizer);
    Map<String, Map<String, Map<Device, NDArray>>> controlStates =
        DjlOptimizers.optimizerStates(controlOptimizer);
    assertEquals(controlStates.keySet(), subjectStates.keySet(), "state fields " + when);
    Map<String, Integer> subjectCounts = DjlOptimizers.updateCounts(subjectOptimizer);
    Map<String, Integer> controlCounts = DjlOptimizers.updateCounts(controlOptimizer);
    assertEquals(controlCounts.size(), subjectCounts.size(), "update counts " + when);
    for (String field : controlStates.keySet()) {
      assertEquals(
          controlStates.get(field).size(), subjectStates.get(field).size(), field + " " + when);
    }
    ExactnessOracle.assertTwinsBitIdentical(theirs, controlTrainer, mine, subjectTrainer, when);
    assertSame(subjectOptimizerObject, subjectOptimizer, "the user's optimizer object " + when);
    // The birth-aware stand-in: there exactly when the control has one, with the same marks.
    BirthAwareOptimizer subjectStand = DjlTrainers.birthAwareOptimizer(subjectTrainer, false);
    BirthAwareOptimizer controlStand = DjlTrainers.birthAwareOptimizer(controlTrainer, false);
    assertEquals(controlStand == null, subjectStand == null, "stand-in installed " + when);
    if (controlStand != null) {
      assertSame(subjectOptimizerObject, subjectStand.getDelegate(), "stand-in's delegate " + when);
      for (int i = 0; i < mine.size(); i++) {
        assertEquals(
            controlStand.birthOf(theirs.get(i).getId()),
            subjectStand.birthOf(mine.get(i).getId()),
            "birth mark of parameter #" + i + " " + when);
      }
    }
    assertTrue(subjectCounts.keySet().stream().allMatch(Fixtures.modelIds(subjectRoot)::contains));
  }

  /**
   * Runs the same successful surgery on subject and control, each with its own trainer.
   *
   * @param policies the replacement policies
   */
  void surgeryOnBoth(Map<Class<? extends Block>, ReplacementFunction> policies) {
    Map<Block, Block> a =
        ModuleSurgery.replaceModuleClasses(
            subjectRoot, policies, List.of(subjectTrainer), false, null);
    Map<Block, Block> b =
        ModuleSurgery.replaceModuleClasses(
            controlRoot, policies, List.of(controlTrainer), false, null);
    assertEquals(b.size(), a.size(), "the same surgery on both");
    assertTrue(!a.isEmpty(), "the surgery changed something");
  }

  static List<Parameter> parameters(Block root) {
    return new ArrayList<>(BlockTrees.parametersOf(root));
  }

  @Override
  public void close() {
    subjectTrainer.close();
    controlTrainer.close();
    subject.close();
    control.close();
  }
}
