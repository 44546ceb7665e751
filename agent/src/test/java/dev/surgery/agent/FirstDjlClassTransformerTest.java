package dev.surgery.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.BaseModel;
import ai.djl.ndarray.NDList;
import ai.djl.nn.core.Linear;
import ai.djl.pytorch.engine.PtGradientCollector;
import ai.djl.pytorch.engine.PtModel;
import ai.djl.training.EasyTrain;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import dev.surgery.agent.shared.OnceWarnings;
import dev.surgery.core.testing.StandardError;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.instrument.ClassFileTransformer;
import java.lang.instrument.IllegalClassFormatException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * The transformer premain registers: the DJL classes that loaded before it are retransformed, so
 * that they are woven as if they had loaded after it.
 */
class FirstDjlClassTransformerTest {

  /** DJL classes the weaving changes and ones it leaves alone, and a class of the JDK. */
  private static final List<Class<?>> LOADED =
      List.of(
          Trainer.class,
          BaseModel.class,
          EasyTrain.class,
          PtGradientCollector.class,
          GradientCollector.class,
          PtModel.class,
          Linear.class,
          NDList.class,
          String.class);

  /**
   * The oracle is the weaving itself: a loaded class whose bytes it changes must be retransformed,
   * or the class runs without its advice; one it leaves alone must not be (a retransformation stops
   * the JVM's threads for nothing). {@code BaseModel} is abstract and is woven (checkpoint replay,
   * the load and save events).
   */
  @Test
  void retransformsExactlyTheLoadedClassesTheWeavingChanges() {
    List<Class<?>> changed = changedByTheWeaving(LOADED);
    assertTrue(changed.containsAll(List.of(Trainer.class, BaseModel.class)), changed.toString());
    RecordingInstrumentation jvm = new RecordingInstrumentation(LOADED);
    FirstDjlClassTransformer transformer = FirstDjlClassTransformer.register(jvm.instrumentation());
    // Able to retransform: another agent's retransformation of a DJL class is woven again.
    assertEquals(Map.of(transformer, true), jvm.transformers);
    assertEquals(changed, jvm.retransformed);
  }

  /**
   * A class whose retransformation fails is named, each class in its own warning (without {@code
   * Trainer} there is no surgery; without the others, only their events are missed), and the
   * classes after it are still retransformed; one the JVM cannot modify is not asked for.
   */
  @Test
  void eachClassThatCannotBeRetransformedIsNamedAndTheOthersAreStillWoven() throws Exception {
    List<String> keys =
        List.of(
            TrainerInstrumentation.notInstrumentedKey(Trainer.class.getName()),
            TrainerInstrumentation.notInstrumentedKey(EasyTrain.class.getName()));
    RecordingInstrumentation jvm =
        new RecordingInstrumentation(
            List.of(Trainer.class, BaseModel.class, EasyTrain.class, PtGradientCollector.class),
            Set.of(PtGradientCollector.class),
            Set.of(Trainer.class, EasyTrain.class));
    List<String> lines;
    try {
      forget(keys);
      lines = StandardError.lines(() -> FirstDjlClassTransformer.register(jvm.instrumentation()));
    } finally {
      forget(keys);
    }
    assertEquals(List.of(Trainer.class, BaseModel.class, EasyTrain.class), jvm.retransformed);
    assertEquals(2, lines.size(), lines.toString());
    assertTrue(
        lines
            .get(0)
            .startsWith(
                "surgery-agent: WARNING: could not instrument ai.djl.training.Trainer; surgery"
                    + " disabled"),
        lines.get(0));
    assertTrue(
        lines
            .get(1)
            .startsWith(
                "surgery-agent: WARNING: could not instrument ai.djl.training.EasyTrain; the"
                    + " training events it reports are missed"),
        lines.get(1));
  }

  private static void forget(List<String> warningKeys) throws ReflectiveOperationException {
    for (String key : warningKeys) {
      OnceWarnings.forget(key);
    }
  }

  /**
   * A DJL class the transformer was shown loading during start-up was woven then: it is not
   * retransformed. Classes outside DJL are not handed to the weaving.
   */
  @Test
  void aClassSeenLoadingDuringStartUpIsNotRetransformed() throws Exception {
    FirstDjlClassTransformer transformer =
        FirstDjlClassTransformer.register(
            new RecordingInstrumentation(List.of()).instrumentation());
    assertNotNull(transformAtLoad(transformer, Trainer.class), "Trainer is woven as it loads");
    assertNull(transformAtLoad(transformer, String.class));
    assertNull(
        transformer.transform(
            null, ClassLoader.getSystemClassLoader(), null, null, null, new byte[0]),
        "a class without a name (a lambda's, a hidden class) is left alone");
    RecordingInstrumentation jvm =
        new RecordingInstrumentation(List.of(Trainer.class, EasyTrain.class));
    transformer.retransformUnseen(jvm.instrumentation());
    assertEquals(List.of(EasyTrain.class), jvm.retransformed);
  }

  /** The classes among {@code types} whose bytes the agent's weaving changes, in order. */
  private static List<Class<?>> changedByTheWeaving(List<Class<?>> types) {
    ClassFileTransformer weaving = TrainerInstrumentation.weaving();
    List<Class<?>> changed = new ArrayList<>();
    for (Class<?> type : types) {
      try {
        if (weaving.transform(
                type.getClassLoader(),
                internalName(type),
                null,
                type.getProtectionDomain(),
                bytes(type))
            != null) {
          changed.add(type);
        }
      } catch (IllegalClassFormatException e) {
        throw new AssertionError(e);
      }
    }
    return changed;
  }

  private static byte[] transformAtLoad(FirstDjlClassTransformer transformer, Class<?> type) {
    return transformer.transform(
        type.getModule(),
        type.getClassLoader(),
        internalName(type),
        null,
        type.getProtectionDomain(),
        bytes(type));
  }

  private static String internalName(Class<?> type) {
    return type.getName().replace('.', '/');
  }

  /** The class file of a loaded class, as its loader would hand it to a transformer. */
  static byte[] bytes(Class<?> type) {
    String file = type.getName().substring(type.getName().lastIndexOf('.') + 1) + ".class";
    try (InputStream in = type.getResourceAsStream(file)) {
      return in.readAllBytes();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
