package dev.surgery.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.BaseModel;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import java.util.List;
import net.bytebuddy.description.type.TypeDescription;
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
            "method initialize(Shape...)"),
        TrainerInstrumentation.missingMembers(TypeDescription.ForLoadedType.of(BaseModel.class)));
  }

  @Test
  void theFitMatcherFindsExactlyDjl036sFourArgumentFit() {
    // EasyTrain also has trainBatch, validateBatch, evaluateDataset: none of them may match.
    assertEquals(
        List.of("fit"),
        TypeDescription.ForLoadedType.of(EasyTrain.class)
            .getDeclaredMethods()
            .filter(TrainerInstrumentation.fit())
            .stream()
            .map(m -> m.getName())
            .toList());
  }
}
