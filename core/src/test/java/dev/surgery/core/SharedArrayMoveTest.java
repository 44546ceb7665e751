package dev.surgery.core;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.tracker.Tracker;
import ai.djl.util.PairList;
import dev.surgery.core.OptimizerMoveEdgesTest.TwoModels;
import dev.surgery.core.OptimizerMoveRig.Batches;
import dev.surgery.core.OptimizerMoveRig.Kind;
import dev.surgery.core.testing.GcSafeL2Loss;
import java.nio.FloatBuffer;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.Consumer;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Moves of parameters whose arrays another parameter or another model also uses (a reviewer's
 * checks, thirty-first session): a frozen view of a trainable array leaves the array training, and
 * a block shared between models is moved only in the model that changes. A first fix that stopped
 * the gradients of arrays a frozen parameter took over broke the tie and the shared freeze.
 */
class SharedArrayMoveTest {

  static final float LR = 0.01f;

  /** Reads a frozen Parameter that wraps another (trainable) layer's weight array: a tie. */
  static final class TiedReader extends AbstractBlock {
    final Parameter tied;

    TiedReader(Parameter tied) {
      this.tied = addParameter(tied);
    }

    @Override
    protected NDList forwardInternal(
        ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
      NDArray w = store.getValue(tied, inputs.head().getDevice(), training);
      return new NDList(inputs.head().add(w.sum()));
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputs) {
      return inputs;
    }
  }

  /** Linear(4), tanh, Linear(2), then a frozen reader tied to the first layer's weight. */
  static final class TiedModel implements AutoCloseable {
    final SequentialBlock net = new SequentialBlock();
    final Model model = Model.newInstance("tied");
    final Trainer trainer;

    TiedModel(Kind kind, long seed) {
      net.add(Linear.builder().setUnits(4).build())
          .add(Activation.tanhBlock())
          .add(Linear.builder().setUnits(2).build());
      model.setBlock(net);
      trainer =
          model.newTrainer(
              new DefaultTrainingConfig(new GcSafeL2Loss())
                  .optOptimizer(kind.build(Tracker.fixed(LR), 0)));
      trainer.initialize(OptimizerMoveRig.INPUT);
      Random r = new Random(seed);
      for (Parameter p : OptimizerMoveRig.params(net)) {
        float[] v = new float[(int) p.getArray().getShape().size()];
        for (int i = 0; i < v.length; i++) {
          v[i] = (float) (r.nextGaussian() * 0.6);
        }
        p.getArray().set(FloatBuffer.wrap(v));
      }
      net.add(new TiedReader(frozenAround(weight0().getArray())));
    }

    Parameter weight0() {
      return ((Linear) net.getChildren().get(0).getValue()).getParameters().get("weight");
    }

    TiedReader reader() {
      return (TiedReader) net.getChildren().get(3).getValue();
    }

    void step(Batches.Batch b) {
      OptimizerMoveRig.forwardBackward(trainer, b);
      trainer.step();
    }

    List<Parameter> trainable() {
      return OptimizerMoveRig.params(net.getChildren().get(0).getValue());
    }

    @Override
    public void close() {
      trainer.close();
      model.close();
    }
  }

  static Parameter frozenAround(NDArray array) {
    return RefusedOptimizerMoveTest.around(array, "tied", false);
  }

  static void assertSame(TiedModel subject, TiedModel twin, String when) {
    OptimizerMoveRig.assertSameValues(subject.trainable(), twin.trainable(), when);
  }

  /**
   * Steps a tied subject and its twin, both built from {@code modelSeed}, ten steps on the batches
   * of {@code dataSeed}, running {@code surgery} on the subject before step 4, and asserts after
   * every step that the trainable layer's values are the twin's.
   */
  private static void assertTrainsLikeItsTwin(
      Kind kind, long dataSeed, long modelSeed, Consumer<TiedModel> surgery) {
    try (Batches data = new Batches(dataSeed, 6);
        TiedModel subject = new TiedModel(kind, modelSeed);
        TiedModel twin = new TiedModel(kind, modelSeed)) {
      for (int k = 0; k < 10; k++) {
        if (k == 4) {
          surgery.accept(subject);
        }
        subject.step(data.get(k));
        twin.step(data.get(k));
        assertSame(subject, twin, "step " + k);
      }
    }
  }

  /**
   * A frozen Parameter tied to a trainable layer's weight (same array) is rewrapped frozen to
   * frozen: nothing about training changes, yet {@code TrainerSurgery.rekey} now stops the gradient
   * of the shared array, and the trainable layer's next step fails (no gradient attached) or stops
   * training. Passes on 9dc9d721.
   */
  @ParameterizedTest
  @EnumSource(Kind.class)
  void aFrozenTieRewrappedByReplaceParamsInOptimizerLeavesTheTrainableLayerTraining(Kind kind) {
    assertTrainsLikeItsTwin(
        kind,
        /* dataSeed= */ 41,
        /* modelSeed= */ 7,
        subject -> {
          Parameter old = subject.reader().tied;
          Parameter rewrapped = frozenAround(subject.weight0().getArray());
          ModuleSurgery.replaceParamsInOptimizer(
              List.of(old), List.of(rewrapped), List.of(subject.trainer));
          Block reader = subject.reader();
          ModuleSurgery.replaceModuleClasses(
              subject.net,
              Map.of(TiedReader.class, (b, i) -> b == reader ? new TiedReader(rewrapped) : null),
              null,
              false,
              null);
        });
  }

  /** The same through a tree surgery with the trainer (TrainerUpdate re-keys the frozen tie). */
  @ParameterizedTest
  @EnumSource(Kind.class)
  void aFrozenTieRewrappedByATreeSurgeryLeavesTheTrainableLayerTraining(Kind kind) {
    assertTrainsLikeItsTwin(
        kind,
        /* dataSeed= */ 42,
        /* modelSeed= */ 8,
        subject -> {
          NDArray w = subject.weight0().getArray();
          ModuleSurgery.replaceModuleClasses(
              subject.net,
              Map.of(TiedReader.class, (b, i) -> new TiedReader(frozenAround(w))),
              List.of(subject.trainer),
              false,
              null);
        });
  }

  /**
   * The Javadoc: "The blocks may be swapped in the model before or after this call; but once a
   * given trainer's model uses the new parameter, a trainer whose model still uses the old one ...
   * keeps it", and the guide: "For a block shared by two models and replaced in one of them, pass
   * both trainers". Moving first (no model uses the new parameters yet) with both trainers, then
   * swapping in model 1, moves model 2's trainer too: model 2 registers the old parameters again,
   * fresh, and the shared arrays were updated twice per step, with nothing refusing or warning
   * (before the fix, and on 9dc9d721). The call is now refused (nothing changed), as the Javadoc
   * says: swap first where the holders train different models.
   */
  @ParameterizedTest
  @EnumSource(
      value = Kind.class,
      names = {"ADAMW", "SGD_MOMENTUM"})
  void aSharedBlockMovedFirstWithBothTrainersThenSwappedLeavesTheOtherModelAsItsTwin(Kind kind) {
    try (Batches data = new Batches(43, 9);
        TwoModels subject = new TwoModels(kind, 23);
        TwoModels twin = new TwoModels(kind, 23)) {
      for (int k = 0; k < 16; k++) {
        if (k == 6) {
          Block s = subject.shared1();
          List<Parameter> before = OptimizerMoveRig.params(s);
          Linear rewrapped = OptimizerMoveEdgesTest.rewrap((Linear) s);
          boolean refused = false;
          try {
            ModuleSurgery.replaceParamsInOptimizer(
                before, OptimizerMoveRig.params(rewrapped), List.of(subject.t1, subject.t2));
          } catch (RuntimeException e) {
            refused = true; // a refusal that changes nothing would be a fine answer
          }
          if (!refused) {
            ModuleSurgery.replaceModuleClasses(
                subject.n1,
                Map.of(Linear.class, (b, i) -> b == s ? rewrapped : null),
                null,
                false,
                null);
          }
        }
        subject.step(data, k);
        twin.step(data, k);
        TwoModels.assertSame(subject, twin, "step " + k);
      }
    }
  }

  /**
   * Two models share a block. Model 1 alone takes a frozen view of it (new frozen Parameters around
   * the very arrays, tree surgery with both trainers): model 2 keeps training the shared block with
   * its own, trainable, Parameters ({@code StillUsed} keeps them in trainer 2). The re-key in
   * trainer 1 now stops the gradients of the shared arrays, so trainer 2's next step fails ("No
   * gradient attached") or its shared layer stops training. Passes on 9dc9d721.
   */
  @ParameterizedTest
  @EnumSource(Kind.class)
  void aSharedBlockFrozenInOneModelOnlyKeepsTrainingInTheOther(Kind kind) {
    try (Batches data = new Batches(44, 9);
        TwoModels subject = new TwoModels(kind, 24)) {
      for (int k = 0; k < 4; k++) {
        subject.step(data, k);
      }
      Linear s = (Linear) subject.shared1();
      ModuleSurgery.replaceModuleClasses(
          subject.n1,
          Map.of(
              Linear.class,
              (b, i) -> {
                if (b != s) {
                  return null;
                }
                Linear view = Linear.builder().setUnits(4).build();
                view.freezeParameters(true); // built frozen, before the arrays
                for (Parameter p : OptimizerMoveRig.params(view)) {
                  p.setArray(s.getParameters().get(p.getName()).getArray());
                }
                return view;
              }),
          List.of(subject.t1, subject.t2),
          false,
          null);
      Parameter sharedWeight = s.getParameters().get("weight");
      for (int k = 4; k < 8; k++) {
        float[] before = sharedWeight.getArray().toFloatArray();
        subject.step(data, k); // model 1 (frozen view), then model 2 (trains the shared block)
        float[] after = sharedWeight.getArray().toFloatArray();
        org.junit.jupiter.api.Assertions.assertFalse(
            java.util.Arrays.equals(before, after),
            "step " + k + ": model 2 no longer trains the shared block");
      }
    }
  }
}
