package dev.surgery.core.testing;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.dataset.Batch;
import ai.djl.translate.TranslateException;
import java.io.IOException;

/** Generated data a tiny network learns in an epoch or two, and the loss measured over it. */
public final class TinyData {

  private TinyData() {}

  /**
   * Generated 4-class images: brightness encodes the class (class {@code k} has mean {@code k -
   * 1.5}, noise 0.3), so a tiny CNN learns it quickly. Seed the engine first for fixed values.
   *
   * @param manager where the arrays live
   * @param n the number of images
   * @param channels channels per image
   * @param size the side of the square images
   * @param batch the batch size (batches in order, not shuffled)
   * @return the dataset, labels as FLOAT32 class numbers
   */
  public static ArrayDataset images(NDManager manager, int n, int channels, int size, int batch) {
    NDArray labels = manager.arange(n).toType(DataType.FLOAT32, false).mod(4);
    NDArray x =
        manager
            .randomNormal(new Shape(n, channels, size, size))
            .mul(0.3f)
            .add(labels.reshape(n, 1, 1, 1).sub(1.5f));
    return new ArrayDataset.Builder()
        .setData(x)
        .optLabels(labels)
        .setSampling(batch, false)
        .build();
  }

  /**
   * Mean loss over the whole dataset, in evaluation mode, so it measures the model and not the last
   * batch.
   *
   * @param trainer the trainer (its loss and model)
   * @param dataset the data
   * @return the mean of the per-batch losses
   * @throws IOException if the dataset cannot be read
   * @throws TranslateException if a batch cannot be prepared
   */
  public static float meanLoss(Trainer trainer, ArrayDataset dataset)
      throws IOException, TranslateException {
    float sum = 0;
    int batches = 0;
    for (Batch batch : trainer.iterateDataset(dataset)) {
      try (batch) {
        NDList predictions = trainer.evaluate(batch.getData());
        sum += trainer.getLoss().evaluate(batch.getLabels(), predictions).getFloat();
        batches++;
      }
    }
    return sum / batches;
  }
}
