package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.surgery.core.SurgeryPlan;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import dev.surgery.trainer.config.Trigger;
import dev.surgery.trainer.docs.MarkdownDoc;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

/**
 * The plan file a dry run writes (user guide, "With report: plan.json ...") has the shape of the
 * guide's example: the same keys at every level, read from the guide, so a key added, renamed or
 * dropped on either side fails here. Values are the run's own (the example is abridged).
 */
class PlanReportDocTest {

  private static JsonObject documentedExample() throws Exception {
    List<String> lines =
        Files.readAllLines(
            MarkdownDoc.repositoryRoot().resolve("docs/user-guide.md"), StandardCharsets.UTF_8);
    int i = 0;
    while (i < lines.size() && !lines.get(i).contains("`report: plan.json`")) {
      i++;
    }
    while (i < lines.size() && !lines.get(i).strip().equals("```json")) {
      i++;
    }
    assertTrue(i < lines.size(), "the user guide has no JSON example of a plan file");
    StringBuilder json = new StringBuilder();
    for (i++; !lines.get(i).strip().equals("```"); i++) {
      json.append(lines.get(i)).append('\n');
    }
    return JsonParser.parseString(json.toString()).getAsJsonObject();
  }

  @Test
  void aPlanFileHasTheKeysOfTheGuidesExampleAtEveryLevel() throws Exception {
    Block model =
        new SequentialBlock()
            .add(
                Conv2d.builder()
                    .setKernelShape(new Shape(3, 3))
                    .optPadding(new Shape(1, 1))
                    .setFilters(8)
                    .build())
            .add(Activation::relu)
            .add(
                Conv2d.builder()
                    .setKernelShape(new Shape(3, 3))
                    .optStride(new Shape(2, 2))
                    .setFilters(8)
                    .build())
            .add(Blocks.batchFlattenBlock())
            .add(Linear.builder().setUnits(2).build());
    Shape input = new Shape(8, 1, 10, 10);
    try (NDManager manager = NDManager.newBaseManager()) {
      model.initialize(manager, DataType.FLOAT32, input);
      // min_channels 0, as in the example: the steps and their parameters are compared too.
      Algorithm blurpool = Algorithms.spec("blurpool").create(Map.of("min_channels", 0));
      ScheduledAlgorithm entry =
          ScheduledAlgorithm.of(blurpool, Trigger.atEpoch(1), 0, "surgery.yaml:2:5");
      SurgeryPlan plan = blurpool.plan(new SurgeryContext(model, List.of(), 1, 0), input);
      JsonObject written =
          JsonParser.parseString(SurgeryJson.plans(List.of(new EntryPlan(entry, plan, null))))
              .getAsJsonObject();
      assertTrue(
          written.getAsJsonArray("plans").get(0).getAsJsonObject().getAsJsonArray("steps").size()
              > 0,
          written.toString());
      List<String> differences = new ArrayList<>();
      compareKeys("", documentedExample(), written, differences);
      assertEquals(List.of(), differences, written.toString());
    }
  }

  /** Compares key sets of objects, and of the first elements of arrays that both have. */
  private static void compareKeys(
      String at, JsonElement documented, JsonElement written, List<String> differences) {
    if (documented.isJsonObject() && written.isJsonObject()) {
      TreeSet<String> doc = new TreeSet<>(documented.getAsJsonObject().keySet());
      TreeSet<String> out = new TreeSet<>(written.getAsJsonObject().keySet());
      if (!doc.equals(out)) {
        differences.add(at + ": documented " + doc + ", written " + out);
      }
      for (String key : doc) {
        if (out.contains(key)) {
          compareKeys(
              at + "/" + key,
              documented.getAsJsonObject().get(key),
              written.getAsJsonObject().get(key),
              differences);
        }
      }
    } else if (documented.isJsonArray() && written.isJsonArray()) {
      if (!documented.getAsJsonArray().isEmpty() && !written.getAsJsonArray().isEmpty()) {
        compareKeys(
            at + "[0]",
            documented.getAsJsonArray().get(0),
            written.getAsJsonArray().get(0),
            differences);
      }
    } else if (documented.isJsonObject() != written.isJsonObject()
        || documented.isJsonArray() != written.isJsonArray()) {
      differences.add(at + ": documented " + documented + ", written " + written);
    }
  }
}
