package dev.surgery.agent;

import static net.bytebuddy.matcher.ElementMatchers.isConstructor;
import static net.bytebuddy.matcher.ElementMatchers.isStatic;
import static net.bytebuddy.matcher.ElementMatchers.named;
import static net.bytebuddy.matcher.ElementMatchers.not;
import static net.bytebuddy.matcher.ElementMatchers.takesArgument;
import static net.bytebuddy.matcher.ElementMatchers.takesArguments;

import dev.surgery.agent.advice.EasyTrainFitAdvice;
import dev.surgery.agent.advice.ModelReadParametersAdvice;
import dev.surgery.agent.advice.TrainerConstructorAdvice;
import dev.surgery.agent.advice.TrainerInitializeAdvice;
import dev.surgery.agent.shared.AgentLog;
import dev.surgery.agent.shared.SurgeryDispatcher;
import java.lang.instrument.Instrumentation;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import net.bytebuddy.agent.builder.AgentBuilder;
import net.bytebuddy.agent.builder.ResettableClassFileTransformer;
import net.bytebuddy.asm.Advice;
import net.bytebuddy.description.method.MethodDescription;
import net.bytebuddy.description.type.TypeDescription;
import net.bytebuddy.dynamic.DynamicType;
import net.bytebuddy.matcher.ElementMatcher;
import net.bytebuddy.utility.JavaModule;

/**
 * Weaves the agent's advice into {@code ai.djl.training.Trainer} (and into {@code
 * ai.djl.BaseModel}'s parameter loading, for checkpoint replay, and into {@code
 * ai.djl.training.EasyTrain.fit}, which tells the planned number of epochs), in whichever class
 * loader defines it, including classes that are already loaded (retransformation).
 *
 * <p>Before weaving, the class is checked for the members the advice and the dispatcher rely on
 * (the {@code listeners} field, the {@code (Model, TrainingConfig)} constructor and {@code
 * initialize(Shape...)}); a {@code Trainer} of another shape (another DJL version) is left alone
 * with one warning, and so is a class loader that cannot see the agent's dispatcher.
 */
public final class TrainerInstrumentation {

  private static final String MODEL = "ai.djl.Model";
  private static final String TRAINING_CONFIG = "ai.djl.training.TrainingConfig";
  private static final String SHAPE = "ai.djl.ndarray.types.Shape";
  private static final String TRAINER = SurgeryDispatcher.TRAINER;
  private static final String DATASET = "ai.djl.training.dataset.Dataset";

  private TrainerInstrumentation() {}

  /**
   * Installs the transformation.
   *
   * @param instrumentation the JVM's instrumentation
   * @return the transformer, which tests may reset
   */
  public static ResettableClassFileTransformer install(Instrumentation instrumentation) {
    return new AgentBuilder.Default()
        .disableClassFormatChanges()
        .with(AgentBuilder.RedefinitionStrategy.RETRANSFORMATION)
        .with(new LogListener())
        .type(named(SurgeryDispatcher.TRAINER).and(new ShapeCheck()), new DispatcherVisible())
        .transform(TrainerInstrumentation::weave)
        .type(
            named(SurgeryDispatcher.MODEL)
                .and(
                    new OptionalMethodCheck(
                        readParameters(),
                        SurgeryDispatcher.MODEL
                            + " has no readParameters(Path, Map); checkpoints are not replayed under"
                            + " the agent")),
            new DispatcherVisible())
        .transform(TrainerInstrumentation::weaveModel)
        .type(
            named(SurgeryDispatcher.EASY_TRAIN)
                .and(
                    new OptionalMethodCheck(
                        fit(),
                        SurgeryDispatcher.EASY_TRAIN
                            + " has no static fit(Trainer, int, Dataset, Dataset); the planned number"
                            + " of epochs comes from total_epochs alone")),
            new DispatcherVisible())
        .transform(TrainerInstrumentation::weaveFit)
        .installOn(instrumentation);
  }

  private static DynamicType.Builder<?> weave(
      DynamicType.Builder<?> builder,
      TypeDescription type,
      ClassLoader loader,
      JavaModule module,
      java.security.ProtectionDomain domain) {
    return builder
        .visit(Advice.to(TrainerConstructorAdvice.class).on(constructor()))
        .visit(Advice.to(TrainerInitializeAdvice.class).on(initialize()));
  }

  private static DynamicType.Builder<?> weaveModel(
      DynamicType.Builder<?> builder,
      TypeDescription type,
      ClassLoader loader,
      JavaModule module,
      java.security.ProtectionDomain domain) {
    return builder.visit(Advice.to(ModelReadParametersAdvice.class).on(readParameters()));
  }

  private static DynamicType.Builder<?> weaveFit(
      DynamicType.Builder<?> builder,
      TypeDescription type,
      ClassLoader loader,
      JavaModule module,
      java.security.ProtectionDomain domain) {
    return builder.visit(Advice.to(EasyTrainFitAdvice.class).on(fit()));
  }

  /** {@code static fit(Trainer, int, Dataset, Dataset)}. */
  static ElementMatcher.Junction<MethodDescription> fit() {
    return named("fit")
        .and(isStatic())
        .and(takesArguments(4))
        .and(takesArgument(0, named(TRAINER)))
        .and(takesArgument(1, int.class))
        .and(takesArgument(2, named(DATASET)))
        .and(takesArgument(3, named(DATASET)));
  }

  private static ElementMatcher.Junction<MethodDescription> readParameters() {
    return named("readParameters")
        .and(not(isStatic()))
        .and(takesArguments(2))
        .and(takesArgument(0, named(Path.class.getName())))
        .and(takesArgument(1, named(Map.class.getName())));
  }

  private static ElementMatcher.Junction<MethodDescription> constructor() {
    return isConstructor()
        .and(takesArguments(2))
        .and(takesArgument(0, named(MODEL)))
        .and(takesArgument(1, named(TRAINING_CONFIG)));
  }

  private static ElementMatcher.Junction<MethodDescription> initialize() {
    return named("initialize")
        .and(not(isStatic()))
        .and(takesArguments(1))
        .and(takesArgument(0, new ShapeArray()));
  }

  /**
   * Lists what a {@code Trainer} lacks of the members the agent needs.
   *
   * @param type the class
   * @return the missing members, empty when the class has the expected shape
   */
  static List<String> missingMembers(TypeDescription type) {
    List<String> missing = new ArrayList<>();
    boolean field =
        type.getDeclaredFields().stream()
            .anyMatch(
                f ->
                    f.getName().equals("listeners")
                        && !f.isStatic()
                        && f.getType().asErasure().getName().equals(List.class.getName()));
    if (!field) {
      missing.add("field List listeners");
    }
    if (type.getDeclaredMethods().filter(constructor()).isEmpty()) {
      missing.add("constructor (Model, TrainingConfig)");
    }
    if (type.getDeclaredMethods().filter(initialize()).isEmpty()) {
      missing.add("method initialize(Shape...)");
    }
    return missing;
  }

  /** Accepts only a {@code Trainer} with the expected members; warns once otherwise. */
  private static final class ShapeCheck implements ElementMatcher<TypeDescription> {
    @Override
    public boolean matches(TypeDescription type) {
      List<String> missing = missingMembers(type);
      if (missing.isEmpty()) {
        return true;
      }
      AgentLog.warnOnce(
          AgentLog.DJL_MISMATCH,
          SurgeryDispatcher.TRAINER
              + " does not have the shape DJL Surgery was built for (DJL 0.36.0), missing "
              + String.join(", ", missing)
              + "; surgery disabled, the program runs unmodified",
          null);
      return false;
    }
  }

  /**
   * Accepts a type only if it declares an optional hook point (checkpoint replay on {@code
   * BaseModel}, the planned length on {@code EasyTrain}); these are extras, so a missing one is a
   * debug line, not a warning.
   */
  private static final class OptionalMethodCheck implements ElementMatcher<TypeDescription> {
    private final ElementMatcher<? super MethodDescription> method;
    private final String whenMissing;

    OptionalMethodCheck(ElementMatcher<? super MethodDescription> method, String whenMissing) {
      this.method = method;
      this.whenMissing = whenMissing;
    }

    @Override
    public boolean matches(TypeDescription type) {
      if (!type.getDeclaredMethods().filter(method).isEmpty()) {
        return true;
      }
      AgentLog.debug(whenMissing);
      return false;
    }
  }

  /** Accepts a class loader only if the woven advice will be able to link the dispatcher. */
  private static final class DispatcherVisible implements ElementMatcher<ClassLoader> {
    @Override
    public boolean matches(ClassLoader loader) {
      try {
        if (Class.forName(SurgeryDispatcher.class.getName(), false, loader)
            == SurgeryDispatcher.class) {
          return true;
        }
      } catch (ClassNotFoundException | LinkageError e) {
        // reported below
      }
      AgentLog.warnOnce(
          "dispatcher-visibility",
          "class loader "
              + loader
              + " defines "
              + SurgeryDispatcher.TRAINER
              + " but cannot see the agent jar; its trainers run unmodified",
          null);
      return false;
    }
  }

  private static final class ShapeArray implements ElementMatcher<TypeDescription> {
    @Override
    public boolean matches(TypeDescription type) {
      return type.isArray() && type.getComponentType().getName().equals(SHAPE);
    }
  }

  /** Reports transformation errors once, and transformations under debug. */
  private static final class LogListener extends AgentBuilder.Listener.Adapter {
    @Override
    public void onTransformation(
        TypeDescription type,
        ClassLoader loader,
        JavaModule module,
        boolean loaded,
        DynamicType dynamicType) {
      AgentLog.debug(
          "instrumented "
              + type.getName()
              + " of "
              + loader
              + (loaded ? " (retransformed)" : " (at load)"));
    }

    @Override
    public void onError(
        String typeName, ClassLoader loader, JavaModule module, boolean loaded, Throwable error) {
      if (typeName.equals(SurgeryDispatcher.TRAINER)
          || typeName.equals(SurgeryDispatcher.MODEL)
          || typeName.equals(SurgeryDispatcher.EASY_TRAIN)) {
        AgentLog.warnOnce(
            "transform-error",
            "could not instrument " + typeName + "; surgery disabled, the program runs unmodified",
            error);
      }
    }
  }
}
