/**
 * The benchmarks B1 to B5: live surgery against rebuilding the trainer, idle overhead of the
 * listener and the agent, the cost of BlurPool, scale and leaks, and each algorithm's effect on
 * accuracy.
 */
package dev.surgery.benchmarks;
