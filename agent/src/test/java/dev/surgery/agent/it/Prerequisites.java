package dev.surgery.agent.it;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.surgery.trainer.SurgeryListener;
import dev.surgery.trainer.config.SurgeryConfigException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;

/**
 * What the positive agent tests need from the other modules: a {@code SurgeryListener.fromYaml}
 * that is implemented (trainer-integration) and a registered {@code blurpool} algorithm (core
 * algorithms and layers). While a module still has its placeholder body the tests that need it are
 * skipped with a message saying which; any other failure fails the test.
 */
final class Prerequisites {

  private Prerequisites() {}

  /** Skips the test unless {@code SurgeryListener.fromYaml} is implemented. */
  static void assumeTrainerIntegration() {
    assumeTrue(
        state() != State.NO_TRAINER,
        "needs SurgeryListener.fromYaml from trainer-integration (not implemented in this build)");
  }

  /** Skips the test unless a BlurPool config can be loaded. */
  static void assumeBlurPool() {
    State s = state();
    assumeTrue(
        s != State.NO_TRAINER,
        "needs SurgeryListener.fromYaml from trainer-integration (not implemented in this build)");
    assumeTrue(
        s != State.NO_BLURPOOL, "needs the blurpool algorithm from core (not registered yet)");
  }

  private enum State {
    NO_TRAINER,
    NO_BLURPOOL,
    READY
  }

  private static State state;

  private static synchronized State state() {
    if (state == null) {
      state = probe();
    }
    return state;
  }

  private static State probe() {
    Path config;
    try {
      config =
          AgentConfigs.write(
              ForkedJvm.workRoot().resolve("prerequisites"),
              "surgery.yaml",
              AgentConfigs.BLURPOOL_AT_EPOCH_1);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    try {
      SurgeryListener.fromYaml(config);
      return State.READY;
    } catch (UnsupportedOperationException e) {
      return State.NO_TRAINER;
    } catch (SurgeryConfigException e) {
      if (e.getMessage().contains("'blurpool'")) {
        return State.NO_BLURPOOL;
      }
      throw e;
    }
  }
}
