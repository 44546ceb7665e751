package dev.surgery.trainer;

/**
 * A scheduled surgery failed while {@code on_error} is {@code fail}: training stops. The model is
 * as it was before the failed algorithm (the engine rolls back); surgery that ran before it stays.
 */
public final class SurgeryFailedException extends RuntimeException {

  private static final long serialVersionUID = 1L;

  /** The name of the algorithm whose surgery failed. */
  private final String algorithm;

  /** The number of completed epochs when it ran. */
  private final int epoch;

  /** The block where it failed, or null when no single block is concerned. */
  private final String blockPath;

  /**
   * Creates the exception.
   *
   * @param message the full message, naming the algorithm, epoch and block path
   * @param algorithm the algorithm's config name
   * @param epoch the number of completed epochs when it ran
   * @param blockPath the block where it failed, or null when no single block is concerned
   * @param cause the algorithm's exception
   */
  public SurgeryFailedException(
      String message, String algorithm, int epoch, String blockPath, Throwable cause) {
    super(message, cause);
    this.algorithm = algorithm;
    this.epoch = epoch;
    this.blockPath = blockPath;
  }

  /**
   * Returns the config name of the algorithm that failed.
   *
   * @return the algorithm name
   */
  public String getAlgorithm() {
    return algorithm;
  }

  /**
   * Returns the number of completed epochs when it failed.
   *
   * @return the epoch
   */
  public int getEpoch() {
    return epoch;
  }

  /**
   * Returns the path of the block where the surgery failed.
   *
   * @return the block path, or null
   */
  public String getBlockPath() {
    return blockPath;
  }
}
