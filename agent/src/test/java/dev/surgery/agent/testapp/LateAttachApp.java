package dev.surgery.agent.testapp;

import com.sun.tools.attach.VirtualMachine;
import java.util.Arrays;

/**
 * A program that attaches the agent to itself while it runs ({@code agentmain}), after DJL's {@code
 * Trainer} class is loaded, then trains. Arguments: the agent jar, the agent argument, then {@link
 * CnnApp} options. Needs {@code -Djdk.attach.allowAttachSelf=true}.
 */
public final class LateAttachApp {

  private LateAttachApp() {}

  /**
   * Runs the program.
   *
   * @param args agent jar, agent argument, {@link CnnApp} options
   * @throws Exception when attaching or training fails
   */
  public static void main(String[] args) throws Exception {
    System.out.println(CnnApp.MARKER);
    Class.forName("ai.djl.training.Trainer");
    VirtualMachine vm = VirtualMachine.attach(String.valueOf(ProcessHandle.current().pid()));
    try {
      vm.loadAgent(args[0], args[1]);
    } finally {
      vm.detach();
    }
    System.out.println("LATE: agent loaded");
    CnnApp.run(Arrays.copyOfRange(args, 2, args.length), java.util.List.of());
  }
}
