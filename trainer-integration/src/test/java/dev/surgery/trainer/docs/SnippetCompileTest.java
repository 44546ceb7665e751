package dev.surgery.trainer.docs;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.IOException;
import java.io.StringWriter;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import javax.tools.DiagnosticCollector;
import javax.tools.JavaCompiler;
import javax.tools.JavaFileObject;
import javax.tools.StandardJavaFileManager;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * Compiles every {@code ```java} block of README.md, the module READMEs and docs/*.md with javac
 * against this module's test class path, with the build's lint options and {@code -Werror}, so a
 * renamed method or class breaks the build rather than the reader.
 *
 * <p>A block that declares a top-level class is compiled as it is. A block that starts with a
 * member declaration (a field or method, possibly after its Javadoc) is compiled as the body of a
 * class. Any other block is a fragment: it is compiled as the body of a method that has the
 * variables such fragments use ({@code model}, {@code trainer}, {@code inputShape}, {@code epochs},
 * {@code trainSet}, {@code validateSet}). Both get the imports of {@link #FRAGMENT_IMPORTS}.
 * Complete programs of docs/user-guide.md are also run: each trains a tiny model for a second or
 * so.
 */
class SnippetCompileTest {

  /** The modules' own READMEs, whose Java blocks are compiled too. */
  static final List<String> MODULE_READMES =
      List.of(
          "core/README.md",
          "trainer-integration/README.md",
          "agent/README.md",
          "samples/README.md");

  /**
   * The Markdown files whose Java blocks are compiled: README.md, the module READMEs and every file
   * of docs/.
   */
  static List<String> docs() throws IOException {
    List<String> docs = new ArrayList<>(List.of("README.md"));
    docs.addAll(MODULE_READMES);
    try (Stream<Path> files = Files.list(MarkdownDoc.repositoryRoot().resolve("docs"))) {
      files
          .map(p -> "docs/" + p.getFileName())
          .filter(name -> name.endsWith(".md"))
          .sorted()
          .forEach(docs::add);
    }
    return docs;
  }

  /** The documents whose complete programs are run after compiling. */
  static final List<String> RUN = List.of("docs/user-guide.md");

  static final String FRAGMENT_IMPORTS =
      String.join(
          "\n",
          "import ai.djl.Model;",
          "import ai.djl.ndarray.types.Shape;",
          "import ai.djl.nn.Block;",
          "import ai.djl.nn.convolutional.Conv2d;",
          "import ai.djl.training.DefaultTrainingConfig;",
          "import ai.djl.training.EasyTrain;",
          "import ai.djl.training.Trainer;",
          "import ai.djl.training.dataset.Dataset;",
          "import ai.djl.training.listener.TrainingListener;",
          "import ai.djl.training.loss.Loss;",
          "import dev.surgery.core.*;",
          "import dev.surgery.core.algorithms.*;",
          "import dev.surgery.core.events.*;",
          "import dev.surgery.core.layers.*;",
          "import dev.surgery.trainer.*;",
          "import dev.surgery.trainer.config.*;",
          "import java.nio.file.*;",
          "import java.util.*;",
          "");

  /** The variables fragments may use without declaring them: type and name. */
  static final String[][] FRAGMENT_VARIABLES = {
    {"Model", "model"},
    {"Trainer", "trainer"},
    {"Shape", "inputShape"},
    {"int", "epochs"},
    {"Dataset", "trainSet"},
    {"Dataset", "validateSet"}
  };

  private static final Pattern CLASS =
      Pattern.compile("(?m)^(?:public\\s+)?(?:final\\s+)?(?:class|record|interface)\\s+(\\w+)");

  /** The first code line of a block of class members: a modifier, after any comment lines. */
  private static final Pattern MEMBERS =
      Pattern.compile(
          "^(?:[ \\t]*(?:/\\*\\*?.*|\\*.*|//.*)?\\n)*[ \\t]*(?:public|protected|private|static)\\s");

  @TempDir Path out;

  @TestFactory
  Stream<DynamicTest> everyJavaBlockCompiles() throws IOException {
    List<MarkdownDoc.Block> blocks = new ArrayList<>();
    for (String doc : docs()) {
      blocks.addAll(MarkdownDoc.read(doc).codeBlocks("java"));
    }
    assertTrue(blocks.size() >= 4, "expected the README and user-guide examples, got " + blocks);
    for (String readme : MODULE_READMES) {
      assertTrue(
          blocks.stream().anyMatch(b -> b.where().startsWith(readme + ":")),
          readme + " should show its module in a Java snippet");
    }
    List<DynamicTest> tests = new ArrayList<>();
    for (int i = 0; i < blocks.size(); i++) {
      MarkdownDoc.Block block = blocks.get(i);
      Path dir = out.resolve("snippet" + i);
      tests.add(DynamicTest.dynamicTest(block.where(), () -> compileAndMaybeRun(block, dir)));
    }
    return tests.stream();
  }

  private static void compileAndMaybeRun(MarkdownDoc.Block block, Path dir) throws Exception {
    Files.createDirectories(dir);
    Matcher m = CLASS.matcher(block.text());
    String className;
    String source;
    int prefixLines;
    if (m.find()) {
      className = m.group(1);
      // a class written without its imports (an illustration) gets the fragments' imports
      boolean hasImports = Pattern.compile("(?m)^import\\s").matcher(block.text()).find();
      String head = hasImports ? "" : FRAGMENT_IMPORTS;
      source = head + block.text();
      prefixLines = (int) head.chars().filter(c -> c == '\n').count();
    } else if (MEMBERS.matcher(block.text()).lookingAt()) {
      className = "Fragment";
      String head = FRAGMENT_IMPORTS + "class Fragment {\n";
      source = head + block.text() + "}\n";
      prefixLines = (int) head.chars().filter(c -> c == '\n').count();
    } else {
      className = "Fragment";
      List<String> parameters = new ArrayList<>();
      for (String[] p : FRAGMENT_VARIABLES) {
        // a fragment that declares the variable itself (Trainer trainer = ...) does not get it
        if (!Pattern.compile("[\\w>]\\s+" + p[1] + "\\s*=").matcher(block.text()).find()) {
          parameters.add(p[0] + " " + p[1]);
        }
      }
      String head =
          FRAGMENT_IMPORTS
              + "class Fragment {\n"
              + "  static void fragment("
              + String.join(", ", parameters)
              + ") throws Exception {\n";
      source = head + block.text() + "  }\n}\n";
      prefixLines = (int) head.chars().filter(c -> c == '\n').count();
    }
    Path file = dir.resolve(className + ".java");
    Files.writeString(file, source, StandardCharsets.UTF_8);
    compile(block, file, dir, prefixLines);
    if (RUN.stream().anyMatch(d -> block.where().startsWith(d + ":")) && prefixLines == 0) {
      run(block, dir, className);
    }
  }

  private static void compile(MarkdownDoc.Block block, Path file, Path dir, int prefixLines)
      throws IOException {
    JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
    assertNotNull(javac, "no system Java compiler (a JRE instead of a JDK?)");
    DiagnosticCollector<JavaFileObject> diagnostics = new DiagnosticCollector<>();
    StringWriter output = new StringWriter();
    try (StandardJavaFileManager files =
        javac.getStandardFileManager(diagnostics, null, StandardCharsets.UTF_8)) {
      List<String> options =
          List.of(
              "-classpath",
              classPath(),
              "-d",
              dir.toString(),
              "--release",
              "17",
              "-proc:none",
              "-Xlint:all,-processing,-serial",
              "-Werror");
      boolean ok =
          javac
              .getTask(
                  output,
                  files,
                  diagnostics,
                  options,
                  null,
                  files.getJavaFileObjects(file.toFile()))
              .call();
      if (!ok) {
        StringBuilder msg = new StringBuilder(block.where() + " does not compile:\n");
        diagnostics
            .getDiagnostics()
            .forEach(
                d ->
                    msg.append("  line ")
                        .append(block.line() + d.getLineNumber() - 1 - prefixLines)
                        .append(": ")
                        .append(d.getMessage(null))
                        .append('\n'));
        throw new AssertionError(msg.toString() + output);
      }
    }
  }

  private static void run(MarkdownDoc.Block block, Path dir, String className) throws Exception {
    try (URLClassLoader loader =
        new URLClassLoader(
            new URL[] {dir.toUri().toURL()}, SnippetCompileTest.class.getClassLoader())) {
      Class<?> c = loader.loadClass(className);
      Method main = c.getMethod("main", String[].class);
      assertTrue(Modifier.isStatic(main.getModifiers()), block.where() + ": main is not static");
      Set<Path> before = examplesTempDirs();
      try {
        main.invoke(null, (Object) new String[0]);
      } finally {
        // The guide's examples save into Files.createTempDirectory("surgery-example"), as a user
        // trying them would; the test removes what its run made there.
        for (Path made : examplesTempDirs()) {
          if (!before.contains(made)) {
            try (Stream<Path> files = Files.walk(made)) {
              for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
              }
            }
          }
        }
      }
    } catch (NoSuchMethodException e) {
      assertFalse(true, block.where() + ": a complete example of the user guide needs a main");
    }
  }

  /** The folders the guide's examples made in the system's temporary folder. */
  private static Set<Path> examplesTempDirs() throws IOException {
    try (Stream<Path> entries = Files.list(Path.of(System.getProperty("java.io.tmpdir")))) {
      return entries
          .filter(p -> p.getFileName().toString().startsWith("surgery-example"))
          .collect(Collectors.toSet());
    }
  }

  /** The test class path: surefire passes it as a property when it launches through a jar. */
  private static String classPath() {
    String cp = System.getProperty("surefire.test.class.path");
    if (cp == null || cp.isBlank()) {
      cp = System.getProperty("java.class.path");
    }
    List<String> existing = new ArrayList<>();
    for (String entry : cp.split(File.pathSeparator)) {
      if (!entry.isBlank() && new File(entry).exists()) {
        existing.add(entry);
      }
    }
    return String.join(File.pathSeparator, existing);
  }
}
