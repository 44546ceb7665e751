/**
 * The ByteBuddy advice inlined into DJL's classes ({@code Trainer}, {@code BaseModel}, {@code
 * EasyTrain}, the engines' gradient collectors).
 *
 * <p><b>Defined by the agent's loader, but only as templates</b>: their bytecode is copied into
 * DJL's classes and resolves through DJL's class loader. So they may link against JDK types and
 * {@link dev.surgery.agent.shared.SurgeryDispatcher} only, which is why the agent installs them
 * only where DJL's loader can see the agent jar.
 */
package dev.surgery.agent.advice;
