/**
 * Runnable training jobs: a DJL ResNet image classifier that knows nothing of surgery (run under
 * the agent), the same job with a {@code SurgeryListener} in code, and a job that resumes from a
 * checkpoint taken after surgery.
 */
package dev.surgery.samples.jobs;
