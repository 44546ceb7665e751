/**
 * What both sides of the agent share: the dispatcher the woven advice calls, the interface to the
 * DJL side ({@link dev.surgery.agent.bridge.DjlHooks}), the agent's log and failures, and the
 * {@code HookLoader} that defines the DJL side.
 *
 * <p>Defined by the agent's own (system) class loader, once: the {@code HookLoader} of every DJL
 * loader delegates this package back to it, so both sides see the same classes. It links against
 * the JDK only, so it resolves from any class loader, DJL's included.
 */
package dev.surgery.agent.bridge;
