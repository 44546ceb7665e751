package dev.surgery.agent.settings;

import java.io.File;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Function;
import java.util.regex.Pattern;

/**
 * The agent's effective settings: where the surgery config is, whether the agent is enabled and
 * whether it logs debug lines, whether it only prints the surgery plan ({@code dry_run}), and which
 * plugin jars add algorithms ({@code extensions}).
 *
 * <p>Each setting is looked up in three places; the first that has it wins:
 *
 * <ol>
 *   <li>the agent argument: either a bare path ({@code -javaagent:surgery-agent.jar=run.yaml}) or
 *       {@code key=value} pairs separated by {@code ;} ({@code config=run.yaml;debug=true});
 *   <li>the system properties {@code surgery.config}, {@code surgery.enabled}, {@code
 *       surgery.debug}, {@code surgery.dry_run}, {@code surgery.extensions};
 *   <li>the environment variables {@code SURGERY_CONFIG}, {@code SURGERY_ENABLED}, {@code
 *       SURGERY_DEBUG}, {@code SURGERY_DRY_RUN}, {@code SURGERY_EXTENSIONS}.
 * </ol>
 *
 * <p>Defaults: enabled, no debug, no dry run, no config (an enabled agent without a config refuses
 * to start). The settings are kept in this object; the agent never writes them back as system
 * properties, so the application sees its environment unchanged.
 */
public final class AgentSettings {

  /** The setting that names the YAML config file. */
  public static final String CONFIG = "config";

  /** The kill switch: {@code false} installs nothing. */
  public static final String ENABLED = "enabled";

  /** Verbose {@code surgery-agent:} lines on standard error. */
  public static final String DEBUG = "debug";

  /** Print the plan of every entry at the first {@code Trainer.initialize}; change nothing. */
  public static final String DRY_RUN = "dry_run";

  /**
   * Plugin jars whose algorithms ({@code dev.surgery.core.algorithms.AlgorithmProvider}) YAML may
   * name like the built-ins, separated by the platform's path separator ({@code :} on Linux and
   * macOS).
   */
  public static final String EXTENSIONS = "extensions";

  private static final String[] KEYS = {CONFIG, ENABLED, DEBUG, DRY_RUN, EXTENSIONS};

  private static final String VALID_KEYS = String.join(", ", KEYS);

  private final String config;
  private final boolean enabled;
  private final boolean debug;
  private final boolean dryRun;
  private final List<String> extensions;
  private final Map<String, String> sources;

  private AgentSettings(
      String config,
      boolean enabled,
      boolean debug,
      boolean dryRun,
      List<String> extensions,
      Map<String, String> sources) {
    this.config = config;
    this.enabled = enabled;
    this.debug = debug;
    this.dryRun = dryRun;
    this.extensions = extensions;
    this.sources = sources;
  }

  /**
   * Resolves the settings of this JVM.
   *
   * @param agentArgument the string after {@code =} in {@code -javaagent:}, may be null
   * @return the settings
   * @throws AgentSettingsException when a value is malformed
   */
  public static AgentSettings resolve(String agentArgument) {
    return resolve(agentArgument, System::getProperty, System::getenv);
  }

  /**
   * Resolves the settings from explicit sources (for tests and embedding).
   *
   * @param agentArgument the agent argument, may be null
   * @param systemProperties system property lookup
   * @param environment environment variable lookup
   * @return the settings
   * @throws AgentSettingsException when a value is malformed
   */
  public static AgentSettings resolve(
      String agentArgument,
      Function<String, String> systemProperties,
      Function<String, String> environment) {
    Map<String, String> fromArgument = parseArgument(agentArgument);
    Map<String, String> values = new LinkedHashMap<>();
    Map<String, String> sources = new LinkedHashMap<>();
    for (String key : KEYS) {
      String property = propertyName(key);
      String env = environmentName(key);
      if (fromArgument.containsKey(key)) {
        values.put(key, fromArgument.get(key));
        sources.put(key, "agent argument");
      } else if (systemProperties.apply(property) != null) {
        values.put(key, systemProperties.apply(property));
        sources.put(key, "system property " + property);
      } else if (environment.apply(env) != null) {
        values.put(key, environment.apply(env));
        sources.put(key, "environment " + env);
      } else {
        sources.put(key, "default");
      }
    }
    String config = values.get(CONFIG);
    if (config != null && config.isBlank()) {
      config = null;
    }
    boolean enabled = bool(values, sources, ENABLED, true);
    boolean debug = bool(values, sources, DEBUG, false);
    boolean dryRun = bool(values, sources, DRY_RUN, false);
    List<String> extensions = paths(values.get(EXTENSIONS));
    return new AgentSettings(config, enabled, debug, dryRun, extensions, Map.copyOf(sources));
  }

  /** Splits a path list at commas and the platform's path separator, dropping empty items. */
  private static List<String> paths(String value) {
    return paths(value, File.pathSeparator);
  }

  /**
   * Splits a path list at commas and at {@code pathSeparator}. Commas as well because on Windows
   * the path separator {@code ;} also separates the settings of the agent argument, so there a list
   * of two jars can only be written {@code extensions=a.jar,b.jar}.
   */
  static List<String> paths(String value, String pathSeparator) {
    if (value == null || value.isBlank()) {
      return List.of();
    }
    List<String> out = new ArrayList<>();
    for (String item : value.split("," + "|" + Pattern.quote(pathSeparator))) {
      if (!item.isBlank()) {
        out.add(item.trim());
      }
    }
    return List.copyOf(out);
  }

  /**
   * Returns the system property name of a setting.
   *
   * @param key a setting key such as {@code config}
   * @return for example {@code surgery.config}
   */
  public static String propertyName(String key) {
    return "surgery." + key;
  }

  /**
   * Returns the environment variable name of a setting.
   *
   * @param key a setting key such as {@code config}
   * @return for example {@code SURGERY_CONFIG}
   */
  public static String environmentName(String key) {
    return propertyName(key).toUpperCase(Locale.ROOT).replace('.', '_').replace('-', '_');
  }

  private static Map<String, String> parseArgument(String argument) {
    Map<String, String> values = new LinkedHashMap<>();
    if (argument == null || argument.isBlank()) {
      return values;
    }
    String trimmed = argument.trim();
    if (!trimmed.contains("=") || isExistingFile(trimmed) || isPathWithEquals(trimmed)) {
      // The common form: -javaagent:surgery-agent.jar=run.yaml. A sweep's folders often hold '='
      // (runs/lr=0.1/surgery.yaml): a path, even a missing one, whose loader then names it.
      values.put(CONFIG, trimmed);
      return values;
    }
    for (String item : trimmed.split(";")) {
      if (item.isBlank()) {
        continue;
      }
      int eq = item.indexOf('=');
      if (eq <= 0) {
        throw new AgentSettingsException(
            "malformed agent argument '"
                + item.trim()
                + "': expected key=value pairs separated by ';' (keys: "
                + VALID_KEYS
                + ") or a bare config path");
      }
      String key = item.substring(0, eq).trim().toLowerCase(Locale.ROOT);
      if (key.startsWith("surgery.")) {
        key = key.substring("surgery.".length());
      }
      if (!isKey(key)) {
        throw new AgentSettingsException(
            "unknown agent argument key '"
                + item.substring(0, eq).trim()
                + "' (valid keys: "
                + VALID_KEYS
                + ")");
      }
      if (values.containsKey(key)) {
        throw new AgentSettingsException("agent argument key '" + key + "' given twice");
      }
      values.put(key, item.substring(eq + 1).trim());
    }
    return values;
  }

  /**
   * Whether an argument is one path with '=' in a folder or file name: no ';', and a path separator
   * before the first '=' (no key holds one), as in {@code runs/lr=0.1/surgery.yaml}.
   */
  private static boolean isPathWithEquals(String argument) {
    if (argument.contains(";")) {
      return false;
    }
    String before = argument.substring(0, argument.indexOf('='));
    return before.contains("/") || before.contains(java.io.File.separator);
  }

  private static boolean isExistingFile(String path) {
    try {
      return java.nio.file.Files.isRegularFile(java.nio.file.Path.of(path));
    } catch (RuntimeException e) {
      return false;
    }
  }

  private static boolean isKey(String key) {
    for (String k : KEYS) {
      if (k.equals(key)) {
        return true;
      }
    }
    return false;
  }

  private static boolean bool(
      Map<String, String> values, Map<String, String> sources, String key, boolean fallback) {
    String value = values.get(key);
    if (value == null) {
      return fallback;
    }
    String v = value.trim().toLowerCase(Locale.ROOT);
    if (v.equals("true")) {
      return true;
    }
    if (v.equals("false")) {
      return false;
    }
    throw new AgentSettingsException(
        key + " must be true or false, got '" + value + "' (from " + sources.get(key) + ")");
  }

  /**
   * Returns the config path as the user gave it.
   *
   * @return the path, or null when none was given
   */
  public String getConfig() {
    return config;
  }

  /**
   * Returns whether the agent should install itself.
   *
   * @return false when disabled by any source
   */
  public boolean isEnabled() {
    return enabled;
  }

  /**
   * Returns whether debug lines are printed.
   *
   * @return true for verbose output
   */
  public boolean isDebug() {
    return debug;
  }

  /**
   * Returns whether the agent only prints the plan: at the first {@code Trainer.initialize} it
   * prints what every entry would change, and it applies nothing.
   *
   * @return true for a dry run
   */
  public boolean isDryRun() {
    return dryRun;
  }

  /**
   * Returns the plugin jars, as the user gave them, in order.
   *
   * @return the paths; empty when none were given
   */
  public List<String> getExtensions() {
    return extensions;
  }

  /**
   * Describes where each setting came from, for the debug banner.
   *
   * @return for example {@code config=run.yaml (agent argument), enabled=true (default), ...}
   */
  public String describe() {
    return CONFIG
        + "="
        + config
        + " ("
        + sources.get(CONFIG)
        + "), "
        + ENABLED
        + "="
        + enabled
        + " ("
        + sources.get(ENABLED)
        + "), "
        + DEBUG
        + "="
        + debug
        + " ("
        + sources.get(DEBUG)
        + "), "
        + DRY_RUN
        + "="
        + dryRun
        + " ("
        + sources.get(DRY_RUN)
        + "), "
        + EXTENSIONS
        + "="
        + String.join(File.pathSeparator, extensions)
        + " ("
        + sources.get(EXTENSIONS)
        + ")";
  }
}
