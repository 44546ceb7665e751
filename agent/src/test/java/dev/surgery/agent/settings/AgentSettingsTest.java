package dev.surgery.agent.settings;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AgentSettingsTest {

  private static AgentSettings resolve(
      String argument, Map<String, String> properties, Map<String, String> env) {
    return AgentSettings.resolve(argument, properties::get, env::get);
  }

  @Test
  void bareArgumentIsTheConfigPath() {
    AgentSettings s = resolve("runs/blurpool.yaml", Map.of(), Map.of());
    assertEquals("runs/blurpool.yaml", s.getConfig());
    assertTrue(s.isEnabled());
    assertFalse(s.isDebug());
  }

  /**
   * A sweep names its folders by their settings ({@code lr=0.1}): a config path with '=' is the
   * config when the file exists, and also when a folder comes before the '=' (no key has one), so a
   * missing file is named by the config loader as any missing config is, not taken for a key.
   */
  @Test
  void aConfigPathWithEqualsInItsFoldersIsThePathNotKeyValuePairs(@TempDir Path dir)
      throws Exception {
    Path config =
        java.nio.file.Files.writeString(
            java.nio.file.Files.createDirectories(dir.resolve("lr=0.1")).resolve("s.yaml"), "x");
    assertEquals(config.toString(), resolve(config.toString(), Map.of(), Map.of()).getConfig());
    assertEquals(
        "runs/lr=0.2/s.yaml", resolve("runs/lr=0.2/s.yaml", Map.of(), Map.of()).getConfig());
    // A file in the working directory whose name holds '=' is the config when it exists.
    String here = "sweep-" + System.nanoTime() + "=1.yaml";
    Path inWorkingDirectory = java.nio.file.Files.writeString(Path.of(here), "x");
    try {
      assertEquals(here, resolve(here, Map.of(), Map.of()).getConfig());
    } finally {
      java.nio.file.Files.delete(inWorkingDirectory);
    }
    // Pairs stay pairs: a path in a value, and any argument with ';'.
    assertEquals(
        "runs/lr=0.3.yaml", resolve("config=runs/lr=0.3.yaml", Map.of(), Map.of()).getConfig());
    assertThrows(
        AgentSettingsException.class,
        () -> resolve("runs/lr=0.4.yaml;debug=true", Map.of(), Map.of()));
  }

  @Test
  void keyValuePairsSeparatedBySemicolons() {
    AgentSettings s = resolve("config=a.yaml; debug=TRUE ;enabled=true", Map.of(), Map.of());
    assertEquals("a.yaml", s.getConfig());
    assertTrue(s.isDebug());
    assertTrue(s.isEnabled());
  }

  @Test
  void agentArgumentBeatsSystemPropertyBeatsEnvironment() {
    Map<String, String> props = Map.of("surgery.config", "prop.yaml", "surgery.debug", "true");
    Map<String, String> env =
        Map.of("SURGERY_CONFIG", "env.yaml", "SURGERY_DEBUG", "false", "SURGERY_ENABLED", "false");
    AgentSettings s = resolve("config=arg.yaml", props, env);
    assertEquals("arg.yaml", s.getConfig());
    assertTrue(s.isDebug(), "system property beats environment");
    assertFalse(s.isEnabled(), "environment used when nothing else sets it");
    assertEquals(
        "config=arg.yaml (agent argument), enabled=false (environment SURGERY_ENABLED),"
            + " debug=true (system property surgery.debug), dry_run=false (default),"
            + " extensions= (default)",
        s.describe());

    AgentSettings fromProperty = resolve(null, props, env);
    assertEquals("prop.yaml", fromProperty.getConfig());
    AgentSettings fromEnv = resolve("", Map.of(), env);
    assertEquals("env.yaml", fromEnv.getConfig());
  }

  @Test
  void dryRunFromArgumentPropertyOrEnvironment() {
    assertTrue(resolve("config=a.yaml;dry_run=true", Map.of(), Map.of()).isDryRun());
    assertTrue(resolve("a.yaml", Map.of("surgery.dry_run", "TRUE"), Map.of()).isDryRun());
    assertTrue(resolve("a.yaml", Map.of(), Map.of("SURGERY_DRY_RUN", "true")).isDryRun());
    assertFalse(
        resolve("a.yaml", Map.of("surgery.dry_run", "false"), Map.of("SURGERY_DRY_RUN", "true"))
            .isDryRun(),
        "system property beats environment");
    assertFalse(resolve("a.yaml", Map.of(), Map.of()).isDryRun());
    AgentSettingsException bad =
        assertThrows(
            AgentSettingsException.class,
            () -> resolve("config=a.yaml;dry_run=yes", Map.of(), Map.of()));
    assertTrue(bad.getMessage().contains("dry_run must be true or false"), bad.getMessage());
  }

  @Test
  void extensionsFromArgumentPropertyOrEnvironmentSplitAtThePathSeparator() {
    String sep = java.io.File.pathSeparator;
    assertEquals(
        List.of("a.jar", "b.jar"),
        resolve("config=x.yaml;extensions=a.jar" + sep + sep + "b.jar", Map.of(), Map.of())
            .getExtensions());
    assertEquals(
        List.of("p.jar"),
        resolve(
                "x.yaml",
                Map.of("surgery.extensions", "p.jar"),
                Map.of("SURGERY_EXTENSIONS", "e.jar"))
            .getExtensions(),
        "system property beats environment");
    assertEquals(
        List.of("e.jar"),
        resolve("x.yaml", Map.of(), Map.of("SURGERY_EXTENSIONS", "e.jar")).getExtensions());
    assertEquals(List.of(), resolve("x.yaml", Map.of(), Map.of()).getExtensions());
  }

  /** On Windows ';' is both the path separator and the argument's separator: commas work. */
  @Test
  void extensionsAlsoSplitAtCommasSoWindowsCanListTwoJarsInTheArgument() {
    assertEquals(
        List.of("a.jar", "b.jar"),
        resolve("config=x.yaml;extensions=a.jar,b.jar", Map.of(), Map.of()).getExtensions());
    assertEquals(
        List.of("C:\\p\\a.jar", "D:\\b.jar", "c.jar"),
        AgentSettings.paths("C:\\p\\a.jar;D:\\b.jar,c.jar", ";"),
        "Windows: a drive letter's colon is not a separator");
  }

  @Test
  void defaultsWhenNothingIsSet() {
    AgentSettings s = resolve(null, Map.of(), Map.of());
    assertNull(s.getConfig());
    assertTrue(s.isEnabled());
    assertFalse(s.isDebug());
  }

  @Test
  void prefixedKeysAreAccepted() {
    assertEquals("x.yaml", resolve("surgery.config=x.yaml", Map.of(), Map.of()).getConfig());
  }

  @Test
  void malformedArgumentsAreRejectedWithTheValidKeys() {
    AgentSettingsException unknown =
        assertThrows(AgentSettingsException.class, () -> resolve("cfg=x.yaml", Map.of(), Map.of()));
    assertEquals(
        "unknown agent argument key 'cfg' (valid keys: config, enabled, debug, dry_run,"
            + " extensions)",
        unknown.getMessage());
    // A value without a key is the wrong form, not a key named '': the message shows the form.
    AgentSettingsException noKey =
        assertThrows(
            AgentSettingsException.class, () -> resolve("config=a;=b", Map.of(), Map.of()));
    assertTrue(
        noKey.getMessage().startsWith("malformed agent argument '=b': expected key=value pairs"),
        noKey.getMessage());
    assertThrows(
        AgentSettingsException.class, () -> resolve("config=a;config=b", Map.of(), Map.of()));
    AgentSettingsException bool =
        assertThrows(
            AgentSettingsException.class,
            () -> resolve(null, Map.of(), Map.of("SURGERY_ENABLED", "no")));
    assertEquals(
        "enabled must be true or false, got 'no' (from environment SURGERY_ENABLED)",
        bool.getMessage());
  }

  /** The JVM's own sources: the agent argument still comes first. */
  @Test
  void theJvmsSettingsAreReadBehindTheAgentArgument() {
    String property = AgentSettings.propertyName(AgentSettings.DRY_RUN);
    String before = System.getProperty(property);
    System.setProperty(property, "true");
    try {
      AgentSettings s = AgentSettings.resolve("config=a.yaml;debug=true");
      assertEquals("a.yaml", s.getConfig());
      assertTrue(s.isDebug());
      assertTrue(s.isDryRun(), "from the system property");
    } finally {
      if (before == null) {
        System.clearProperty(property);
      } else {
        System.setProperty(property, before);
      }
    }
  }

  @Test
  void environmentNamesFollowTheSystemPropertyNames() {
    assertEquals("surgery.config", AgentSettings.propertyName(AgentSettings.CONFIG));
    assertEquals("SURGERY_CONFIG", AgentSettings.environmentName(AgentSettings.CONFIG));
    assertEquals("SURGERY_ENABLED", AgentSettings.environmentName(AgentSettings.ENABLED));
  }
}
