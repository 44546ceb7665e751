/**
 * Scheduled model surgery inside a running DJL training job.
 *
 * <p>{@link dev.surgery.trainer.SurgeryListener} is a {@code TrainingListener} that applies
 * algorithms (from code, or from a YAML file read by {@link
 * dev.surgery.trainer.config.SurgeryConfig}) when a given number of epochs has completed, keeps the
 * live {@code Trainer} exact through the core engine, logs one INFO line per application, writes a
 * JSON report, and records what it did in the model's {@code surgery} property. {@link
 * dev.surgery.trainer.SurgeryCheckpoint} replays that record on the original architecture before
 * loading a checkpoint, so checkpoints taken after surgery load bit for bit.
 */
package dev.surgery.trainer;
