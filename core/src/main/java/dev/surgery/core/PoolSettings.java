package dev.surgery.core;

import ai.djl.ndarray.types.Shape;

/**
 * The arguments of a DJL pooling {@code LambdaBlock}, recovered from the values its lambda captured
 * (DJL keeps them nowhere else). See {@link BlockInspector#poolSettings}.
 *
 * @param name the lambda's name, for example {@code maxPool2d} or {@code avgPool2d}
 * @param kernelShape the pooling window
 * @param stride the stride
 * @param padding the padding
 * @param ceilMode whether output sizes round up
 * @param countIncludePad for average pools, whether padding counts in the mean; null for max pools
 */
public record PoolSettings(
    String name,
    Shape kernelShape,
    Shape stride,
    Shape padding,
    boolean ceilMode,
    Boolean countIncludePad) {}
