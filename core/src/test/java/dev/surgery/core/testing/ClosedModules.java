package dev.surgery.core.testing;

import ai.djl.nn.Block;
import java.io.IOException;
import java.lang.module.Configuration;
import java.lang.module.ModuleFinder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;

/**
 * A program's module on the module path that exports its package but does not open it: module
 * {@code closedapp}, compiled at test time and defined in a module layer of its own (reading the
 * class path, where DJL is in tests). Its {@code closedapp.Holder} is a block holding a child in a
 * private field, and {@code Holder.lambdaOver(list)} a lambda block calling the list's first block.
 */
public final class ClosedModules {

  private ClosedModules() {}

  /**
   * Compiles and defines module {@code closedapp}.
   *
   * @param dir an empty folder for its sources and classes
   * @return the class loader of the module
   * @throws IOException when a file cannot be written
   */
  public static ClassLoader closedApp(Path dir) throws IOException {
    Path src = dir.resolve("src");
    Path pkg = src.resolve("closedapp");
    Files.createDirectories(pkg);
    Files.writeString(src.resolve("module-info.java"), "module closedapp { exports closedapp; }");
    Files.writeString(
        pkg.resolve("Holder.java"),
        String.join(
            "\n",
            "package closedapp;",
            "import ai.djl.ndarray.*;",
            "import ai.djl.ndarray.types.*;",
            "import ai.djl.nn.*;",
            "import ai.djl.training.ParameterStore;",
            "import ai.djl.util.PairList;",
            "import java.util.List;",
            "public final class Holder extends AbstractBlock {",
            "  private final Block inner;",
            "  public Holder(Block inner) { this.inner = addChildBlock(\"inner\", inner); }",
            "  @Override protected NDList forwardInternal(ParameterStore s, NDList x, boolean t,",
            "      PairList<String, Object> p) { return inner.forward(s, x, t); }",
            "  @Override public void initializeChildBlocks(NDManager m, DataType d, Shape... s) {",
            "    inner.initialize(m, d, s); }",
            "  @Override public Shape[] getOutputShapes(Shape[] s) {",
            "    return inner.getOutputShapes(s); }",
            "  /** A lambda block of this module calling the first block of a captured list. */",
            "  public static Block lambdaOver(List<Block> blocks) {",
            "    ParameterStore store = new ParameterStore();",
            "    return new LambdaBlock(x -> blocks.get(0).forward(store, x, false), \"calls\"); }",
            "  /** A lambda block of this module whose function captured nothing. */",
            "  public static Block relu() { return new LambdaBlock(Activation::relu, \"relu\"); }",
            "  /** A lambda block of this module whose function captured a number only. */",
            "  public static Block scale(float k) {",
            "    return new LambdaBlock(x -> new NDList(x.singletonOrThrow().mul(k)), \"scale\"); }",
            "}"));
    Path out = dir.resolve("out");
    JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
    int status =
        javac.run(
            null,
            null,
            null,
            "-d",
            out.toString(),
            "-cp",
            System.getProperty("java.class.path"),
            "--add-reads",
            "closedapp=ALL-UNNAMED",
            src.resolve("module-info.java").toString(),
            pkg.resolve("Holder.java").toString());
    if (status != 0) {
      throw new IllegalStateException("javac failed: " + status);
    }
    ClassLoader parent = ClosedModules.class.getClassLoader();
    Configuration cf =
        ModuleLayer.boot()
            .configuration()
            .resolve(ModuleFinder.of(out), ModuleFinder.of(), Set.of("closedapp"));
    ModuleLayer.Controller layer =
        ModuleLayer.defineModulesWithOneLoader(cf, List.of(ModuleLayer.boot()), parent);
    Module module = layer.layer().findModule("closedapp").orElseThrow();
    layer.addReads(module, parent.getUnnamedModule()); // DJL is on the class path in tests
    return layer.layer().findLoader("closedapp");
  }

  /**
   * A {@code closedapp.Holder} around a block.
   *
   * @param closedApp the module's class loader
   * @param inner the block it holds (in a private field, as its child)
   * @return the holder
   * @throws ReflectiveOperationException never, once the module is defined
   */
  public static Block holder(ClassLoader closedApp, Block inner)
      throws ReflectiveOperationException {
    return (Block)
        closedApp.loadClass("closedapp.Holder").getConstructor(Block.class).newInstance(inner);
  }

  /**
   * A lambda block of {@code closedapp} running a method reference that captured nothing.
   *
   * @param closedApp the module's class loader
   * @return the lambda block
   * @throws ReflectiveOperationException never, once the module is defined
   */
  public static Block capturingNothing(ClassLoader closedApp) throws ReflectiveOperationException {
    return (Block) closedApp.loadClass("closedapp.Holder").getMethod("relu").invoke(null);
  }

  /**
   * A lambda block of {@code closedapp} whose function captured a number only.
   *
   * @param closedApp the module's class loader
   * @param k the factor it multiplies by
   * @return the lambda block
   * @throws ReflectiveOperationException never, once the module is defined
   */
  public static Block capturingANumber(ClassLoader closedApp, float k)
      throws ReflectiveOperationException {
    return (Block)
        closedApp.loadClass("closedapp.Holder").getMethod("scale", float.class).invoke(null, k);
  }

  /**
   * A lambda block of {@code closedapp} calling {@code calls}.
   *
   * @param closedApp the module's class loader
   * @param calls the block its lambda calls (captured in a list)
   * @return the lambda block
   * @throws ReflectiveOperationException never, once the module is defined
   */
  public static Block lambdaOver(ClassLoader closedApp, Block calls)
      throws ReflectiveOperationException {
    return (Block)
        closedApp
            .loadClass("closedapp.Holder")
            .getMethod("lambdaOver", List.class)
            .invoke(null, List.of(calls));
  }
}
