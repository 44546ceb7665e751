package dev.surgery.agent.shared;

import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;

import java.net.URL;
import org.junit.jupiter.api.Test;

/**
 * The per-DJL loader: surgery classes child first, the shared package shared, everything else from
 * DJL's.
 */
class HookLoaderTest {

  @Test
  void definesSurgeryClassesItselfAndTakesTheSharedPackageFromTheAgent() throws Exception {
    ClassLoader djl = HookLoaderTest.class.getClassLoader();
    URL[] classPath = HookLoader.agentClassPath(SurgeryDispatcher.class);
    try (HookLoader loader = new HookLoader(classPath, djl, djl)) {
      Class<?> listener = Class.forName("dev.surgery.trainer.SurgeryListener", false, loader);
      assertSame(loader, listener.getClassLoader(), "surgery classes are defined child first");
      assertNotSame(
          Class.forName("dev.surgery.trainer.SurgeryListener", false, djl),
          listener,
          "a second copy, separate from the application's");
      Class<?> hooks = Class.forName("dev.surgery.agent.hookloader.DjlAgentHooks", false, loader);
      assertSame(loader, hooks.getClassLoader());
      assertSame(AgentLog.class, Class.forName(AgentLog.class.getName(), false, loader));
      assertSame(DjlHooks.class, Class.forName(DjlHooks.class.getName(), false, loader));
      Class<?> trainer = Class.forName("ai.djl.training.Trainer", false, loader);
      assertSame(Class.forName("ai.djl.training.Trainer", false, djl), trainer, "DJL is DJL's");
      // The listener links against the application's DJL.
      assertSame(
          Class.forName("ai.djl.training.listener.TrainingListenerAdapter", false, djl),
          listener.getSuperclass());
    }
  }
}
