package dev.surgery.samples.jobs;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import org.junit.jupiter.api.Test;

/** Phase 2 of the resume job starts with phase 1's JVM flags, not a fixed set. */
class ResumeJobFlagsTest {

  @Test
  void theSecondJvmGetsTheFirstOnesFlagsButADebuggers() {
    List<String> parent =
        List.of(
            "-Xmx3g",
            "-Dai.djl.pytorch.num_threads=1",
            "-Dai.djl.offline=false",
            "-agentlib:jdwp=transport=dt_socket,server=y,address=5005",
            "-Xrunjdwp:transport=dt_socket",
            "-javaagent:surgery-agent.jar=run.yaml");
    assertEquals(
        List.of(
            "-Xmx3g",
            "-Dai.djl.pytorch.num_threads=1",
            "-Dai.djl.offline=false",
            "-javaagent:surgery-agent.jar=run.yaml"),
        ResumeJob.childJvmFlags(parent));
  }
}
