package dev.surgery.agent.shared;

import java.lang.ref.WeakReference;
import java.net.URL;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * The program's own copies of the surgery library beside the agent's: where they are (the class
 * loaders that defined classes of them, held weakly, which the agent's copy asks what a model
 * carries), and the one warning that there are two copies in use. The warning needs both in use:
 * the program's (one of its classes defined outside the agent's loaders) and the agent's (hooks in
 * service for a DJL trainer or model). A copy that only sits on the class path never meets the
 * agent's, and neither does one beside an agent that was turned off or never attached.
 */
public final class ProgramCopy {

  /** The {@link AgentLog#warnOnce} key of the warning. */
  static final String WARNING_KEY = "two-copies";

  /** Where the program's copy was first seen defining a class; null until then. */
  private static volatile String seenAt;

  private static volatile boolean agentCopyInService;

  private static final List<WeakReference<ClassLoader>> LOADERS = new CopyOnWriteArrayList<>();

  private ProgramCopy() {}

  /**
   * Notes that the program defined a class of the surgery library itself, and warns if the agent's
   * copy is in service already.
   *
   * @param loader the class loader that defined it (null: the boot loader, never asked)
   * @param location where the class came from (its code source), null if unknown
   */
  public static void seen(ClassLoader loader, URL location) {
    if (loader != null && loaders().stream().noneMatch(l -> l == loader)) {
      LOADERS.removeIf(ref -> ref.get() == null);
      LOADERS.add(new WeakReference<>(loader));
    }
    if (seenAt == null) {
      seenAt = location == null ? "location unknown" : location.toString();
    }
    if (agentCopyInService) {
      warn();
    }
  }

  /** Notes that the agent's copy serves a DJL object, and warns if the program uses its own. */
  static void agentCopyInService() {
    if (agentCopyInService) {
      return;
    }
    agentCopyInService = true;
    if (seenAt != null) {
      warn();
    }
  }

  /**
   * Whether the program already has a class of the library from this loader on record.
   *
   * @param loader a class loader
   * @return whether it is known to hold a copy of the program's
   */
  public static boolean known(ClassLoader loader) {
    return loaders().stream().anyMatch(l -> l == loader);
  }

  /** The loaders that defined classes of the program's copies, oldest first. */
  static List<ClassLoader> loaders() {
    List<ClassLoader> live = new ArrayList<>();
    for (WeakReference<ClassLoader> ref : LOADERS) {
      ClassLoader loader = ref.get();
      if (loader != null) {
        live.add(loader);
      }
    }
    return live;
  }

  /**
   * Whether a class is one of the surgery library's (core and trainer; not core's test support, the
   * test jar's {@code dev.surgery.core.testing}).
   *
   * @param name the binary name ({@code dev.surgery.core.X}) or internal name ({@code
   *     dev/surgery/core/X})
   * @return whether it is the library's
   */
  public static boolean isLibraryClass(String name) {
    String n = name.replace('/', '.');
    return (n.startsWith("dev.surgery.core.") || n.startsWith("dev.surgery.trainer."))
        && !n.startsWith("dev.surgery.core.testing.");
  }

  /**
   * Whether a class loader is one of the agent's (its hook loaders and plugin loaders): the classes
   * they define are the agent's copy.
   *
   * @param loader a class loader, null for the boot loader
   * @return whether it is the agent's
   */
  public static boolean isAgents(ClassLoader loader) {
    return loader instanceof ChildFirstLoader;
  }

  private static void warn() {
    AgentLog.warnOnce(
        WARNING_KEY,
        "the program has its own copy of DJL Surgery ("
            + seenAt
            + ") beside the agent's: the two share what surgery records a model carries and what"
            + " surgery froze, but not their classes (a layer one copy made is no instance of the"
            + " other's class: the program's factorize leaves an agent-made BlurConv2d as it is)"
            + " nor their locks; run the program with the library and without the agent, or the"
            + " agent on a program without the library (agent README, \"Consequences\")",
        null);
  }
}
