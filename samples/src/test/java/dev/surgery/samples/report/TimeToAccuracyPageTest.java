package dev.surgery.samples.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.surgery.samples.report.TimeToAccuracyPage.Curve;
import dev.surgery.samples.report.TimeToAccuracyPage.Marker;
import dev.surgery.samples.report.TimeToAccuracyPage.Panel;
import dev.surgery.samples.report.TimeToAccuracyPage.Point;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The time-to-accuracy page: one chart per dataset and time axis, and the data it plots. */
class TimeToAccuracyPageTest {

  @TempDir Path dir;

  private static Curve curve(String group, int seed, double speed) {
    return new Curve(
        group,
        group + " seed " + seed,
        List.of(
            new Point(1 * speed, 2 * speed, 0.5, 0.6),
            new Point(2 * speed, 4 * speed, 1.0, 0.8),
            new Point(3 * speed, 6 * speed, 1.5, 0.9)));
  }

  @Test
  void writesChartsPerDatasetAndAxisAndThePlottedData() throws Exception {
    List<Panel> panels =
        List.of(
            new Panel(
                "mnist",
                0.85,
                List.of("baseline", "recipe"),
                List.of(curve("baseline", 1, 1), curve("recipe", 1, 0.7), curve("recipe", 2, 0.8)),
                List.of(
                    new Marker("recipe", "blurpool @0", 0.01, 0.02, 0),
                    new Marker("recipe", "blurpool @0", 0.02, 0.03, 0))),
            new Panel(
                "synthetic",
                0.7,
                List.of("baseline", "recipe"),
                List.of(curve("baseline", 1, 1)),
                List.of()));
    Path html =
        TimeToAccuracyPage.builder("B6 test")
            .addFact("recipe", "blurpool@0")
            .build()
            .write(dir, panels, List.of("| a | b |"));
    String page = Files.readString(html);
    for (String dataset : List.of("mnist", "synthetic")) {
      for (String axis : TimeToAccuracyPage.AXES) {
        String png = TimeToAccuracyPage.png(dataset, axis);
        BufferedImage image = ImageIO.read(dir.resolve(png).toFile());
        assertEquals(720, image.getWidth());
        assertEquals(420, image.getHeight());
        assertTrue(page.contains("src=\"" + png + "\""), png);
      }
    }
    assertTrue(page.contains("<pre>| a | b |</pre>"), page);
    assertTrue(page.contains("target accuracy 0.8500"), page);
    JsonObject json =
        JsonParser.parseString(Files.readString(dir.resolve(TimeToAccuracyPage.JSON)))
            .getAsJsonObject();
    JsonArray written = json.getAsJsonArray("panels");
    assertEquals(2, written.size());
    JsonObject mnist = written.get(0).getAsJsonObject();
    assertEquals(0.85, mnist.get("target").getAsDouble());
    assertEquals(3, mnist.getAsJsonArray("curves").size());
    assertEquals(2, mnist.getAsJsonArray("markers").size());
    JsonObject second = mnist.getAsJsonArray("curves").get(1).getAsJsonObject();
    assertEquals("recipe", second.get("group").getAsString());
    assertEquals(
        0.7,
        second.getAsJsonArray("points").get(0).getAsJsonObject().get("cpuSeconds").getAsDouble());
    assertEquals("blurpool@0", json.getAsJsonObject("facts").get("recipe").getAsString());

    // Re-drawn from its data alone, the page is the same page.
    Files.delete(dir.resolve(TimeToAccuracyPage.png("mnist", "cpu")));
    Path again = TimeToAccuracyPage.rewrite(dir);
    assertEquals(page, Files.readString(again));
    assertEquals(
        720, ImageIO.read(dir.resolve(TimeToAccuracyPage.png("mnist", "cpu")).toFile()).getWidth());
  }
}
