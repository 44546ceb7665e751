package dev.surgery.agent;

import dev.surgery.agent.settings.AgentSettings;
import dev.surgery.agent.settings.AgentSettingsException;
import dev.surgery.agent.shared.AgentLog;
import dev.surgery.agent.shared.SurgeryAgentExit;
import dev.surgery.agent.shared.SurgeryDispatcher;
import java.io.IOException;
import java.lang.instrument.Instrumentation;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Function;
import java.util.function.Predicate;
import java.util.jar.JarFile;
import java.util.regex.Pattern;

/**
 * The {@code -javaagent} entry point: attaches a {@code SurgeryListener} built from a YAML config
 * to every DJL {@code Trainer} the program creates.
 *
 * <pre>
 * java -javaagent:surgery-agent.jar=run.yaml -cp app.jar app.Main
 * java -javaagent:surgery-agent.jar=config=run.yaml;debug=true -cp app.jar app.Main
 * </pre>
 *
 * <p>Settings come from the agent argument, then the {@code surgery.*} system properties, then the
 * {@code SURGERY_*} environment variables (see {@link AgentSettings}). With {@code enabled=false}
 * nothing is installed. Given more than once, only the first {@code -javaagent} counts, but a
 * {@code enabled=false} in any of them turns the agent off (the JVM reads {@code JAVA_TOOL_OPTIONS}
 * before the command line, so a kill switch there is first and one on the command line later). A
 * config with problems stops the JVM with status 2 before the program's {@code main}, printing one
 * {@code surgery-agent: file:line:column: message} line per problem; the agent's own faults never
 * reach the program.
 */
public final class SurgeryAgent {

  /** Set by the first agent that installs, or by the first {@code -javaagent} that is disabled. */
  private static final AtomicBoolean INSTALLED = new AtomicBoolean();

  /** The first {@code -javaagent} had {@code enabled=false}: no later one installs. */
  private static final AtomicBoolean FIRST_DISABLED = new AtomicBoolean();

  /** A later {@code -javaagent} with {@code enabled=false} turned off the one installed. */
  private static final AtomicBoolean TURNED_OFF = new AtomicBoolean();

  /**
   * {@code enabled=false} among an agent argument's settings, read without parsing the rest; the
   * key may carry the {@code surgery.} prefix, as every key may.
   */
  private static final Pattern DISABLED =
      Pattern.compile(
          "(^|;)\\s*(surgery\\.)?enabled\\s*=\\s*false\\s*(;|$)", Pattern.CASE_INSENSITIVE);

  /** The weaving is registered (or installed): once per JVM, whatever the agents given. */
  private static final AtomicBoolean WOVEN = new AtomicBoolean();

  /** The watch for the program's own copy of the library is registered: once per JVM. */
  private static final AtomicBoolean WATCHING = new AtomicBoolean();

  /** The config of the agent that installed, named when a later kill switch turns it off. */
  private static final AtomicReference<String> FIRST_CONFIG = new AtomicReference<>();

  private SurgeryAgent() {}

  /**
   * Called by the JVM before {@code main} for {@code -javaagent}.
   *
   * @param argument the agent argument, may be null
   * @param instrumentation the JVM's instrumentation
   */
  public static void premain(String argument, Instrumentation instrumentation) {
    start(argument, instrumentation, true);
  }

  /**
   * Called when the agent is attached to a running JVM. A bad config is reported and the agent is
   * not installed; the running program is never stopped.
   *
   * @param argument the agent argument, may be null
   * @param instrumentation the JVM's instrumentation
   */
  public static void agentmain(String argument, Instrumentation instrumentation) {
    start(argument, instrumentation, false);
  }

  private static void start(String argument, Instrumentation instrumentation, boolean premain) {
    boolean claimed = false; // whether this call took INSTALLED: only then may it give it back
    try {
      AgentSettings settings;
      try {
        settings = AgentSettings.resolve(argument);
      } catch (AgentSettingsException e) {
        if (premain && saysDisabled(argument)) {
          // A kill switch with a mistake beside it is still a kill switch.
          if (INSTALLED.compareAndSet(false, true)) {
            FIRST_DISABLED.set(true);
          } else if (!FIRST_DISABLED.get()) {
            turnOff();
          }
          AgentLog.info(
              "enabled=false taken from a malformed agent argument '"
                  + argument
                  + "' ("
                  + e.getMessage()
                  + "): nothing installed");
          return;
        }
        if (premain && INSTALLED.get()) {
          // An earlier -javaagent decided (installed, or the kill switch): this one is ignored.
          AgentLog.info(
              "the agent was given more than once; only the first is used (ignoring '"
                  + argument
                  + "': "
                  + e.getMessage()
                  + ")");
          return;
        }
        refuseUnlessTurnedOff(argument, List.of(e.getMessage()), premain, false);
        return;
      }
      AgentLog.setDebug(settings.isDebug() || AgentLog.isDebug());
      AgentLog.debug("settings: " + settings.describe());
      if (!settings.isEnabled()) {
        if (premain && INSTALLED.compareAndSet(false, true)) {
          // The kill switch is the first agent's claim too: a later -javaagent must not undo it.
          FIRST_DISABLED.set(true);
        } else if (premain && !FIRST_DISABLED.get() && !TURNED_OFF.get()) {
          // An earlier -javaagent installed (JAVA_TOOL_OPTIONS comes before the command line):
          // the kill switch wins wherever it stands. No trainer exists before main, so none has
          // a listener yet; hooks without a config attach nothing.
          turnOff();
        } else if (!premain && INSTALLED.get() && !FIRST_DISABLED.get() && !TURNED_OFF.get()) {
          AgentLog.info(
              "enabled=false in a late attach does not turn off the agent installed at start-up"
                  + " (trainers already training keep their surgery)");
        }
        AgentLog.debug("disabled; nothing installed");
        return;
      }
      claimed = INSTALLED.compareAndSet(false, true);
      if (!claimed) {
        AgentLog.info(
            "the agent was given more than once; only the first is used"
                + (FIRST_DISABLED.get() ? ", which has enabled=false and installed nothing" : "")
                + (TURNED_OFF.get() ? ", and a -javaagent with enabled=false turned it off" : "")
                + " (ignoring '"
                + argument
                + "')");
        return;
      }
      String given = settings.getConfig();
      FIRST_CONFIG.set(given);
      if (given == null) {
        refuseUnlessTurnedOff(
            argument,
            List.of(
                "no surgery config given: use -javaagent:surgery-agent.jar=<config.yaml>, the system"
                    + " property surgery.config or the environment variable SURGERY_CONFIG"),
            premain,
            true);
        return;
      }
      List<String> fileProblems = new ArrayList<>(checkFile(given));
      List<Path> extensions = new ArrayList<>();
      for (String jar : settings.getExtensions()) {
        List<String> jarProblems = checkExtension(jar);
        fileProblems.addAll(jarProblems);
        if (jarProblems.isEmpty()) {
          extensions.add(Path.of(jar).toAbsolutePath());
        }
      }
      if (!fileProblems.isEmpty()) {
        refuseUnlessTurnedOff(argument, fileProblems, premain, true);
        return;
      }
      SurgeryDispatcher.setDryRun(settings.isDryRun());
      SurgeryDispatcher.configure(Path.of(given), extensions);
      if (WATCHING.compareAndSet(false, true)) {
        ProgramCopyWatch.register(instrumentation);
      }
      // From premain, DJL's classes are woven as they load, the weaving built at the first one,
      // so that a JVM that never loads DJL never loads ByteBuddy; registered before the check
      // below loads DJL's Trainer (when DJL is on the class path), then the DJL classes loaded
      // before premain (another agent's premain, a custom system class loader) are retransformed.
      // A late attach installs the weaving with retransformation.
      FirstDjlClassTransformer atLoad = null;
      if (premain && WOVEN.compareAndSet(false, true)) {
        atLoad = FirstDjlClassTransformer.register(instrumentation);
      }
      List<String> problems = SurgeryDispatcher.validateEarly();
      if (problems == null) {
        AgentLog.debug(
            "DJL is not on the system class path; the config is validated when the first Trainer"
                + " is created");
      } else if (!problems.isEmpty()) {
        SurgeryDispatcher.configure(null, List.of());
        refuseUnlessTurnedOff(argument, problems, premain, true);
        return;
      }
      if (atLoad != null) {
        // A class another agent's thread was defining while the transformer was registered.
        atLoad.retransformUnseen(instrumentation);
        atLoad.startedUp();
      }
      if (!premain && !WOVEN.get()) {
        TrainerInstrumentation.install(instrumentation);
        WOVEN.set(true);
      }
      AgentLog.debug("installed (config " + given + ")");
    } catch (Throwable t) {
      // Never let anything escape: a throwing premain aborts the JVM with a native crash report.
      SurgeryDispatcher.configure(null, List.of());
      if (AgentLog.isDebug()) {
        t.printStackTrace(System.err);
      }
      refuseUnlessTurnedOff(
          argument,
          List.of("the surgery config could not be validated (agent failure: " + t + ")"),
          premain,
          claimed);
    }
  }

  /**
   * Checks that the config file can be read, naming the path as given.
   *
   * @param given the path as the user wrote it
   * @return problems as {@code path:0:0: message} lines (the whole file is concerned)
   */
  static List<String> checkFile(String given) {
    return checkFile(given, Files::isReadable);
  }

  /**
   * Checks that the config file can be read, asking {@code readable} whether this process may read
   * it: a seam for tests, since root may read even mode-000 files.
   *
   * @param given the path as the user wrote it
   * @param readable whether this process may read a path ({@link Files#isReadable} outside tests)
   * @return problems as {@code path:0:0: message} lines (the whole file is concerned)
   */
  static List<String> checkFile(String given, Predicate<Path> readable) {
    return checkPath(
        given,
        given + ":0:0: ",
        List.of(
            new PathCheck(
                path -> Files.exists(path) || !Files.isSymbolicLink(path),
                SurgeryAgent::brokenLink),
            new PathCheck(Files::exists, notFound("config file")),
            new PathCheck(
                path -> !Files.isDirectory(path), "is a directory, expected a YAML config file"),
            new PathCheck(Files::isRegularFile, "is not a regular file"),
            new PathCheck(readable, "the config file cannot be read (permission denied)")));
  }

  /**
   * Checks that a plugin jar given with {@code extensions} exists and can be opened as a jar,
   * naming the path as given: a missing plugin must stop the run before training, not turn its
   * algorithm into an "unknown algorithm" later.
   *
   * @param given the jar path as the user wrote it
   * @return problems as {@code path:0:0: message} lines
   */
  static List<String> checkExtension(String given) {
    String where = given + ":0:0: extensions: ";
    List<String> problems =
        checkPath(
            given,
            where,
            List.of(
                new PathCheck(Files::exists, notFound("plugin jar")),
                new PathCheck(Files::isRegularFile, "is not a regular file, expected a plugin jar"),
                new PathCheck(
                    Files::isReadable, "the plugin jar cannot be read (permission denied)")));
    if (!problems.isEmpty()) {
      return problems;
    }
    try (JarFile jar = new JarFile(Path.of(given).toFile())) {
      jar.size();
    } catch (IOException | SecurityException e) {
      return List.of(where + "cannot be read as a jar: " + e.getMessage());
    }
    return List.of();
  }

  /**
   * What is wrong with a config path that is a link to nothing: the link's own path says nothing
   * about what to fix, the missing file at the end of the chain does. (The library's config reader
   * does the same; the agent's premain stays clear of library classes.)
   */
  private static String brokenLink(Path link) {
    Path current = link.toAbsolutePath();
    // A chain longer than the system follows is a loop.
    for (int hops = 0; hops < 40 && Files.isSymbolicLink(current); hops++) {
      try {
        Path target = Files.readSymbolicLink(current);
        Path folder = current.getParent();
        // A relative target is resolved against the link's folder, as the system does.
        current = (folder == null ? target : folder.resolve(target)).normalize();
      } catch (IOException | UnsupportedOperationException | SecurityException e) {
        return "the config file is a broken or looping symbolic link";
      }
    }
    return Files.isSymbolicLink(current)
        ? "the config file is a looping chain of symbolic links"
        : "the config file is a symbolic link to a missing file: " + current + " does not exist";
  }

  /** One condition on a path the user gave, and what is wrong when the path fails it. */
  private record PathCheck(Predicate<Path> ok, Function<Path, String> problem) {
    PathCheck(Predicate<Path> ok, String problem) {
      this(ok, path -> problem);
    }
  }

  /**
   * Parses a path as the user wrote it and runs the checks in order.
   *
   * @param given the path as the user wrote it
   * @param where the start of a problem line: {@code path:0:0: } and the setting, if any
   * @param checks the conditions, in order
   * @return the problem line of an invalid path or of the first failed check; empty when none
   */
  private static List<String> checkPath(String given, String where, List<PathCheck> checks) {
    Path path;
    try {
      path = Path.of(given);
    } catch (InvalidPathException e) {
      return List.of(where + "not a valid file path: " + e.getReason());
    }
    for (PathCheck check : checks) {
      if (!check.ok().test(path)) {
        return List.of(where + check.problem().apply(path));
      }
    }
    return List.of();
  }

  private static String notFound(String what) {
    return what + " not found (working directory " + Path.of("").toAbsolutePath() + ")";
  }

  /** A later {@code -javaagent} with {@code enabled=false} turns off the agent installed. */
  private static void turnOff() {
    if (!TURNED_OFF.compareAndSet(false, true)) {
      return;
    }
    SurgeryDispatcher.configure(null, List.of());
    String config = FIRST_CONFIG.get();
    AgentLog.info(
        "the agent was given more than once and a -javaagent has enabled=false: the agent is off,"
            + " no trainer gets surgery"
            + (config == null ? "" : " (config '" + config + "' not used)"));
  }

  /**
   * Refuses the installing agent's config, unless a later {@code -javaagent} of this jar has {@code
   * enabled=false}: that agent's premain comes too late to stop the refusal, so this one looks
   * ahead at the JVM's arguments ({@code JAVA_TOOL_OPTIONS} first, then the command line). Asked
   * only here: the look loads {@code java.management}.
   */
  private static void refuseUnlessTurnedOff(
      String argument, List<String> problems, boolean premain, boolean claimed) {
    if (premain && laterKillSwitch(argument)) {
      INSTALLED.set(true); // the kill switch's own premain then stays quiet
      turnOff();
      return;
    }
    if (claimed) {
      INSTALLED.set(false); // an agent installed before (a late attach's typo) keeps its claim
    } else if (!premain && INSTALLED.get()) {
      for (String p : problems) {
        AgentLog.info(p);
      }
      AgentLog.info(
          "this attach is ignored"
              + (FIRST_DISABLED.get()
                  ? " (the agent given at start-up has enabled=false)"
                  : TURNED_OFF.get()
                      ? " (a -javaagent with enabled=false turned the agent off)"
                      : "; the agent installed before keeps running"));
      return;
    }
    refuse(problems, premain);
  }

  /**
   * Whether a {@code -javaagent} of this agent (this jar, or another copy whose manifest names this
   * class as its {@code Premain-Class}) after the one given {@code own} is disabled.
   */
  private static boolean laterKillSwitch(String own) {
    List<String> arguments;
    try {
      arguments = ManagementFactory.getRuntimeMXBean().getInputArguments();
    } catch (RuntimeException | LinkageError e) {
      AgentLog.debug("could not look for a later -javaagent with enabled=false: " + e);
      return false;
    }
    return laterKillSwitch(own, arguments);
  }

  /**
   * Whether, among a JVM's arguments in order, a {@code -javaagent} of this agent after the one
   * given {@code own} is disabled.
   *
   * @param own the installing agent's argument, null when it has none
   * @param arguments the JVM's arguments ({@code JAVA_TOOL_OPTIONS} first, then the command line)
   * @return whether a later kill switch turns the agent off
   */
  static boolean laterKillSwitch(String own, List<String> arguments) {
    boolean ownSeen = false;
    for (String arg : arguments) {
      if (!arg.startsWith("-javaagent:")) {
        continue;
      }
      String spec = arg.substring("-javaagent:".length());
      int eq = spec.indexOf('=');
      String option = eq < 0 ? null : spec.substring(eq + 1);
      if (!isThisAgent(eq < 0 ? spec : spec.substring(0, eq))) {
        continue;
      }
      if (!ownSeen) {
        ownSeen = Objects.equals(option, own);
        continue;
      }
      try {
        if (!AgentSettings.resolve(option).isEnabled()) {
          return true;
        }
      } catch (AgentSettingsException e) {
        if (saysDisabled(option)) {
          return true; // its own premain takes it as the kill switch too
        }
      }
    }
    return false;
  }

  /** Whether an agent argument holds {@code enabled=false}, also beside a malformed setting. */
  static boolean saysDisabled(String argument) {
    return argument != null && DISABLED.matcher(argument).find();
  }

  /** Whether a jar given to {@code -javaagent} starts this agent. */
  private static boolean isThisAgent(String jar) {
    try (JarFile file = new JarFile(jar)) {
      java.util.jar.Manifest manifest = file.getManifest();
      return manifest != null
          && SurgeryAgent.class
              .getName()
              .equals(manifest.getMainAttributes().getValue("Premain-Class"));
    } catch (IOException | RuntimeException e) {
      return false;
    }
  }

  private static void refuse(List<String> problems, boolean premain) {
    if (premain) {
      SurgeryAgentExit.refuse(problems);
    } else {
      for (String p : problems) {
        AgentLog.info(p);
      }
      AgentLog.info("not installed");
    }
  }
}
