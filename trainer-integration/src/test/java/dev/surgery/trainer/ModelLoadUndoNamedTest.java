package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.MalformedModelException;
import java.io.EOFException;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

/** What a failed load throws in place of DJL's exceptions that name nothing. */
class ModelLoadUndoNamedTest {

  private static final Path FILE = Path.of("/models/net-0003.params");

  @Test
  void aTruncatedFileIsNamed() {
    Throwable named = ModelLoadUndo.named(FILE, new EOFException());
    assertTrue(named instanceof EOFException);
    assertEquals(FILE + ": the parameters end early (a truncated file?)", named.getMessage());
  }

  /** DJL's two wordings of a version it does not know, for each of the library's layers. */
  @Test
  void aLayerVersionRefusedByAnOriginalBlockIsExplained() {
    MalformedModelException conv = new MalformedModelException("Unsupported encoding version: 85");
    Throwable named = ModelLoadUndo.named(FILE, conv);
    assertTrue(named instanceof MalformedModelException);
    assertSame(conv, named.getCause());
    assertTrue(
        named
            .getMessage()
            .startsWith(
                FILE
                    + ": the file holds a WeightStandardizedConv2d, a layer of DJL Surgery, where"
                    + " this model has a block of the original architecture (DJL: Unsupported"
                    + " encoding version: 85)."),
        named.getMessage());
    // A user's block built on AbstractBlock, whose own check words it otherwise.
    Throwable own =
        ModelLoadUndo.named(
            null,
            new MalformedModelException(
                "Cannot load parameters for com.example.MyPool, expected version 2, got 86."));
    assertTrue(
        own.getMessage().startsWith("the file holds a BlurMaxPool2d, a layer of DJL Surgery"),
        own.getMessage());
  }

  /**
   * DJL's other refusals name no file ("Invalid input data." where the file holds another layer):
   * they get its name and what it likely means, DJL's as the cause (an outside probe met one for an
   * edited record). One that names the file already, and other failures, are left as they are.
   */
  @Test
  void otherRefusalsOfDjlGetTheFilesNameAndOtherFailuresAreLeftAsTheyAre() {
    for (String djl : List.of("Unsupported encoding version: 7", "Invalid input data.")) {
      MalformedModelException refusal = new MalformedModelException(djl);
      Throwable named = ModelLoadUndo.named(FILE, refusal);
      assertTrue(named instanceof MalformedModelException, named.toString());
      assertSame(refusal, named.getCause());
      assertEquals(
          FILE
              + ": DJL could not read the parameters into this model ("
              + djl
              + "): the file does not fit it (another architecture, a file of another DJL version,"
              + " or a surgery record that does not describe the model saved in it: edited?)",
          named.getMessage());
    }
    MalformedModelException unnamed = new MalformedModelException("something else: 81");
    assertSame(unnamed, ModelLoadUndo.named(null, unnamed));
    MalformedModelException ours = new MalformedModelException(FILE + ": refused by the replay");
    assertSame(ours, ModelLoadUndo.named(FILE, ours));
    IllegalStateException state = new IllegalStateException("Unsupported encoding version: 81");
    assertSame(state, ModelLoadUndo.named(FILE, state));
  }
}
