/**
 * The agent's DJL side: builds the {@code SurgeryListener} from the config, attaches it to each
 * {@code Trainer}, tells it the planned epochs, drives it with the training events the woven advice
 * reports, replays recorded surgery before a checkpoint loads, and tells it when the program ends
 * (a shutdown hook), so that a surgery log cut short says so.
 *
 * <p><b>Defined by a {@code dev.surgery.agent.shared.HookLoader}</b>, one per class loader that
 * defines DJL (its parent), never by the system class loader. It links against DJL and SLF4J as
 * that loader sees them, against the surgery library ({@code dev.surgery.core}, {@code
 * dev.surgery.trainer}) and extension jars, defined by the same {@code HookLoader}, and against the
 * {@code shared} package; never against ByteBuddy or the agent's start-up code.
 */
package dev.surgery.agent.hookloader;
