package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.LambdaBlock;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.pooling.Pool;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import dev.surgery.core.BlockMatcher;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.SurgeryException;
import dev.surgery.core.SurgeryOptions;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.trainer.config.SurgeryConfig;
import dev.surgery.trainer.config.SurgeryConfigException;
import dev.surgery.trainer.docs.MarkdownDoc;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The messages the user guide's Troubleshooting table quotes are the library's: each quote checked
 * here is read from the table and matched against what the library says in its case, {@code ...}
 * and {@code <path>} standing for any text, so that a reworded message, or a quote written from
 * memory, fails here. (The quotes were found drifted from the messages before: a failed entry's
 * {@code failed: at <path>}, weight standardization's list of normalization layers, the place a
 * surgery from a replacement function names.)
 */
class TroubleshootingDocTest {

  private static final Pattern CODE = Pattern.compile("`([^`]+)`");

  /** Every backtick quote of the table's rows, in order. */
  private static List<String> quotes() throws Exception {
    List<String> quotes = new ArrayList<>();
    for (String line : MarkdownDoc.read("docs/user-guide.md").section("Troubleshooting")) {
      if (line.startsWith("|")) {
        Matcher m = CODE.matcher(line);
        while (m.find()) {
          quotes.add(m.group(1));
        }
      }
    }
    return quotes;
  }

  /** The one quote of the table that holds this text. */
  private static String quote(String part) throws Exception {
    List<String> found = quotes().stream().filter(q -> q.contains(part)).toList();
    assertEquals(1, found.size(), "quotes of the Troubleshooting table holding " + part);
    return found.get(0);
  }

  /**
   * Asserts that the message says what the quote says: the quote's pieces between its {@code ...},
   * {@code <path>} and {@code N} (a number) gaps, in order.
   */
  private static void assertQuoted(String quote, String message) {
    int from = 0;
    for (String piece : quote.split("\\.\\.\\.|<path>|\\bN\\b")) {
      if (piece.isBlank()) {
        continue;
      }
      int at = message.indexOf(piece, from);
      assertTrue(
          at >= 0,
          "the guide quotes '"
              + quote
              + "', but the message, from '"
              + piece
              + "' on, differs: "
              + message);
      from = at + piece.length();
    }
  }

  @Test
  void aConfigProblemLineIsAsQuoted() throws Exception {
    SurgeryConfigException e =
        assertThrows(
            SurgeryConfigException.class,
            () ->
                SurgeryConfig.parse(
                    "algorithms:\n  - name: blurpool\n    epoch: -1\n", "surgery.yaml"));
    assertQuoted(quote("surgery.yaml:3:12: "), e.getMessage());
    SurgeryConfigException misspelt =
        assertThrows(
            SurgeryConfigException.class,
            () ->
                SurgeryConfig.parse(
                    "algorithms:\n  - name: blurpol\n    epoch: 1\n", "surgery.yaml"));
    assertQuoted(quote("did you mean 'blurpool'?"), misspelt.getMessage());
  }

  @Test
  void aFailedEntryUnderOnErrorFailIsAsQuoted() throws Exception {
    // blurpool cannot read the window of a max pool the program wrote itself: it fails at that
    // block, on line 2 of surgery.yaml.
    SequentialBlock net = new SequentialBlock();
    List<Block> blocks = new ArrayList<>(TestModels.cnn().getChildren().values());
    blocks.set(
        5,
        new LambdaBlock(
            x ->
                new NDList(
                    Pool.maxPool2d(
                        x.singletonOrThrow(),
                        new Shape(2, 2),
                        new Shape(2, 2),
                        new Shape(0, 0),
                        false)),
            "maxPool2d"));
    blocks.forEach(net::add);
    SurgeryListener listener =
        SurgeryListener.fromConfig(
            SurgeryConfig.parse("algorithms:\n  - name: blurpool\n    epoch: 1\n", "surgery.yaml"));
    SurgeryFailedException e;
    try (Model model = TestModels.model("troubleshooting");
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(net);
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(TestModels.INPUT);
        e =
            assertThrows(
                SurgeryFailedException.class,
                () -> EasyTrain.fit(trainer, 2, TestModels.dataset(data, 3), null));
      }
    }
    assertQuoted(
        quote("SurgeryFailedException: Surgery: blurpool at epoch 1"),
        "SurgeryFailedException: " + e.getMessage());
  }

  @Test
  void anIncludeThatSelectsNothingIsAsQuoted() throws Exception {
    Block model = TestModels.cnn();
    try (NDManager manager = NDManager.newBaseManager()) {
      model.initialize(manager, DataType.FLOAT32, TestModels.INPUT);
      assertIncludeMessages(model);
    }
  }

  private static void assertIncludeMessages(Block model) throws Exception {
    RuntimeException none =
        assertThrows(
            RuntimeException.class,
            () ->
                Algorithms.find("blurpool")
                    .orElseThrow()
                    .create(Map.of("include", List.of("05ParallelBlock/**")))
                    .apply(SurgeryContext.of(model)));
    assertQuoted(quote("blurpool: include pattern '05ParallelBlock/**'"), none.getMessage());
    RuntimeException nothingToChange =
        assertThrows(
            RuntimeException.class,
            () ->
                Algorithms.find("blurpool")
                    .orElseThrow()
                    .create(Map.of("include", List.of("type:Linear")))
                    .apply(SurgeryContext.of(model)));
    assertQuoted(quote("nothing among the included blocks"), nothingToChange.getMessage());
  }

  @Test
  void weightStandardizationsWarningIsAsQuoted() throws Exception {
    Block model =
        new SequentialBlock()
            .add(Conv2d.builder().setKernelShape(new Shape(3, 3)).setFilters(4).build())
            .add(Activation::relu)
            .add(Conv2d.builder().setKernelShape(new Shape(3, 3)).setFilters(4).build());
    SurgeryChanges changes;
    try (NDManager manager = NDManager.newBaseManager()) {
      model.initialize(manager, DataType.FLOAT32, TestModels.INPUT);
      changes =
          Algorithms.find("weight_standardization")
              .orElseThrow()
              .create(Map.of())
              .apply(SurgeryContext.of(model));
    }
    assertEquals(1, changes.warnings().size(), changes.warnings().toString());
    assertQuoted(
        quote("weight_standardization: the model has no normalization layer"),
        changes.warnings().get(0));
  }

  @Test
  void aSurgeryFromAReplacementFunctionIsAsQuoted() throws Exception {
    Block model = TestModels.cnn();
    try (NDManager manager = NDManager.newBaseManager()) {
      model.initialize(manager, DataType.FLOAT32, TestModels.INPUT);
      SurgeryException e =
          assertThrows(
              SurgeryException.class,
              () ->
                  ModuleSurgery.replaceModules(
                      model,
                      Map.of(
                          BlockMatcher.ofClass(Conv2d.class),
                          (block, index) -> {
                            ModuleSurgery.replaceModules(
                                model, Map.of(), SurgeryOptions.builder().build());
                            return null;
                          }),
                      SurgeryOptions.builder().build()));
      assertQuoted(
          quote("a surgery was started while another ran"), "SurgeryException: " + e.getMessage());
    }
  }

  /** A listener from a one-entry config of this algorithm and epoch, its source surgery.yaml. */
  private static SurgeryListener listener(String algorithm, int epoch) {
    return SurgeryListener.fromConfig(
        SurgeryConfig.parse(
            "algorithms:\n  - name: " + algorithm + "\n    epoch: " + epoch + "\n",
            "surgery.yaml"));
  }

  @Test
  void eventsAfterTheTrainingEndedAreAsQuoted() throws Exception {
    SurgeryListener listener = listener("blurpool", 5);
    try (Model model = TestModels.model("troubleshooting");
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(TestModels.cnn());
      Trainer trainer = model.newTrainer(TestModels.config(listener));
      trainer.initialize(TestModels.INPUT);
      EasyTrain.fit(trainer, 1, TestModels.dataset(data, 3), null);
      trainer.close();
      IllegalStateException e =
          assertThrows(IllegalStateException.class, () -> listener.onEpoch(trainer));
      assertQuoted(
          quote("gets training events after its training ended"),
          "IllegalStateException: " + e.getMessage());
    }
  }

  @Test
  void aListenerThatIsNoTrainingListenerIsWarnedOfAsQuoted() throws Exception {
    SurgeryListener listener = listener("blurpool", 1);
    try (Model model = TestModels.model("troubleshooting");
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(TestModels.cnn());
      try (Trainer trainer = model.newTrainer(TestModels.config())) {
        trainer.initialize(TestModels.INPUT);
        listener.onInitialized(trainer);
        EasyTrain.fit(trainer, 1, TestModels.dataset(data, 3), null);
      }
    }
    String quote = quote("is not one of trainer");
    assertTrue(quote.startsWith("Surgery: "), quote);
    assertEquals(1, listener.getWarnings().size(), listener.getWarnings().toString());
    assertQuoted(quote, listener.getWarnings().get(0));
  }

  @Test
  void anEpochZeroEntryStillWaitingForShapesIsAsQuoted() throws Exception {
    SurgeryListener listener = listener("factorize", 0);
    try (Model model = TestModels.model("troubleshooting");
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(TestModels.cnn());
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(TestModels.INPUT);
        IllegalStateException e =
            assertThrows(
                IllegalStateException.class,
                () -> EasyTrain.fit(trainer, 1, TestModels.dataset(data, 3), null));
        assertQuoted(
            quote("needs an initialized model and is still waiting"),
            "IllegalStateException: " + e.getMessage());
      }
    }
  }

  @Test
  void aListenerRegisteredTwiceIsAsQuoted() throws Exception {
    SurgeryListener listener =
        SurgeryListener.fromConfig(
            SurgeryConfig.parse("algorithms:\n  - name: blurpool\n    epoch: 1\n", "surgery.yaml"));
    try (Model model = TestModels.model("troubleshooting")) {
      model.setBlock(TestModels.cnn());
      IllegalStateException e =
          assertThrows(
              IllegalStateException.class,
              () -> model.newTrainer(TestModels.config(listener, listener)).close());
      assertQuoted(
          quote("IllegalStateException: Surgery: this SurgeryListener is registered 2 times"),
          "IllegalStateException: " + e.getMessage());
    }
  }
}
