package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import ai.djl.training.tracker.ParameterTracker;
import dev.surgery.core.OptimizerMoveRig.Batches;
import dev.surgery.core.OptimizerMoveRig.Kind;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A {@code replaceParamsInOptimizer} or {@code updateParamsInOptimizer} call refused in the middle
 * of its list leaves everything as it was. Subject and twin make the same successful operations (a
 * layer frozen by DJL, a copy born through {@code updateParamsInOptimizer}, so that a stand-in
 * optimizer with birth marks and a first-id tracker exist); only the subject makes the failing
 * call, whose earlier pairs restart a frozen layer, move a copy's state and rekey a rewrap. Then 20
 * steps of both must agree bit for bit, and the trainer's internals must read as before.
 */
class RefusedOptimizerMoveTest {

  /** What makes the third pair of four fail. */
  enum Failure {
    /** The old parameter is held by no trainer (an initialized layer outside the model). */
    OLD_NOT_HELD,
    /** The new parameter has no array. */
    NEW_WITHOUT_ARRAY,
    /** The new parameter is listed twice. */
    NEW_LISTED_TWICE,
    /** The new parameter is one the trainer holds already. */
    NEW_HELD_ALREADY,
    /** The old parameter is listed twice (the second pair finds it gone). */
    OLD_LISTED_TWICE,
    /** The new parameter's array was freed (a copy closed by its maker). */
    NEW_ARRAY_FREED
  }

  static Map<String, Float> rates = new ConcurrentHashMap<>();

  static ParameterTracker tracker() {
    return OptimizerMoveRig.ratesById(rates, 0.004f);
  }

  static Parameter around(NDArray array, String name, boolean trains) {
    Parameter p =
        Parameter.builder()
            .setName(name)
            .setType(name.equals("bias") ? Parameter.Type.BIAS : Parameter.Type.WEIGHT)
            .build();
    if (!trains) {
      p.freeze(true); // before the array: DJL's freeze would also stop the old parameter's array
    }
    p.setArray(array);
    return p;
  }

  static void assignRates(OptimizerMoveRig rig) {
    List<Parameter> ps = rig.params();
    for (int i = 0; i < ps.size(); i++) {
      rates.put(ps.get(i).getId(), 0.003f + 0.002f * (i % 4));
    }
  }

  /** The operations both runs make: DJL freeze of layer 0 at 4, a born copy of layer 3 at 7. */
  static void common(OptimizerMoveRig rig, Batches data, int k) {
    common(rig, data, k, true);
  }

  static void common(OptimizerMoveRig rig, Batches data, int k, boolean bornBefore) {
    if (k == 4) {
      rig.child(0).freezeParameters(true);
    }
    if (k == 7 && bornBefore) {
      Linear old = rig.layer(3);
      List<Parameter> before = rig.params();
      OptimizerMoveEdgesTest.replaceWithoutTrainer(rig, 3, () -> OptimizerMoveEdgesTest.copy(old));
      ModuleSurgery.updateParamsInOptimizer(before, rig.params(), List.of(rig.trainer));
    }
  }

  @ParameterizedTest(name = "{0} {1} born parameter before: {2}")
  @MethodSource("cases")
  void aReplaceParamsInOptimizerRefusedAtItsThirdPairChangesNothing(
      Kind kind, Failure failure, boolean bornBefore) {
    rates.clear();
    try (Batches data = new Batches(21, 8);
        OptimizerMoveRig subject = new OptimizerMoveRig("s", kind.build(tracker(), 0), 9);
        OptimizerMoveRig twin = new OptimizerMoveRig("t", kind.build(tracker(), 0), 9)) {
      Linear outside = Linear.builder().setUnits(4).build();
      assignRates(subject);
      assignRates(twin);
      int k = 0;
      for (; k < 10; k++) {
        common(subject, data, k, bornBefore);
        common(twin, data, k, bornBefore);
        subject.step(data.get(k));
        twin.step(data.get(k));
      }
      OptimizerMoveRig.assertSameValues(subject, twin, "before the call");
      Parameter w0 = subject.layer(0).getParameters().get("weight"); // frozen by DJL: restarts
      Parameter w1 = subject.layer(1).getParameters().get("weight"); // moved to a copy
      Parameter w2 = subject.layer(2).getParameters().get("weight"); // the failing pair
      Parameter b1 = subject.layer(1).getParameters().get("bias"); // rekeyed to a rewrap
      List<Parameter> olds = new ArrayList<>(List.of(w0, w1, w2, b1));
      List<Parameter> news =
          new ArrayList<>(
              List.of(
                  around(w0.getArray(), "weight", true),
                  around(w1.getArray().duplicate(), "weight", true),
                  around(w2.getArray().duplicate(), "weight", true),
                  around(b1.getArray(), "bias", true)));
      Class<? extends Throwable> expected;
      switch (failure) {
        case OLD_NOT_HELD:
          outside.initialize(data.manager, ai.djl.ndarray.types.DataType.FLOAT32, new Shape(4, 4));
          olds.set(2, outside.getParameters().get("weight"));
          expected = IllegalStateException.class;
          break;
        case NEW_WITHOUT_ARRAY:
          news.set(2, Parameter.builder().setName("weight").setType(Parameter.Type.WEIGHT).build());
          expected = IllegalArgumentException.class;
          break;
        case NEW_LISTED_TWICE:
          news.set(2, news.get(1));
          expected = IllegalArgumentException.class;
          break;
        case NEW_HELD_ALREADY:
          news.set(2, subject.layer(2).getParameters().get("bias"));
          expected = IllegalArgumentException.class;
          break;
        case OLD_LISTED_TWICE:
          olds.set(2, w1);
          expected = IllegalArgumentException.class;
          break;
        case NEW_ARRAY_FREED:
          news.get(2).getArray().close();
          expected = IllegalArgumentException.class;
          break;
        default:
          throw new AssertionError(failure);
      }
      List<Parameter> all = new ArrayList<>(subject.params());
      all.addAll(news);
      Map<String, Object> before = OptimizerMoveRig.snapshot(subject.trainer, all);
      Throwable e =
          assertThrows(
              expected,
              () -> ModuleSurgery.replaceParamsInOptimizer(olds, news, List.of(subject.trainer)));
      // Named: the position, or the parameter at the third pair.
      String m = String.valueOf(e.getMessage());
      assertTrue(
          m.contains("2]") || m.contains("position 2") || m.contains(" at 1 and 2"),
          failure + " names the third pair: " + e);
      assertEquals(
          before, OptimizerMoveRig.snapshot(subject.trainer, all), "internals after the refusal");
      for (int end = k + 20; k < end; k++) {
        OptimizerMoveRig.stepTwins(
            subject, twin, data.get(k), "step " + k + " after the refused call");
      }
    }
  }

  static java.util.stream.Stream<Arguments> cases() {
    List<Arguments> all = new ArrayList<>();
    for (Kind kind : Kind.values()) {
      for (Failure f : Failure.values()) {
        all.add(Arguments.of(kind, f, true));
        all.add(Arguments.of(kind, f, false));
      }
    }
    return all.stream();
  }

  /**
   * {@code updateParamsInOptimizer} whose last added parameter has no array: the rekeys of a frozen
   * and a trainable rewrap, the removal of a layer, and the born copy before it are undone.
   */
  @ParameterizedTest
  @org.junit.jupiter.params.provider.EnumSource(Kind.class)
  void anUpdateParamsInOptimizerRefusedAtItsLastAddedParameterChangesNothing(Kind kind) {
    rates.clear();
    try (Batches data = new Batches(22, 8);
        OptimizerMoveRig subject = new OptimizerMoveRig("s", kind.build(tracker(), 0), 10);
        OptimizerMoveRig twin = new OptimizerMoveRig("t", kind.build(tracker(), 0), 10)) {
      assignRates(subject);
      assignRates(twin);
      int k = 0;
      for (; k < 10; k++) {
        common(subject, data, k);
        common(twin, data, k);
        subject.step(data.get(k));
        twin.step(data.get(k));
      }
      Parameter w0 = subject.layer(0).getParameters().get("weight"); // frozen: rewrap trains
      Parameter w1 = subject.layer(1).getParameters().get("weight"); // rewrap, frozen
      Parameter b1 = subject.layer(1).getParameters().get("bias"); // leaves
      Parameter w2 = subject.layer(2).getParameters().get("weight"); // a copy: born
      List<Parameter> removed = List.of(w0, w1, b1, w2);
      List<Parameter> added =
          List.of(
              around(w0.getArray(), "weight", true),
              around(w1.getArray(), "weight", false),
              around(w2.getArray().duplicate(), "weight", true),
              Parameter.builder().setName("bias").setType(Parameter.Type.BIAS).build());
      List<Parameter> all = new ArrayList<>(subject.params());
      all.addAll(added);
      Map<String, Object> before = OptimizerMoveRig.snapshot(subject.trainer, all);
      assertThrows(
          IllegalStateException.class,
          () -> ModuleSurgery.updateParamsInOptimizer(removed, added, List.of(subject.trainer)));
      assertEquals(
          before, OptimizerMoveRig.snapshot(subject.trainer, all), "internals after the refusal");
      for (int end = k + 20; k < end; k++) {
        OptimizerMoveRig.stepTwins(
            subject, twin, data.get(k), "step " + k + " after the refused call");
      }
    }
  }
}
