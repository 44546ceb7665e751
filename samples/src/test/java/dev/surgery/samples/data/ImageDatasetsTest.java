package dev.surgery.samples.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.dataset.Batch;
import ai.djl.training.dataset.RandomAccessDataset;
import dev.surgery.samples.data.ImageDatasets.ImageData;
import java.awt.Color;
import java.awt.image.BufferedImage;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Reads tiny MNIST, CIFAR-10 and image-folder files written by the test. */
class ImageDatasetsTest {

  @TempDir Path dir;

  /** Writes an idx image file: magic 2051, count, 28, 28, then one byte per pixel. */
  private static void writeIdxImages(Path file, int count) throws IOException {
    try (DataOutputStream out = new DataOutputStream(Files.newOutputStream(file))) {
      out.writeInt(2051);
      out.writeInt(count);
      out.writeInt(28);
      out.writeInt(28);
      for (int i = 0; i < count; i++) {
        for (int p = 0; p < 28 * 28; p++) {
          // Image i: pixel p is (i * 20 + p) mod 256, so values and order can be checked.
          out.writeByte((i * 20 + p) % 256);
        }
      }
    }
  }

  /** Writes an idx label file: magic 2049, count, then one byte per label. */
  private static void writeIdxLabels(Path file, int count) throws IOException {
    try (DataOutputStream out = new DataOutputStream(Files.newOutputStream(file))) {
      out.writeInt(2049);
      out.writeInt(count);
      for (int i = 0; i < count; i++) {
        out.writeByte((i * 3) % 10);
      }
    }
  }

  /** Writes CIFAR-10 binary records: label byte, then 1024 R, 1024 G, 1024 B bytes (constant). */
  private static void writeCifar(Path file, int count) throws IOException {
    try (OutputStream out = Files.newOutputStream(file)) {
      for (int i = 0; i < count; i++) {
        out.write((i * 7) % 10);
        for (int channel = 0; channel < 3; channel++) {
          byte value = (byte) (i * 10 + channel * 50);
          for (int p = 0; p < 1024; p++) {
            out.write(value);
          }
        }
      }
    }
  }

  /** A local MNIST-style dataset in {@code dir}: IDX images and labels for training and test. */
  private void writeIdxDataset(int train, int test) throws IOException {
    writeIdxImages(dir.resolve("train_data"), train);
    writeIdxLabels(dir.resolve("train_labels"), train);
    writeIdxImages(dir.resolve("test_data"), test);
    writeIdxLabels(dir.resolve("test_labels"), test);
  }

  private static Batch firstBatch(RandomAccessDataset dataset, NDManager manager) throws Exception {
    return dataset.getData(manager).iterator().next();
  }

  private static ImageDatasets.Request request(String dataset, Path dataDir, int maxBatches) {
    return new ImageDatasets.Request(dataset, dataDir, 2, maxBatches, 28, 1);
  }

  @Test
  void readsLocalMnistIdxFiles() throws Exception {
    writeIdxDataset(6, 4);
    ImageData data = ImageDatasets.open(request("mnist", dir, 0));
    assertEquals(6, data.train().size());
    assertEquals(4, data.validation().size());
    assertEquals(new Shape(1, 28, 28), data.imageShape());
    assertEquals(10, data.classes());
    try (NDManager manager = NDManager.newBaseManager();
        Batch batch = firstBatch(data.validation(), manager)) {
      NDArray images = batch.getData().head();
      assertEquals(new Shape(2, 1, 28, 28), images.getShape());
      // ToTensor scales bytes to [0, 1]: pixel (0, 0, 5) of test image 1 was (20 + 5) / 255.
      assertEquals(25 / 255f, images.getFloat(1, 0, 0, 5), 1e-6);
      assertEquals(3f, batch.getLabels().head().getFloat(1));
    }
  }

  @Test
  void readsLocalFashionMnistAndHonoursMaxBatches() throws Exception {
    writeIdxDataset(10, 10);
    ImageData data = ImageDatasets.open(request("fashion-mnist", dir, 2));
    // 2 batches of 2.
    assertEquals(4, data.train().size());
    assertEquals(4, data.validation().size());
    try (NDManager manager = NDManager.newBaseManager()) {
      int batches = 0;
      for (Batch batch : data.train().getData(manager)) {
        assertEquals(new Shape(2, 1, 28, 28), batch.getData().head().getShape());
        batches++;
        batch.close();
      }
      assertEquals(2, batches);
    }
  }

  @Test
  void readsLocalCifar10Binaries() throws Exception {
    writeCifar(dir.resolve("data_batch.bin"), 5);
    writeCifar(dir.resolve("test_batch.bin"), 3);
    // Side 28 crops the 32 x 32 images (as the jobs do), applied to whole NHWC batches.
    ImageData data = ImageDatasets.open(request("cifar10", dir, 0));
    assertEquals(5, data.train().size());
    assertEquals(3, data.validation().size());
    assertEquals(new Shape(3, 28, 28), data.imageShape());
    try (NDManager manager = NDManager.newBaseManager();
        Batch batch = firstBatch(data.validation(), manager)) {
      NDArray images = batch.getData().head();
      assertEquals(new Shape(2, 3, 28, 28), images.getShape());
      // Constant images stay constant when cropped: channel c of record 1 is 10 + 50 c.
      for (int c = 0; c < 3; c++) {
        assertEquals((10 + 50 * c) / 255f, images.getFloat(1, c, 13, 7), 1e-3);
      }
      assertEquals(7f, batch.getLabels().head().getFloat(1));
    }
  }

  @Test
  void readsAnImageFolder() throws Exception {
    Color[] colors = {Color.RED, Color.BLUE};
    for (int c = 0; c < 2; c++) {
      Path folder = Files.createDirectories(dir.resolve("class" + c));
      for (int i = 0; i < 10; i++) {
        BufferedImage image = new BufferedImage(40, 30, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < 30; y++) {
          for (int x = 0; x < 40; x++) {
            image.setRGB(x, y, colors[c].getRGB());
          }
        }
        ImageIO.write(image, "png", folder.resolve(i + ".png").toFile());
      }
    }
    ImageData data = ImageDatasets.open(request("imagefolder", dir, 0));
    assertEquals(2, data.classes());
    assertEquals(20, data.train().size() + data.validation().size());
    assertEquals(18, data.train().size());
    try (NDManager manager = NDManager.newBaseManager();
        Batch batch = firstBatch(data.train(), manager)) {
      NDArray images = batch.getData().head();
      assertEquals(new Shape(2, 3, 28, 28), images.getShape());
      for (int i = 0; i < 2; i++) {
        int label = (int) batch.getLabels().head().getLong(i);
        // Red images in class0, blue in class1.
        assertEquals(1f, images.getFloat(i, label == 0 ? 0 : 2, 10, 10), 1e-3);
        assertEquals(0f, images.getFloat(i, 1, 10, 10), 1e-3);
      }
    }
  }

  /** An empty class folder is named, not counted as a class the model never sees. */
  @Test
  void anEmptyClassFolderIsRefusedByName() throws Exception {
    Path cats = Files.createDirectories(dir.resolve("cats"));
    Files.createDirectories(dir.resolve("dogs"));
    for (int i = 0; i < 4; i++) {
      ImageIO.write(
          new BufferedImage(8, 8, BufferedImage.TYPE_INT_RGB),
          "png",
          cats.resolve(i + ".png").toFile());
    }
    DatasetUnavailableException e =
        assertThrows(
            DatasetUnavailableException.class,
            () -> ImageDatasets.open(request("imagefolder", dir, 0)));
    assertTrue(e.getMessage().contains("dogs holds no image"), e.getMessage());
  }

  @Test
  void missingFilesGiveAClearMessage() {
    DatasetUnavailableException e =
        assertThrows(
            DatasetUnavailableException.class, () -> ImageDatasets.open(request("mnist", dir, 0)));
    assertTrue(e.getMessage().contains("train_data"), e.getMessage());
    assertTrue(e.getMessage().contains(dir.toString()), e.getMessage());
    DatasetUnavailableException notDir =
        assertThrows(
            DatasetUnavailableException.class,
            () -> ImageDatasets.open(request("cifar10", dir.resolve("nope"), 0)));
    assertTrue(notDir.getMessage().contains("not a directory"), notDir.getMessage());
  }

  @Test
  void offlineWithoutDataDirSaysToPassDataDir() {
    DatasetUnavailableException e =
        assertThrows(
            DatasetUnavailableException.class,
            () -> ImageDatasets.open(request("cifar10", null, 0)));
    assertTrue(e.getMessage().contains("--data-dir"), e.getMessage());
    assertTrue(e.getMessage().contains("could not download cifar10"), e.getMessage());
  }

  @Test
  void unknownDatasetIsRefused() {
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> request("imagenet", null, 0));
    assertTrue(e.getMessage().contains("mnist"), e.getMessage());
  }
}
