package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.MalformedModelException;
import java.io.EOFException;
import java.nio.file.Path;
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

  @Test
  void otherFailuresAreLeftAsTheyAre() {
    MalformedModelException unknownVersion =
        new MalformedModelException("Unsupported encoding version: 7");
    assertSame(unknownVersion, ModelLoadUndo.named(FILE, unknownVersion));
    MalformedModelException other = new MalformedModelException("something else: 81");
    assertSame(other, ModelLoadUndo.named(FILE, other));
    IllegalStateException state = new IllegalStateException("Unsupported encoding version: 81");
    assertSame(state, ModelLoadUndo.named(FILE, state));
  }
}
