/**
 * The agent's DJL side: builds the {@code SurgeryListener} from the config, attaches it to each
 * {@code Trainer}, tells it the planned epochs, and replays recorded surgery before a checkpoint
 * loads.
 *
 * <p>Defined by a {@code dev.surgery.agent.bridge.HookLoader}, one per class loader that defines
 * DJL, never by the system class loader. It links against DJL and SLF4J as that loader sees them,
 * against the surgery library ({@code dev.surgery.core}, {@code dev.surgery.trainer}), defined in
 * the same {@code HookLoader} from the agent jar, and against the {@code bridge} package.
 */
package dev.surgery.agent.inst;
