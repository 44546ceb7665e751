package dev.surgery.core;

import ai.djl.nn.Block;
import ai.djl.nn.LambdaBlock;
import dev.surgery.core.internal.BlockFields;
import dev.surgery.core.internal.BlockFields.TieKind;
import dev.surgery.core.internal.CapturedFunctions;
import dev.surgery.core.internal.DjlBlocks;

/**
 * Tells, for each block a surgery's first walk meets and each replacement it receives, whether its
 * own fields may reach another block of the tree (weight tying), so that the surgery can look at it
 * again once something was replaced. Asked once per block of every tree, so the answers per class
 * are kept in a small table of its own (a tree has few distinct classes; {@code ClassValue} costs
 * more per lookup than the rest of the walk's work on a leaf), and so is whether each lambda class
 * DJL's function blocks hold captured anything (identity, activation and pooling blocks share a
 * few).
 */
final class TieLookout {

  private static final int WIDTH = 16;

  private final Class<?>[] blockClasses = new Class<?>[WIDTH];
  private final TieKind[] kinds = new TieKind[WIDTH];
  private int blockClassCount;

  private final Class<?>[] functionClasses = new Class<?>[WIDTH];
  private final boolean[] inert = new boolean[WIDTH];
  private int functionClassCount;

  /** Whether the block's own fields may reach another block. */
  boolean mayTie(Block block) {
    Class<?> type = block.getClass();
    TieKind kind = null;
    for (int i = 0; i < blockClassCount; i++) {
      if (blockClasses[i] == type) {
        kind = kinds[i];
        break;
      }
    }
    if (kind == null) {
      kind = BlockFields.tieKind(type);
      if (blockClassCount < WIDTH) {
        blockClasses[blockClassCount] = type;
        kinds[blockClassCount++] = kind;
      }
    }
    if (kind == TieKind.NONE) {
      return false;
    }
    if (kind == TieKind.LAMBDA_BLOCK) {
      Object function = DjlBlocks.lambdaFunction((LambdaBlock) block);
      return function != null && !inertFunction(function);
    }
    return BlockFields.fieldsMayReferenceBlocks(block);
  }

  private boolean inertFunction(Object function) {
    Class<?> type = function.getClass();
    for (int i = 0; i < functionClassCount; i++) {
      if (functionClasses[i] == type) {
        return inert[i] || CapturedFunctions.inert(function, 2);
      }
    }
    boolean classInert = CapturedFunctions.inertFunctionClass(type);
    if (functionClassCount < WIDTH) {
      functionClasses[functionClassCount] = type;
      inert[functionClassCount++] = classInert;
    }
    return classInert || CapturedFunctions.inert(function, 2);
  }
}
