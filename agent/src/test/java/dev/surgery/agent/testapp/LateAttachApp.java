package dev.surgery.agent.testapp;

import ai.djl.training.Trainer;
import ai.djl.training.listener.TrainingListener;
import ai.djl.training.listener.TrainingListenerAdapter;
import com.sun.tools.attach.VirtualMachine;
import java.util.Arrays;
import java.util.List;

/**
 * A program that attaches the agent to itself while it runs ({@code agentmain}), after DJL's {@code
 * Trainer} class is loaded, then trains. Arguments: the agent jar, the agent argument (several,
 * separated by {@code |}, attach one after another), optionally {@code --after-trainer} (attach
 * from inside the trainer's constructor, so that the trainer exists before the agent), then {@link
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
    if (args.length > 2 && args[2].equals("--after-trainer")) {
      // Attached from the trainer's constructor (onTrainingBegin): the trainer exists already.
      TrainingListener attaching =
          new TrainingListenerAdapter() {
            @Override
            public void onTrainingBegin(Trainer trainer) {
              attach(args[0], args[1]);
            }
          };
      CnnApp.run(Arrays.copyOfRange(args, 3, args.length), List.of(attaching));
      return;
    }
    attach(args[0], args[1]);
    CnnApp.run(Arrays.copyOfRange(args, 2, args.length), List.of());
  }

  /** Attaches the agent once per argument; arguments are separated by {@code |}. */
  private static void attach(String jar, String arguments) {
    try {
      VirtualMachine vm = VirtualMachine.attach(String.valueOf(ProcessHandle.current().pid()));
      try {
        for (String argument : arguments.split("\\|")) {
          vm.loadAgent(jar, argument);
        }
      } finally {
        vm.detach();
      }
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
    System.out.println("LATE: agent loaded");
  }
}
