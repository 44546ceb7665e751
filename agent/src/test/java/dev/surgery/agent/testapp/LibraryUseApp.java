package dev.surgery.agent.testapp;

import dev.surgery.core.BlockPaths;
import dev.surgery.core.algorithms.BlurPool;
import java.util.List;

/**
 * A program with the surgery library on its class path that trains {@link CnnApp}'s network with
 * plain DJL and touches the library in one of two ways (argument 0), then runs {@link CnnApp} with
 * the rest:
 *
 * <ul>
 *   <li>{@code constants}: only compile-time constants of the library, which javac copies into this
 *       class; no class of the library is ever loaded;
 *   <li>{@code core-after}: a static method of {@code dev.surgery.core} (no class of {@code
 *       dev.surgery.trainer}), once training has ended;
 *   <li>{@code attach-then-core <agent jar> <agent argument>}: attaches the agent to itself (needs
 *       {@code -Djdk.attach.allowAttachSelf=true}), trains, then does what {@code core-after} does.
 * </ul>
 */
public final class LibraryUseApp {

  private LibraryUseApp() {}

  /**
   * Runs the program.
   *
   * @param args the mode, then {@link CnnApp} options
   * @throws Exception when training fails
   */
  public static void main(String[] args) throws Exception {
    System.out.println(CnnApp.MARKER);
    String[] rest = java.util.Arrays.copyOfRange(args, 1, args.length);
    switch (args[0]) {
      case "constants" -> {
        CnnApp.run(rest, List.of());
        System.out.println("LIBUSE: constants " + BlurPool.NAME + " " + BlockPaths.ROOT);
      }
      case "core-after" -> {
        CnnApp.run(rest, List.of());
        System.out.println("LIBUSE: paths " + BlockPaths.index(CnnApp.network()).size());
      }
      case "attach-then-core" -> {
        Class.forName("ai.djl.training.Trainer");
        com.sun.tools.attach.VirtualMachine vm =
            com.sun.tools.attach.VirtualMachine.attach(
                String.valueOf(ProcessHandle.current().pid()));
        try {
          vm.loadAgent(args[1], args[2]);
        } finally {
          vm.detach();
        }
        CnnApp.run(java.util.Arrays.copyOfRange(args, 3, args.length), List.of());
        System.out.println("LIBUSE: paths " + BlockPaths.index(CnnApp.network()).size());
      }
      default -> throw new IllegalArgumentException("unknown mode " + args[0]);
    }
  }
}
