package dev.surgery.agent.settings;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * Keeps the agent table of {@code docs/configuration.md} in step with {@link AgentSettings}: every
 * setting (a public string constant of the class) has a row naming its system property and
 * environment variable, and every documented setting is one the agent argument accepts.
 */
class AgentSettingsDocTest {

  private static final Pattern ROW = Pattern.compile("^\\|\\s*`([^`]+)`\\s*\\|");

  /** The setting keys: AgentSettings declares each as a public static final String. */
  private static Set<String> settingKeys() throws IllegalAccessException {
    Set<String> keys = new TreeSet<>();
    for (Field f : AgentSettings.class.getFields()) {
      int m = f.getModifiers();
      if (Modifier.isStatic(m) && Modifier.isFinal(m) && f.getType() == String.class) {
        keys.add((String) f.get(null));
      }
    }
    return keys;
  }

  /** The rows of the section {@code ## The agent}, up to the next heading. */
  private static List<String> agentRows() throws Exception {
    Path root = Path.of("").toAbsolutePath();
    while (root != null && !Files.isDirectory(root.resolve("docs"))) {
      root = root.getParent();
    }
    assertTrue(root != null, "no docs/ folder above the working directory");
    List<String> rows = new ArrayList<>();
    boolean in = false;
    boolean fenced = false;
    for (String line :
        Files.readAllLines(root.resolve("docs/configuration.md"), StandardCharsets.UTF_8)) {
      if (line.strip().startsWith("```")) {
        fenced = !fenced;
      }
      if (!fenced && line.startsWith("#")) {
        if (in) {
          break;
        }
        in = line.equals("## The agent");
        continue;
      }
      if (in && ROW.matcher(line).find()) {
        rows.add(line);
      }
    }
    assertTrue(in || !rows.isEmpty(), "docs/configuration.md has no '## The agent' section");
    return rows;
  }

  @Test
  void everySettingHasARowWithItsPropertyAndVariable() throws Exception {
    Set<String> keys = settingKeys();
    assertTrue(keys.size() >= 4, "expected config, enabled, debug, dry_run; got " + keys);
    List<String> rows = agentRows();
    Set<String> documented = new TreeSet<>();
    for (String row : rows) {
      Matcher m = ROW.matcher(row);
      m.find();
      String key = m.group(1);
      documented.add(key);
      if (keys.contains(key)) {
        String property = "`" + AgentSettings.propertyName(key) + "`";
        String variable = "`" + AgentSettings.environmentName(key) + "`";
        assertTrue(row.contains(property), key + ": row must name " + property + ": " + row);
        assertTrue(row.contains(variable), key + ": row must name " + variable + ": " + row);
      }
    }
    assertEquals(keys, documented, "docs/configuration.md '## The agent': one row per setting");
  }

  @Test
  void everyDocumentedSettingIsAcceptedAsAnAgentArgumentKey() throws Exception {
    for (String row : agentRows()) {
      Matcher m = ROW.matcher(row);
      m.find();
      String key = m.group(1);
      // false is a valid value for every setting (a path for config); an unknown key throws
      AgentSettings.resolve(key + "=false", p -> null, e -> null);
    }
  }
}
