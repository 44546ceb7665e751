package dev.surgery.agent.shared;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import org.junit.jupiter.api.Test;

/** A deliberate failure reaches the program unchanged: the same exception, checked or not. */
class SurgeryFailureTest {

  @Test
  void rethrowThrowsTheOriginalCheckedExceptionItself() {
    IOException original = new IOException("record cannot be replayed");
    SurgeryFailure carried = new SurgeryFailure(original);
    assertSame(original, carried.failure());
    assertSame(original, carried.getCause());
    assertEquals(original.getMessage(), carried.getMessage());
    Exception thrown = assertThrows(Exception.class, carried::rethrow);
    assertSame(original, thrown, "not wrapped: the program sees what the library threw");
  }
}
