package dev.surgery.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.BaseModel;
import ai.djl.Model;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.engine.PtGradientCollector;
import ai.djl.training.EasyTrain;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.TrainingConfig;
import dev.surgery.agent.shared.AgentLog;
import dev.surgery.agent.shared.OnceWarnings;
import dev.surgery.core.testing.StandardError;
import java.lang.instrument.ClassFileTransformer;
import java.lang.instrument.IllegalClassFormatException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import net.bytebuddy.ByteBuddy;
import net.bytebuddy.description.method.MethodDescription;
import net.bytebuddy.description.modifier.Visibility;
import net.bytebuddy.description.type.TypeDescription;
import net.bytebuddy.dynamic.DynamicType;
import net.bytebuddy.dynamic.scaffold.subclass.ConstructorStrategy;
import net.bytebuddy.implementation.MethodCall;
import net.bytebuddy.implementation.StubMethod;
import net.bytebuddy.matcher.ElementMatcher;
import org.junit.jupiter.api.Test;

/** The shape check that decides whether the advice is woven. */
class TrainerInstrumentationTest {

  @Test
  void djl036TrainerHasEverythingTheAdviceNeeds() {
    assertEquals(
        List.of(),
        TrainerInstrumentation.missingMembers(TypeDescription.ForLoadedType.of(Trainer.class)));
  }

  @Test
  void anotherClassListsWhatIsMissing() {
    assertEquals(
        List.of(
            "field List listeners",
            "constructor (Model, TrainingConfig)",
            "method initialize(Shape...)",
            "method forward(NDList)",
            "method forward(NDList, NDList)",
            "method newGradientCollector()",
            "method step()",
            "method evaluate(NDList)"),
        TrainerInstrumentation.missingMembers(TypeDescription.ForLoadedType.of(BaseModel.class)));
  }

  /**
   * The dispatcher adds the listener to each trainer's own {@code List listeners}: a field of that
   * name that is static or not a list, or a list of another name, is not it.
   */
  @Test
  void theListenersFieldMustBeAnInstanceListOfThatName() {
    for (Class<?> type : List.of(StaticListeners.class, SetListeners.class, OtherList.class)) {
      List<String> missing =
          TrainerInstrumentation.missingMembers(TypeDescription.ForLoadedType.of(type));
      assertTrue(missing.contains("field List listeners"), type.getSimpleName() + ": " + missing);
    }
  }

  /** Every member by name and parameters; the advice reads {@code initialize}'s shapes. */
  @Test
  void aTrainerWhoseInitializeTakesNoShapesLacksOnlyThatMethod() {
    assertEquals(
        List.of(),
        TrainerInstrumentation.missingMembers(TypeDescription.ForLoadedType.of(TrainerLike.class)));
    assertEquals(
        List.of("method initialize(Shape...)"),
        TrainerInstrumentation.missingMembers(
            TypeDescription.ForLoadedType.of(InitializeWithoutShapes.class)));
  }

  /**
   * A class file the weaving cannot read is warned of once by name when it is one the agent weaves
   * (without {@code Trainer} no surgery; without a gradient collector no AFTER_BACKWARD), and left
   * alone; another DJL class's is not the agent's business.
   */
  @Test
  void aClassFileTheWeavingCannotReadIsNamedWhenItIsOneItWeaves() throws Exception {
    List<String> names =
        List.of(
            "ai.djl.training.Trainer",
            "ai.djl.BaseModel",
            "ai.djl.training.EasyTrain",
            "ai.djl.pytorch.engine.PtGradientCollector",
            "ai.djl.nn.Block");
    for (String name : names) {
      OnceWarnings.forget(TrainerInstrumentation.notInstrumentedKey(name));
    }
    // As premain hands DJL's classes to the weaving, through the transformer it registers.
    FirstDjlClassTransformer atLoad =
        FirstDjlClassTransformer.register(
            new RecordingInstrumentation(List.of()).instrumentation());
    byte[] garbage = {(byte) 0xCA, (byte) 0xFE, 0, 1, 2, 3};
    List<String> lines;
    try {
      lines =
          StandardError.lines(
              () -> {
                for (String name : names) {
                  assertNull(
                      atLoad.transform(
                          TrainerInstrumentationTest.class.getModule(),
                          TrainerInstrumentationTest.class.getClassLoader(),
                          name.replace('.', '/'),
                          null,
                          null,
                          garbage),
                      name);
                }
              });
    } finally {
      for (String name : names) {
        OnceWarnings.forget(TrainerInstrumentation.notInstrumentedKey(name));
      }
    }
    assertEquals(4, lines.size(), lines.toString());
    assertTrue(
        lines
            .get(0)
            .startsWith(
                "surgery-agent: WARNING: could not instrument ai.djl.training.Trainer; surgery"
                    + " disabled, the program runs unmodified"),
        lines.get(0));
    for (int i = 1; i < 4; i++) {
      assertTrue(
          lines
              .get(i)
              .startsWith(
                  "surgery-agent: WARNING: could not instrument "
                      + names.get(i)
                      + "; the training events it reports are missed"),
          lines.get(i));
    }
  }

  /**
   * A {@code Trainer} that lacks one member the agent needs is not woven at all, though the advice
   * for its other members would apply: the agent reports every training event or none (class
   * comment), with one warning naming what is missing.
   */
  @Test
  void aTrainerLackingOneMemberIsNotWovenAtAll() throws Exception {
    ClassFileTransformer weaving = TrainerInstrumentation.weaving();
    DynamicType.Builder<Object> withoutStep =
        new ByteBuddy()
            .subclass(Object.class, ConstructorStrategy.Default.NO_CONSTRUCTORS)
            .name(Trainer.class.getName())
            .defineField("listeners", List.class, Visibility.PRIVATE)
            .defineConstructor(Visibility.PUBLIC)
            .withParameters(Model.class, TrainingConfig.class)
            .intercept(MethodCall.invoke(Object.class.getConstructor()))
            .defineMethod("initialize", void.class, Visibility.PUBLIC)
            .withParameters(Shape[].class)
            .intercept(StubMethod.INSTANCE)
            .defineMethod("forward", NDList.class, Visibility.PUBLIC)
            .withParameters(NDList.class)
            .intercept(StubMethod.INSTANCE)
            .defineMethod("forward", NDList.class, Visibility.PUBLIC)
            .withParameters(NDList.class, NDList.class)
            .intercept(StubMethod.INSTANCE)
            .defineMethod("newGradientCollector", GradientCollector.class, Visibility.PUBLIC)
            .intercept(StubMethod.INSTANCE)
            .defineMethod("evaluate", NDList.class, Visibility.PUBLIC)
            .withParameters(NDList.class)
            .intercept(StubMethod.INSTANCE);
    byte[] complete =
        withoutStep
            .defineMethod("step", void.class, Visibility.PUBLIC)
            .intercept(StubMethod.INSTANCE)
            .make()
            .getBytes();
    assertNotNull(weave(weaving, Trainer.class.getName(), complete), "with step() it is woven");
    byte[] lacking = withoutStep.make().getBytes();
    OnceWarnings.forget(AgentLog.DJL_MISMATCH);
    List<String> lines;
    try {
      lines =
          StandardError.lines(() -> assertNull(weave(weaving, Trainer.class.getName(), lacking)));
    } finally {
      OnceWarnings.forget(AgentLog.DJL_MISMATCH);
    }
    assertEquals(
        List.of(
            "surgery-agent: WARNING: ai.djl.training.Trainer does not have the shape DJL Surgery"
                + " was built for (DJL 0.36.0), missing method step(); surgery disabled, the"
                + " program runs unmodified"),
        lines);
  }

  /**
   * A class loader that cannot see the agent's dispatcher is not woven (the advice would not link
   * there); the warning is for its {@code Trainer}, the others matter only with it (a loader that
   * only runs inference defines {@code BaseModel} and trains nothing).
   */
  @Test
  void aLoaderThatCannotSeeTheAgentIsWarnedOfForItsTrainerOnly() throws Exception {
    ClassFileTransformer weaving = TrainerInstrumentation.weaving();
    URL djl = Trainer.class.getProtectionDomain().getCodeSource().getLocation();
    OnceWarnings.forget("dispatcher-visibility");
    try (URLClassLoader isolated = new URLClassLoader("isolated", new URL[] {djl}, null)) {
      assertEquals(
          List.of(),
          StandardError.lines(() -> assertNull(weave(weaving, isolated, BaseModel.class))));
      List<String> lines =
          StandardError.lines(() -> assertNull(weave(weaving, isolated, Trainer.class)));
      assertEquals(
          List.of(
              "surgery-agent: WARNING: class loader "
                  + isolated
                  + " defines ai.djl.training.Trainer but cannot see the agent jar; its trainers"
                  + " run unmodified"),
          lines);
    } finally {
      OnceWarnings.forget("dispatcher-visibility");
    }
  }

  /**
   * Checkpoint replay is an extra: a {@code BaseModel} without {@code readParameters(Path, Map)}
   * (another DJL) is left as it is, its {@code save} too, with one debug line.
   */
  @Test
  void aBaseModelWithoutReadParametersIsNotWoven() {
    ClassFileTransformer weaving = TrainerInstrumentation.weaving();
    DynamicType.Builder<Object> model =
        new ByteBuddy()
            .subclass(Object.class)
            .name("ai.djl.BaseModel")
            .defineMethod("save", void.class, Visibility.PUBLIC)
            .withParameters(Path.class, String.class)
            .intercept(StubMethod.INSTANCE);
    assertNotNull(
        weave(
            weaving,
            "ai.djl.BaseModel",
            model
                .defineMethod("readParameters", void.class, Visibility.PUBLIC)
                .withParameters(Path.class, Map.class)
                .intercept(StubMethod.INSTANCE)
                .make()
                .getBytes()),
        "with both methods it is woven");
    byte[] withoutReadParameters = model.make().getBytes();
    AgentLog.setDebug(true);
    List<String> lines;
    try {
      lines =
          StandardError.lines(
              () -> assertNull(weave(weaving, "ai.djl.BaseModel", withoutReadParameters)));
    } finally {
      AgentLog.setDebug(false);
    }
    assertEquals(
        List.of(
            "surgery-agent: ai.djl.BaseModel has no readParameters(Path, Map); checkpoints are not"
                + " replayed under the agent"),
        lines);
  }

  /** The weaving's bytes for a class of this name as the test's class loader defines it. */
  private static byte[] weave(ClassFileTransformer weaving, String name, byte[] classFile) {
    return weave(weaving, TrainerInstrumentationTest.class.getClassLoader(), name, classFile);
  }

  /** The weaving's bytes for a class of this name as {@code loader} defines it. */
  private static byte[] weave(
      ClassFileTransformer weaving, ClassLoader loader, String name, byte[] classFile) {
    try {
      return weaving.transform(loader, name.replace('.', '/'), null, null, classFile);
    } catch (IllegalClassFormatException e) {
      throw new AssertionError(e);
    }
  }

  /** The weaving's bytes for a loaded class's class file as {@code loader} would define it. */
  private static byte[] weave(ClassFileTransformer weaving, ClassLoader loader, Class<?> type) {
    return weave(weaving, loader, type.getName(), FirstDjlClassTransformerTest.bytes(type));
  }

  @Test
  void theFitMatcherFindsExactlyDjl036sFourArgumentFit() {
    // EasyTrain also has trainBatch, validateBatch, evaluateDataset: none of them may match.
    assertEquals(List.of("fit"), easyTrainMethodsMatching(TrainerInstrumentation.fit()));
  }

  @Test
  void theEvaluateDatasetMatcherFindsOnlyEvaluateDataset() {
    assertEquals(
        List.of("evaluateDataset"),
        easyTrainMethodsMatching(TrainerInstrumentation.evaluateDataset()));
  }

  @Test
  void pyTorchsGradientCollectorIsWovenAtItsPublicBackwardOnly() {
    TypeDescription collector = TypeDescription.ForLoadedType.of(PtGradientCollector.class);
    assertTrue(TrainerInstrumentation.gradientCollector().matches(collector));
    // PtGradientCollector.backward(NDArray) calls a private four-argument backward: one match.
    assertEquals(
        List.of("backward(NDArray)"),
        collector.getDeclaredMethods().filter(TrainerInstrumentation.backward()).stream()
            .map(
                m ->
                    m.getName()
                        + "("
                        + m.getParameters().get(0).getType().asErasure().getSimpleName()
                        + ")")
            .toList());
    assertFalse(
        TrainerInstrumentation.gradientCollector()
            .matches(TypeDescription.ForLoadedType.of(GradientCollector.class)),
        "the interface itself is not woven");
  }

  /** The names of {@code EasyTrain}'s declared methods that a matcher of the agent selects. */
  private static List<String> easyTrainMethodsMatching(ElementMatcher<MethodDescription> matcher) {
    return TypeDescription.ForLoadedType.of(EasyTrain.class)
        .getDeclaredMethods()
        .filter(matcher)
        .stream()
        .map(m -> m.getName())
        .toList();
  }

  /** The members the advice needs, with DJL 0.36's {@code Trainer}'s signatures. */
  private static final class TrainerLike {
    private List<Object> listeners;

    TrainerLike(Model model, TrainingConfig config) {}

    public void initialize(Shape... shapes) {}

    public Object forward(NDList input) {
      return null;
    }

    public Object forward(NDList data, NDList labels) {
      return null;
    }

    public Object newGradientCollector() {
      return null;
    }

    public void step() {}

    public Object evaluate(NDList input) {
      return null;
    }
  }

  /**
   * {@link TrainerLike} with {@code initialize(int...)} in place of {@code initialize(Shape...)}.
   */
  private static final class InitializeWithoutShapes {
    private List<Object> listeners;

    InitializeWithoutShapes(Model model, TrainingConfig config) {}

    public void initialize(int... sizes) {}

    public Object forward(NDList input) {
      return null;
    }

    public Object forward(NDList data, NDList labels) {
      return null;
    }

    public Object newGradientCollector() {
      return null;
    }

    public void step() {}

    public Object evaluate(NDList input) {
      return null;
    }
  }

  private static final class StaticListeners {
    private static List<Object> listeners;
  }

  private static final class SetListeners {
    private Set<Object> listeners;
  }

  private static final class OtherList {
    private List<Object> listenerList;
  }
}
