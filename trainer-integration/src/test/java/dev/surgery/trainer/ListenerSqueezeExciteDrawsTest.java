package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.norm.Dropout;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.listener.TrainingListener;
import ai.djl.training.listener.TrainingListenerAdapter;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.ReplacementFunction;
import dev.surgery.core.internal.DjlShapes;
import dev.surgery.core.layers.SqueezeExciteConv2d;
import dev.surgery.core.testing.TinyModels;
import dev.surgery.trainer.config.SurgeryConfig;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Squeeze-excite applied by the listener at the end of the first epoch, on a model with dropout
 * (which draws at every forward), against the same run whose surgery is made at the same event by
 * hand: the gates built and initialized by hand, in the tree's order, as the functions return them
 * (the surgery then draws nothing itself). Held back to the end of the listener's surgery, the
 * gates' draws must give the same gates, leave the generator where the hand initialization leaves
 * it, and so the same dropout masks and parameters bit for bit after three epochs.
 */
class ListenerSqueezeExciteDrawsTest {

  private static final String YAML =
      "algorithms:\n"
          + "  - {name: squeeze_excite, epoch: 1, min_channels: 0, latent_channels: 2}\n";

  @Test
  void theListenersGatesAndTrainingAreThoseOfTheSurgeryByHand() throws Exception {
    List<byte[]> byListener = train(true);
    List<byte[]> byHand = train(false);
    assertEquals(byHand.size(), byListener.size(), "the same parameters");
    for (int i = 0; i < byHand.size(); i++) {
      assertArrayEquals(byHand.get(i), byListener.get(i), "value " + i + " after three epochs");
    }
  }

  /**
   * Three epochs with the surgery after the first; the parameters and the generator's next draw.
   */
  private static List<byte[]> train(boolean listenerDoesIt) throws Exception {
    SurgeryListener listener = SurgeryListener.fromConfig(SurgeryConfig.parse(YAML, "run.yaml"));
    Engine.getInstance().setRandomSeed(7);
    SequentialBlock net =
        new SequentialBlock().add(Dropout.builder().optRate(0.3f).build()).add(TinyModels.cnn(4));
    try (Model model = Model.newInstance("listener-se");
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(net);
      ArrayDataset dataset = TestModels.dataset(data, 3);
      int[] gates = new int[1];
      TrainingListener byHand =
          new TrainingListenerAdapter() {
            private boolean done;

            @Override
            public void onEpoch(Trainer trainer) {
              if (done) {
                return;
              }
              done = true;
              Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
              policies.put(
                  Conv2d.class,
                  (block, index) -> {
                    SqueezeExciteConv2d gated = new SqueezeExciteConv2d((Conv2d) block, 2);
                    gated.initialize(
                        model.getNDManager(),
                        DataType.FLOAT32,
                        DjlShapes.recordedInputShapes(block));
                    gates[0]++;
                    return gated;
                  });
              ModuleSurgery.replaceModuleClasses(net, policies, List.of(trainer), false, null);
            }
          };
      TrainingListener used = listenerDoesIt ? listener : byHand;
      try (Trainer trainer = model.newTrainer(TestModels.config(used))) {
        trainer.initialize(TestModels.INPUT);
        if (listenerDoesIt) {
          listener.onInitialized(trainer);
        }
        Engine.getInstance().setRandomSeed(21);
        EasyTrain.fit(trainer, 3, dataset, null);
      }
      if (listenerDoesIt) {
        List<SurgeryOutcome> outcomes = listener.getOutcomes();
        assertEquals(1, outcomes.size(), outcomes.toString());
        assertEquals(SurgeryOutcome.Status.APPLIED, outcomes.get(0).status(), outcomes.toString());
      } else {
        assertEquals(2, gates[0], "both convolutions gated by hand");
      }
      List<byte[]> values = new ArrayList<>();
      for (Parameter p : model.getBlock().getParameters().values()) {
        values.add(p.getArray().toByteArray());
        for (float v : p.getArray().toType(DataType.FLOAT32, false).toFloatArray()) {
          assertTrue(Float.isFinite(v), p.getName());
        }
      }
      try (NDArray next = data.randomUniform(0, 1, new Shape(8))) {
        values.add(next.toByteArray());
      }
      return values;
    }
  }
}
