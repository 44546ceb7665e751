package dev.surgery.core.layers;

/**
 * Marks a block that stands where a convolution stood and computes one (wrapped, gated or
 * factorized): algorithms that look for convolutions by role, such as stochastic depth finding
 * residual units, count it as one. DJL's {@code Conv2d} and its subclasses count already; a new
 * layer joins by implementing this interface, without changes to those algorithms.
 */
public interface ConvolutionLayer {}
