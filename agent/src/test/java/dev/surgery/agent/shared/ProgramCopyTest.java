package dev.surgery.agent.shared;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.core.testing.StandardError;
import java.lang.reflect.Field;
import java.net.URL;
import java.net.URLClassLoader;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The record of the program's own copies of the library, and the one warning that two copies are in
 * use, which needs both (its class comment): the program's copy seen and the agent's in service, in
 * either order.
 */
public class ProgramCopyTest {

  private final URLClassLoader first = new URLClassLoader("first", new URL[0], null);
  private final URLClassLoader second = new URLClassLoader("second", new URL[0], null);

  @BeforeEach
  @AfterEach
  void forget() throws Exception {
    forgetCopies();
  }

  /**
   * The record of library copies is the JVM's: each test (and each rerun in one JVM, and the
   * dispatcher's tests, which put the agent's copy in service) starts from none.
   */
  public static void forgetCopies() throws Exception {
    setStatic(ProgramCopy.class, "seenAt", null);
    setStatic(ProgramCopy.class, "agentCopyInService", false);
    ((List<?>) getStatic(ProgramCopy.class, "LOADERS")).clear();
    OnceWarnings.forget(ProgramCopy.WARNING_KEY);
    AgentLog.setDebug(false);
  }

  @Test
  void libraryClassesAreCoreAndTrainerButNotCoresTestSupport() {
    assertTrue(ProgramCopy.isLibraryClass("dev.surgery.core.ModuleSurgery"));
    assertTrue(ProgramCopy.isLibraryClass("dev/surgery/trainer/SurgeryListener"));
    assertFalse(ProgramCopy.isLibraryClass("dev.surgery.core.testing.Fixtures"));
    assertFalse(ProgramCopy.isLibraryClass("dev/surgery/core/testing/Fixtures"));
    assertFalse(ProgramCopy.isLibraryClass("dev.surgery.agent.SurgeryAgent"));
    assertFalse(ProgramCopy.isLibraryClass("dev.surgery.corex.Other"));
  }

  @Test
  void theAgentsLoadersAreItsChildFirstOnes() throws Exception {
    assertFalse(ProgramCopy.isAgents(null));
    assertFalse(ProgramCopy.isAgents(first));
    try (HookLoader hooks = new HookLoader(new URL[0], first, first)) {
      assertTrue(ProgramCopy.isAgents(hooks));
    }
  }

  @Test
  void eachLoaderIsRecordedOnceOldestFirst() throws Exception {
    assertFalse(ProgramCopy.known(first));
    ProgramCopy.seen(first, url("file:/app/first.jar"));
    ProgramCopy.seen(null, null); // the boot loader: never asked
    ProgramCopy.seen(second, null);
    ProgramCopy.seen(first, null);
    assertTrue(ProgramCopy.known(first));
    assertTrue(ProgramCopy.known(second));
    assertFalse(ProgramCopy.known(ProgramCopyTest.class.getClassLoader()), "never seen");
    assertEquals(List.of(first, second), ProgramCopy.loaders());
    assertEquals(List.of(first, second), SurgeryDispatcher.programCopyLoaders());
  }

  @Test
  void theProgramsCopyFirstThenTheAgentsWarnsOnceNamingWhereTheCopyWasFirstSeen() throws Exception {
    assertEquals(
        List.of(),
        StandardError.lines(
            () -> {
              ProgramCopy.seen(first, url("file:/app/first.jar"));
              ProgramCopy.seen(second, url("file:/app/second.jar"));
            }),
        "a copy that meets no agent copy in service warns not");
    List<String> warning = StandardError.lines(ProgramCopy::agentCopyInService);
    assertEquals(1, warning.size(), warning.toString());
    assertTrue(
        warning.get(0).startsWith("surgery-agent: WARNING: the program has its own copy"),
        warning.get(0));
    assertTrue(warning.get(0).contains("(file:/app/first.jar)"), warning.get(0));
    assertEquals(List.of(), StandardError.lines(ProgramCopy::agentCopyInService), "once only");
    AgentLog.setDebug(true);
    assertEquals(
        1,
        StandardError.lines(() -> ProgramCopy.seen(first, null)).size(),
        "a later class of the program's copy warns again (shown as a repeat under debug)");
  }

  @Test
  void theAgentsCopyFirstThenTheProgramsWarnsWhenTheProgramsIsSeen() {
    assertEquals(List.of(), StandardError.lines(ProgramCopy::agentCopyInService));
    List<String> warning = StandardError.lines(() -> ProgramCopy.seen(first, null));
    assertEquals(1, warning.size(), warning.toString());
    assertTrue(warning.get(0).contains("(location unknown)"), warning.get(0));
  }

  private static URL url(String spec) {
    try {
      return new URL(spec);
    } catch (java.net.MalformedURLException e) {
      throw new IllegalArgumentException(e);
    }
  }

  private static Object getStatic(Class<?> type, String name) throws Exception {
    Field field = type.getDeclaredField(name);
    field.setAccessible(true);
    return field.get(null);
  }

  private static void setStatic(Class<?> type, String name, Object value) throws Exception {
    Field field = type.getDeclaredField(name);
    field.setAccessible(true);
    field.set(null, value);
  }
}
