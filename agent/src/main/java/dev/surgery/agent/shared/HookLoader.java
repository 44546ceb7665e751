package dev.surgery.agent.shared;

import java.io.IOException;
import java.net.MalformedURLException;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.CodeSigner;
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
 * surgery classes ({@code dev.surgery.*}) are defined here, child first, from the agent jar itself
 * (the library's from a folder of it that no other loader reads as classes: {@link
 * #HIDDEN_LIBRARY}). The shared package ({@code dev.surgery.agent.shared}) is the one exception: it
 * is taken from the agent's own loader so that both sides share {@link DjlHooks} and {@link
 * AgentLog}.
 */
final class HookLoader extends ChildFirstLoader {

  static {
    ClassLoader.registerAsParallelCapable();
  }

  private static final String SHARED = HookLoader.class.getPackageName() + ".";

  private final ClassLoader agentLoader;

  /** The code source of the classes this loader defines from the hidden folder: the agent jar. */
  private final java.security.ProtectionDomain domain;

  HookLoader(URL[] agentClasses, ClassLoader djlLoader, ClassLoader agentLoader) {
    super(
        "surgery-agent@" + Integer.toHexString(System.identityHashCode(djlLoader)),
        agentClasses,
        djlLoader);
    this.agentLoader = agentLoader;
    this.domain =
        new java.security.ProtectionDomain(
            new CodeSource(agentClasses.length == 0 ? null : agentClasses[0], (CodeSigner[]) null),
            null,
            this,
            null);
  }

  /**
   * Where the agent jar keeps the library's classes (core and trainer), as {@code <folder><binary
   * name with slashes>.classdata}: under names no other loader takes for classes, so that the
   * program never finds them on the system class path that {@code -javaagent} extends.
   */
  static final String HIDDEN_LIBRARY = "dev/surgery/agent-library/";

  private static final String HIDDEN_SUFFIX = ".classdata";

  /**
   * Defines the library's classes from the agent jar's hidden folder; in a development build (class
   * folders, where they are plain classes) as any other class.
   */
  @Override
  protected Class<?> findClass(String name) throws ClassNotFoundException {
    if (ProgramCopy.isLibraryClass(name)) {
      URL hidden = findResource(HIDDEN_LIBRARY + name.replace('.', '/') + HIDDEN_SUFFIX);
      if (hidden != null) {
        return defineHidden(name, hidden);
      }
    }
    return super.findClass(name);
  }

  private Class<?> defineHidden(String name, URL url) throws ClassNotFoundException {
    byte[] bytes;
    try (java.io.InputStream in = url.openStream()) {
      bytes = in.readAllBytes();
    } catch (IOException e) {
      throw new ClassNotFoundException(name + " (" + url + ")", e);
    }
    String packageName = name.substring(0, name.lastIndexOf('.'));
    if (getDefinedPackage(packageName) == null) {
      try {
        definePackage(packageName, null, null, null, null, null, null, null);
      } catch (IllegalArgumentException raced) {
        // Another thread defined it first: the same package.
      }
    }
    return defineClass(name, bytes, 0, bytes.length, domain);
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
        return jar.getEntry(HIDDEN_LIBRARY + "dev/surgery/trainer/SurgeryListener" + HIDDEN_SUFFIX)
                != null
            || jar.getEntry("dev/surgery/trainer/SurgeryListener.class") != null;
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
