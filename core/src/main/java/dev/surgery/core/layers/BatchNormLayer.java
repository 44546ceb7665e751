package dev.surgery.core.layers;

/**
 * Marks a block that stands where a batch norm stood and normalizes like one: algorithms that look
 * for batch norms by role, such as stochastic depth finding a residual unit's projection shortcut,
 * count it as one. DJL's {@code BatchNorm} counts already; a new layer joins by implementing this
 * interface, without changes to those algorithms.
 */
public interface BatchNormLayer {}
