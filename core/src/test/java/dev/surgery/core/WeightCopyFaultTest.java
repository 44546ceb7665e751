package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import dev.surgery.core.internal.BirthAwareOptimizer;
import dev.surgery.core.internal.DjlOptimizers;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.layers.FactorizedLinear;
import dev.surgery.core.testing.ExactnessOracle;
import dev.surgery.core.testing.OpenArrays;
import dev.surgery.core.testing.OptimizerKind;
import dev.surgery.core.testing.TinyData;
import dev.surgery.core.testing.TinyModels;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Failures inside weight copying, the step of a live surgery that reads the old block's arrays into
 * the new block's: a copy that throws half way (after the weight, before the bias), a real
 * factorizing copy followed by a failing one, an {@link Error} in the middle of a copy, and a
 * failing one-to-one parameter swap that had already moved optimizer state. Each leaves the block
 * tree, every parameter value (bitwise), the trainer's parameter store, the optimizer state and its
 * update counts as they were, and training goes on. The assertions are those of {@link
 * RollbackTest}, gathered in {@link BeforeState}.
 */
class WeightCopyFaultTest {

  private static final Shape INPUT = new Shape(8, 3, 8, 8);

  /**
   * Everything a failed surgery must leave exactly as it was: structure, values, store, optimizer
   * state and update counts, the birth marks of born parameters, and the very optimizer object the
   * parameter server holds (the user's, or the birth-aware stand-in that was there before).
   */
  record BeforeState(
      String structure,
      Map<String, float[]> values,
      Set<String> storeIds,
      Map<String, float[]> state,
      Map<String, Integer> updateCounts,
      Map<String, Integer> births,
      Object heldOptimizer) {

    static BeforeState of(Block root, Trainer trainer) {
      BirthAwareOptimizer stand = DjlTrainers.birthAwareOptimizer(trainer, false);
      Map<String, Integer> births = new TreeMap<>();
      if (stand != null) {
        for (String id : Fixtures.storeIds(trainer)) {
          if (stand.birthOf(id) != null) {
            births.put(id, stand.birthOf(id));
          }
        }
      }
      return new BeforeState(
          root.toString(),
          Fixtures.snapshot(root),
          Fixtures.storeIds(trainer),
          ExactnessOracle.optimizerStateValues(trainer),
          new TreeMap<>(DjlOptimizers.updateCounts(DjlTrainers.optimizer(trainer))),
          births,
          stand != null ? stand : DjlTrainers.optimizer(trainer));
    }

    void assertUnchanged(Block root, Trainer trainer) {
      BeforeState now = of(root, trainer);
      assertEquals(structure, now.structure);
      assertEquals(values.keySet(), now.values.keySet(), "parameter ids, in order");
      assertEquals(
          new ArrayList<>(values.keySet()),
          new ArrayList<>(now.values.keySet()),
          "parameter order");
      values.forEach((id, v) -> assertArrayEquals(v, now.values.get(id), "parameter " + id));
      assertEquals(storeIds, now.storeIds);
      assertEquals(state.keySet(), now.state.keySet());
      state.forEach((k, v) -> assertArrayEquals(v, now.state.get(k), "optimizer state " + k));
      assertEquals(updateCounts, now.updateCounts);
      assertEquals(births, now.births, "birth marks");
      assertSame(heldOptimizer, now.heldOptimizer, "the optimizer the parameter server holds");
    }
  }

  private static Conv2d conv(int filters) {
    return TinyModels.conv3x3(filters, 1);
  }

  private static SequentialBlock threeConvNet() {
    return new SequentialBlock()
        .add(conv(4))
        .add(Activation.reluBlock())
        .add(conv(4))
        .add(Activation.reluBlock())
        .add(conv(4))
        .add(Blocks.batchFlattenBlock())
        .add(Linear.builder().setUnits(4).build());
  }

  /**
   * Like {@link Fixtures#copyOf} but stops after copying the weight: the bias copy "fails".
   *
   * @param made receives the half-made block, so the test can check what became of its arrays
   */
  private static Conv2d halfCopy(Conv2d old, List<Block> made) {
    Conv2d copy = conv(old.getFilters());
    NDArray anchor = old.getParameters().get("weight").getArray();
    copy.initialize(anchor.getManager(), anchor.getDataType(), old.getInputShapes());
    made.add(copy);
    anchor.copyTo(copy.getParameters().get("weight").getArray());
    throw new IllegalStateException("disk full while copying the bias of a Conv2d");
  }

  static Stream<Arguments> replacementAndOptimizer() {
    List<Arguments> cases = new ArrayList<>();
    for (int k = 1; k <= 3; k++) {
      for (OptimizerKind kind : RollbackTest.ROLLBACK_OPTIMIZERS) {
        cases.add(Arguments.of(k, kind));
      }
    }
    return cases.stream();
  }

  static Stream<OptimizerKind> optimizers() {
    return RollbackTest.ROLLBACK_OPTIMIZERS.stream();
  }

  @ParameterizedTest(name = "copy fails in replacement {0} under {1}")
  @MethodSource("replacementAndOptimizer")
  void halfDoneCopyInTheKthReplacementIsRolledBack(int k, OptimizerKind kind) throws Exception {
    try (ControlTwin twin = threeConvTwin("copy-fault-" + k, kind);
        NDManager data = NDManager.newBaseManager()) {
      SequentialBlock net = (SequentialBlock) twin.subjectRoot;
      Trainer trainer = twin.subjectTrainer;
      ArrayDataset images = fitOnImages(twin, data);
      BeforeState before = BeforeState.of(net, trainer);

      Set<NDArray> openBefore =
          OpenArrays.ofEngine(net.getParameters().valueAt(0).getArray().getManager());
      List<Block> halfMade = new ArrayList<>();
      List<Block> made = new ArrayList<>();
      Map<Class<? extends Block>, ReplacementFunction> policies =
          Fixtures.replacingClass(
              Conv2d.class,
              (block, index) -> {
                if (index == k - 1) {
                  return halfCopy((Conv2d) block, halfMade);
                }
                Conv2d copy = Fixtures.copyOf((Conv2d) block);
                made.add(copy);
                return copy;
              });
      SurgeryException e = Fixtures.assertClassSurgeryRefused(net, policies, trainer);
      // The k-th Conv2d sits at children 01, 03, 05.
      assertEquals(String.format("%02dConv2d", 2 * k - 1), e.getBlockPath());
      assertTrue(e.getMessage().contains("disk full while copying the bias"), e.getMessage());
      assertInstanceOf(IllegalStateException.class, e.getCause());
      assertEquals(1, halfMade.size());
      assertEquals(k - 1, made.size());

      // The engine leaves nothing open: it frees its own arrays and those of the replacements it
      // received. Only the half-made block, whose function threw before returning it, is left to
      // its maker (DJL frees it with the model).
      Set<NDArray> leftOpen =
          OpenArrays.ofEngine(net.getParameters().valueAt(0).getArray().getManager());
      leftOpen.removeAll(openBefore);
      Set<NDArray> allocatedByFailedFunction = identitySet();
      for (Parameter p : BlockTrees.parametersOf(halfMade.get(0))) {
        allocatedByFailedFunction.add(p.getArray());
      }
      assertEquals(2, allocatedByFailedFunction.size(), "weight and bias of the half-made conv");
      assertEquals(allocatedByFailedFunction, leftOpen);
      for (Block b : made) {
        for (Parameter p : BlockTrees.parametersOf(b)) {
          assertTrue(p.getArray().isReleased(), "a discarded replacement's array is freed");
        }
      }
      before.assertUnchanged(net, trainer);

      // Training goes on as if no surgery had been tried, and the same surgery without the fault
      // now succeeds exactly.
      assertTrainsLikeTheControl(twin, images);
      assertCopyingSurgerySucceeds(net, trainer);
    }
  }

  /**
   * A real weight-copying replacement (the truncated SVD of {@link FactorizedLinear#from}) that
   * succeeded for the first Linear is undone when the copy for the second Linear fails.
   */
  @ParameterizedTest(name = "under {0}")
  @MethodSource("optimizers")
  void completedFactorizationIsUndoneWhenALaterCopyFails(OptimizerKind kind) throws Exception {
    Supplier<Block> build =
        () ->
            new SequentialBlock()
                .add(Blocks.batchFlattenBlock())
                .add(Linear.builder().setUnits(12).build())
                .add(Activation.reluBlock())
                .add(Linear.builder().setUnits(12).build())
                .add(Activation.reluBlock())
                .add(Linear.builder().setUnits(4).build());
    try (ControlTwin twin = new ControlTwin("factorize-fault", build, kind, new Shape(8, 3, 4, 4));
        NDManager data = NDManager.newBaseManager()) {
      Block net = twin.subjectRoot;
      Trainer trainer = twin.subjectTrainer;
      ArrayDataset images = TinyData.images(data, 16, 3, 4, 4);
      twin.fit(images);
      BeforeState before = BeforeState.of(net, trainer);

      List<Block> factorized = new ArrayList<>();
      Map<Class<? extends Block>, ReplacementFunction> policies =
          Fixtures.replacingClass(
              Linear.class,
              (block, index) -> {
                FactorizedLinear f = FactorizedLinear.from((Linear) block, 3);
                factorized.add(f);
                if (index == 1) {
                  throw new IllegalStateException("copy of the second factorization failed");
                }
                return f;
              });
      SurgeryException e = Fixtures.assertClassSurgeryRefused(net, policies, trainer);
      assertEquals("04Linear", e.getBlockPath());
      assertEquals(2, factorized.size(), "the first factorization completed before the failure");
      before.assertUnchanged(net, trainer);
      assertEquals(0, ModuleSurgery.countModuleInstances(net, FactorizedLinear.class));

      assertTrainsLikeTheControl(twin, images);
    }
  }

  /** An Error (here a simulated out-of-memory) in the middle of a copy is rolled back too. */
  @ParameterizedTest(name = "under {0}")
  @MethodSource("optimizers")
  void errorInTheMiddleOfACopyIsRolledBack(OptimizerKind kind) throws Exception {
    try (ControlTwin twin = threeConvTwin("copy-error", kind);
        NDManager data = NDManager.newBaseManager()) {
      Block net = twin.subjectRoot;
      Trainer trainer = twin.subjectTrainer;
      ArrayDataset images = fitOnImages(twin, data);
      BeforeState before = BeforeState.of(net, trainer);

      OutOfMemoryError oom = new OutOfMemoryError("injected: no memory for the weight copy");
      Map<Class<? extends Block>, ReplacementFunction> policies =
          Fixtures.replacingClass(
              Conv2d.class,
              (block, index) -> {
                Conv2d copy = Fixtures.copyOf((Conv2d) block);
                if (index == 1) {
                  throw oom;
                }
                return copy;
              });
      SurgeryException e = Fixtures.assertClassSurgeryRefused(net, policies, trainer);
      assertSame(oom, e.getCause());
      before.assertUnchanged(net, trainer);

      assertTrainsLikeTheControl(twin, images);
    }
  }

  /**
   * {@link ModuleSurgery#replaceParamsInOptimizer} moves the optimizer state of weight-copied
   * parameters one by one; when a later pair fails (its old parameter is held by no trainer), the
   * state already moved goes back to the old parameters and the new ones leave the store.
   */
  @ParameterizedTest(name = "under {0}")
  @MethodSource("optimizers")
  void failedParameterSwapPutsMovedOptimizerStateBack(OptimizerKind kind) throws Exception {
    try (ControlTwin twin = threeConvTwin("swap-fault", kind);
        NDManager data = NDManager.newBaseManager()) {
      Block net = twin.subjectRoot;
      Trainer trainer = twin.subjectTrainer;
      ArrayDataset images = fitOnImages(twin, data);
      BeforeState before = BeforeState.of(net, trainer);

      List<Parameter> oldParams = new ArrayList<>(BlockTrees.parametersOf(net));
      List<Parameter> newParams = new ArrayList<>();
      for (Parameter p : oldParams) {
        newParams.add(copyOf(p));
      }
      // A parameter no trainer holds, last in the list: every earlier pair has moved already.
      Parameter stranger = copyOf(oldParams.get(0));
      oldParams.add(stranger);
      newParams.add(copyOf(stranger));

      IllegalStateException e =
          assertThrows(
              IllegalStateException.class,
              () -> ModuleSurgery.replaceParamsInOptimizer(oldParams, newParams, List.of(trainer)));
      assertTrue(e.getMessage().contains("is not held by any given trainer"), e.getMessage());
      before.assertUnchanged(net, trainer);

      assertTrainsLikeTheControl(twin, images);
    }
  }

  /**
   * New parameters whose move would lose state are refused before anything changes: a swap of two
   * live parameters, a new parameter the trainer holds already, one listed twice, and a null.
   */
  @Test
  void newParametersThatWouldLoseStateAreRefusedAndNothingChanges() throws Exception {
    try (ControlTwin twin = threeConvTwin("swap-refused", OptimizerKind.ADAM);
        NDManager data = NDManager.newBaseManager()) {
      Block net = twin.subjectRoot;
      Trainer trainer = twin.subjectTrainer;
      ArrayDataset images = fitOnImages(twin, data);
      BeforeState before = BeforeState.of(net, trainer);
      List<Parameter> live = new ArrayList<>(BlockTrees.parametersOf(net));
      Parameter w0 = live.get(0);
      Parameter w1 = live.get(1);
      Parameter fresh = copyOf(w0);
      Map<String, List<List<Parameter>>> cases = new LinkedHashMap<>();
      cases.put("is oldParams[1]", List.of(List.of(w0, w1), List.of(w1, w0)));
      cases.put("is held by a given trainer already", List.of(List.of(w0), List.of(w1)));
      cases.put("is listed twice", List.of(List.of(w0, w1), List.of(fresh, fresh)));
      for (Map.Entry<String, List<List<Parameter>>> c : cases.entrySet()) {
        IllegalArgumentException e =
            assertThrows(
                IllegalArgumentException.class,
                () ->
                    ModuleSurgery.replaceParamsInOptimizer(
                        c.getValue().get(0), c.getValue().get(1), List.of(trainer)));
        assertTrue(e.getMessage().contains(c.getKey()), e.getMessage());
        before.assertUnchanged(net, trainer);
      }
      List<Parameter> withNull = new ArrayList<>();
      withNull.add(null);
      IllegalArgumentException e =
          assertThrows(
              IllegalArgumentException.class,
              () ->
                  ModuleSurgery.replaceParamsInOptimizer(List.of(w0), withNull, List.of(trainer)));
      assertTrue(e.getMessage().contains("newParams[0] is null"), e.getMessage());
      before.assertUnchanged(net, trainer);

      assertTrainsLikeTheControl(twin, images);
    }
  }

  /** A control twin pair of {@link #threeConvNet} models under {@code kind}. */
  private static ControlTwin threeConvTwin(String name, OptimizerKind kind) {
    return new ControlTwin(name, WeightCopyFaultTest::threeConvNet, kind, INPUT);
  }

  /** Sixteen 8x8 images, on which both twins train one epoch before the surgery. */
  private static ArrayDataset fitOnImages(ControlTwin twin, NDManager data) throws Exception {
    ArrayDataset images = TinyData.images(data, 16, 3, 8, 8);
    twin.fit(images);
    return images;
  }

  /** A new parameter around a copy of the values (on the model's manager, freed with it). */
  private static Parameter copyOf(Parameter p) {
    return Parameter.builder()
        .setName(p.getName())
        .setType(p.getType())
        .optArray(p.getArray().duplicate())
        .build();
  }

  private static Set<NDArray> identitySet() {
    return Collections.newSetFromMap(new IdentityHashMap<>());
  }

  /**
   * The subject, whose surgery failed, equals the control twin that never saw one, and still does
   * after an epoch more: every parameter and optimizer state element, bit for bit.
   */
  private static void assertTrainsLikeTheControl(ControlTwin twin, ArrayDataset images)
      throws Exception {
    twin.assertSubjectIsTheControl("after the rolled-back surgery");
    twin.fit(images);
    twin.assertSubjectIsTheControl("after an epoch more");
  }

  /**
   * Under Adam and AdamW an earlier successful surgery left born parameters, their birth marks and
   * the birth-aware stand-in in the parameter server. A failed surgery that replaces the born block
   * again (forgetting its marks) and others must restore the marks and keep the very stand-in, and
   * training then goes on as in a control twin that had only the successful surgery.
   */
  @ParameterizedTest(name = "under {0}")
  @EnumSource(
      value = OptimizerKind.class,
      names = {"ADAM", "ADAMW"})
  void birthMarksAndTheStandInSurviveAFailedSurgery(OptimizerKind kind) throws Exception {
    try (ControlTwin twin = threeConvTwin("birth-fault", kind);
        NDManager data = NDManager.newBaseManager()) {
      Block net = twin.subjectRoot;
      Trainer trainer = twin.subjectTrainer;
      ArrayDataset images = fitOnImages(twin, data);
      Map<Class<? extends Block>, ReplacementFunction> first =
          Fixtures.replacingClass(
              Conv2d.class, (block, index) -> index == 0 ? Fixtures.copyOf((Conv2d) block) : null);
      twin.surgeryOnBoth(first);
      twin.fit(images);
      BeforeState before = BeforeState.of(net, trainer);
      Parameter bornWeight = ControlTwin.parameters(net).get(0);
      assertTrue(
          before.births().containsKey(bornWeight.getId()), "the first conv was born: " + before);
      assertInstanceOf(BirthAwareOptimizer.class, before.heldOptimizer());

      // All three convs are copied (each born anew); the fault hits the last registration, after
      // the born conv's marks were forgotten and the new ones' recorded.
      AtomicInteger adds = new AtomicInteger();
      Faults faults =
          name -> {
            if (name.equals("trainer.add") && adds.incrementAndGet() == 6) {
              throw new IllegalStateException("injected fault at the last registration");
            }
          };
      Map<Class<? extends Block>, ReplacementFunction> all =
          Fixtures.replacingClass(Conv2d.class, (block, index) -> Fixtures.copyOf((Conv2d) block));
      SurgeryException e =
          assertThrows(
              SurgeryException.class,
              () ->
                  ModuleSurgery.replaceModuleClasses(
                      net, all, List.of(trainer), false, null, faults));
      assertTrue(e.getMessage().contains("injected fault"), e.getMessage());
      assertEquals(6, adds.get(), "weight and bias of three convs were being registered");
      before.assertUnchanged(net, trainer);
      assertTrainsLikeTheControl(twin, images);
    }
  }

  /** The full-copy surgery: replacements hold bitwise the old values; the store follows. */
  private static void assertCopyingSurgerySucceeds(SequentialBlock net, Trainer trainer) {
    Map<String, float[]> before = Fixtures.snapshot(net);
    Map<Class<? extends Block>, ReplacementFunction> policies =
        Fixtures.replacingClass(Conv2d.class, (block, index) -> Fixtures.copyOf((Conv2d) block));
    Map<Block, Block> replaced =
        ModuleSurgery.replaceModuleClasses(net, policies, List.of(trainer), false, null);
    assertEquals(3, replaced.size());
    List<float[]> oldValues = new ArrayList<>(before.values());
    List<float[]> newValues = new ArrayList<>(Fixtures.snapshot(net).values());
    assertEquals(oldValues.size(), newValues.size());
    for (int i = 0; i < oldValues.size(); i++) {
      assertArrayEquals(oldValues.get(i), newValues.get(i), "parameter #" + i);
    }
    assertEquals(Fixtures.modelIds(net), Fixtures.storeIds(trainer));
  }
}
