package dev.surgery.core.algorithms;

import java.net.URL;
import java.security.CodeSource;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.ServiceConfigurationError;
import java.util.ServiceLoader;
import java.util.Set;

/**
 * The registry of algorithms by config name. The built-in algorithms register themselves here;
 * {@link #register} adds user algorithms written in code, and {@link #loadPlugins(ClassLoader)}
 * adds those of plugin jars ({@link AlgorithmProvider}). The plugins on the class path of this
 * library are loaded the first time a name is looked up.
 */
public final class Algorithms {

  private static final Map<String, AlgorithmSpec> SPECS =
      Collections.synchronizedMap(new LinkedHashMap<>());

  /** The origin of the algorithms of this library. */
  private static final String BUILT_IN = "built-in";

  /** Where each name came from, for messages: a jar location, or {@link #BUILT_IN}. */
  private static final Map<String, String> ORIGINS =
      Collections.synchronizedMap(new LinkedHashMap<>());

  /** The class loaders whose plugins were loaded already; weakness is not needed: few loaders. */
  private static final Map<ClassLoader, Boolean> LOADED =
      Collections.synchronizedMap(new IdentityHashMap<>());

  private static volatile boolean classPathLoaded;

  static {
    BuiltinAlgorithms.registerAll();
  }

  private Algorithms() {}

  /**
   * Registers an algorithm under its config name.
   *
   * @param spec the algorithm's description
   * @throws IllegalArgumentException if the name is taken
   */
  public static void register(AlgorithmSpec spec) {
    Class<?> caller =
        StackWalker.getInstance(StackWalker.Option.RETAIN_CLASS_REFERENCE).getCallerClass();
    register(spec, originOf(caller));
  }

  private static void register(AlgorithmSpec spec, String origin) {
    synchronized (SPECS) {
      if (SPECS.putIfAbsent(spec.name(), spec) != null) {
        throw new IllegalArgumentException(
            "algorithm name already registered: "
                + spec.name()
                + " (by "
                + ORIGINS.get(spec.name())
                + ")");
      }
      ORIGINS.put(spec.name(), origin);
    }
  }

  /**
   * Finds the {@link AlgorithmProvider}s visible to a class loader ({@link ServiceLoader}) and
   * registers their algorithms. Loading the same loader again does nothing. All or nothing: when
   * one name is taken (by a built-in or another jar) nothing of this loader is registered.
   *
   * @param loader the class loader to search, for example one over the agent's {@code extensions}
   * @return the specs added, in discovery order
   * @throws AlgorithmPluginException when two algorithms claim one name (naming both jars), or a
   *     provider cannot be loaded (naming it)
   */
  public static List<AlgorithmSpec> loadPlugins(ClassLoader loader) {
    synchronized (SPECS) {
      if (LOADED.containsKey(loader)) {
        return List.of();
      }
      String duplicate = duplicateProvider(loader);
      if (duplicate != null) {
        throw new AlgorithmPluginException(duplicate, null);
      }
      Map<String, AlgorithmSpec> found = new LinkedHashMap<>();
      Map<String, String> origins = new LinkedHashMap<>();
      Iterator<AlgorithmProvider> it =
          ServiceLoader.load(AlgorithmProvider.class, loader).iterator();
      while (true) {
        AlgorithmProvider provider;
        try {
          if (!it.hasNext()) {
            break;
          }
          provider = it.next();
        } catch (ServiceConfigurationError e) {
          throw new AlgorithmPluginException(unloadable(loader, e), e);
        }
        String origin = originOf(provider.getClass());
        List<AlgorithmSpec> specs;
        try {
          specs = provider.algorithms();
        } catch (RuntimeException | LinkageError e) {
          throw new AlgorithmPluginException(
              "the algorithm plugin "
                  + provider.getClass().getName()
                  + " ("
                  + origin
                  + ") failed to list its algorithms: "
                  + e,
              e);
        }
        // (contains(null) throws on an immutable list: each element is looked at instead.)
        if (specs == null || specs.stream().anyMatch(java.util.Objects::isNull)) {
          throw new AlgorithmPluginException(
              "the algorithm plugin "
                  + provider.getClass().getName()
                  + " ("
                  + origin
                  + ") listed "
                  + (specs == null ? "no list of algorithms (null)" : "a null algorithm spec")
                  + ": AlgorithmProvider.algorithms() must return a list of specs",
              null);
        }
        for (AlgorithmSpec spec : specs) {
          String name = spec.name();
          String first = origins.containsKey(name) ? origins.get(name) : ORIGINS.get(name);
          if (first != null) {
            if (!origins.containsKey(name) && first.equals(origin)) {
              continue; // the same jar again, through a second class loader: not a second name
            }
            throw new AlgorithmPluginException(
                "two algorithms are named '"
                    + name
                    + "': one in "
                    + first
                    + ", one in "
                    + origin
                    + " ("
                    + provider.getClass().getName()
                    + (BUILT_IN.equals(first)
                        ? "); a built-in's name is taken: rename the plugin's algorithm"
                        : "); remove one of the jars or rename one algorithm"),
                null);
          }
          found.put(name, spec);
          origins.put(name, origin);
        }
      }
      for (AlgorithmSpec spec : found.values()) {
        register(spec, origins.get(spec.name()));
      }
      LOADED.put(loader, Boolean.TRUE);
      return List.copyOf(found.values());
    }
  }

  private static final String SERVICES = ProviderDeclarations.SERVICE_FILE;

  /**
   * Finds a provider class that two jars (or folders) of a class loader both declare: the loader
   * defines a class name once, so the second one's version would be ignored without a word (two
   * copies or two versions of one plugin jar on the class path).
   *
   * @return a message naming the class and both places, or null when each is declared once
   */
  private static String duplicateProvider(ClassLoader loader) {
    ProviderDeclarations declarations = new ProviderDeclarations();
    try {
      for (Map.Entry<URL, String> file : serviceFiles(loader)) {
        Optional<ProviderDeclarations.Conflict> conflict =
            declarations.add(placeOf(file.getKey()), file.getValue());
        if (conflict.isPresent()) {
          return conflict
              .get()
              .message(
                  "the algorithm provider",
                  "a class loader defines it once, so one of them would be ignored; keep one jar"
                      + " on the class path");
        }
      }
    } catch (java.io.IOException e) {
      return "cannot read the algorithm plugins' " + SERVICES + ": " + e.getMessage();
    }
    return null;
  }

  /**
   * Says which provider could not be loaded, from which jar (the service file that lists it), and
   * why, down to the innermost cause: with several extension jars the bare ServiceLoader message
   * names neither the jar nor, for a static initializer that threw, what it threw.
   */
  private static String unloadable(ClassLoader loader, ServiceConfigurationError e) {
    String text = String.valueOf(e.getMessage());
    StringBuilder message = new StringBuilder("an algorithm plugin could not be loaded: ");
    message.append(text);
    String place = listingPlace(loader, text);
    if (place != null) {
      message.append(" (listed in ").append(place).append(')');
    }
    Throwable cause = e.getCause();
    if (cause != null) {
      message.append(": ").append(cause);
      Throwable root = rootCause(cause);
      if (root != cause) {
        // An ExceptionInInitializerError (a static initializer threw) says nothing by itself.
        message.append(", caused by ").append(root);
      }
    }
    return message.toString();
  }

  /**
   * The jar or folder whose service file lists the provider a ServiceLoader message names, or null.
   * ServiceLoader words its messages in several ways ("Provider X could not be instantiated", "X
   * Unable to get public no-arg constructor", ...): the provider is the declared class name that
   * the message holds as a word of its own.
   */
  private static String listingPlace(ClassLoader loader, String serviceLoaderMessage) {
    java.util.Set<String> words =
        new java.util.HashSet<>(java.util.Arrays.asList(serviceLoaderMessage.split("[\\s:,()]+")));
    try {
      for (Map.Entry<URL, String> file : serviceFiles(loader)) {
        for (String provider : ProviderDeclarations.classNames(file.getValue())) {
          if (words.contains(provider)) {
            return placeOf(file.getKey());
          }
        }
      }
    } catch (java.io.IOException | RuntimeException ignored) {
      // the message without the jar: the provider's name is in it
    }
    return null;
  }

  /** The innermost cause of a throwable (itself when it has none), stopping at a cycle. */
  private static Throwable rootCause(Throwable t) {
    Throwable root = t;
    for (int depth = 0; root.getCause() != null && root.getCause() != root && depth < 64; depth++) {
      root = root.getCause();
    }
    return root;
  }

  /** The provider service files a class loader sees, each with its text, in the loader's order. */
  private static List<Map.Entry<URL, String>> serviceFiles(ClassLoader loader)
      throws java.io.IOException {
    // A list, not a map: URL's equals may resolve host names.
    List<Map.Entry<URL, String>> files = new java.util.ArrayList<>();
    for (URL file : Collections.list(loader.getResources(SERVICES))) {
      try (java.io.InputStream in = file.openStream()) {
        files.add(
            Map.entry(
                file, new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8)));
      }
    }
    return files;
  }

  /** The jar or folder a resource was found in, as a real path: for comparison and messages. */
  private static String placeOf(URL resource) {
    String url = resource.toString();
    int bang = url.indexOf("!/");
    String container =
        bang >= 0 ? url.substring(0, bang) : url.substring(0, url.length() - SERVICES.length());
    if (container.startsWith("jar:")) {
      container = container.substring(4);
    }
    java.nio.file.Path path;
    try {
      path = java.nio.file.Path.of(new java.net.URI(container));
    } catch (java.net.URISyntaxException | RuntimeException e) {
      return container; // a nested or unusual URL: compared and shown as it is
    }
    try {
      return path.toRealPath().toString(); // one jar under two spellings (./a.jar, a link) is one
    } catch (java.io.IOException e) {
      return path.toAbsolutePath().normalize().toString();
    }
  }

  /** Loads the plugins on this library's class path once, before the first look-up. */
  private static void loadClassPath() {
    if (!classPathLoaded) {
      synchronized (SPECS) {
        if (!classPathLoaded) {
          // Marked only once loaded: a conflict keeps failing every look-up with its real cause
          // instead of leaving later callers with a registry that silently lacks the plugins.
          loadPlugins(Algorithms.class.getClassLoader());
          classPathLoaded = true;
        }
      }
    }
  }

  /**
   * Returns an algorithm by config name, as a YAML entry names it: {@code
   * Algorithms.spec("blurpool").create(Map.of("min_channels", 16))}.
   *
   * @param name the config name
   * @return the spec
   * @throws IllegalArgumentException when no algorithm (built-in or plugin) has that name; the
   *     message lists the known names
   * @throws AlgorithmPluginException when the plugins on the class path conflict
   */
  public static AlgorithmSpec spec(String name) {
    return find(name)
        .orElseThrow(
            () ->
                new IllegalArgumentException(
                    "unknown algorithm '"
                        + name
                        + "'; known: "
                        + String.join(", ", names())
                        + " (an algorithm of a plugin jar needs the jar on the class path)"));
  }

  /**
   * Looks an algorithm up by config name.
   *
   * @param name the config name
   * @return the spec, or empty when no algorithm has that name
   * @throws AlgorithmPluginException when the plugins on the class path conflict
   */
  public static Optional<AlgorithmSpec> find(String name) {
    loadClassPath();
    return Optional.ofNullable(name == null ? null : SPECS.get(name));
  }

  /**
   * Tells where an algorithm came from, for messages.
   *
   * @param name the config name
   * @return the jar or directory of its plugin, "built-in", or null when unknown
   */
  public static String origin(String name) {
    loadClassPath();
    return ORIGINS.get(name);
  }

  /**
   * Lists the known config names.
   *
   * @return the names, built-ins first
   * @throws AlgorithmPluginException when the plugins on the class path conflict
   */
  public static Set<String> names() {
    loadClassPath();
    synchronized (SPECS) {
      return Collections.unmodifiableSet(new java.util.LinkedHashSet<>(SPECS.keySet()));
    }
  }

  /**
   * Describes where a class was loaded from: its jar or directory (code source location).
   *
   * @param type the class
   * @return the location, or the class's loader when it has none
   */
  static String originOf(Class<?> type) {
    if (type.getClassLoader() == Algorithms.class.getClassLoader()
        && type.getName().startsWith("dev.surgery.core.algorithms.")) {
      return BUILT_IN;
    }
    CodeSource source = null;
    try {
      source = type.getProtectionDomain().getCodeSource();
    } catch (SecurityException e) {
      // fall through: named by its loader
    }
    URL location = source == null ? null : source.getLocation();
    if (location != null) {
      return location.getPath().isEmpty() ? location.toString() : location.getPath();
    }
    return "class loader " + type.getClassLoader();
  }

  /**
   * Lists the algorithms with their origins, for listings such as {@code --list-algorithms}.
   *
   * @return name to origin
   */
  public static Map<String, String> origins() {
    loadClassPath();
    synchronized (SPECS) {
      return Collections.unmodifiableMap(new LinkedHashMap<>(ORIGINS));
    }
  }
}
