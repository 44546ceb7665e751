package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;

import ai.djl.training.Trainer;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.testing.OptimizerKind;
import dev.surgery.core.testing.TinyDense;
import java.lang.reflect.Field;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A failure in the middle of moving what a trainer keeps for a parameter to the parameter that
 * takes its place, a new wrapper around the same arrays: its store entry, optimizer state and
 * update count. Each move takes the value out under the old id and puts it in under the new one;
 * here the put fails as a map that cannot grow fails, with an {@link OutOfMemoryError}. The surgery
 * must be rolled back with the value still under the old id, every object and bit of the trainer as
 * it was, and training must go on exactly as a twin that never tried it.
 */
class InterruptedStateMoveTest {

  /** Where the put fails. */
  enum Where {
    /** The store entry ({@code TrainerSurgery.rekey}). */
    STORE_ENTRY,
    /** Adam's first moment ({@code TrainerSurgery.moveState}). */
    OPTIMIZER_STATE,
    /** The update count ({@code TrainerSurgery.moveState}). */
    UPDATE_COUNT
  }

  /** A trainer's map that refuses new keys while full, as one that cannot grow. */
  static final class FullMap<V> extends ConcurrentHashMap<String, V> {
    boolean full;

    FullMap(Map<String, V> from) {
      super(from);
    }

    @Override
    public V put(String key, V value) {
      if (full && !containsKey(key)) {
        throw new OutOfMemoryError("injected: the map cannot grow");
      }
      return super.put(key, value);
    }
  }

  @ParameterizedTest
  @EnumSource(Where.class)
  void aPutThatFailsHalfWayThroughAMoveLosesNothing(Where where) throws Exception {
    try (KthFaultRig subject = KthFaultRig.denseReluDense("s", OptimizerKind.ADAM);
        KthFaultRig control = KthFaultRig.denseReluDense("c", OptimizerKind.ADAM)) {
      KthFaultRig.startAlike(subject, control);
      Trainer trainer = subject.trainers.get(0);
      FullMap<?> map =
          switch (where) {
            case STORE_ENTRY -> install(DjlTrainers.parameterStore(trainer), "parameterMap");
            case OPTIMIZER_STATE -> install(DjlTrainers.optimizer(trainer), "means");
            default -> install(DjlTrainers.optimizer(trainer), "updateCounts");
          };
      KthFaultRig.Tokens tokens = new KthFaultRig.Tokens();
      KthFaultRig.DeepState before = KthFaultRig.DeepState.of(tokens, subject);

      Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(
          BlockMatcher.ofClass(TinyDense.class),
          (block, index) -> TinyDense.rewrapping((TinyDense) block));
      map.full = true;
      SurgeryException e =
          assertThrows(
              SurgeryException.class,
              () ->
                  ModuleSurgery.replaceModules(
                      subject.roots.get(0),
                      policies,
                      SurgeryOptions.builder().optTrainers(List.of(trainer)).build()));
      map.full = false;
      assertInstanceOf(OutOfMemoryError.class, e.getCause());

      assertEquals(
          List.of(), KthFaultRig.DeepState.of(tokens, subject).differencesFrom(before), "after");
      for (int i = 0; i < 10; i++) {
        subject.round(true);
        control.round(true);
      }
      assertEquals(control.valueSignature(), subject.valueSignature());
    }
  }

  @SuppressWarnings({"unchecked", "rawtypes"})
  private static FullMap<?> install(Object owner, String name) throws ReflectiveOperationException {
    for (Class<?> c = owner.getClass(); c != null; c = c.getSuperclass()) {
      for (Field f : c.getDeclaredFields()) {
        if (f.getName().equals(name)) {
          f.setAccessible(true);
          FullMap<?> full = new FullMap<>((Map) f.get(owner));
          f.set(owner, full);
          return full;
        }
      }
    }
    throw new NoSuchFieldException(name);
  }
}
