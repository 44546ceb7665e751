/**
 * The Java half of {@code scripts/gpu-check.sh}: proves on a CUDA machine that DJL runs on the GPU
 * and that live surgery stays exact when a trainer trains device copies of the model's arrays.
 */
package dev.surgery.samples.gpu;
