package dev.surgery.samples.jobs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class JobOptionsTest {

  @Test
  void defaults() {
    JobOptions o = JobOptions.parse("job", new String[0]);
    assertEquals(4, o.epochs());
    assertEquals(32, o.batchSize());
    assertEquals(0, o.maxBatches());
    assertEquals(0, o.devices());
    assertEquals("synthetic", o.dataset());
    assertNull(o.dataDir());
    assertEquals(Path.of("out", "job"), o.out());
    assertEquals(Path.of("out", "job", "surgery-log.json"), o.surgeryLogPath());
    assertNull(o.planLog());
  }

  @Test
  void planLogNamesAnExistingDryRunLog(@TempDir Path tmp) throws Exception {
    Path plan = tmp.resolve("plan.json");
    Files.writeString(plan, "{\"plans\":[]}");
    assertEquals(plan, parse("--plan-log", plan.toString()).planLog());
    assertEquals(plan, parse("--plan-log=" + plan).planLog());
    // kept by the copy the resume job makes
    assertEquals(plan, parse("--plan-log", plan.toString()).with(1, tmp).planLog());
    // a plan that is not there is refused, not silently left out of the report
    assertTrue(
        refusalOf("--plan-log", tmp.resolve("missing.json").toString())
            .startsWith("--plan-log " + tmp.resolve("missing.json") + ": no such file"));
    // a folder is there: not "no such file" (an outside tester)
    assertEquals("--plan-log " + tmp + ": not a file", refusalOf("--plan-log", tmp.toString()));
    // a file that is not a dry run's log is refused before training, not after it
    Path notJson = Files.writeString(tmp.resolve("not.json"), "not json");
    Path noPlans = Files.writeString(tmp.resolve("noplans.json"), "{\"plans\": 5}");
    for (Path bad : List.of(notJson, noPlans)) {
      assertTrue(
          refusalOf("--plan-log", bad.toString()).startsWith("--plan-log " + bad + ": "),
          bad.toString());
    }
  }

  @Test
  void surgeryLogThatIsNotOneIsRefusedBeforeTraining(@TempDir Path tmp) throws Exception {
    // not there yet: the agent writes it during the run (its config's report:)
    Path later = tmp.resolve("later.json");
    assertEquals(later, parse("--surgery-log", later.toString()).surgeryLogPath());
    Path log = Files.writeString(tmp.resolve("log.json"), "{\"applications\":[]}");
    assertEquals(log, parse("--surgery-log", log.toString()).surgeryLogPath());
    Path notJson = Files.writeString(tmp.resolve("not.txt"), "hello, not json");
    Path array = Files.writeString(tmp.resolve("array.json"), "[1]");
    for (Path bad : List.of(notJson, array, tmp)) {
      for (String flag : List.of("--surgery-log", "--surgery-report")) {
        String message = refusalOf(flag, bad.toString());
        assertTrue(message.startsWith("--surgery-log " + bad + ": "), bad + " " + flag);
        // one line, saying where the file is malformed, not the parser's advice to its users
        assertFalse(message.contains("\n") || message.contains("setStrictness"), message);
      }
    }
  }

  @Test
  void theSamplesReadmeDocumentsEverySharedFlag() throws Exception {
    String readme = Files.readString(Path.of("README.md"));
    for (String line : JobOptions.USAGE.split("\n")) {
      String flag = line.strip().split("[ ,=]")[0];
      if (flag.startsWith("--") && !flag.equals("--help") && !flag.equals("--surgery-report")) {
        assertTrue(readme.contains(flag), flag + " is not in samples/README.md");
      }
    }
  }

  @Test
  void parsesEveryFlagInBothForms() {
    JobOptions o =
        JobOptions.parse(
            "job",
            new String[] {
              "--epochs",
              "2",
              "--batch-size=8",
              "--max-batches",
              "3",
              "--devices",
              "1",
              "--dataset",
              "CIFAR10",
              "--data-dir",
              "d",
              "--out",
              "o",
              "--seed",
              "7",
              "--lr",
              "0.01",
              "--layers",
              "32",
              "--surgery-log",
              "r.json",
              "--resume-from",
              "c"
            },
            "resume-from");
    assertEquals(2, o.epochs());
    assertEquals(8, o.batchSize());
    assertEquals(3, o.maxBatches());
    assertEquals(1, o.devices());
    assertEquals("cifar10", o.dataset());
    assertEquals(Path.of("d"), o.dataDir());
    assertEquals(Path.of("o"), o.out());
    assertEquals(7, o.seed());
    assertEquals(0.01f, o.learningRate());
    assertEquals(32, o.layers());
    assertEquals(Path.of("r.json"), o.surgeryLogPath());
    assertEquals("c", o.extra("resume-from"));
  }

  @Test
  void surgeryLogKeepsTheFormerFlagAndDefaultName(@TempDir Path tmp) throws Exception {
    // the flag's name before the listener's file was called the surgery log
    assertEquals(Path.of("old.json"), parse("--surgery-report", "old.json").surgeryLogPath());
    // a config that still writes the former default name is found when the new one is absent
    JobOptions o = parse("--out", tmp.toString());
    assertEquals(tmp.resolve("surgery-log.json"), o.surgeryLogPath());
    Files.writeString(tmp.resolve("surgery-listener.json"), "{}");
    assertEquals(tmp.resolve("surgery-listener.json"), o.surgeryLogPath());
    Files.writeString(tmp.resolve("surgery-log.json"), "{}");
    assertEquals(tmp.resolve("surgery-log.json"), o.surgeryLogPath());
  }

  @Test
  void badFlagsNameTheFlag() {
    assertTrue(refusalOf("--epochz", "1").startsWith("Unknown options: '--epochz', '1'"));
    assertTrue(
        refusalOf("--epochs").startsWith("Missing required parameter for option '--epochs'"));
    assertTrue(
        refusalOf("--epochs", "two")
            .startsWith("Invalid value for option '--epochs': 'two' is not an int"));
    assertTrue(refusalOf("--batch-size", "0").contains("--batch-size must be >= 1"));
    assertTrue(refusalOf("--dataset", "imagenet").contains("imagenet"));
    assertTrue(refusalOf("--lr", "-1").contains("--lr must be in (0, 10)"));
    assertTrue(refusalOf("--resume-from=x").startsWith("Unknown option: '--resume-from=x'"));
    // An --out that is a file is refused before training, not when the report is written.
    assertTrue(refusalOf("--out", "README.md").contains("--out README.md is a file"));
    // A depth DJL's ResNetV1 cannot build is refused here, not with DJL's stack trace later.
    for (String depth : new String[] {"1", "21", "50"}) {
      assertTrue(
          refusalOf("--layers", depth).contains("--layers must be one of [20, 32, 44, 56, 110]"),
          depth);
    }
  }

  @Test
  void lastValueOfARepeatedFlagWins() {
    JobOptions o = parse("--epochs", "1", "--out", "@o", "--epochs=3");
    assertEquals(3, o.epochs());
    assertEquals(Path.of("@o"), o.out());
  }

  @Test
  void helpListsEveryFlagAndTheJobsOwn() {
    JobOptions.HelpRequestedException help =
        assertThrows(
            JobOptions.HelpRequestedException.class,
            () -> JobOptions.parse("resume", new String[] {"--help"}, "resume-from"));
    for (String flag :
        new String[] {
          "--epochs",
          "--batch-size",
          "--max-batches",
          "--devices",
          "--dataset",
          "--data-dir",
          "--out",
          "--seed",
          "--lr",
          "--layers",
          "--surgery-report",
          "--plan-log",
          "--resume-from"
        }) {
      assertTrue(help.getMessage().contains(flag), flag + " in\n" + help.getMessage());
    }
    assertTrue(help.getMessage().startsWith("Usage: resume"), help.getMessage());
  }

  private static JobOptions parse(String... args) {
    return JobOptions.parse("job", args);
  }

  /** The message with which parsing {@code args} is refused; fails if they parse. */
  private static String refusalOf(String... args) {
    return assertThrows(IllegalArgumentException.class, () -> parse(args)).getMessage();
  }
}
