/**
 * What both sides of the agent share: the dispatcher the woven advice calls, the interface to the
 * DJL side ({@link dev.surgery.agent.shared.DjlHooks}), the agent's log and failures, and the
 * {@code HookLoader} that defines the DJL side.
 *
 * <p><b>Defined once, by the agent's loader</b> (the system class loader), and <b>shared</b>: the
 * advice inlined into DJL's classes resolves it through DJL's loader (whose parents include the
 * system loader), and every {@code HookLoader} delegates this package back to the agent's loader,
 * so both sides see the same classes and the same static state. It therefore links against the JDK
 * only: no DJL, no ByteBuddy, no surgery library.
 */
package dev.surgery.agent.shared;
