/**
 * The ByteBuddy advice inlined into DJL's classes (the {@code Trainer} constructor and {@code
 * initialize}, {@code BaseModel.readParameters}, {@code EasyTrain.fit}).
 *
 * <p>These classes are defined by the system class loader, but only as templates: their bytecode is
 * copied into DJL's classes and resolves through DJL's class loader. So they may link against JDK
 * types and {@link dev.surgery.agent.bridge.SurgeryDispatcher} only, which is why the agent
 * installs them only where DJL's loader can see the agent jar.
 */
package dev.surgery.agent.advice;
