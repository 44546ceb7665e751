package dev.surgery.benchmarks;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Function;

/**
 * The flags of a benchmark's {@code main}: each declared with its default and its range, given as
 * {@code --name value}, {@code --name=value} or, for a switch, {@code --name}. A repeated flag's
 * last value wins, as in the sample jobs. An unknown flag, a missing or malformed value, a count
 * below its least, or a word outside a flag's choices is refused naming the flag: {@link #orExit}
 * prints that one line and exits with status 2, and prints the usage for {@code --help} and exits
 * with 0. Without this, a misspelled flag (or {@code --help}) ran the whole default benchmark.
 */
final class BenchFlags {

  /** Thrown for {@code --help} or {@code -h}; its message is the usage text. */
  static final class HelpRequested extends RuntimeException {
    private static final long serialVersionUID = 1L;

    HelpRequested(String usage) {
      super(usage);
    }
  }

  private enum Kind {
    COUNT,
    NUMBER,
    TEXT,
    CHOICE,
    CHOICES,
    SWITCH
  }

  private record Flag(
      String name,
      Kind kind,
      String fallback,
      double min,
      double max,
      List<String> allowed,
      String help) {}

  private final String command;
  private final String summary;
  private final Map<String, Flag> flags = new LinkedHashMap<>();

  private BenchFlags(String command, String summary) {
    this.command = command;
    this.summary = summary;
  }

  /**
   * Starts the flags of a command.
   *
   * @param command the main class's simple name, which starts every message
   * @param summary one line on what the command measures
   * @return flags with only {@code --help}
   */
  static BenchFlags of(String command, String summary) {
    return new BenchFlags(command, summary);
  }

  /** Declares a whole number of at least {@code min}; a null fallback leaves it to the caller. */
  BenchFlags count(String name, Integer fallback, int min, String help) {
    return add(
        new Flag(
            name,
            Kind.COUNT,
            fallback == null ? null : fallback.toString(),
            min,
            Integer.MAX_VALUE,
            List.of(),
            help));
  }

  /** Declares a number in {@code [min, max]}. */
  BenchFlags number(String name, double fallback, double min, double max, String help) {
    return add(new Flag(name, Kind.NUMBER, Double.toString(fallback), min, max, List.of(), help));
  }

  /** Declares a free value (a path, a spec); a null fallback means absent. */
  BenchFlags text(String name, String fallback, String help) {
    return add(new Flag(name, Kind.TEXT, fallback, 0, 0, List.of(), help));
  }

  /** Declares one word of {@code allowed}; a null fallback leaves it to the caller. */
  BenchFlags choice(String name, String fallback, String help, String... allowed) {
    return add(new Flag(name, Kind.CHOICE, fallback, 0, 0, List.of(allowed), help));
  }

  /** Declares a comma-separated list of words of {@code allowed}, at least one. */
  BenchFlags choices(String name, String fallback, String help, String... allowed) {
    return add(new Flag(name, Kind.CHOICES, fallback, 0, 0, List.of(allowed), help));
  }

  /** Declares a flag without a value. */
  BenchFlags toggle(String name, String help) {
    return add(new Flag(name, Kind.SWITCH, null, 0, 0, List.of(), help));
  }

  private BenchFlags add(Flag flag) {
    flags.put(flag.name(), flag);
    return this;
  }

  /**
   * Returns the usage text: the summary, then each flag with its value, help and default.
   *
   * @return the text {@code --help} prints
   */
  String usage() {
    StringBuilder sb = new StringBuilder("Usage: ").append(command).append(" [flags]\n");
    sb.append(summary).append('\n');
    for (Flag f : flags.values()) {
      String value =
          switch (f.kind()) {
            case COUNT -> " N";
            case NUMBER -> " X";
            case TEXT -> " VALUE";
            case CHOICE -> " " + String.join("|", f.allowed());
            case CHOICES -> " " + String.join(",", f.allowed());
            case SWITCH -> "";
          };
      sb.append("  --").append(f.name()).append(value).append("  ").append(f.help());
      if (f.fallback() != null && f.kind() != Kind.SWITCH) {
        sb.append(" (default ").append(f.fallback().isEmpty() ? "none" : f.fallback()).append(')');
      }
      if (f.kind() == Kind.COUNT && f.min() > 0) {
        sb.append(", at least ").append((int) f.min());
      }
      sb.append('\n');
    }
    sb.append("  --help  show this help\n");
    return sb.toString();
  }

  /**
   * Parses a command line.
   *
   * @param args the arguments
   * @return the values
   * @throws HelpRequested for {@code --help} or {@code -h}
   * @throws IllegalArgumentException naming the flag that is unknown, lacks its value or has a
   *     value out of its range
   */
  Values parse(String[] args) {
    Map<String, String> given = new HashMap<>();
    for (int i = 0; i < args.length; i++) {
      String arg = args[i];
      if (arg.equals("--help") || arg.equals("-h")) {
        throw new HelpRequested(usage());
      }
      if (!arg.startsWith("--")) {
        throw new IllegalArgumentException("unexpected argument '" + arg + "' (flags are --name)");
      }
      int eq = arg.indexOf('=');
      String name = arg.substring(2, eq < 0 ? arg.length() : eq);
      Flag flag = flags.get(name);
      if (flag == null) {
        throw new IllegalArgumentException(
            "unknown flag --" + name + "; the flags are " + names() + " (--help describes them)");
      }
      String value;
      if (flag.kind() == Kind.SWITCH) {
        if (eq >= 0) {
          throw new IllegalArgumentException("--" + name + " takes no value");
        }
        value = "true";
      } else if (eq >= 0) {
        value = arg.substring(eq + 1);
      } else if (i + 1 < args.length && !args[i + 1].startsWith("--")) {
        value = args[++i];
      } else {
        throw new IllegalArgumentException("--" + name + " needs a value");
      }
      check(flag, value);
      given.put(name, value); // the last one wins
    }
    return new Values(given);
  }

  private String names() {
    return String.join(", ", flags.keySet().stream().map(n -> "--" + n).toList());
  }

  private static void check(Flag f, String value) {
    String flag = "--" + f.name();
    switch (f.kind()) {
      case COUNT -> {
        int n;
        try {
          n = Integer.parseInt(value.trim());
        } catch (NumberFormatException e) {
          // A whole number too large for an int is out of range, not malformed.
          boolean whole = value.trim().matches("[+-]?[0-9]+");
          throw new IllegalArgumentException(
              whole
                  ? flag + " must be at most " + Integer.MAX_VALUE + ", got " + value.trim()
                  : flag + " must be a whole number, got '" + value + "'");
        }
        if (n < f.min()) {
          throw new IllegalArgumentException(
              flag + " must be at least " + (int) f.min() + ", got " + n);
        }
      }
      case NUMBER -> {
        double x;
        try {
          x = Double.parseDouble(value.trim());
        } catch (NumberFormatException e) {
          throw new IllegalArgumentException(flag + " must be a number, got '" + value + "'");
        }
        if (!(x >= f.min() && x <= f.max())) {
          throw new IllegalArgumentException(
              String.format(
                  Locale.ROOT, "%s must be in [%s, %s], got %s", flag, f.min(), f.max(), value));
        }
      }
      case CHOICE -> {
        if (!f.allowed().contains(value)) {
          throw new IllegalArgumentException(
              flag + " must be one of " + String.join(", ", f.allowed()) + ", got " + value);
        }
      }
      case CHOICES -> {
        List<String> words = split(value);
        if (words.isEmpty()) {
          throw new IllegalArgumentException(flag + " needs at least one of " + f.allowed());
        }
        for (String w : words) {
          if (!f.allowed().contains(w)) {
            throw new IllegalArgumentException(
                flag
                    + ": unknown name '"
                    + w
                    + "'; the names are "
                    + String.join(", ", f.allowed()));
          }
        }
      }
      case TEXT, SWITCH -> {
        // any value
      }
    }
  }

  private static List<String> split(String value) {
    List<String> words = new ArrayList<>();
    for (String w : value.split(",")) {
      if (!w.isBlank()) {
        words.add(w.trim());
      }
    }
    return words;
  }

  /**
   * Parses in a {@code main}: for {@code --help} prints the usage and exits with 0; for a refused
   * command line (also one {@code read} refuses with an {@link IllegalArgumentException}, for
   * checks across flags) prints one line and exits with 2.
   *
   * @param args the arguments
   * @param read turns the values into what the benchmark runs with
   * @param <T> that type
   * @return what {@code read} returned
   */
  <T> T orExit(String[] args, Function<Values, T> read) {
    try {
      return read.apply(parse(args));
    } catch (HelpRequested | IllegalArgumentException e) {
      System.exit(report(e, System.out, System.err));
      throw new AssertionError("unreachable", e);
    }
  }

  /**
   * Prints what a refused command line or {@code --help} prints, and returns the exit status.
   *
   * @param e what {@link #parse} (or a check across flags) threw
   * @param out where the usage goes
   * @param err where the refusal goes, one line
   * @return 0 for {@code --help}, 2 for a refused command line
   */
  int report(RuntimeException e, PrintStream out, PrintStream err) {
    if (e instanceof HelpRequested) {
      out.print(e.getMessage());
      return 0;
    }
    err.println(command + ": " + e.getMessage());
    return 2;
  }

  /** What a command line gave, with the declared defaults for the rest. */
  final class Values {
    private final Map<String, String> given;

    private Values(Map<String, String> given) {
      this.given = given;
    }

    private String raw(String name) {
      Flag f = flags.get(name);
      if (f == null) {
        throw new IllegalStateException("--" + name + " is not declared");
      }
      return given.getOrDefault(name, f.fallback());
    }

    /** A count's value, or {@code fallback} when neither given nor defaulted. */
    int count(String name, int fallback) {
      String v = raw(name);
      return v == null ? fallback : Integer.parseInt(v.trim());
    }

    /** A count's value. */
    int count(String name) {
      return Integer.parseInt(raw(name).trim());
    }

    /** A number's value. */
    double number(String name) {
      return Double.parseDouble(raw(name).trim());
    }

    /** A value (text or choice), or {@code fallback} when neither given nor defaulted. */
    String text(String name, String fallback) {
      String v = raw(name);
      return v == null ? fallback : v;
    }

    /** A value (text or choice), null when neither given nor defaulted. */
    String text(String name) {
      return raw(name);
    }

    /** A list's words, empty when neither given nor defaulted. */
    List<String> list(String name) {
      String v = raw(name);
      return v == null ? List.of() : split(v);
    }

    /** Whether a switch was given. */
    boolean has(String name) {
      raw(name);
      return given.containsKey(name);
    }
  }
}
