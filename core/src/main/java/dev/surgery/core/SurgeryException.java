package dev.surgery.core;

/**
 * A surgery that could not be completed. When this is thrown by {@link ModuleSurgery}, the model,
 * the trainers' parameter stores and the optimizer state are exactly as they were before the call.
 * The message names the block path where the problem was found.
 */
public class SurgeryException extends RuntimeException {

  private static final long serialVersionUID = 1L;

  /** The path of the block where the surgery failed, or null when it is not known. */
  private final String blockPath;

  /**
   * Creates an exception for a problem at a block.
   *
   * @param blockPath the stable path of the block (see {@link BlockPaths}), or null when no block
   *     is concerned
   * @param message what went wrong
   * @param cause the underlying failure, may be null
   */
  public SurgeryException(String blockPath, String message, Throwable cause) {
    super(blockPath == null ? message : "at " + blockPath + ": " + message, cause);
    this.blockPath = blockPath;
  }

  /**
   * Creates an exception for a problem at a block.
   *
   * @param blockPath the block path, may be null
   * @param message what went wrong
   */
  public SurgeryException(String blockPath, String message) {
    this(blockPath, message, null);
  }

  /**
   * Returns the path of the block where surgery failed.
   *
   * @return the block path, or null when the failure concerns no single block
   */
  public String getBlockPath() {
    return blockPath;
  }
}
