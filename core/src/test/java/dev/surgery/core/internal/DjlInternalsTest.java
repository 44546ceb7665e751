package dev.surgery.core.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.modality.nlp.EncoderDecoder;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.nn.norm.LayerNorm;
import ai.djl.training.ParameterStore;
import ai.djl.training.optimizer.Optimizer;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.reflect.Field;
import java.net.URL;
import java.net.URLClassLoader;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The reflection layer resolves against this DJL and names what changed when it does not. */
class DjlInternalsTest {

  @Test
  void everyFieldResolvesAgainstThisDjl() {
    DjlInternals.verify();
  }

  @Test
  void missingFieldNamesTheDjlClassAndField() {
    DjlInternalsException e =
        assertThrows(
            DjlInternalsException.class,
            () -> DjlInternals.field(AbstractBlock.class, "childrenRenamed", Object.class));
    assertTrue(e.getMessage().contains("ai.djl.nn.AbstractBlock.childrenRenamed"), e.getMessage());
  }

  @Test
  void retypedFieldNamesBothTypes() {
    DjlInternalsException e =
        assertThrows(
            DjlInternalsException.class,
            () -> DjlInternals.field(ParameterStore.class, "parameterMap", Optimizer.class));
    assertTrue(e.getMessage().contains("ai.djl.training.ParameterStore.parameterMap"));
    assertTrue(e.getMessage().contains(Map.class.getName()), e.getMessage());
  }

  /**
   * An outside probe: a DJL that declares a field more narrowly (a subtype, which the start-up
   * check accepts) made every surgery fail with a raw {@code WrongMethodTypeException} from the
   * fast accessor; the accessor now reads it through the type its call site uses.
   */
  @Test
  void aFieldDeclaredAsASubtypeIsReadAsTheTypeTheCallSiteUses() throws Throwable {
    Field items = DjlInternals.field(Holder.class, "items", List.class);
    MethodHandle getter =
        DjlInternals.getter(items, () -> MethodType.methodType(List.class, Holder.class));
    List<?> read = (List<?>) getter.invokeExact(new Holder());
    assertEquals(List.of("a"), read);
  }

  /** A method whose return type changed is named at start-up, not at its first call. */
  @Test
  void aRetypedReturnNamesTheMethodAndBothTypes() {
    DjlInternalsException e =
        assertThrows(
            DjlInternalsException.class,
            () -> DjlInternals.method(Optimizer.class, "getWeightDecay", double.class));
    assertTrue(
        e.getMessage()
            .contains(
                "ai.djl.training.optimizer.Optimizer.getWeightDecay returns float, DJL Surgery"
                    + " expects double"),
        e.getMessage());
    assertEquals(
        "withDefaultState",
        DjlInternals.method(
                Optimizer.class,
                "withDefaultState",
                Object.class,
                Map.class,
                String.class,
                ai.djl.Device.class,
                java.util.function.Function.class)
            .getName(),
        "an object return type may be a subtype of the one expected");
  }

  /**
   * An outside probe: a DJL without a class this library names ({@code AdamW}) made the first use
   * fail with {@code NoClassDefFoundError} in this class's initializer, and every later one with
   * "Could not initialize class"; it is the typed start-up failure that names the class. A
   * reviewer: also for a class only the fast accessors' types name ({@code LambdaBlock}).
   */
  @ParameterizedTest
  @ValueSource(
      strings = {
        "ai.djl.training.optimizer.AdamW",
        "ai.djl.nn.LambdaBlock",
        "ai.djl.nn.BlockList",
        "ai.djl.nn.norm.Dropout"
      })
  void aMissingDjlClassIsTheTypedStartUpFailureNamingIt(String hidden) throws Exception {
    List<URL> path = new ArrayList<>();
    for (Class<?> c :
        List.of(
            DjlInternals.class,
            Block.class,
            org.slf4j.LoggerFactory.class,
            com.google.gson.Gson.class)) {
      URL location = c.getProtectionDomain().getCodeSource().getLocation();
      if (!path.contains(location)) {
        path.add(location);
      }
    }
    try (URLClassLoader withoutIt =
        new URLClassLoader(path.toArray(URL[]::new), ClassLoader.getPlatformClassLoader()) {
          @Override
          protected Class<?> loadClass(String name, boolean resolve) throws ClassNotFoundException {
            if (name.equals(hidden)) {
              throw new ClassNotFoundException(name);
            }
            return super.loadClass(name, resolve);
          }
        }) {
      Class<?> internals = Class.forName(DjlInternals.class.getName(), true, withoutIt);
      // Resolved by name and type alone, as a program's call is (Class.getMethod would resolve
      // the types of every public method's signature, some of which are the hidden class).
      MethodHandle verify =
          MethodHandles.publicLookup()
              .findStatic(internals, "verify", MethodType.methodType(void.class));
      for (int call = 0; call < 2; call++) {
        Throwable failure = assertThrows(Throwable.class, () -> verify.invoke());
        assertEquals(
            DjlInternalsException.class.getName(),
            failure.getClass().getName(),
            "call " + call + ": " + failure);
        assertTrue(
            failure.getMessage().contains("DJL changed")
                && failure.getMessage().contains(hidden.replace('.', '/')),
            failure.getMessage());
      }
    }
  }

  /** A class whose field is declared more narrowly than its readers expect. */
  static final class Holder {
    final ArrayList<String> items = new ArrayList<>(List.of("a"));
  }

  @Test
  void optimizerStateMapsAreFoundByType() {
    assertEquals(
        java.util.Set.of("Adam.means", "Adam.variances"),
        DjlInternals.optimizerStates(Optimizer.adam().build()).keySet());
    assertEquals(
        java.util.Set.of("Sgd.momentumStates"),
        DjlInternals.optimizerStates(
                Optimizer.sgd()
                    .setLearningRateTracker(ai.djl.training.tracker.Tracker.fixed(0.1f))
                    .build())
            .keySet());
  }

  /**
   * Where the answer is yes, DJL's own save of an initialized block starts its metadata with the
   * shapes the block was initialized with (the version byte, the count, the shapes); DJL's {@code
   * Linear} writes other metadata first and is answered no.
   */
  @Test
  void blocksSaidToSaveTheirInputShapesFirstDoSo() throws Exception {
    Shape input = new Shape(2, 3, 4, 4);
    Map<Supplier<Block>, Boolean> blocks = new LinkedHashMap<>();
    blocks.put(() -> new SequentialBlock().add(Blocks.batchFlattenBlock()), true);
    blocks.put(() -> BatchNorm.builder().build(), true);
    blocks.put(() -> LayerNorm.builder().build(), true);
    blocks.put(() -> Conv2d.builder().setKernelShape(new Shape(1, 1)).setFilters(2).build(), true);
    blocks.put(() -> new ParallelBlock(list -> list.get(0)), true);
    blocks.put(() -> Linear.builder().setUnits(2).build(), false);
    // Saves its encoder and decoder itself (a reviewer): its metadata is not its shapes.
    assertFalse(DjlInternals.savesInputShapesFirst(EncoderDecoder.class));
    assertTrue(DjlInternals.describesInputItself(EncoderDecoder.class));
    assertTrue(DjlInternals.describesInputItself(Linear.class));
    assertFalse(DjlInternals.describesInputItself(SequentialBlock.class));
    assertFalse(DjlInternals.describesInputItself(Conv2d.class));
    try (NDManager manager = NDManager.newBaseManager()) {
      for (Map.Entry<Supplier<Block>, Boolean> e : blocks.entrySet()) {
        Block block = e.getKey().get();
        String name = block.getClass().getSimpleName();
        assertEquals(e.getValue(), DjlInternals.savesInputShapesFirst(block.getClass()), name);
        if (!e.getValue()) {
          continue;
        }
        block.initialize(manager, DataType.FLOAT32, input);
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        block.saveParameters(new DataOutputStream(bytes));
        DataInputStream in = new DataInputStream(new ByteArrayInputStream(bytes.toByteArray()));
        in.readByte(); // version
        assertEquals(1, in.readInt(), name);
        assertEquals(input, Shape.decode(in), name);
      }
    }
  }
}
