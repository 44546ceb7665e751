package dev.surgery.benchmarks;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.management.ManagementFactory;
import org.junit.jupiter.api.Test;

/** The command a benchmark prints is the one that ran: this JVM's flags, the arguments quoted. */
class CommandLineTest {

  @Test
  void theCommandHoldsThisJvmsFlagsAndTheArgumentsAsAShellTakesThem() {
    String command =
        BenchSupport.commandLine(B5AlgorithmAccuracy.class, "--only", "blurpool", "--out", "a b");
    assertTrue(command.startsWith("DJL_OFFLINE=true OPT_OUT_TRACKING=true"), command);
    assertTrue(
        command.endsWith(
            " -cp <benchmarks runtime class path> dev.surgery.benchmarks.B5AlgorithmAccuracy"
                + " --only blurpool --out 'a b'"),
        command);
    for (String flag : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
      if (!flag.startsWith("-agentlib:jdwp") && !flag.contains(" ")) {
        assertTrue(command.contains(" " + flag), flag + " missing from " + command);
      }
    }
  }
}
