package dev.surgery.agent.shared;

import java.io.IOException;
import java.net.MalformedURLException;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.CodeSource;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * Defines the DJL-dependent part of the agent (the surgery library and the hooks) once per class
 * loader that holds DJL.
 *
 * <p>The agent jar sits on the system class path, but DJL may live in a child loader (a fat-jar
 * launcher, a plugin loader); a listener defined by the system loader could not see DJL there. This
 * loader's parent is DJL's loader, so DJL, SLF4J and the JDK resolve as the application's; the
 * surgery classes ({@code dev.surgery.*}) are defined here, child first, from the agent jar itself.
 * The shared package ({@code dev.surgery.agent.shared}) is the one exception: it is taken from the
 * agent's own loader so that both sides share {@link DjlHooks} and {@link AgentLog}.
 */
final class HookLoader extends ChildFirstLoader {

  static {
    ClassLoader.registerAsParallelCapable();
  }

  private static final String SHARED = HookLoader.class.getPackageName() + ".";

  private final ClassLoader agentLoader;

  HookLoader(URL[] agentClasses, ClassLoader djlLoader, ClassLoader agentLoader) {
    super(
        "surgery-agent@" + Integer.toHexString(System.identityHashCode(djlLoader)),
        agentClasses,
        djlLoader);
    this.agentLoader = agentLoader;
  }

  /** The agent's shared classes from the agent loader, anything not the agent's from DJL's. */
  @Override
  protected Class<?> delegate(String name, boolean resolve) throws ClassNotFoundException {
    if (name.startsWith(SHARED)) {
      return Class.forName(name, false, agentLoader);
    }
    return name.startsWith("dev.surgery.") ? null : parentFirst(name, resolve);
  }

  /**
   * Finds where the agent's classes are: the agent jar when running as an agent; in a development
   * build (exploded class folders) the folders or jars that hold the agent, trainer and core
   * classes.
   *
   * @param agentClass a class of the agent
   * @return the class path of this loader
   */
  static URL[] agentClassPath(Class<?> agentClass) throws IOException {
    CodeSource source = agentClass.getProtectionDomain().getCodeSource();
    if (source != null && source.getLocation() != null) {
      URL location = source.getLocation();
      if (isJarWithTrainer(location)) {
        return new URL[] {location};
      }
    }
    ClassLoader loader = agentClass.getClassLoader();
    Set<URL> roots = new LinkedHashSet<>();
    for (String marker :
        List.of(
            "dev/surgery/agent/hookloader/DjlAgentHooks.class",
            "dev/surgery/trainer/SurgeryListener.class",
            "dev/surgery/core/ModuleSurgery.class")) {
      URL url = loader.getResource(marker);
      if (url == null) {
        throw new IOException("agent class path incomplete: " + marker + " not found");
      }
      roots.add(rootOf(url, marker));
    }
    return new ArrayList<>(roots).toArray(new URL[0]);
  }

  private static boolean isJarWithTrainer(URL location) throws IOException {
    try {
      Path path = Path.of(location.toURI());
      if (!Files.isRegularFile(path)) {
        return false;
      }
      try (java.util.jar.JarFile jar = new java.util.jar.JarFile(path.toFile())) {
        return jar.getEntry("dev/surgery/trainer/SurgeryListener.class") != null;
      }
    } catch (URISyntaxException | IllegalArgumentException e) {
      return false;
    }
  }

  private static URL rootOf(URL resource, String name) throws MalformedURLException {
    String s = resource.toString();
    if (s.startsWith("jar:")) {
      return new URL(s.substring("jar:".length(), s.indexOf("!/")));
    }
    return new URL(s.substring(0, s.length() - name.length()));
  }
}
