package dev.surgery.agent;

import static net.bytebuddy.matcher.ElementMatchers.any;
import static net.bytebuddy.matcher.ElementMatchers.hasSuperType;
import static net.bytebuddy.matcher.ElementMatchers.isAbstract;
import static net.bytebuddy.matcher.ElementMatchers.isBootstrapClassLoader;
import static net.bytebuddy.matcher.ElementMatchers.isConstructor;
import static net.bytebuddy.matcher.ElementMatchers.isInterface;
import static net.bytebuddy.matcher.ElementMatchers.isStatic;
import static net.bytebuddy.matcher.ElementMatchers.nameEndsWith;
import static net.bytebuddy.matcher.ElementMatchers.nameStartsWith;
import static net.bytebuddy.matcher.ElementMatchers.named;
import static net.bytebuddy.matcher.ElementMatchers.not;
import static net.bytebuddy.matcher.ElementMatchers.takesArgument;
import static net.bytebuddy.matcher.ElementMatchers.takesArguments;

import dev.surgery.agent.advice.EasyTrainEvaluateDatasetAdvice;
import dev.surgery.agent.advice.EasyTrainFitAdvice;
import dev.surgery.agent.advice.GradientCollectorBackwardAdvice;
import dev.surgery.agent.advice.ModelReadParametersAdvice;
import dev.surgery.agent.advice.ModelSaveAdvice;
import dev.surgery.agent.advice.TrainerConstructorAdvice;
import dev.surgery.agent.advice.TrainerEvaluateAdvice;
import dev.surgery.agent.advice.TrainerForwardAdvice;
import dev.surgery.agent.advice.TrainerInitializeAdvice;
import dev.surgery.agent.advice.TrainerNewGradientCollectorAdvice;
import dev.surgery.agent.advice.TrainerStepAdvice;
import dev.surgery.agent.shared.AgentLog;
import dev.surgery.agent.shared.SurgeryDispatcher;
import java.lang.instrument.ClassFileTransformer;
import java.lang.instrument.Instrumentation;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import net.bytebuddy.agent.builder.AgentBuilder;
import net.bytebuddy.agent.builder.ResettableClassFileTransformer;
import net.bytebuddy.asm.Advice;
import net.bytebuddy.asm.AsmVisitorWrapper;
import net.bytebuddy.description.method.MethodDescription;
import net.bytebuddy.description.type.TypeDescription;
import net.bytebuddy.dynamic.DynamicType;
import net.bytebuddy.matcher.ElementMatcher;
import net.bytebuddy.utility.JavaModule;

/**
 * Weaves the agent's advice into {@code ai.djl.training.Trainer} (construction, {@code initialize},
 * {@code forward}, {@code newGradientCollector}, {@code step}, {@code evaluate}), into the engines'
 * gradient collectors ({@code backward}), into {@code ai.djl.BaseModel}'s parameter loading (for
 * checkpoint replay and the load events), and into {@code ai.djl.training.EasyTrain} ({@code fit},
 * which tells the planned number of epochs, and {@code evaluateDataset}), in whichever class loader
 * defines them: from {@code premain} as they load, built at the first DJL class, and by
 * retransformation where they loaded before ({@link FirstDjlClassTransformer}); at a late attach
 * also the classes already loaded (retransformation).
 *
 * <p>Before weaving, the {@code Trainer} is checked for every member the advice and the dispatcher
 * rely on (the {@code listeners} field, the {@code (Model, TrainingConfig)} constructor and the
 * instrumented methods); a {@code Trainer} of another shape (another DJL version) is left alone
 * with one warning, and so is a class loader that cannot see the agent's dispatcher. The agent
 * therefore reports either every training event or none.
 */
public final class TrainerInstrumentation {

  private static final String MODEL = "ai.djl.Model";
  private static final String TRAINING_CONFIG = "ai.djl.training.TrainingConfig";
  private static final String SHAPE = "ai.djl.ndarray.types.Shape";
  private static final String TRAINER = SurgeryDispatcher.TRAINER;
  private static final String DATASET = "ai.djl.training.dataset.Dataset";
  private static final String NDLIST = "ai.djl.ndarray.NDList";
  private static final String NDARRAY = "ai.djl.ndarray.NDArray";
  private static final String GRADIENT_COLLECTOR = "ai.djl.training.GradientCollector";

  private TrainerInstrumentation() {}

  /**
   * Installs the transformation.
   *
   * @param instrumentation the JVM's instrumentation
   * @return the transformer, which tests may reset
   */
  public static ResettableClassFileTransformer install(Instrumentation instrumentation) {
    return builder().installOn(instrumentation);
  }

  /**
   * The transformation as a plain transformer, applied to no class already loaded: what {@link
   * FirstDjlClassTransformer} hands DJL's classes to once the first one loads.
   *
   * @return the transformer
   */
  static ClassFileTransformer weaving() {
    return builder().makeRaw();
  }

  private static AgentBuilder builder() {
    return new AgentBuilder.Default()
        .disableClassFormatChanges()
        .with(AgentBuilder.RedefinitionStrategy.RETRANSFORMATION)
        .with(new LogListener())
        // Only the bootstrap loader's classes are left out. ByteBuddy's default also leaves out
        // the system loader's parent, taken for the extension loader: under a custom system class
        // loader (-Djava.system.class.loader) that parent is the application loader, which defines
        // DJL, and every trainer ran without surgery. The matchers below name DJL's types anyway.
        .ignore(any(), isBootstrapClassLoader())
        .type(inVisibleLoader(named(SurgeryDispatcher.TRAINER).and(new ShapeCheck())))
        .transform(
            advise(
                Advice.to(TrainerConstructorAdvice.class).on(constructor()),
                Advice.to(TrainerInitializeAdvice.class).on(initialize()),
                Advice.to(TrainerForwardAdvice.class).on(forward()),
                Advice.to(TrainerNewGradientCollectorAdvice.class).on(newGradientCollector()),
                Advice.to(TrainerStepAdvice.class).on(step()),
                Advice.to(TrainerEvaluateAdvice.class).on(evaluate())))
        .type(
            inVisibleLoader(
                withOptional(
                    SurgeryDispatcher.MODEL,
                    readParameters(),
                    " has no readParameters(Path, Map); checkpoints are not replayed under the"
                        + " agent")))
        .transform(
            advise(
                Advice.to(ModelReadParametersAdvice.class).on(readParameters()),
                Advice.to(ModelSaveAdvice.class).on(save())))
        .type(
            inVisibleLoader(
                withOptional(
                    SurgeryDispatcher.EASY_TRAIN,
                    fit(),
                    " has no static fit(Trainer, int, Dataset, Dataset); the planned number of"
                        + " epochs comes from total_epochs alone")))
        .transform(
            advise(
                Advice.to(EasyTrainFitAdvice.class).on(fit()),
                Advice.to(EasyTrainEvaluateDatasetAdvice.class).on(evaluateDataset())))
        .type(inVisibleLoader(gradientCollector()))
        .transform(advise(Advice.to(GradientCollectorBackwardAdvice.class).on(backward())));
  }

  /** Weaves the advice into every type the transformation matches, in the order given. */
  private static AgentBuilder.Transformer advise(AsmVisitorWrapper... advice) {
    return (builder, type, loader, module, domain) -> {
      DynamicType.Builder<?> woven = builder;
      for (AsmVisitorWrapper a : advice) {
        woven = woven.visit(a);
      }
      return woven;
    };
  }

  /**
   * The type {@code name} when it declares {@code method}; a debug line says {@code whenMissing}.
   */
  private static ElementMatcher.Junction<TypeDescription> withOptional(
      String name, ElementMatcher<? super MethodDescription> method, String whenMissing) {
    return named(name).and(new OptionalMethodCheck(method, name + whenMissing));
  }

  /**
   * The engines' gradient collectors ({@code ai.djl.pytorch.engine.PtGradientCollector} and the
   * like): concrete DJL classes named {@code *GradientCollector} that implement DJL's interface and
   * declare {@code backward(NDArray)}. The name test comes first, so that no other class has its
   * hierarchy resolved.
   */
  static ElementMatcher.Junction<TypeDescription> gradientCollector() {
    return nameStartsWith("ai.djl.")
        .and(nameEndsWith("GradientCollector"))
        .and(not(isInterface()))
        .and(not(isAbstract()))
        .and(hasSuperType(named(GRADIENT_COLLECTOR)))
        .and(
            new OptionalMethodCheck(
                backward(),
                "a DJL gradient collector has no backward(NDArray); AFTER_BACKWARD is not reported"
                    + " for it"));
  }

  /** {@code backward(NDArray)}, the public one; the engines' private overloads are not matched. */
  static ElementMatcher.Junction<MethodDescription> backward() {
    return method("backward", false, NDARRAY).and(not(isAbstract()));
  }

  /** {@code static evaluateDataset(Trainer, Dataset)}. */
  static ElementMatcher.Junction<MethodDescription> evaluateDataset() {
    return method("evaluateDataset", true, TRAINER, DATASET);
  }

  /** {@code forward(NDList)} and {@code forward(NDList, NDList)}: the training forward passes. */
  private static ElementMatcher.Junction<MethodDescription> forward() {
    return forwardWithoutLabels().or(forwardWithLabels());
  }

  private static ElementMatcher.Junction<MethodDescription> forwardWithLabels() {
    return method("forward", false, NDLIST, NDLIST);
  }

  private static ElementMatcher.Junction<MethodDescription> forwardWithoutLabels() {
    return method("forward", false, NDLIST);
  }

  private static ElementMatcher.Junction<MethodDescription> step() {
    return method("step", false);
  }

  private static ElementMatcher.Junction<MethodDescription> evaluate() {
    return method("evaluate", false, NDLIST);
  }

  private static ElementMatcher.Junction<MethodDescription> newGradientCollector() {
    return method("newGradientCollector", false);
  }

  /** {@code static fit(Trainer, int, Dataset, Dataset)}. */
  static ElementMatcher.Junction<MethodDescription> fit() {
    return method("fit", true, TRAINER, "int", DATASET, DATASET);
  }

  private static ElementMatcher.Junction<MethodDescription> save() {
    return method("save", false, Path.class.getName(), String.class.getName());
  }

  private static ElementMatcher.Junction<MethodDescription> readParameters() {
    return method("readParameters", false, Path.class.getName(), Map.class.getName());
  }

  private static ElementMatcher.Junction<MethodDescription> constructor() {
    return isConstructor().and(parameters(MODEL, TRAINING_CONFIG));
  }

  /**
   * Matches a method by name, static or not, and the names of its parameter types.
   *
   * @param name the method name
   * @param staticMethod whether the method is static
   * @param parameterTypes the type names of exactly its parameters, in order
   * @return the matcher
   */
  private static ElementMatcher.Junction<MethodDescription> method(
      String name, boolean staticMethod, String... parameterTypes) {
    return named(name)
        .and(staticMethod ? isStatic() : not(isStatic()))
        .and(parameters(parameterTypes));
  }

  /** Exactly these parameters, by type name. */
  private static ElementMatcher.Junction<MethodDescription> parameters(String... typeNames) {
    ElementMatcher.Junction<MethodDescription> matcher = takesArguments(typeNames.length);
    for (int i = 0; i < typeNames.length; i++) {
      matcher = matcher.and(takesArgument(i, named(typeNames[i])));
    }
    return matcher;
  }

  private static ElementMatcher.Junction<MethodDescription> initialize() {
    return named("initialize")
        .and(not(isStatic()))
        .and(takesArguments(1))
        .and(takesArgument(0, new ShapeArray()));
  }

  /** The {@code Trainer} members the advice needs, by how the warning names a missing one. */
  private static Map<String, ElementMatcher<MethodDescription>> trainerMembers() {
    Map<String, ElementMatcher<MethodDescription>> members = new LinkedHashMap<>();
    members.put("constructor (Model, TrainingConfig)", constructor());
    members.put("method initialize(Shape...)", initialize());
    members.put("method forward(NDList)", forwardWithoutLabels());
    members.put("method forward(NDList, NDList)", forwardWithLabels());
    members.put("method newGradientCollector()", newGradientCollector());
    members.put("method step()", step());
    members.put("method evaluate(NDList)", evaluate());
    return members;
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
    for (Map.Entry<String, ElementMatcher<MethodDescription>> member :
        trainerMembers().entrySet()) {
      if (type.getDeclaredMethods().filter(member.getValue()).isEmpty()) {
        missing.add(member.getKey());
      }
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

  /**
   * The types {@code types} matches, where their class loader sees the agent's dispatcher. The type
   * is tested first: ByteBuddy asks a loader matcher about every class of every loader, and one
   * that cannot see the agent jar but defines no DJL type (another agent's, an isolated plugin
   * loader) must not be reported as defining DJL's {@code Trainer}.
   */
  private static AgentBuilder.RawMatcher inVisibleLoader(ElementMatcher<TypeDescription> types) {
    return (type, loader, module, classBeingRedefined, domain) ->
        types.matches(type) && dispatcherVisible(type, loader);
  }

  private static boolean dispatcherVisible(TypeDescription type, ClassLoader loader) {
    Class<?> seen = null;
    try {
      seen = Class.forName(SurgeryDispatcher.class.getName(), false, loader);
      if (seen == SurgeryDispatcher.class) {
        return true;
      }
    } catch (ClassNotFoundException | LinkageError e) {
      // reported below
    }
    if (type.getName().equals(SurgeryDispatcher.TRAINER)) { // the others matter only with it
      AgentLog.warnOnce(
          "dispatcher-visibility",
          "class loader "
              + loader
              + " defines "
              + SurgeryDispatcher.TRAINER
              + (seen != null
                  // A child-first loader (exec:java's, a servlet container's) that holds a copy
                  // of the agent jar finds that copy first: advice to add the jar would break it.
                  ? " and loads its own copy of the agent's classes (from "
                      + codeSource(seen)
                      + ") instead of the agent's; its trainers run unmodified. Remove the agent"
                      + " jar from the application's class path (the -javaagent jar is enough)"
                  : " but cannot see the agent jar; its trainers run unmodified"
                      + (System.getProperty("java.system.class.loader") == null
                              || loader != ClassLoader.getSystemClassLoader().getParent()
                          ? ""
                          // The JVM appends the agent jar to that custom loader, a child of the
                          // one that loads the program's class path, which cannot see its
                          // children.
                          : " (with -Djava.system.class.loader, put the agent jar on -cp too)")),
          null);
    }
    return false;
  }

  /** Where a class was loaded from, for a message; "an unknown place" when it does not say. */
  private static String codeSource(Class<?> type) {
    try {
      java.security.CodeSource source = type.getProtectionDomain().getCodeSource();
      return source == null || source.getLocation() == null
          ? "an unknown place"
          : source.getLocation().toString();
    } catch (SecurityException e) {
      return "an unknown place";
    }
  }

  private static final class ShapeArray implements ElementMatcher<TypeDescription> {
    @Override
    public boolean matches(TypeDescription type) {
      return type.isArray() && type.getComponentType().getName().equals(SHAPE);
    }
  }

  /**
   * The key under which a class that could not be woven is warned of once, whether ByteBuddy
   * reports it or a retransformation of an early class fails.
   *
   * @param typeName the class
   * @return the warning's key
   */
  static String notInstrumentedKey(String typeName) {
    return "transform-error " + typeName;
  }

  /**
   * What a class that could not be woven means: without {@code Trainer} no surgery; without the
   * others, the events they report (checkpoint loads, the planned epochs, AFTER_BACKWARD).
   *
   * @param typeName the class
   * @return the warning
   */
  static String notInstrumented(String typeName) {
    return "could not instrument "
        + typeName
        + (typeName.equals(SurgeryDispatcher.TRAINER)
            ? "; surgery disabled, the program runs unmodified"
            : "; the training events it reports are missed");
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
          || typeName.equals(SurgeryDispatcher.EASY_TRAIN)
          || (typeName.startsWith("ai.djl.") && typeName.endsWith("GradientCollector"))) {
        AgentLog.warnOnce(notInstrumentedKey(typeName), notInstrumented(typeName), error);
      }
    }
  }
}
