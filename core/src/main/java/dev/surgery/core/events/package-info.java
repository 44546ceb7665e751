/**
 * Training events and the read-only training state that event-driven algorithms see (Composer's
 * event model on DJL). {@link dev.surgery.core.events.Event} names the points of a training run;
 * {@link dev.surgery.core.events.State} is what an algorithm may read at one of them; {@link
 * dev.surgery.core.events.Time} reads Composer's time strings ({@code 2ep}, {@code 100ba}, {@code
 * 0.5dur}). Which DJL callback or call fires each event depends on the driver (a {@code
 * TrainingListener}, the drop-in {@code SurgeryTrain.fit}, a hand-written loop, the agent); the
 * trainer-integration module documents that table.
 */
package dev.surgery.core.events;
