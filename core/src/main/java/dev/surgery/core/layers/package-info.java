/**
 * The DJL blocks the algorithms put into a model (blurred convolutions and pools, factorized and
 * squeeze-excite blocks, ghost batch norm, stochastic residuals, weight-standardized convolutions),
 * usable on their own as ordinary blocks.
 */
package dev.surgery.core.layers;
