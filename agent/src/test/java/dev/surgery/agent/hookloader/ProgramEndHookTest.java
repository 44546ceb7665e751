package dev.surgery.agent.hookloader;

import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;

import dev.surgery.trainer.SurgeryListener;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * The program-end hook of a program whose main runs in a thread group of the launcher's own, which
 * the launcher destroys after main (Maven's {@code exec:java}): a hook thread made in that group
 * cannot start at exit, and an outside probe found the surgery log left as training last wrote it.
 */
class ProgramEndHookTest {

  @Test
  void theHookThreadBelongsToTheRootGroupWhateverGroupRegistersIt() throws Exception {
    ProgramEndHook hook = new ProgramEndHook(SurgeryListener.builder().build());
    ThreadGroup launcher = new ThreadGroup("launcher-isolated-group");
    AtomicReference<Thread> made = new AtomicReference<>();
    Thread main = new Thread(launcher, () -> made.set(hook.hookThread()), "main-in-group");
    main.start();
    main.join();
    ThreadGroup group = made.get().getThreadGroup();
    assertNull(group.getParent(), "the root group, not " + group.getName());
    ThreadGroup root = Thread.currentThread().getThreadGroup();
    while (root.getParent() != null) {
      root = root.getParent();
    }
    assertSame(root, group);
  }
}
