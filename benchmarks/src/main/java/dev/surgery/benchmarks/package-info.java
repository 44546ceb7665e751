/**
 * The benchmarks: plain mains B1 to B5 (live surgery against rebuilding the trainer, idle overhead
 * of the listener and of the agent across JVMs, the cost of BlurPool, scale and leaks, each
 * algorithm's effect on accuracy), JMH micro-benchmarks ({@link
 * dev.surgery.benchmarks.BlurPoolStepBenchmark}, {@link
 * dev.surgery.benchmarks.SurgeryScaleBenchmark}, {@link
 * dev.surgery.benchmarks.ListenerIdleBenchmark}) and the SVD comparison ({@link
 * dev.surgery.benchmarks.SvdComparison}). Not part of what users run.
 */
package dev.surgery.benchmarks;
