/** Small networks the samples, the GPU check and the benchmarks train. */
package dev.surgery.samples.models;
