package dev.surgery.samples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.StringReader;
import java.io.StringWriter;
import java.io.Writer;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.stream.Stream;
import javax.xml.parsers.DocumentBuilderFactory;
import org.junit.jupiter.api.Test;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;
import org.xml.sax.InputSource;

/**
 * Keeps the {@code cuda} profile of {@code samples/pom.xml} from rotting unnoticed: nothing in the
 * default build or on a CPU machine runs it. The test builds the POM's effective model as Maven
 * does, with the model builder of the Maven that runs this build (its {@code lib/} folder, so
 * profiles, property interpolation and plugin configuration merge exactly as on the command line)
 * and this build's local repository, offline, and checks what {@code exec:exec} and the class path
 * get with and without {@code -Pcuda}.
 */
class CudaProfileTest {

  private static final String EXEC = "exec-maven-plugin";

  @Test
  void cudaProfileRunsTheSamplesOnlineOnTheCudaNativeJar() throws Exception {
    Document pom = effectivePom(List.of("cuda"), new Properties());
    Map<String, Element> deps = dependencies(pom);
    assertFalse(
        deps.containsKey("pytorch-native-cpu"),
        "-Pcuda must leave the CPU native jar out: " + deps);
    assertEquals(
        "2.7.1",
        property(pom, "pytorch.version"),
        "PyTorch changed: recheck the CUDA flavours DJL publishes for it and update the cuda profile");
    assertEquals("cu128", property(pom, "pytorch.cuda.flavor"));
    Element cuda = deps.get("pytorch-native-cu128");
    assertNotNull(cuda, "-Pcuda must declare DJL's CUDA 12.8 build of libtorch: " + deps.keySet());
    assertEquals("ai.djl.pytorch", text(cuda, "groupId"));
    assertEquals("2.7.1", text(cuda, "version"));
    assertEquals("linux-x86_64", text(cuda, "classifier"));
    Element jni = deps.get("pytorch-jni");
    assertNotNull(jni, "-Pcuda must declare the JNI jar (it holds the cu128 JNI library)");
    assertEquals("2.7.1-0.36.0", text(jni, "version"));
    for (Map.Entry<String, Element> exec : execConfigurations(pom).entrySet()) {
      assertOffline(exec.getValue(), false, exec.getKey());
    }
  }

  @Test
  void defaultBuildRunsTheSamplesOfflineOnTheCpuJar() throws Exception {
    Document pom = effectivePom(List.of(), new Properties());
    Map<String, Element> deps = dependencies(pom);
    Element cpu = deps.get("pytorch-native-cpu");
    assertNotNull(cpu, "the default build bundles the CPU libtorch: " + deps.keySet());
    assertEquals("linux-x86_64", text(cpu, "classifier"));
    for (String artifact : deps.keySet()) {
      assertFalse(
          artifact.startsWith("pytorch-native-cu"),
          "the default build (and .ci/run) must never need a CUDA jar: " + artifact);
    }
    for (Map.Entry<String, Element> exec : execConfigurations(pom).entrySet()) {
      assertOffline(exec.getValue(), true, exec.getKey());
    }
  }

  @Test
  void cudaProfileStaysOfflineWhenTheUserAsks() throws Exception {
    Properties user = new Properties();
    user.setProperty("sample.offline", "true");
    Document pom = effectivePom(List.of("cuda"), user);
    assertTrue(dependencies(pom).containsKey("pytorch-native-cu128"));
    for (Map.Entry<String, Element> exec : execConfigurations(pom).entrySet()) {
      assertOffline(exec.getValue(), true, exec.getKey());
    }
  }

  /** Checks both of DJL's offline switches (environment and system property) in one run. */
  private static void assertOffline(Element configuration, boolean offline, String execution) {
    Element env = child(configuration, "environmentVariables");
    assertNotNull(env, execution + ": no environmentVariables");
    // Set explicitly either way, so a DJL_OFFLINE exported in the user's shell does not decide.
    assertEquals(String.valueOf(offline), text(env, "DJL_OFFLINE"), execution + ": DJL_OFFLINE");
    assertEquals("true", text(env, "OPT_OUT_TRACKING"), execution + ": OPT_OUT_TRACKING");
    String args = text(configuration, "commandlineArgs");
    assertNotNull(args, execution + ": no commandlineArgs");
    assertTrue(
        args.contains("-Dai.djl.offline=" + offline + " "),
        execution + ": expected -Dai.djl.offline=" + offline + " in " + args);
    assertFalse(
        args.contains("ai.djl.offline=" + !offline),
        execution + ": contradicting switch in " + args);
  }

  // ------------------------------------------------------------------ the effective POM

  /**
   * The effective model of samples/pom.xml with these profiles active and user properties, as XML.
   */
  private static Document effectivePom(List<String> profiles, Properties user) throws Exception {
    String home = System.getProperty("maven.home");
    String pomFile = System.getProperty("samples.pom");
    assertNotNull(home, "run under Maven: surefire passes maven.home (samples/pom.xml)");
    assertNotNull(pomFile, "run under Maven: surefire passes samples.pom (samples/pom.xml)");
    Path repository =
        Path.of(
            System.getProperty(
                "samples.localRepository",
                Path.of(System.getProperty("user.home"), ".m2", "repository").toString()));
    URL[] jars;
    try (Stream<Path> files = Files.list(Path.of(home, "lib"))) {
      List<URL> urls = new ArrayList<>();
      for (Path jar : (Iterable<Path>) files.filter(p -> p.toString().endsWith(".jar"))::iterator) {
        urls.add(jar.toUri().toURL());
      }
      jars = urls.toArray(new URL[0]);
    }
    // Maven's own classes, isolated from the test class path.
    try (URLClassLoader maven = new URLClassLoader(jars, ClassLoader.getPlatformClassLoader())) {
      Class<?> requestType =
          maven.loadClass("org.apache.maven.model.building.ModelBuildingRequest");
      Class<?> resolverType = maven.loadClass("org.apache.maven.model.resolution.ModelResolver");
      Object factory =
          maven
              .loadClass("org.apache.maven.model.building.DefaultModelBuilderFactory")
              .getConstructor()
              .newInstance();
      Object builder = factory.getClass().getMethod("newInstance").invoke(factory);
      Object request =
          maven
              .loadClass("org.apache.maven.model.building.DefaultModelBuildingRequest")
              .getConstructor()
              .newInstance();
      Properties system = new Properties();
      system.putAll(System.getProperties());
      requestType.getMethod("setPomFile", File.class).invoke(request, new File(pomFile));
      requestType.getMethod("setValidationLevel", int.class).invoke(request, 0);
      requestType.getMethod("setProcessPlugins", boolean.class).invoke(request, true);
      requestType.getMethod("setActiveProfileIds", List.class).invoke(request, profiles);
      requestType.getMethod("setSystemProperties", Properties.class).invoke(request, system);
      requestType.getMethod("setUserProperties", Properties.class).invoke(request, user);
      Object resolver =
          Proxy.newProxyInstance(
              maven, new Class<?>[] {resolverType}, new LocalRepositoryResolver(maven, repository));
      requestType.getMethod("setModelResolver", resolverType).invoke(request, resolver);
      Object result;
      try {
        result =
            maven
                .loadClass("org.apache.maven.model.building.ModelBuilder")
                .getMethod("build", requestType)
                .invoke(builder, request);
      } catch (InvocationTargetException e) {
        throw new AssertionError("Maven cannot build the effective POM: " + e.getCause(), e);
      }
      Object model =
          maven
              .loadClass("org.apache.maven.model.building.ModelBuildingResult")
              .getMethod("getEffectiveModel")
              .invoke(result);
      Class<?> modelType = maven.loadClass("org.apache.maven.model.Model");
      Object writer =
          maven
              .loadClass("org.apache.maven.model.io.xpp3.MavenXpp3Writer")
              .getConstructor()
              .newInstance();
      StringWriter xml = new StringWriter();
      writer.getClass().getMethod("write", Writer.class, modelType).invoke(writer, xml, model);
      return DocumentBuilderFactory.newInstance()
          .newDocumentBuilder()
          .parse(new InputSource(new StringReader(xml.toString())));
    }
  }

  /** Resolves imported and parent POMs from the local repository only: the test runs offline. */
  private static final class LocalRepositoryResolver implements InvocationHandler {
    private final ClassLoader maven;
    private final Path repository;

    LocalRepositoryResolver(ClassLoader maven, Path repository) {
      this.maven = maven;
      this.repository = repository;
    }

    @Override
    public Object invoke(Object proxy, Method method, Object[] args) throws Exception {
      switch (method.getName()) {
        case "resolveModel":
          return resolve(args);
        case "newCopy":
          return proxy;
        case "addRepository":
          return null;
        case "hashCode":
          return System.identityHashCode(proxy);
        case "equals":
          return proxy == args[0];
        case "toString":
          return "local repository " + repository;
        default:
          throw new UnsupportedOperationException(method.getName());
      }
    }

    private Object resolve(Object[] args) throws Exception {
      String[] gav = new String[3];
      if (args.length == 3) {
        for (int i = 0; i < 3; i++) {
          gav[i] = (String) args[i];
        }
      } else {
        // A Parent or a Dependency: both have these getters.
        Object coordinates = args[0];
        String[] getters = {"getGroupId", "getArtifactId", "getVersion"};
        for (int i = 0; i < 3; i++) {
          gav[i] = (String) coordinates.getClass().getMethod(getters[i]).invoke(coordinates);
        }
      }
      Path pom =
          repository
              .resolve(gav[0].replace('.', '/'))
              .resolve(gav[1])
              .resolve(gav[2])
              .resolve(gav[1] + "-" + gav[2] + ".pom");
      if (!Files.isRegularFile(pom)) {
        throw new IllegalStateException(
            "not in the local repository (build once online): " + String.join(":", gav));
      }
      return maven
          .loadClass("org.apache.maven.model.building.FileModelSource")
          .getConstructor(File.class)
          .newInstance(pom.toFile());
    }
  }

  // ------------------------------------------------------------------ reading the XML

  private static Map<String, Element> dependencies(Document pom) {
    Map<String, Element> byArtifact = new LinkedHashMap<>();
    Element deps = child(pom.getDocumentElement(), "dependencies");
    for (Element dep : children(deps, "dependency")) {
      byArtifact.put(text(dep, "artifactId"), dep);
    }
    return byArtifact;
  }

  /** The exec plugin's configuration (exec:exec, default-cli) and each execution's, merged. */
  private static Map<String, Element> execConfigurations(Document pom) {
    Element plugins = child(child(pom.getDocumentElement(), "build"), "plugins");
    Map<String, Element> configurations = new LinkedHashMap<>();
    for (Element plugin : children(plugins, "plugin")) {
      if (!EXEC.equals(text(plugin, "artifactId"))) {
        continue;
      }
      configurations.put("exec:exec", child(plugin, "configuration"));
      Element executions = child(plugin, "executions");
      for (Element execution : children(executions, "execution")) {
        configurations.put("exec:exec@" + text(execution, "id"), child(execution, "configuration"));
      }
    }
    assertTrue(
        configurations.containsKey("exec:exec") && configurations.containsKey("exec:exec@surgery"),
        "exec:exec and exec:exec@surgery configured: " + configurations.keySet());
    configurations.forEach((k, v) -> assertNotNull(v, k + " has no configuration"));
    return configurations;
  }

  private static String property(Document pom, String name) {
    return text(child(pom.getDocumentElement(), "properties"), name);
  }

  private static Element child(Element parent, String name) {
    List<Element> found = children(parent, name);
    return found.isEmpty() ? null : found.get(0);
  }

  private static List<Element> children(Element parent, String name) {
    List<Element> found = new ArrayList<>();
    if (parent == null) {
      return found;
    }
    for (Node n = parent.getFirstChild(); n != null; n = n.getNextSibling()) {
      if (n instanceof Element e && name.equals(e.getTagName())) {
        found.add(e);
      }
    }
    return found;
  }

  private static String text(Element parent, String name) {
    Element e = child(parent, name);
    return e == null ? null : e.getTextContent().trim();
  }
}
