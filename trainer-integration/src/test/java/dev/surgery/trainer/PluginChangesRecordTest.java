package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.Trainer;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.trainer.config.SurgeryConfig;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/**
 * What a review found of the checks on what a plugin returns, and of layer_freezing's warning: a
 * quiet freeze of a repeating entry went unrecorded, a change without a path escaped as a raw
 * NullPointerException, and a repeating layer_freezing warned after its first layer was due.
 */
class PluginChangesRecordTest {

  static {
    // A plugin that freezes the first layer and names no layer: empty changes, as the failure for
    // a null return advises ("a freeze that names no layer is recorded with empty changes").
    Algorithms.register(
        AlgorithmSpec.of(
            "t_quiet_freeze_every",
            List.of(),
            v ->
                TestAlgorithms.applying(
                    "t_quiet_freeze_every",
                    context -> {
                      Block first = context.model().getChildren().get(0).getValue();
                      ModuleSurgery.freezeParameters(
                          first.getParameters().values(), context.trainers());
                      return new SurgeryChanges(
                          "t_quiet_freeze_every", Map.of(), List.of(), 0, 0, 1);
                    })));
    // A plugin whose changes name a freeze without a path (a plugin bug), changing nothing.
    Algorithms.register(
        AlgorithmSpec.of(
            "t_null_change_path",
            List.of(),
            v ->
                TestAlgorithms.applying(
                    "t_null_change_path",
                    context ->
                        new SurgeryChanges(
                            "t_null_change_path",
                            Map.of(),
                            List.of(new SurgeryChanges.Change(null, "Conv2d", "frozen Conv2d")),
                            0,
                            0,
                            1))));
  }

  private static SurgeryListener listener(String yaml) {
    return SurgeryListener.fromConfig(SurgeryConfig.parse(yaml, "plugin.yaml"));
  }

  private static void train(Model model, SurgeryListener listener, int epochs) throws Exception {
    Engine.getInstance().setRandomSeed(7);
    try (NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      SurgeryTrain.fit(trainer, epochs, TestModels.dataset(data, 3), null);
    }
  }

  /**
   * Trains as {@link #train} does, catching a typed failure that stops training; returns it, or
   * null if training ran to its end.
   */
  private static SurgeryFailedException trainCatchingTheFailure(
      Model model, SurgeryListener listener, int epochs) throws Exception {
    try {
      train(model, listener, epochs);
      return null;
    } catch (SurgeryFailedException e) {
      return e;
    }
  }

  /**
   * The failure for a plugin that froze and returned null says that a freeze naming no layer is
   * recorded with empty changes. In a repeating entry ({@code every: 1ep}) it was not: a repeating
   * run with empty changes left no record, so the freeze was kept in memory, reported applied, and
   * lost from every checkpoint. A run that froze is recorded.
   */
  @Test
  void aRepeatingEntrysFreezeWithEmptyChangesIsRecordedOrRefused() throws Exception {
    try (Model model = TestModels.model("quiet")) {
      SurgeryListener listener =
          listener(
              "algorithms:\n  - {name: t_quiet_freeze_every, every: 1ep}\n"
                  + "on_error: skip\ntotal_epochs: 2\n");
      SurgeryFailedException stopped = trainCatchingTheFailure(model, listener, 2);
      Block first = model.getBlock().getChildren().get(0).getValue();
      assertTrue(
          first.getParameters().values().stream().noneMatch(Parameter::requiresGradient),
          "the plugin froze the first layer in memory");
      boolean failed =
          stopped != null
              || listener.getOutcomes().stream()
                  .anyMatch(o -> o.status() != SurgeryOutcome.Status.APPLIED);
      String record = model.getProperty(SurgeryListener.PROPERTY);
      assertTrue(
          !failed && record != null && record.contains("t_quiet_freeze_every"),
          "the freeze is neither recorded (surgery property "
              + record
              + ") nor refused; outcomes "
              + listener.getOutcomes().stream()
                  .map(o -> o.status().toString())
                  .collect(Collectors.toList()));
    }
  }

  /**
   * algorithms.md: "a repeating one says it at each run before its first layer is due". With 4
   * layers over 8 epochs and freeze_start 0, floor(k/8 * 3) is 0, 0, 1, 1, 1, 2, 2, 3: the runs
   * after epochs 4, 5 and 7 warned too, though a layer was frozen before them.
   */
  @Test
  void aRepeatingLayerFreezingWarnsOnlyBeforeItsFirstLayerIsDue() throws Exception {
    try (Model model = TestModels.model("every")) {
      SurgeryListener listener =
          listener(
              "algorithms:\n  - {name: layer_freezing, every: 1ep, freeze_start: 0.0}\n"
                  + "total_epochs: 8\n");
      train(model, listener, 8);
      List<String> noFreeze = new ArrayList<>();
      for (String w : listener.getWarnings()) {
        if (w.startsWith("Applying layer_freezing did not freeze any layers")) {
          noFreeze.add(w);
        }
      }
      List<String> afterFirst =
          noFreeze.stream()
              .filter(w -> !w.contains("after 1 of") && !w.contains("after 2 of"))
              .collect(Collectors.toList());
      assertEquals(
          List.of(),
          afterFirst,
          noFreeze.size() + " 'did not freeze' warnings in 8 epochs; those after the first freeze");
    }
  }

  /**
   * Whatever a plugin returns is its failure, typed (SurgeryFailedException, or skipped under
   * on_error: skip). A change without a path made the check of its freezes throw a
   * NullPointerException, which escaped the listener untyped, from DJL's onEpoch, with no outcome
   * logged.
   */
  @Test
  void changesWithoutAPathAreTheEntrysFailureNotAnEscapingNullPointer() throws Exception {
    try (Model model = TestModels.model("nullpath")) {
      SurgeryListener listener =
          listener(
              "algorithms:\n  - {name: t_null_change_path, epoch: 1}\n"
                  + "on_error: skip\ntotal_epochs: 2\n");
      trainCatchingTheFailure(model, listener, 2); // a typed failure is fine
      assertEquals(1, listener.getOutcomes().size(), "the entry's run is logged");
      assertEquals(SurgeryOutcome.Status.SKIPPED, listener.getOutcomes().get(0).status());
    }
  }
}
