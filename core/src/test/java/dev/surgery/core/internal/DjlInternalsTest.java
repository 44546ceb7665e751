package dev.surgery.core.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.modality.nlp.EncoderDecoder;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBaseBlock;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.nn.norm.Dropout;
import ai.djl.nn.norm.LayerNorm;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.listener.TrainingListener;
import ai.djl.training.listener.TrainingListenerAdapter;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.optimizer.Sgd;
import ai.djl.training.tracker.Tracker;
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
      // The accessors, grouped in classes of their own, fail the same way at their first use.
      Map<String, MethodType> firstUses =
          Map.of(
              DjlBlocks.class.getName() + ".liveParameters",
              MethodType.methodType(
                  LinkedHashMap.class,
                  Class.forName(AbstractBlock.class.getName(), false, withoutIt)),
              DjlShapes.class.getName() + ".setRecordedInputShapes",
              MethodType.methodType(
                  void.class,
                  Class.forName(AbstractBaseBlock.class.getName(), false, withoutIt),
                  Class.forName(Shape[].class.getName(), false, withoutIt)),
              DjlTrainers.class.getName() + ".parameterStore",
              MethodType.methodType(
                  Class.forName(ParameterStore.class.getName(), false, withoutIt),
                  Class.forName(Trainer.class.getName(), false, withoutIt)),
              DjlOptimizers.class.getName() + ".updateCounts",
              MethodType.methodType(
                  Map.class, Class.forName(Optimizer.class.getName(), false, withoutIt)));
      for (Map.Entry<String, MethodType> use : firstUses.entrySet()) {
        String owner = use.getKey().substring(0, use.getKey().lastIndexOf('.'));
        String name = use.getKey().substring(owner.length() + 1);
        MethodHandle accessor =
            MethodHandles.publicLookup()
                .findStatic(Class.forName(owner, true, withoutIt), name, use.getValue());
        Object[] nulls = new Object[use.getValue().parameterCount()];
        Throwable failure =
            assertThrows(Throwable.class, () -> accessor.invokeWithArguments(nulls));
        assertEquals(
            DjlInternalsException.class.getName(),
            failure.getClass().getName(),
            use.getKey() + ": " + failure);
        assertTrue(failure.getMessage().contains(hidden.replace('.', '/')), failure.getMessage());
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
        DjlOptimizers.optimizerStates(Optimizer.adam().build()).keySet());
    assertEquals(
        java.util.Set.of("Sgd.momentumStates"),
        DjlOptimizers.optimizerStates(
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
    assertFalse(DjlBlocks.savesInputShapesFirst(EncoderDecoder.class));
    assertTrue(DjlBlocks.describesInputItself(EncoderDecoder.class));
    assertTrue(DjlBlocks.describesInputItself(Linear.class));
    assertFalse(DjlBlocks.describesInputItself(SequentialBlock.class));
    assertFalse(DjlBlocks.describesInputItself(Conv2d.class));
    try (NDManager manager = NDManager.newBaseManager()) {
      for (Map.Entry<Supplier<Block>, Boolean> e : blocks.entrySet()) {
        Block block = e.getKey().get();
        String name = block.getClass().getSimpleName();
        assertEquals(e.getValue(), DjlBlocks.savesInputShapesFirst(block.getClass()), name);
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

  /**
   * The hidden block settings read back what the builders were given (DJL has no getters for them):
   * a swapped or defaulted field would hand a replacement other settings.
   */
  @Test
  void hiddenBlockSettingsAreWhatTheBuildersWereGiven() {
    BatchNorm bn =
        BatchNorm.builder()
            .optAxis(3)
            .optEpsilon(1e-3f)
            .optMomentum(0.75f)
            .optCenter(false)
            .optScale(true)
            .build();
    assertEquals(
        new DjlInternals.BatchNormSettings(3, 1e-3f, 0.75f, false, true),
        DjlBlocks.batchNormSettings(bn));
    assertEquals(
        new DjlInternals.BatchNormSettings(1, 1e-5f, 0.25f, true, false),
        DjlBlocks.batchNormSettings(
            BatchNorm.builder()
                .optAxis(1)
                .optEpsilon(1e-5f)
                .optMomentum(0.25f)
                .optCenter(true)
                .optScale(false)
                .build()));
    assertEquals(0.3f, DjlBlocks.dropoutRate(Dropout.builder().optRate(0.3f).build()));
    assertEquals(7L, DjlBlocks.linearUnits(Linear.builder().setUnits(7).build()));
  }

  /**
   * The trainer accessors see what DJL's own API sees: the trainer's devices, the listeners it
   * notifies, the optimizer it was configured with, and a store entry per parameter holding the
   * array DJL's {@code ParameterStore.getValue} hands the forward; after two steps DJL's {@code
   * Optimizer.updateCount} has counted each id twice and the global count is 2.
   */
  @Test
  void trainerAccessorsSeeWhatDjlSees() {
    List<String> heard = new ArrayList<>();
    TrainingListener listener =
        new TrainingListenerAdapter() {
          @Override
          public void onEpoch(Trainer trainer) {
            heard.add("configured");
          }
        };
    Optimizer sgd = Optimizer.sgd().setLearningRateTracker(Tracker.fixed(0.1f)).build();
    try (Model model = Model.newInstance("accessors")) {
      model.setBlock(Linear.builder().setUnits(2).build());
      try (Trainer trainer =
          model.newTrainer(
              new DefaultTrainingConfig(Loss.l2Loss())
                  .optOptimizer(sgd)
                  .addTrainingListeners(listener))) {
        assertFalse(DjlTrainers.hasRegisteredParameters(trainer), "registered by initialize");
        trainer.initialize(new Shape(2, 3));
        assertTrue(java.util.Arrays.equals(trainer.getDevices(), DjlTrainers.devices(trainer)));
        assertSame(sgd, DjlTrainers.optimizer(trainer));
        ParameterStore store = DjlTrainers.parameterStore(trainer);
        assertTrue(DjlTrainers.hasRegisteredParameters(trainer));
        Map<String, Object> entries = DjlTrainers.storeEntries(store);
        List<String> ids = new ArrayList<>();
        for (Parameter p : model.getBlock().getParameters().values()) {
          ids.add(p.getId());
          Object entry = entries.get(p.getId());
          assertSame(p, DjlTrainers.entryParameter(entry), p.getName());
          assertSame(
              store.getValue(p, trainer.getDevices()[0], true),
              DjlTrainers.mirrors(entry).get(0),
              p.getName());
        }
        assertEquals(new java.util.TreeSet<>(ids), new java.util.TreeSet<>(entries.keySet()));
        for (int step = 0; step < 2; step++) {
          try (GradientCollector gc = trainer.newGradientCollector()) {
            NDArray x = trainer.getManager().ones(new Shape(2, 3));
            gc.backward(trainer.forward(new NDList(x)).singletonOrThrow().sum());
          }
          trainer.step();
        }
        Map<String, Integer> twice = new LinkedHashMap<>();
        ids.forEach(id -> twice.put(id, 2));
        assertEquals(twice, DjlOptimizers.updateCounts(sgd));
        assertEquals(2, DjlOptimizers.globalUpdateCount(sgd));

        List<TrainingListener> live = DjlTrainers.listeners(trainer);
        assertTrue(live.stream().anyMatch(l -> l == listener), live.toString());
        TrainingListener replacement =
            new TrainingListenerAdapter() {
              @Override
              public void onEpoch(Trainer trainer) {
                heard.add("replacement");
              }
            };
        DjlTrainers.setListeners(trainer, List.of(replacement));
        trainer.notifyListeners(l -> l.onEpoch(trainer));
        assertEquals(List.of("replacement"), heard);
      }
    }
  }

  /**
   * A class that overrides {@code getChildren()} or {@code getDirectParameters()}, itself or
   * through a superclass, is told apart from DJL's blocks, which override neither: DJL then sees
   * what the override returns, not the lists {@code addChildBlock} and {@code addParameter} fill.
   */
  @Test
  void ownChildAndParameterViewsAreToldFromTheMethodsAClassDeclares() {
    for (Class<?> djl :
        List.of(
            SequentialBlock.class,
            Linear.class,
            Conv2d.class,
            BatchNorm.class,
            ParallelBlock.class,
            LayerNorm.class,
            Dropout.class,
            EncoderDecoder.class)) {
      assertFalse(DjlBlocks.listsChildrenItself(djl), djl.getName());
      assertFalse(DjlBlocks.listsParametersItself(djl), djl.getName());
    }
    assertTrue(DjlBlocks.listsChildrenItself(OwnChildren.class));
    assertFalse(DjlBlocks.listsParametersItself(OwnChildren.class));
    assertTrue(DjlBlocks.listsChildrenItself(BelowOwnChildren.class), "inherited override");
    assertFalse(DjlBlocks.listsChildrenItself(OwnParameters.class));
    assertTrue(DjlBlocks.listsParametersItself(OwnParameters.class));
    SequentialBlock plain = new SequentialBlock().add(Linear.builder().setUnits(1).build());
    assertSame(DjlBlocks.registeredChildren(plain), DjlBlocks.liveChildren(plain));
    OwnChildren own = new OwnChildren();
    assertEquals(null, DjlBlocks.liveChildren(own), "its live list is not what DJL sees");
    assertEquals(1, DjlBlocks.registeredChildren(own).size());
  }

  /** Lists its children itself. */
  static class OwnChildren extends SequentialBlock {
    OwnChildren() {
      add(Linear.builder().setUnits(1).build());
    }

    @Override
    public ai.djl.nn.BlockList getChildren() {
      return new ai.djl.nn.BlockList();
    }
  }

  /** Inherits a class that lists its children itself. */
  static final class BelowOwnChildren extends OwnChildren {}

  /** Lists its parameters itself. */
  static final class OwnParameters extends SequentialBlock {
    @Override
    public ai.djl.nn.ParameterList getDirectParameters() {
      return new ai.djl.nn.ParameterList();
    }
  }

  /**
   * Per-parameter state is each instance field declared as a map (any map class) from a {@code
   * String} id to a map from {@code Device} to {@code NDArray}, in the class and its superclasses
   * (here DJL's {@code Sgd.momentumStates}); other maps and static fields are not, and a field
   * holding null is left out. A non-empty {@code Map<String, NDArray>} is state the engine cannot
   * read: refused naming its field; empty, it is accepted.
   */
  @Test
  void perParameterStateIsTheFieldsOfTheDocumentedTypeOnly() {
    StateFields optimizer = new StateFields();
    assertEquals(
        java.util.Set.of("StateFields.plain", "StateFields.concurrent", "Sgd.momentumStates"),
        DjlOptimizers.optimizerStates(optimizer).keySet());
    assertSame(optimizer.plain, DjlOptimizers.optimizerStates(optimizer).get("StateFields.plain"));
    DjlOptimizers.requireReadableState(optimizer);
    try (NDManager manager = NDManager.newBaseManager()) {
      optimizer.flat.put("w", manager.zeros(new Shape(1)));
      IllegalStateException e =
          assertThrows(
              IllegalStateException.class, () -> DjlOptimizers.requireReadableState(optimizer));
      assertTrue(e.getMessage().contains("field 'flat'"), e.getMessage());
      optimizer.flat.clear();
      optimizer.byIndex.put(0, manager.zeros(new Shape(1)));
      DjlOptimizers.requireReadableState(optimizer); // not keyed by a parameter id
    }
  }

  /** An optimizer with state maps of the documented type and others that are not. */
  @SuppressWarnings("unused")
  static final class StateFields extends Sgd {
    static Map<String, Map<Device, ai.djl.ndarray.NDArray>> shared = new LinkedHashMap<>();
    final Map<String, Map<Device, ai.djl.ndarray.NDArray>> plain = new LinkedHashMap<>();
    final java.util.concurrent.ConcurrentHashMap<String, Map<Device, ai.djl.ndarray.NDArray>>
        concurrent = new java.util.concurrent.ConcurrentHashMap<>();
    final Map<String, Map<Device, ai.djl.ndarray.NDArray>> unset = null;
    final Map<String, ai.djl.ndarray.NDArray> flat = new LinkedHashMap<>();
    final Map<Integer, ai.djl.ndarray.NDArray> byIndex = new LinkedHashMap<>();
    final Map<Integer, Map<Device, ai.djl.ndarray.NDArray>> wrongKey = new LinkedHashMap<>();
    final Map<String, Map<String, ai.djl.ndarray.NDArray>> wrongInnerKey = new LinkedHashMap<>();
    final Map<String, Map<Device, Float>> wrongValue = new LinkedHashMap<>();
    final Map<String, List<ai.djl.ndarray.NDArray>> notAMap = new LinkedHashMap<>();

    StateFields() {
      super(Optimizer.sgd().setLearningRateTracker(Tracker.fixed(0.1f)));
    }
  }

  /**
   * The flag read and put back is the one DJL's {@code newTrainer} acts on: it unfreezes a frozen
   * model's parameters exactly when the flag is set, and {@code setBlock} clears it.
   */
  @Test
  void theWasLoadedFlagIsTheOneNewTrainerUnfreezesBy() {
    try (Model model = Model.newInstance("loaded")) {
      model.setBlock(Linear.builder().setUnits(2).build());
      Parameter weight = model.getBlock().getParameters().get("weight");
      assertFalse(DjlTrainers.unfreezesOnNewTrainer(model), "a fresh model was not loaded");
      model.getBlock().freezeParameters(true);
      model.newTrainer(new DefaultTrainingConfig(Loss.l2Loss())).close();
      assertFalse(weight.requiresGradient(), "DJL left it frozen");
      DjlTrainers.restoreWasLoaded(model, true);
      assertTrue(DjlTrainers.unfreezesOnNewTrainer(model));
      model.newTrainer(new DefaultTrainingConfig(Loss.l2Loss())).close();
      assertTrue(weight.requiresGradient(), "DJL unfroze it");
      DjlTrainers.restoreWasLoaded(model, false);
      assertFalse(DjlTrainers.unfreezesOnNewTrainer(model));
      DjlTrainers.restoreWasLoaded(model, true);
      model.setBlock(model.getBlock());
      assertFalse(DjlTrainers.unfreezesOnNewTrainer(model), "DJL's setBlock clears it");
    }
  }

  /** Classes on the class path are in the unnamed module, which opens every package. */
  @Test
  void classPathClassesAreNotClosed() {
    assertFalse(ClosedPackageException.isClosed(Linear.class));
    assertFalse(ClosedPackageException.isClosed(DjlInternalsTest.class));
  }

  /**
   * What {@code field} and {@code method} resolve is usable on DJL's private and protected members
   * (another package): reading {@code Sgd.momentum} gives what the builder was given, and calling
   * {@code Optimizer.getWeightDecay} the weight decay it was given.
   */
  @Test
  void resolvedDjlMembersAreOpenedForUse() throws Exception {
    Optimizer sgd =
        Optimizer.sgd()
            .setLearningRateTracker(Tracker.fixed(0.1f))
            .optMomentum(0.9f)
            .optWeightDecays(0.01f)
            .build();
    assertEquals(
        0.9f, DjlInternals.read(DjlInternals.field(Sgd.class, "momentum", float.class), sgd));
    assertEquals(
        0.01f, DjlInternals.method(Optimizer.class, "getWeightDecay", float.class).invoke(sgd));
  }
}
