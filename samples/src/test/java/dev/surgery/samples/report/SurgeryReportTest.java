package dev.surgery.samples.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.evaluator.Accuracy;
import ai.djl.training.listener.TrainingListener;
import ai.djl.training.listener.TrainingListenerAdapter;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.surgery.core.SurgeryPlan;
import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.samples.report.SurgeryReportWriter.BaselineRun;
import dev.surgery.samples.report.TrainingHistory.BatchLoss;
import dev.surgery.samples.report.TrainingHistory.EpochMetrics;
import dev.surgery.samples.report.TrainingHistory.ModelChange;
import dev.surgery.trainer.EntryPlan;
import dev.surgery.trainer.SurgeryListener;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The history listener sees surgery made by someone else, and the report shows it. */
class SurgeryReportTest {

  @TempDir Path dir;

  /** A listener that changes the model once, after {@code epoch} completed epochs. */
  private abstract static class ChangeAfterEpoch extends TrainingListenerAdapter {
    private final int epoch;
    private int completed;

    ChangeAfterEpoch(int epoch) {
      this.epoch = epoch;
    }

    @Override
    public void onEpoch(Trainer trainer) {
      if (++completed == epoch) {
        change(trainer, completed);
      }
    }

    abstract void change(Trainer trainer, int completed);
  }

  /** A listener (registered after the history) that applies BlurPool after {@code epoch} epochs. */
  private static final class BlurAt extends ChangeAfterEpoch {
    BlurAt(int epoch) {
      super(epoch);
    }

    @Override
    void change(Trainer trainer, int completed) {
      BlurPool.builder()
          .optMinChannels(0)
          .build()
          .apply(SurgeryContext.live(trainer.getModel().getBlock(), trainer, completed, 0));
    }
  }

  /** Freezes the first layer (the convolution) after an epoch, as layer_freezing does. */
  private static final class FreezeAt extends ChangeAfterEpoch {
    FreezeAt(int epoch) {
      super(epoch);
    }

    @Override
    void change(Trainer trainer, int completed) {
      List<ai.djl.nn.Parameter> conv = new java.util.ArrayList<>();
      trainer
          .getModel()
          .getBlock()
          .getChildren()
          .get(0)
          .getValue()
          .getDirectParameters()
          .forEach(p -> conv.add(p.getValue()));
      dev.surgery.core.ModuleSurgery.freezeParameters(conv, List.of(trainer));
    }
  }

  private static Block net() {
    return new SequentialBlock()
        .add(
            Conv2d.builder()
                .setKernelShape(new Shape(3, 3))
                .optStride(new Shape(2, 2))
                .optPadding(new Shape(1, 1))
                .setFilters(4)
                .build())
        .add(Activation.reluBlock())
        .add(Blocks.batchFlattenBlock())
        .add(Linear.builder().setUnits(2).build());
  }

  private static Trainer newTrainer(Model model, Block block, Optimizer optimizer) {
    model.setBlock(block);
    return model.newTrainer(
        new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss()).optOptimizer(optimizer));
  }

  private TrainingHistory train(int epochs, TrainingListener surgery) throws Exception {
    TrainingHistory history = new TrainingHistory();
    try (Model model = Model.newInstance("report-test");
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(net());
      NDArray labels = data.arange(32).toType(DataType.FLOAT32, false).mod(2);
      NDArray images =
          data.randomNormal(new Shape(32, 3, 8, 8)).mul(0.2f).add(labels.reshape(32, 1, 1, 1));
      ArrayDataset set =
          new ArrayDataset.Builder().setData(images).optLabels(labels).setSampling(8, true).build();
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
              .addEvaluator(new Accuracy())
              .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build())
              .addTrainingListeners(TrainingListener.Defaults.basic())
              .addTrainingListeners(history);
      if (surgery != null) {
        config.addTrainingListeners(surgery);
      }
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(new Shape(1, 3, 8, 8));
        EasyTrain.fit(trainer, epochs, set, set);
      }
    }
    return history;
  }

  @Test
  void historyRecordsEpochsAndTheSurgeryAtItsEpoch() throws Exception {
    TrainingHistory history = train(3, new BlurAt(1));
    assertEquals(3, history.getEpochs().size());
    for (TrainingHistory.EpochMetrics m : history.getEpochs()) {
      assertTrue(Double.isFinite(m.trainLoss()) && Double.isFinite(m.validationLoss()));
      assertTrue(m.validationAccuracy() >= 0 && m.validationAccuracy() <= 1);
    }
    List<ModelChange> changes = history.getChanges();
    assertEquals(1, changes.size());
    ModelChange change = changes.get(0);
    assertEquals(1, change.epoch());
    assertEquals(1, change.blocks().size());
    assertEquals("01Conv2d", change.blocks().get(0).path());
    assertEquals("Conv2d", change.blocks().get(0).oldType());
    assertEquals("BlurConv2d", change.blocks().get(0).newType());
    // BlurPool keeps the parameters: 3*3*3*4 + 4 (conv) + 64*2 + 2 (linear).
    assertEquals(112 + 130, change.parametersBefore());
    assertEquals(change.parametersBefore(), change.parametersAfter());
  }

  /**
   * Without a surgery log, freezing (which replaces no block) is still reported, and the report
   * says that its list is only what the job saw.
   */
  @Test
  void withoutASurgeryLogFreezingIsReportedAndTheReportSaysWhatItCannotKnow() throws Exception {
    TrainingHistory history = train(2, new FreezeAt(1));
    List<ModelChange> changes = history.getChanges();
    assertEquals(1, changes.size(), changes.toString());
    assertEquals(1, changes.get(0).epoch());
    assertEquals(
        List.of(new TrainingHistory.BlockChange("01Conv2d", "Conv2d", "frozen Conv2d")),
        changes.get(0).blocks());
    Path html = SurgeryReportWriter.builder("freeze", history).build().write(dir);
    String page = Files.readString(html);
    assertTrue(page.contains("layers frozen after epoch 1: 1 block(s) frozen"), page);
    assertTrue(page.contains("No surgery log"), page);
    JsonObject json = json(dir.resolve(SurgeryReportWriter.JSON));
    assertTrue(json.get("surgeries_from").getAsString().contains("no surgery log"));
  }

  /**
   * Before initialize a model's parameter count is unknown, not 0: a surgery at epoch 0 without a
   * surgery log read "parameters 0 -> 274,298" in the report.
   */
  @Test
  void aParameterCountBeforeInitializeIsUnknownNotZero() {
    ai.djl.nn.SequentialBlock net =
        new ai.djl.nn.SequentialBlock().add(ai.djl.nn.core.Linear.builder().setUnits(2).build());
    assertEquals(
        dev.surgery.core.algorithms.SurgeryChanges.UNKNOWN_PARAMETERS,
        TrainingHistory.parameterCountNow(net));
    try (ai.djl.ndarray.NDManager m = ai.djl.ndarray.NDManager.newBaseManager()) {
      net.initialize(m, ai.djl.ndarray.types.DataType.FLOAT32, new Shape(1, 3));
      assertEquals(3 * 2 + 2, TrainingHistory.parameterCountNow(net));
    }
  }

  @Test
  void aSurgeryAfterTheLastEpochIsSeenAtTrainingEnd() throws Exception {
    TrainingHistory history = train(1, new BlurAt(1));
    assertEquals(1, history.getChanges().size());
    assertEquals(1, history.getChanges().get(0).epoch());
  }

  @Test
  void writesHtmlPngsAndJsonFromTheHistory() throws Exception {
    TrainingHistory history = train(2, new BlurAt(1));
    Path html = SurgeryReportWriter.builder("test job", history).build().write(dir);
    String page = Files.readString(html);
    assertTrue(page.contains("model change after epoch 1: 1 block(s) replaced"), page);
    assertTrue(page.contains("<code>01Conv2d</code></td><td>Conv2d</td><td>BlurConv2d"), page);
    for (String png : List.of(SurgeryReportWriter.LOSS_PNG, SurgeryReportWriter.ACCURACY_PNG)) {
      BufferedImage image = ImageIO.read(dir.resolve(png).toFile());
      assertEquals(720, image.getWidth());
      assertTrue(page.contains("src=\"" + png + "\""));
    }
    JsonObject json = json(dir.resolve(SurgeryReportWriter.JSON));
    assertEquals(2, json.getAsJsonArray("epochs").size());
    JsonObject surgery = json.getAsJsonArray("surgeries").get(0).getAsJsonObject();
    assertEquals(1, surgery.get("epoch").getAsInt());
    assertEquals(
        "BlurConv2d",
        surgery.getAsJsonArray("blocks").get(0).getAsJsonObject().get("new_type").getAsString());
  }

  @Test
  void namesAlgorithmsFromTheListenerReportAndDrawsOneEpoch() throws Exception {
    TrainingHistory history = train(1, null);
    assertTrue(history.getChanges().isEmpty());
    Path listenerJson = dir.resolve("listener.json");
    Files.writeString(
        listenerJson,
        "{\"applications\":[{\"algorithm\":\"blurpool\",\"epoch\":1,\"status\":\"applied\","
            + "\"time_ms\":12.5,\"changes\":[{\"path\":\"05ParallelBlock/01Conv2d\",\"from\":"
            + "\"Conv2d\",\"to\":\"BlurConv2d\"}],\"parameters_before\":10,"
            + "\"parameters_after\":10},{\"algorithm\":\"squeeze_excite\",\"epoch\":1,"
            + "\"status\":\"failed\"}],\"not_run\":[]}");
    Path out = dir.resolve("out");
    SurgeryReportWriter writer =
        SurgeryReportWriter.builder("one epoch", history).optSurgeryLog(listenerJson).build();
    assertEquals(1, writer.surgeries().size());
    writer.write(out);
    String page = htmlIn(out);
    assertTrue(page.contains("blurpool after epoch 1: 1 block(s) replaced, 12.5000 ms"), page);
    assertTrue(!page.contains("squeeze_excite after"), page);
    assertTrue(Files.size(out.resolve(SurgeryReportWriter.LOSS_PNG)) > 1000);
  }

  /** A count the log says is unknown (the model had no shapes yet) is shown unknown, not as 0. */
  @Test
  void anUnknownParameterCountIsSaidToBeUnknown() throws Exception {
    TrainingHistory history = train(1, null);
    Path log = dir.resolve("log.json");
    Files.writeString(
        log,
        "{\"applications\":[{\"algorithm\":\"ghost_batchnorm\",\"epoch\":0,"
            + "\"status\":\"applied\",\"changes\":[],\"parameters_unknown\":true}]}");
    Path out = dir.resolve("unknown");
    SurgeryReportWriter.builder("unknown", history).optSurgeryLog(log).build().write(out);
    assertTrue(htmlIn(out).contains("parameters unknown"));
    JsonObject surgery =
        json(out.resolve(SurgeryReportWriter.JSON))
            .getAsJsonArray("surgeries")
            .get(0)
            .getAsJsonObject();
    assertTrue(
        !surgery.has("parameters_before") && !surgery.has("parameters_after"), surgery.toString());
  }

  /**
   * A dry run's plan (written by the listener's own writer from the core plan, made as the agent
   * makes it with the trainer just initialized) appears next to what the surgery applied, with the
   * multiply-accumulates of the formula: 01Conv2d takes 3x8x8 to 4x4x4 with a 3x3 kernel (4*4*4*3*9
   * = 1728) and the blur first adds 3*8*8*9 = 1728; and with the optimizer state of the
   * convolution's weight and bias, which the blurred convolution adopts, so their state moves.
   */
  @Test
  void showsTheDryRunPlanNextToWhatWasApplied() throws Exception {
    TrainingHistory history = train(1, null);
    Block planned = net();
    SurgeryPlan plan;
    try (Model model = Model.newInstance("planned");
        Trainer trainer =
            newTrainer(
                model,
                planned,
                Optimizer.sgd().setLearningRateTracker(Tracker.fixed(0.1f)).build())) {
      trainer.initialize(new Shape(1, 3, 8, 8));
      BlurPool blurpool = BlurPool.builder().optMinChannels(0).optBlurFirst(true).build();
      plan = blurpool.plan(SurgeryContext.live(planned, trainer, 0, 0), new Shape(1, 3, 8, 8));
      Path planJson = dir.resolve("plan.json");
      SurgeryListener.builder()
          .optReportPath(planJson)
          .build()
          .writePlanReport(
              List.of(
                  new EntryPlan(
                      new ScheduledAlgorithm(blurpool, 1, 0, "surgery.yaml:2:5"), plan, null)));
      Path listenerJson = dir.resolve("listener.json");
      Files.writeString(
          listenerJson,
          "{\"applications\":[{\"algorithm\":\"blurpool\",\"epoch\":1,\"status\":\"applied\","
              + "\"changes\":[{\"path\":\"01Conv2d\",\"from\":\"Conv2d\",\"to\":"
              + "\"BlurConv2d\"}]}],\"not_run\":[]}");
      Path out = dir.resolve("out");
      String page = pageWithPlan("planned", history, listenerJson, planJson, out);
      assertTrue(
          page.contains(
              "<code>01Conv2d</code></td><td>Conv2d</td><td>BlurConv2d</td>"
                  + "<td>Conv2d &rarr; BlurConv2d, MACs 1728 &rarr; 3456, optimizer state:"
                  + " =weight moved, =bias moved</td>"),
          page);
      JsonObject json = json(out.resolve(SurgeryReportWriter.JSON));
      assertEquals(
          "01Conv2d",
          json.getAsJsonArray("plans")
              .get(0)
              .getAsJsonObject()
              .getAsJsonArray("steps")
              .get(0)
              .getAsJsonObject()
              .get("path")
              .getAsString());
    }
  }

  /** The HTML page of a report written to {@code out}. */
  private static String htmlIn(Path out) throws Exception {
    return Files.readString(out.resolve(SurgeryReportWriter.HTML));
  }

  /**
   * The HTML page of {@code history}'s report with a surgery log and a plan log, written to out.
   */
  private static String pageWithPlan(
      String title, TrainingHistory history, Path surgeryLog, Path planLog, Path out)
      throws Exception {
    SurgeryReportWriter.builder(title, history)
        .optSurgeryLog(surgeryLog)
        .optPlanLog(planLog)
        .build()
        .write(out);
    return htmlIn(out);
  }

  /** A JSON file the report writer wrote (or read), parsed. */
  private static JsonObject json(Path file) throws Exception {
    return JsonParser.parseString(Files.readString(file)).getAsJsonObject();
  }

  /** A surgery log of one applied blurpool entry, declared at {@code source}. */
  private Path logOf(String source, int epoch, String step) throws Exception {
    Path log = dir.resolve("log-" + epoch + "-" + step + ".json");
    Files.writeString(
        log,
        "{\"applications\":[{\"algorithm\":\"blurpool\",\"epoch\":"
            + epoch
            + (step == null ? "" : ",\"step\":" + step)
            + ",\"source\":\""
            + source
            + "\",\"status\":\"applied\",\"changes\":[{\"path\":\"01Conv2d\",\"from\":"
            + "\"Conv2d\",\"to\":\"BlurConv2d\"}]}],\"not_run\":[]}");
    return log;
  }

  /** A dry run's plan of one blurpool entry, as the agent writes it; epoch null: not by epoch. */
  private static String plan(String source, String epoch, String when, String to) {
    return "{\"algorithm\":\"blurpool\",\"epoch\":"
        + epoch
        + ",\"when\":\""
        + when
        + "\",\"source\":\""
        + source
        + "\",\"steps\":[{\"path\":\"01Conv2d\",\"from\":\"Conv2d\",\"to\":\""
        + to
        + "\",\"macs_before\":1728,\"macs_after\":3456}]}";
  }

  /**
   * A later entry's plan names a block by the key it had before an earlier entry renamed it ({@code
   * 01Conv2d}, blurred since into {@code 01BlurConv2d}): the report matched by path and showed the
   * block twice, "not applied" and "not planned". And the entries that changed nothing (skipped,
   * never run) are listed with why; the report showed applied ones only.
   */
  @Test
  void aPlanMatchesARenamedBlockAndEntriesThatChangedNothingAreListed() throws Exception {
    TrainingHistory history = train(1, null);
    Path log = dir.resolve("renamed-log.json");
    Files.writeString(
        log,
        "{\"applications\":["
            + "{\"algorithm\":\"squeeze_excite\",\"epoch\":2,\"source\":\"run.yaml:4:5\","
            + "\"status\":\"applied\",\"changes\":[{\"path\":\"02Seq/01BlurConv2d\","
            + "\"from\":\"BlurConv2d\",\"to\":\"SqueezeExciteConv2d\"}]},"
            + "{\"algorithm\":\"ghost_batchnorm\",\"epoch\":1,\"source\":\"run.yaml:6:5\","
            + "\"status\":\"skipped\",\"error\":\"injected failure\"}],"
            + "\"not_run\":[{\"algorithm\":\"weight_standardization\",\"epoch\":4,"
            + "\"when\":\"at epoch 4\",\"source\":\"run.yaml:8:5\","
            + "\"reason\":\"training ended after 2 completed epochs\"}]}");
    Path planLog = dir.resolve("renamed-plan.json");
    Files.writeString(
        planLog,
        "{\"dry_run\":true,\"applications\":[],\"not_run\":[],\"plans\":["
            + "{\"algorithm\":\"squeeze_excite\",\"epoch\":2,\"source\":\"run.yaml:4:5\","
            + "\"steps\":[{\"path\":\"02Seq/01Conv2d\",\"from\":\"Conv2d\","
            + "\"to\":\"SqueezeExciteConv2d\",\"macs_before\":10,\"macs_after\":12}]}]}");
    Path out = dir.resolve("renamed");
    String page = pageWithPlan("renamed", history, log, planLog, out);
    assertTrue(page.contains("<td>Conv2d &rarr; SqueezeExciteConv2d, MACs 10 &rarr; 12"), page);
    assertTrue(!page.contains("not applied"), page);
    assertTrue(!page.contains("not planned"), page);
    assertTrue(page.contains("Entries that did not change the model"), page);
    assertTrue(page.contains("<td>skipped</td><td>injected failure</td>"), page);
    assertTrue(
        page.contains("<td>not run</td><td>training ended after 2 completed epochs</td>"), page);
    assertTrue(ReportPage.samePlace("08P/01S/01Conv2d", "08P/01S/01BlurConv2d"));
    assertTrue(!ReportPage.samePlace("08P/01S/01Conv2d", "08P/01S/02Conv2d"));
    assertTrue(!ReportPage.samePlace("head", "tail"));
  }

  /**
   * A plan of a step-scheduled entry ({@code "epoch": null}) is shown next to the surgery of the
   * same entry (source) and algorithm; with an epoch entry's plan of the same algorithm beside it,
   * each surgery gets its own entry's plan.
   */
  @Test
  void aStepScheduledPlanIsShownNextToItsSurgery() throws Exception {
    TrainingHistory history = train(1, null);
    Path planLog = dir.resolve("plan.json");
    Files.writeString(
        planLog,
        "{\"dry_run\":true,\"applications\":[],\"not_run\":[],\"plans\":["
            + plan("run.yaml:2:5", "null", "at step 2", "StepPlanned")
            + ","
            + plan("run.yaml:5:5", "0", "at epoch 0", "EpochPlanned")
            + "]}");
    Path out = dir.resolve("step-plan");
    String page = pageWithPlan("step plan", history, logOf("run.yaml:2:5", 0, "2"), planLog, out);
    assertTrue(page.contains("<td>Conv2d &rarr; StepPlanned, MACs 1728 &rarr; 3456</td>"), page);
    assertTrue(!page.contains("EpochPlanned"), page);

    Path epochOut = dir.resolve("epoch-plan");
    String epochPage =
        pageWithPlan("epoch plan", history, logOf("run.yaml:5:5", 0, "0"), planLog, epochOut);
    assertTrue(epochPage.contains("Conv2d &rarr; EpochPlanned"), epochPage);
    assertTrue(!epochPage.contains("StepPlanned"), epochPage);
  }

  /**
   * Two epochs of 4 batches: a surgery after step 2 (the surgery log's step; 0 epochs completed) is
   * at batch 2 of 4 of epoch 1, x = 0.5 per batch, 1.0 per epoch (epoch 1's batches span 0.5 to 1.5
   * there); after step 6 at x = 1.5 and 2.0; one at the end of epoch 1 (step 4) stays "after epoch
   * 1", at x = 1 per batch and between the epochs' points (1.5) per epoch, before step 6 on both
   * (an outside tester: the per-epoch charts drew a later surgery inside an epoch left of an
   * earlier one between epochs); a log without steps places by epoch as before.
   */
  @Test
  void aSurgeryInsideAnEpochIsPlacedAtItsStep() throws Exception {
    TrainingHistory history = train(2, null);
    SurgeryReportWriter writer =
        SurgeryReportWriter.builder("mid epoch", history)
            .optSurgeryLog(logOf("run.yaml:2:5", 0, "2"))
            .build();
    SurgeryReportWriter.Surgery s = writer.surgeries().get(0);
    assertEquals(2, s.step());
    assertEquals(
        new SurgeryReportWriter.Position(0.5, 1.0, "at step 2 (epoch 1)"), writer.position(s));
    Path out = dir.resolve("mid");
    writer.write(out);
    String page = htmlIn(out);
    assertTrue(page.contains("blurpool at step 2 (epoch 1): 1 block(s) replaced"), page);
    JsonObject json = json(out.resolve(SurgeryReportWriter.JSON));
    assertEquals(
        2, json.getAsJsonArray("surgeries").get(0).getAsJsonObject().get("step").getAsInt());

    SurgeryReportWriter.Position atStep6 = positionOf(history, 1, "6");
    SurgeryReportWriter.Position afterEpoch1 = positionOf(history, 1, "4");
    assertEquals(new SurgeryReportWriter.Position(1.5, 2.0, "at step 6 (epoch 2)"), atStep6);
    assertEquals(new SurgeryReportWriter.Position(1, 1.5, "after epoch 1"), afterEpoch1);
    // Every chart keeps the order in which they happened.
    assertTrue(afterEpoch1.batchX() < atStep6.batchX());
    assertTrue(afterEpoch1.epochX() < atStep6.epochX());
    assertTrue(
        positionOf(history, 1, "5").epochX() > afterEpoch1.epochX(), "the first batch after it");
    assertEquals(
        new SurgeryReportWriter.Position(0, 0.5, "after epoch 0"), positionOf(history, 0, "0"));
    assertEquals(
        new SurgeryReportWriter.Position(1, 1.5, "after epoch 1"), positionOf(history, 1, null));
  }

  private SurgeryReportWriter.Position positionOf(TrainingHistory history, int epoch, String step)
      throws Exception {
    SurgeryReportWriter writer =
        SurgeryReportWriter.builder("x", history)
            .optSurgeryLog(logOf("run.yaml:2:5", epoch, step))
            .build();
    return writer.position(writer.surgeries().get(0));
  }

  /**
   * A report whose HTML file cannot be written (a directory has its name) is refused before any of
   * its files is written; so is a directory under a regular file.
   */
  @Test
  void aReportThatCannotBeWrittenWritesNothing() throws Exception {
    TrainingHistory history = train(1, null);
    Path out = dir.resolve("blocked");
    Files.createDirectories(out.resolve(SurgeryReportWriter.HTML));
    java.io.IOException e =
        org.junit.jupiter.api.Assertions.assertThrows(
            java.io.IOException.class,
            () -> SurgeryReportWriter.builder("blocked", history).build().write(out));
    assertTrue(
        e.getMessage().contains(SurgeryReportWriter.HTML + " exists and is not a file"),
        e.getMessage());
    try (var files = Files.list(out)) {
      assertEquals(List.of(out.resolve(SurgeryReportWriter.HTML)), files.toList());
    }
    Path file = Files.writeString(dir.resolve("afile"), "x");
    java.io.IOException under =
        org.junit.jupiter.api.Assertions.assertThrows(
            java.io.IOException.class,
            () -> SurgeryReportWriter.checkWritable(file.resolve("sub")));
    assertTrue(under.getMessage().contains("cannot create the directory"), under.getMessage());
  }

  @Test
  void batchLossesAverageToDjlsEpochLoss() throws Exception {
    TrainingHistory history = train(2, new BlurAt(1));
    List<BatchLoss> batches = history.getBatchLosses();
    // 32 samples in batches of 8: 4 batches per epoch, numbered from 1 in each epoch.
    assertEquals(8, batches.size());
    for (int i = 0; i < batches.size(); i++) {
      assertEquals(i / 4 + 1, batches.get(i).epoch());
      assertEquals(i % 4 + 1, batches.get(i).batch());
      assertTrue(Double.isFinite(batches.get(i).loss()));
    }
    // DJL's evaluator listener reports an epoch's training loss as the mean of its batch losses.
    for (EpochMetrics m : history.getEpochs()) {
      double mean =
          batches.stream()
              .filter(b -> b.epoch() == m.epoch())
              .mapToDouble(BatchLoss::loss)
              .average()
              .orElseThrow();
      assertEquals(m.trainLoss(), mean, 1e-5 * Math.max(1, Math.abs(mean)));
    }
  }

  @Test
  void drawsPerBatchLossAndTheBaselineOnTheSameCharts() throws Exception {
    TrainingHistory baseline = train(2, null);
    Path baseDir = dir.resolve("baseline");
    SurgeryReportWriter.builder("baseline", baseline).build().write(baseDir);
    BaselineRun read = BaselineRun.read("baseline", baseDir.resolve(SurgeryReportWriter.JSON));
    // What the baseline's report says is what its history recorded.
    assertEquals(baseline.getEpochs(), read.epochs());
    assertEquals(baseline.getBatchLosses(), read.batchLosses());

    TrainingHistory history = train(2, new BlurAt(1));
    Path html =
        SurgeryReportWriter.builder("with surgery", history).optBaseline(read).build().write(dir);
    String page = Files.readString(html);
    for (String png :
        List.of(
            SurgeryReportWriter.LOSS_PNG,
            SurgeryReportWriter.ACCURACY_PNG,
            SurgeryReportWriter.BATCH_LOSS_PNG)) {
      BufferedImage image = ImageIO.read(dir.resolve(png).toFile());
      assertEquals(720, image.getWidth());
      assertTrue(page.contains("src=\"" + png + "\""), png);
    }
    assertTrue(page.contains("Epochs of baseline"), page);
    JsonObject json = json(dir.resolve(SurgeryReportWriter.JSON));
    JsonArray batches = json.getAsJsonArray("batch_losses");
    assertEquals(history.getBatchLosses().size(), batches.size());
    JsonObject last = batches.get(7).getAsJsonObject();
    assertEquals(2, last.get("epoch").getAsInt());
    assertEquals(4, last.get("batch").getAsInt());
    assertEquals(history.getBatchLosses().get(7).loss(), last.get("loss").getAsDouble());
    JsonObject base = json.getAsJsonObject("baseline");
    assertEquals("baseline", base.get("label").getAsString());
    assertEquals(2, base.getAsJsonArray("epochs").size());
    assertEquals(8, base.getAsJsonArray("batch_losses").size());
    assertEquals(
        baseline.getBatchLosses().get(0).loss(),
        base.getAsJsonArray("batch_losses").get(0).getAsJsonObject().get("loss").getAsDouble());
    assertTrue(
        json.getAsJsonArray("charts").toString().contains(SurgeryReportWriter.BATCH_LOSS_PNG));
  }

  @Test
  void readingSomethingElseAsABaselineFailsNamingTheFile() throws Exception {
    Path notReport = dir.resolve("x.json");
    Files.writeString(notReport, "{\"title\":\"no epochs\"}");
    java.io.IOException e =
        org.junit.jupiter.api.Assertions.assertThrows(
            java.io.IOException.class, () -> BaselineRun.read("baseline", notReport));
    assertTrue(e.getMessage().contains(notReport.toString()), e.getMessage());
  }
}
