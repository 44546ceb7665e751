package dev.surgery.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.agent.shared.AgentLog;
import dev.surgery.agent.shared.ChildFirstLoader;
import dev.surgery.agent.shared.ProgramCopy;
import dev.surgery.agent.shared.ProgramCopyTest;
import dev.surgery.core.testing.StandardError;
import dev.surgery.trainer.SurgeryListener;
import java.lang.instrument.ClassFileTransformer;
import java.lang.instrument.IllegalClassFormatException;
import java.net.URL;
import java.net.URLClassLoader;
import java.security.ProtectionDomain;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The watch for the program's own copy of the library: which class loaders it records, by the
 * classes they define, and that it never changes a class.
 */
class ProgramCopyWatchTest {

  private final URLClassLoader program = new URLClassLoader("program", new URL[0], null);

  @BeforeEach
  void forgetBefore() throws Exception {
    ProgramCopyTest.forgetCopies();
  }

  @AfterEach
  void forgetAfter() throws Exception {
    ProgramCopyTest.forgetCopies();
    program.close();
  }

  @Test
  void recordsALoaderThatDefinesAClassOfTheLibraryAndChangesNoClass() throws Exception {
    RecordingInstrumentation jvm = new RecordingInstrumentation(List.of());
    ProgramCopyWatch.register(jvm.instrumentation());
    assertEquals(List.of(false), List.copyOf(jvm.transformers.values()), "a watch, not a weaving");
    ClassFileTransformer watch = jvm.transformers.keySet().iterator().next();
    // Not the library: the agent's own classes, core's test support, DJL, a class without a name.
    for (String other :
        new String[] {
          "dev/surgery/agent/SurgeryAgent",
          "dev/surgery/core/testing/Fixtures",
          "ai/djl/training/Trainer",
          null
        }) {
      assertNull(define(watch, program, other, null));
      assertFalse(ProgramCopy.known(program), other);
    }
    ChildFirstLoader agents =
        new ChildFirstLoader("agents", new URL[0], null) {
          @Override
          protected Class<?> delegate(String name, boolean resolve) {
            return null;
          }
        };
    assertNull(define(watch, agents, "dev/surgery/core/ModuleSurgery", null));
    assertFalse(ProgramCopy.known(agents), "the agent's own loaders hold the agent's copy");
    // A class without a protection domain, and one whose domain has no code source.
    assertNull(define(watch, program, "dev/surgery/trainer/SurgeryListener", null));
    assertTrue(ProgramCopy.known(program));
    try (URLClassLoader other = new URLClassLoader("other", new URL[0], null)) {
      assertNull(
          define(watch, other, "dev/surgery/core/ModuleSurgery", new ProtectionDomain(null, null)));
      assertTrue(ProgramCopy.known(other));
    }
  }

  /** Every class of the library passes the watch: a loader is named once, not once per class. */
  @Test
  void aLoaderIsReportedOnceForAllItsClasses() throws Exception {
    RecordingInstrumentation jvm = new RecordingInstrumentation(List.of());
    ProgramCopyWatch.register(jvm.instrumentation());
    ClassFileTransformer watch = jvm.transformers.keySet().iterator().next();
    AgentLog.setDebug(true);
    List<String> lines =
        StandardError.lines(
            () -> {
              for (String name :
                  List.of(
                      "dev/surgery/core/ModuleSurgery",
                      "dev/surgery/core/Other",
                      "dev/surgery/trainer/SurgeryListener")) {
                define(watch, program, name, null);
              }
            });
    assertEquals(1, lines.size(), lines.toString());
    assertTrue(lines.get(0).contains("dev.surgery.core.ModuleSurgery"), lines.get(0));
  }

  /** Library classes loaded before the watch (a late attach) are looked at when it registers. */
  @Test
  void libraryClassesLoadedBeforeTheWatchAreLookedAt() {
    ClassLoader loader = SurgeryListener.class.getClassLoader();
    ProgramCopyWatch.register(
        new RecordingInstrumentation(List.of(String.class, SurgeryAgent.class)).instrumentation());
    assertFalse(ProgramCopy.known(loader), "no class of the library among those loaded");
    ProgramCopyWatch.register(
        new RecordingInstrumentation(List.of(String.class, SurgeryListener.class))
            .instrumentation());
    assertTrue(ProgramCopy.known(loader));
  }

  private static byte[] define(
      ClassFileTransformer watch, ClassLoader loader, String name, ProtectionDomain domain) {
    try {
      return watch.transform(loader, name, null, domain, new byte[0]);
    } catch (IllegalClassFormatException e) {
      throw new AssertionError(e);
    }
  }
}
