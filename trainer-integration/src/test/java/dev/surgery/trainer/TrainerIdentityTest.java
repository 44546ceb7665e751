package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.TrainingConfig;
import ai.djl.training.dataset.ArrayDataset;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Trainers of a program's own subclass that compare by value (Lombok's {@code @Data} on a trainer
 * that counts its steps, or one equal to every trainer of its model): the listener follows each
 * trainer object, whatever its {@code equals} says.
 */
class TrainerIdentityTest {

  /** Counts its steps and compares by that count: its hash changes at every step. */
  static final class CountingTrainer extends Trainer {
    int steps;

    CountingTrainer(Model model, TrainingConfig config) {
      super(model, config);
    }

    @Override
    public void step() {
      super.step();
      steps++;
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof CountingTrainer t && t.steps == steps;
    }

    @Override
    public int hashCode() {
      return steps;
    }
  }

  /** Equal to every trainer of the same model. */
  static final class ModelKeyedTrainer extends Trainer {
    ModelKeyedTrainer(Model model, TrainingConfig config) {
      super(model, config);
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof ModelKeyedTrainer t && t.getModel() == getModel();
    }

    @Override
    public int hashCode() {
      return System.identityHashCode(getModel());
    }
  }

  private static SurgeryListener blurAtEpoch2() {
    return SurgeryListener.builder().add(TestModels.blurpool(), 2).build();
  }

  @Test
  void aTrainerWhoseHashChangesAtEachStepGetsItsSurgery() throws Exception {
    SurgeryListener listener = blurAtEpoch2();
    float[] counted;
    try (Model model = TestModels.model("counting");
        NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 3);
      try (Trainer trainer = new CountingTrainer(model, TestModels.config(listener))) {
        trainer.initialize(TestModels.INPUT);
        EasyTrain.fit(trainer, 3, dataset, null);
      }
      assertEquals(1, TestModels.count(model.getBlock(), "BlurConv2d"));
      assertEquals(
          List.of(SurgeryOutcome.Status.APPLIED),
          listener.getOutcomes().stream().map(SurgeryOutcome::status).toList());
      assertEquals(List.of(), listener.getWarnings());
      counted = weights(model);
    }
    // The oracle: the same seed and schedule with DJL's own trainer, 12 steps under Adam with the
    // surgery after the 8th: the subclass only counts, so every weight must be the same bits.
    try (Model model = TestModels.model("plain");
        NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 3);
      try (Trainer trainer = model.newTrainer(TestModels.config(blurAtEpoch2()))) {
        trainer.initialize(TestModels.INPUT);
        EasyTrain.fit(trainer, 3, dataset, null);
      }
      float[] plain = weights(model);
      assertArrayEquals(plain, counted);
      for (float v : counted) {
        assertTrue(Float.isFinite(v));
      }
    }
  }

  /** Every parameter's values, in the model's order. */
  private static float[] weights(Model model) {
    List<float[]> arrays =
        model.getBlock().getParameters().values().stream()
            .map(p -> p.getArray().toFloatArray())
            .toList();
    int n = arrays.stream().mapToInt(a -> a.length).sum();
    float[] all = new float[n];
    int at = 0;
    for (float[] a : arrays) {
      System.arraycopy(a, 0, all, at, a.length);
      at += a.length;
    }
    return all;
  }

  @Test
  void closingAnEqualEvaluationTrainerDoesNotEndTheTrainingOne() throws Exception {
    SurgeryListener listener = blurAtEpoch2();
    try (Model model = TestModels.model("model-keyed");
        NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 4);
      try (Trainer trainer = new ModelKeyedTrainer(model, TestModels.config(listener))) {
        trainer.initialize(TestModels.INPUT);
        EasyTrain.fit(trainer, 1, dataset, null);
        try (Trainer evaluation = new ModelKeyedTrainer(model, TestModels.config(listener))) {
          EasyTrain.evaluateDataset(evaluation, dataset);
        }
        // Threw: "trainer 1 gets training events after its training ended".
        EasyTrain.fit(trainer, 2, dataset, null);
      }
      assertEquals(1, TestModels.count(model.getBlock(), "BlurConv2d"));
      // The evaluation trainer's own copy of the schedule: said to be its, not training's end.
      List<String> warnings = listener.getWarnings();
      assertEquals(1, warnings.size(), warnings.toString());
      assertTrue(
          warnings.get(0).contains("never ran: trainer 2 reported no training batch"),
          warnings.get(0));
    }
  }
}
