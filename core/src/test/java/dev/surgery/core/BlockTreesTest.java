package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.ParameterList;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.util.Pair;
import dev.surgery.core.testing.PassThroughBlock;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The tree walks' view of blocks: the parameters DJL sees, and whether all have arrays. */
class BlockTreesTest {

  private static Parameter weight(String name) {
    return Parameter.builder()
        .setName(name)
        .setType(Parameter.Type.WEIGHT)
        .optShape(new Shape(2))
        .build();
  }

  /** Lists, beside the one in its map, a parameter it keeps elsewhere: DJL sees both. */
  static final class OwnListing extends PassThroughBlock {
    final Parameter extra = weight("extra");

    OwnListing() {
      addParameter(weight("mapped"));
    }

    @Override
    public ParameterList getDirectParameters() {
      ParameterList all = new ParameterList();
      for (Pair<String, Parameter> p : super.getDirectParameters()) {
        all.add(p);
      }
      all.add("extra", extra);
      return all;
    }
  }

  /**
   * A block's direct parameters are the ones DJL's {@code getDirectParameters} lists (the trainer
   * registers and saves those): where a class overrides it, and for a block that is no {@code
   * AbstractBlock}, as for DJL's own layers.
   */
  @Test
  void directParametersAreTheOnesDjlSees() {
    ParameterList foreignList = new ParameterList();
    foreignList.add("w", weight("w"));
    Block foreign = Fixtures.foreignBlock("getDirectParameters", foreignList);
    for (Block block : List.of(new OwnListing(), Linear.builder().setUnits(2).build(), foreign)) {
      assertEquals(
          new ArrayList<>(block.getDirectParameters().values()),
          new ArrayList<>(BlockTrees.directParameters(block)),
          block.getClass().getSimpleName());
    }
    assertEquals(2, BlockTrees.directParameters(new OwnListing()).size());
  }

  @Test
  void allInitializedTellsWhetherEveryParameterBelowHasAnArray() {
    Linear first = Linear.builder().setUnits(2).build();
    Linear second = Linear.builder().setUnits(2).build();
    SequentialBlock root = new SequentialBlock().add(first).add(second);
    try (NDManager manager = NDManager.newBaseManager()) {
      assertFalse(BlockTrees.allInitialized(root));
      first.initialize(manager, DataType.FLOAT32, new Shape(1, 3));
      assertFalse(BlockTrees.allInitialized(root), "the second layer has none yet");
      second.initialize(manager, DataType.FLOAT32, new Shape(1, 2));
      assertTrue(BlockTrees.allInitialized(root));
      assertTrue(root.getParameters().values().stream().allMatch(Parameter::isInitialized));
    }
  }
}
