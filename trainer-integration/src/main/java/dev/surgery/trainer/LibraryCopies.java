package dev.surgery.trainer;

import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * The other copies of this library in the JVM, asked what surgery a block carries and froze. Under
 * the Java agent a program that has the library on its own class path runs two copies: the agent's,
 * defined beside DJL by the agent's class loader, and the program's. Each knows only the records it
 * replayed or applied itself, so without asking the other a model the program's copy changed (its
 * listener, {@code SurgeryCheckpoint.replay} in a {@code BlockFactory}) and then loaded with a
 * plain {@code Model.load} (which the agent's copy replays) would be taken for the original
 * architecture, and the other way round.
 *
 * <p>The agent's copy finds the program's where the agent saw them define classes ({@code
 * SurgeryDispatcher.programCopyLoaders()}); the program's finds the agent's through {@code
 * SurgeryDispatcher.libraryLoaders()}; both are the agent's one class that every loader shares. A
 * copy without the agent asks its loader's parent. Asked are the records (what a load replays, what
 * a save writes) and what surgery froze (what a new trainer freezes again), each copy answering
 * from what it holds itself; the rest each copy keeps to itself, its classes included
 * (docs/reliability.md, "Known gaps").
 */
final class LibraryCopies {

  /**
   * The system property the agent sets once it has made a copy of this library (its value is {@code
   * SurgeryDispatcher}'s name); the agent jar's {@code SurgeryDispatcher} repeats it.
   */
  static final String AGENT_COPIES = "dev.surgery.agent.libraryCopies";

  /** The agent's class that lists the loaders of its copies of this library. */
  private static final String DISPATCHER = "dev.surgery.agent.shared.SurgeryDispatcher";

  private LibraryCopies() {}

  /**
   * The records a root block carries as the copies of this library in the JVM know them, as JSON:
   * this copy's, unless another copy knows more of the same history (this copy's records are the
   * start of the other's: the other copy loaded a later checkpoint of the run, or its listener
   * recorded a surgery since). Null when no copy holds any; where two histories disagree, this
   * copy's.
   */
  static String latestCarriedBy(Block root) {
    String latest = CarriedRecords.carriedBy(root);
    for (Object answer : askOthers("carriedBy", root)) {
      if (answer instanceof String other && !other.isBlank() && isLongerHistory(other, latest)) {
        latest = other;
      }
    }
    return latest;
  }

  /** Whether {@code other} holds more records than {@code known}, beginning with all of them. */
  private static boolean isLongerHistory(String other, String known) {
    if (known == null || known.isBlank()) {
      return true;
    }
    try {
      List<SurgeryRecord> longer = SurgeryJson.recordsFromJson(other);
      List<SurgeryRecord> shorter = SurgeryJson.recordsFromJson(known);
      if (longer.size() <= shorter.size()) {
        return false;
      }
      for (int i = 0; i < shorter.size(); i++) {
        if (!shorter.get(i).sameApplicationAs(longer.get(i))) {
          return false;
        }
      }
      return true;
    } catch (IllegalArgumentException e) {
      return false; // not a record this build reads: this copy's stands
    }
  }

  /**
   * The parameters surgery froze on a root block as another copy of this library knows them (its
   * replay or its listener froze them); null when no other copy knows of any.
   */
  @SuppressWarnings("unchecked")
  static Set<Parameter> frozenElsewhere(Block root) {
    for (Object answer : askOthers("ownFrozenOrNull", root)) {
      if (answer instanceof Set<?> set && !set.isEmpty()) {
        return (Set<Parameter>) set;
      }
    }
    return null;
  }

  /**
   * What every other copy's {@code CarriedRecords.<method>(root)} answers (each answers from what
   * it holds itself, so no copy asks back); a copy that cannot be asked is left out.
   */
  private static List<Object> askOthers(String method, Block root) {
    if (root == null) {
      return List.of();
    }
    List<Object> answers = new ArrayList<>();
    for (Method m : otherCopies(method)) {
      try {
        answers.add(m.invoke(null, root));
      } catch (IllegalAccessException | InvocationTargetException | RuntimeException e) {
        ListenerLog.logger().debug("Surgery: another copy of the library could not be asked", e);
      }
    }
    return answers;
  }

  /**
   * {@code CarriedRecords.<method>(Block)} of every other copy of this library that takes this
   * JVM's DJL blocks.
   */
  private static List<Method> otherCopies(String method) {
    List<ClassLoader> loaders = new ArrayList<>();
    List<ClassLoader> agents = agentLoaders();
    if (agents.contains(CarriedRecords.class.getClassLoader())) {
      // The agent's copy: the program's copies are where the agent saw them define classes (none
      // while the program uses none: asking a copy that merely sits on the class path would
      // define it, bring it to life and find it empty).
      loaders.addAll(programCopyLoaders());
    } else {
      ClassLoader parent = parentWithACopy();
      if (parent != null) {
        loaders.add(parent);
      }
    }
    loaders.addAll(agents);
    List<Method> methods = new ArrayList<>();
    for (ClassLoader loader : loaders) {
      Method m = methodOf(loader, method);
      if (m != null
          && methods.stream().noneMatch(k -> k.getDeclaringClass() == m.getDeclaringClass())) {
        methods.add(m);
      }
    }
    return methods;
  }

  /** Whether {@link #parent} was decided. */
  private static volatile boolean parentDecided;

  /** This copy's loader's parent where it holds another copy of the library; else null. */
  private static volatile ClassLoader parent;

  /**
   * This copy's loader's parent where it holds another copy (decided once: asked on every
   * application of an entry, a resource lookup each time would cost a training step).
   */
  private static ClassLoader parentWithACopy() {
    if (!parentDecided) {
      ClassLoader own = CarriedRecords.class.getClassLoader();
      ClassLoader candidate = own == null ? null : own.getParent();
      parent = candidate != null && !seesOnlyThisJar(candidate) ? candidate : null;
      parentDecided = true;
    }
    return parent;
  }

  /**
   * Whether a loader finds this library in the jar (or folder) this copy came from, or not at all:
   * a child-first copy whose parent sees the same jar would define another copy there only to find
   * it empty.
   */
  private static boolean seesOnlyThisJar(ClassLoader loader) {
    String name = CarriedRecords.class.getName().replace('.', '/') + ".class";
    java.net.URL theirs = loader.getResource(name);
    if (theirs == null) {
      return true;
    }
    // This copy's own jar or folder (its loader's getResource may answer with the parent's).
    java.security.CodeSource source = CarriedRecords.class.getProtectionDomain().getCodeSource();
    if (source == null || source.getLocation() == null) {
      return false;
    }
    String root = source.getLocation().toString();
    String found = theirs.toString();
    return found.equals("jar:" + root + "!/" + name) || found.equals(root + name);
  }

  /** What {@link #METHODS} holds for a loader that has no such copy or method. */
  private static final Object NONE = new Object();

  /**
   * Per loader and method name, the other copy's method, held weakly (a strong {@code Method} would
   * hold its class and so the loader, the map's own key, for good), or {@link #NONE}.
   */
  private static final java.util.Map<ClassLoader, java.util.Map<String, Object>> METHODS =
      java.util.Collections.synchronizedMap(new java.util.WeakHashMap<>());

  private static Method methodOf(ClassLoader loader, String method) {
    java.util.Map<String, Object> known =
        METHODS.computeIfAbsent(loader, l -> new java.util.concurrent.ConcurrentHashMap<>());
    Object cached = known.get(method);
    if (cached == NONE) {
      return null;
    }
    Method m = cached instanceof java.lang.ref.WeakReference<?> ref ? (Method) ref.get() : null;
    if (m == null) {
      m = lookUp(loader, method);
      known.put(method, m == null ? NONE : new java.lang.ref.WeakReference<>(m));
    }
    return m;
  }

  private static Method lookUp(ClassLoader loader, String method) {
    try {
      Class<?> copy = Class.forName(CarriedRecords.class.getName(), false, loader);
      if (copy == CarriedRecords.class) {
        return null;
      }
      // Its parameter is this copy's Block: a copy beside another DJL has no such method.
      Method m = copy.getDeclaredMethod(method, Block.class);
      m.setAccessible(true);
      return m;
    } catch (ClassNotFoundException | NoSuchMethodException | LinkageError e) {
      return null;
    } catch (RuntimeException e) { // InaccessibleObjectException: a copy in a named module
      ListenerLog.logger().debug("Surgery: another copy of the library is not readable", e);
      return null;
    }
  }

  /**
   * {@code SurgeryDispatcher}'s public static methods without parameters once found, by name;
   * looked for again while one is not (an agent may attach after the program first used the
   * library).
   */
  private static final java.util.Map<String, Method> DISPATCHER_METHODS =
      new java.util.concurrent.ConcurrentHashMap<>();

  private static Method dispatcherMethod(String name) {
    Method found = DISPATCHER_METHODS.get(name);
    if (found == null) {
      try {
        Class<?> dispatcher = Class.forName(DISPATCHER, false, ClassLoader.getSystemClassLoader());
        found = dispatcher.getMethod(name);
        DISPATCHER_METHODS.put(name, found);
      } catch (ClassNotFoundException | NoSuchMethodException | LinkageError e) {
        return null; // no agent (yet), or an agent of an older build
      }
    }
    return found;
  }

  /** {@code SurgeryDispatcher.programCopyLoaders()}: empty without an agent. */
  private static List<ClassLoader> programCopyLoaders() {
    return loadersFrom("programCopyLoaders");
  }

  private static List<ClassLoader> agentLoaders() {
    return loadersFrom("libraryLoaders");
  }

  @SuppressWarnings("unchecked")
  private static List<ClassLoader> loadersFrom(String dispatcherMethod) {
    // The agent says so when it made a copy: without it no class lookup (that would throw and
    // catch at every application of an every-batch entry).
    if (System.getProperty(AGENT_COPIES) == null) {
      return List.of();
    }
    Method listing = dispatcherMethod(dispatcherMethod);
    if (listing == null) {
      return List.of();
    }
    try {
      Object loaders = listing.invoke(null);
      return loaders instanceof List<?> list ? (List<ClassLoader>) list : List.of();
    } catch (ReflectiveOperationException | RuntimeException e) {
      ListenerLog.logger().debug("Surgery: the agent's copies of the library are not listed", e);
      return List.of();
    }
  }
}
