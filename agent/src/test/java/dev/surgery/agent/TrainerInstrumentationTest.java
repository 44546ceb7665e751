package dev.surgery.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.BaseModel;
import ai.djl.pytorch.engine.PtGradientCollector;
import ai.djl.training.EasyTrain;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import java.util.List;
import net.bytebuddy.description.method.MethodDescription;
import net.bytebuddy.description.type.TypeDescription;
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
}
