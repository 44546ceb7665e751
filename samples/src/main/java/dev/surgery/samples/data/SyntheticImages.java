package dev.surgery.samples.data;

import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.dataset.RandomAccessDataset;
import ai.djl.training.dataset.Record;
import ai.djl.util.Progress;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * A procedurally generated image-classification dataset that needs no download: every class is a
 * sine grating with its own orientation, drawn in one of five colors, with a random phase, a random
 * tilt, random contrast and brightness, and strong Gaussian pixel noise. A class is identified by
 * its orientation and its color together (classes {@code c} and {@code c + 5} share a color and
 * differ by 90 degrees), so a network has to learn both.
 *
 * <p>Images are {@code (height, width, 3)} float arrays with values in {@code [0, 255]}, like DJL's
 * MNIST and CIFAR-10 datasets, so the same transforms ({@code ToTensor} and friends) apply. Sample
 * {@code i} depends only on the seed and {@code i}: the dataset is deterministic for a seed, and
 * two datasets with different seeds (train and validation) share no images.
 */
public final class SyntheticImages extends RandomAccessDataset {

  /** The five colors (RGB in [0, 1]) that classes cycle through. */
  private static final float[][] COLORS = {
    {0.9f, 0.2f, 0.2f},
    {0.2f, 0.8f, 0.2f},
    {0.2f, 0.3f, 0.95f},
    {0.9f, 0.8f, 0.1f},
    {0.7f, 0.2f, 0.9f}
  };

  private final long size;
  private final int classes;
  private final int imageSize;
  private final long seed;
  private final float noise;

  private SyntheticImages(Builder builder) {
    super(builder);
    this.size = builder.size;
    this.classes = builder.classes;
    this.imageSize = builder.imageSize;
    this.seed = builder.seed;
    this.noise = builder.noise;
  }

  /**
   * Creates a builder; call {@code setSampling} on it before {@code build}.
   *
   * @return a new builder
   */
  public static Builder builder() {
    return new Builder();
  }

  /**
   * Returns the number of classes.
   *
   * @return the number of classes
   */
  public int getClasses() {
    return classes;
  }

  /**
   * Returns the image side in pixels.
   *
   * @return the height and width
   */
  public int getImageSize() {
    return imageSize;
  }

  /**
   * Returns the class names, {@code grating-0} ... {@code grating-(n-1)}.
   *
   * @return the names, by label
   */
  public List<String> getClassNames() {
    List<String> names = new ArrayList<>(classes);
    for (int c = 0; c < classes; c++) {
      names.add("grating-" + c);
    }
    return names;
  }

  /** {@inheritDoc} */
  @Override
  public Record get(NDManager manager, long index) {
    Sample sample = sample(index);
    NDList data = new NDList(manager.create(sample.pixels(), new Shape(imageSize, imageSize, 3)));
    NDList label = new NDList(manager.create((float) sample.label()));
    return new Record(data, label);
  }

  /**
   * Computes sample {@code index} without an {@code NDManager}: the label and the {@code (height,
   * width, 3)} pixels in row-major order, values in {@code [0, 255]}.
   *
   * @param index the sample index, {@code 0 <= index < size}
   * @return the sample
   */
  public Sample sample(long index) {
    if (index < 0 || index >= size) {
      throw new IndexOutOfBoundsException("index " + index + " outside [0, " + size + ")");
    }
    // One generator per sample, seeded from (seed, index): random access stays deterministic.
    SplittableRandom random = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + index);
    int label = (int) (index % classes);
    // Orientations spread over half a turn; colors cycle every five classes.
    double angle = Math.PI * label / classes + random.nextDouble(-0.12, 0.12);
    double frequency = 3.0 + (label % 3) * 0.5;
    double phase = random.nextDouble(0, 2 * Math.PI);
    double contrast = random.nextDouble(0.3, 1.0);
    double brightness = random.nextDouble(-0.15, 0.15);
    float[] color = COLORS[label % COLORS.length];
    double cos = Math.cos(angle);
    double sin = Math.sin(angle);
    float[] pixels = new float[imageSize * imageSize * 3];
    int i = 0;
    for (int y = 0; y < imageSize; y++) {
      for (int x = 0; x < imageSize; x++) {
        double u = (x * cos + y * sin) / imageSize;
        double wave = 0.5 + 0.5 * contrast * Math.sin(2 * Math.PI * frequency * u + phase);
        for (int ch = 0; ch < 3; ch++) {
          // Dark background blended towards the class color by the grating.
          double value =
              0.1 + brightness + wave * (color[ch] - 0.1) + noise * random.nextGaussian();
          pixels[i++] = (float) (255 * Math.min(1.0, Math.max(0.0, value)));
        }
      }
    }
    return new Sample(label, pixels);
  }

  /** {@inheritDoc} */
  @Override
  protected long availableSize() {
    return size;
  }

  /** {@inheritDoc} */
  @Override
  public void prepare(Progress progress) {
    // Generated on demand: nothing to prepare.
  }

  /**
   * One generated sample.
   *
   * @param label the class
   * @param pixels {@code (height, width, 3)} values in {@code [0, 255]}, row-major
   */
  public record Sample(int label, float[] pixels) {}

  /** Builds {@link SyntheticImages}. */
  public static final class Builder extends RandomAccessDataset.BaseBuilder<Builder> {

    private long size = 2048;
    private int classes = 10;
    private int imageSize = 32;
    private long seed = 42;
    private float noise = 0.35f;

    Builder() {}

    /** {@inheritDoc} */
    @Override
    protected Builder self() {
      return this;
    }

    /**
     * Sets the number of samples (default 2048).
     *
     * @param size the number of samples, at least 1
     * @return this builder
     */
    public Builder optSize(long size) {
      if (size < 1) {
        throw new IllegalArgumentException("size must be >= 1, got " + size);
      }
      this.size = size;
      return this;
    }

    /**
     * Sets the number of classes (default 10).
     *
     * @param classes the number of classes, 2 to 1000
     * @return this builder
     */
    public Builder optClasses(int classes) {
      if (classes < 2 || classes > 1000) {
        throw new IllegalArgumentException("classes must be in [2, 1000], got " + classes);
      }
      this.classes = classes;
      return this;
    }

    /**
     * Sets the image side in pixels (default 32).
     *
     * @param imageSize the height and width, at least 8
     * @return this builder
     */
    public Builder optImageSize(int imageSize) {
      if (imageSize < 8) {
        throw new IllegalArgumentException("imageSize must be >= 8, got " + imageSize);
      }
      this.imageSize = imageSize;
      return this;
    }

    /**
     * Sets the seed that determines every image (default 42).
     *
     * @param seed the seed
     * @return this builder
     */
    public Builder optSeed(long seed) {
      this.seed = seed;
      return this;
    }

    /**
     * Sets the standard deviation of the Gaussian pixel noise, in units of the full range (default
     * 0.35).
     *
     * @param noise the noise level, 0 to 1
     * @return this builder
     */
    public Builder optNoise(float noise) {
      if (!(noise >= 0 && noise <= 1)) {
        throw new IllegalArgumentException("noise must be in [0, 1], got " + noise);
      }
      this.noise = noise;
      return this;
    }

    /**
     * Builds the dataset.
     *
     * @return the dataset
     */
    public SyntheticImages build() {
      return new SyntheticImages(this);
    }
  }
}
