package dev.surgery.core.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

/** The declaration is per thread, returns what it replaces, and restore puts that back. */
class NoTrainerRegisteredTest {

  @Test
  void aDeclarationHoldsOnItsThreadUntilRestored() throws InterruptedException {
    assertFalse(NoTrainerRegistered.declared(), "undeclared by default");
    boolean outer = NoTrainerRegistered.declare(true);
    try {
      assertFalse(outer);
      assertTrue(NoTrainerRegistered.declared());
      AtomicBoolean elsewhere = new AtomicBoolean(true);
      Thread other = new Thread(() -> elsewhere.set(NoTrainerRegistered.declared()));
      other.start();
      other.join();
      assertFalse(elsewhere.get(), "another thread does not see it");
      boolean inner = NoTrainerRegistered.declare(false);
      assertTrue(inner, "returns the declaration it replaces");
      assertFalse(NoTrainerRegistered.declared());
      NoTrainerRegistered.restore(inner);
      assertTrue(NoTrainerRegistered.declared());
    } finally {
      NoTrainerRegistered.restore(outer);
    }
    assertEquals(false, NoTrainerRegistered.declared());
  }
}
