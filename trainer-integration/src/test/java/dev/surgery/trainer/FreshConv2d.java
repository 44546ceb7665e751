package dev.surgery.trainer;

import ai.djl.nn.convolutional.Conv2d;
import dev.surgery.core.layers.AdoptingConv2d;

/**
 * A test replacement for {@link Conv2d} with new Parameter objects (initialized by the engine), so
 * that surgery with it removes parameters from the trainer and adds others.
 */
final class FreshConv2d extends Conv2d {

  FreshConv2d(Conv2d original) {
    super(AdoptingConv2d.settingsOf(original));
  }
}
