package dev.surgery.trainer;

import ai.djl.nn.convolutional.Conv2d;

/**
 * A test replacement for {@link Conv2d} with new Parameter objects (initialized by the engine), so
 * that surgery with it removes parameters from the trainer and adds others.
 */
final class FreshConv2d extends Conv2d {

  FreshConv2d(Conv2d original) {
    super(
        Conv2d.builder()
            .setKernelShape(original.getKernelShape())
            .optStride(original.getStride())
            .optPadding(original.getPadding())
            .optDilation(original.getDilation())
            .setFilters(original.getFilters())
            .optGroups(original.getGroups())
            .optBias(original.isIncludeBias()));
  }
}
