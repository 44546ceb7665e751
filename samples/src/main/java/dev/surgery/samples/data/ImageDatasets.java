package dev.surgery.samples.data;

import ai.djl.basicdataset.cv.classification.Cifar10;
import ai.djl.basicdataset.cv.classification.FashionMnist;
import ai.djl.basicdataset.cv.classification.ImageFolder;
import ai.djl.basicdataset.cv.classification.Mnist;
import ai.djl.modality.cv.transform.Resize;
import ai.djl.modality.cv.transform.ToTensor;
import ai.djl.ndarray.types.Shape;
import ai.djl.repository.Repository;
import ai.djl.training.dataset.Dataset;
import ai.djl.training.dataset.RandomAccessDataset;
import ai.djl.translate.Pipeline;
import ai.djl.translate.TranslateException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.function.Function;

/**
 * Opens the datasets the sample jobs train on, all as {@code (channels, side, side)} float tensors
 * in {@code [0, 1]}: the generated {@link SyntheticImages} (the default, no download), DJL's MNIST,
 * Fashion-MNIST and CIFAR-10 (from local files with {@code --data-dir}, else downloaded as DJL
 * does), and a local {@code ImageFolder} (one subfolder per class).
 */
public final class ImageDatasets {

  /** The dataset names accepted by {@code --dataset}. */
  public static final List<String> NAMES =
      List.of("synthetic", "mnist", "fashion-mnist", "cifar10", "imagefolder");

  private ImageDatasets() {}

  /**
   * A training set, a validation set, and what a network needs to know about them.
   *
   * @param name the dataset name
   * @param train the training set
   * @param validation the validation set
   * @param imageShape one image, {@code (channels, height, width)}
   * @param classes the number of classes
   */
  public record ImageData(
      String name,
      RandomAccessDataset train,
      RandomAccessDataset validation,
      Shape imageShape,
      int classes) {}

  /**
   * What to open and how to batch it.
   *
   * @param dataset one of {@link #NAMES}
   * @param dataDir local files, or null to use the default source (generated or downloaded)
   * @param batchSize the batch size
   * @param maxBatches the number of batches per epoch to keep (training and validation), or 0 for
   *     all
   * @param side the image side the network takes; images are cropped or resized to it
   * @param seed the seed of the generated dataset and of splits
   */
  public record Request(
      String dataset, Path dataDir, int batchSize, int maxBatches, int side, long seed) {

    /** Validates the request. */
    public Request {
      dataset = dataset.toLowerCase(Locale.ROOT);
      if (!NAMES.contains(dataset)) {
        throw new IllegalArgumentException(
            "unknown dataset '" + dataset + "'; expected one of " + NAMES);
      }
      if (batchSize < 1 || maxBatches < 0 || side < 8) {
        throw new IllegalArgumentException(
            "batchSize must be >= 1, maxBatches >= 0 and side >= 8, got "
                + batchSize
                + ", "
                + maxBatches
                + ", "
                + side);
      }
    }

    private long limit() {
      return maxBatches == 0 ? Long.MAX_VALUE : (long) maxBatches * batchSize;
    }
  }

  /**
   * Opens and prepares the requested dataset.
   *
   * @param request what to open
   * @return the prepared training and validation sets
   * @throws DatasetUnavailableException if the files are missing or cannot be downloaded
   */
  public static ImageData open(Request request) {
    try {
      switch (request.dataset()) {
        case "synthetic":
          return synthetic(request);
        case "mnist":
        case "fashion-mnist":
          return mnist(request);
        case "cifar10":
          return cifar10(request);
        default:
          return imageFolder(request);
      }
    } catch (IOException | TranslateException | RuntimeException e) {
      if (e instanceof DatasetUnavailableException d) {
        throw d;
      }
      throw new DatasetUnavailableException(describeFailure(request, e), e);
    }
  }

  private static String describeFailure(Request request, Exception cause) {
    String what = request.dataset();
    String files =
        switch (what) {
          case "mnist", "fashion-mnist" ->
              "the raw (uncompressed) idx files train_data, train_labels, test_data, test_labels";
          case "cifar10" ->
              "the CIFAR-10 binary batches as data_batch.bin (data_batch_1..5 concatenated) and"
                  + " test_batch.bin";
          default -> "one subfolder of images per class";
        };
    if (request.dataDir() == null) {
      return "could not download "
          + what
          + " ("
          + cause.getMessage()
          + "). DJL runs offline here (DJL_OFFLINE=true) or the network is unreachable: download"
          + " the dataset yourself and pass --data-dir DIR, a directory with "
          + files;
    }
    return "could not read "
        + what
        + " from "
        + request.dataDir()
        + " ("
        + cause.getMessage()
        + "): the directory must hold "
        + files;
  }

  private static ImageData synthetic(Request request) {
    if (request.dataDir() != null) {
      throw new DatasetUnavailableException(
          "the synthetic dataset is generated and takes no --data-dir", null);
    }
    SyntheticImages train =
        SyntheticImages.builder()
            .optSize(2048)
            .optSeed(request.seed())
            .optPipeline(pipeline(32, request.side()))
            .setSampling(request.batchSize(), true)
            .optLimit(request.limit())
            .build();
    SyntheticImages validation =
        SyntheticImages.builder()
            .optSize(512)
            .optSeed(request.seed() + 1)
            .optPipeline(pipeline(32, request.side()))
            .setSampling(request.batchSize(), false)
            .optLimit(request.limit())
            .build();
    return new ImageData(
        "synthetic",
        train,
        validation,
        new Shape(3, request.side(), request.side()),
        train.getClasses());
  }

  private static ImageData mnist(Request request) throws IOException, TranslateException {
    boolean fashion = request.dataset().equals("fashion-mnist");
    RandomAccessDataset[] sets = new RandomAccessDataset[2];
    Dataset.Usage[] usages = {Dataset.Usage.TRAIN, Dataset.Usage.TEST};
    for (int i = 0; i < 2; i++) {
      if (fashion) {
        FashionMnist.Builder b = FashionMnist.builder().optUsage(usages[i]);
        if (request.dataDir() != null) {
          b.optRepository(localRepository(request.dataDir()));
        }
        sets[i] = prepared(b, FashionMnist.Builder::build, request, 28, i == 0);
      } else {
        Mnist.Builder b = Mnist.builder().optUsage(usages[i]);
        if (request.dataDir() != null) {
          b.optRepository(localRepository(request.dataDir()));
        }
        sets[i] = prepared(b, Mnist.Builder::build, request, 28, i == 0);
      }
    }
    return new ImageData(
        request.dataset(), sets[0], sets[1], new Shape(1, request.side(), request.side()), 10);
  }

  /**
   * Gives one split of a DJL archive dataset the request's pipeline, batches and limit, then builds
   * and prepares it (downloading or reading the archive).
   */
  private static <B extends RandomAccessDataset.BaseBuilder<B>> RandomAccessDataset prepared(
      B builder, Function<B, RandomAccessDataset> build, Request request, int side, boolean train)
      throws IOException, TranslateException {
    builder
        .optPipeline(pipeline(side, request.side()))
        .setSampling(request.batchSize(), train)
        .optLimit(request.limit());
    RandomAccessDataset set = build.apply(builder);
    set.prepare();
    return set;
  }

  private static ImageData cifar10(Request request) throws IOException, TranslateException {
    RandomAccessDataset[] sets = new RandomAccessDataset[2];
    Dataset.Usage[] usages = {Dataset.Usage.TRAIN, Dataset.Usage.TEST};
    for (int i = 0; i < 2; i++) {
      Cifar10.Builder b = Cifar10.builder().optUsage(usages[i]);
      if (request.dataDir() != null) {
        b.optRepository(localRepository(request.dataDir()));
      }
      sets[i] = prepared(b, Cifar10.Builder::build, request, 32, i == 0);
    }
    return new ImageData(
        "cifar10", sets[0], sets[1], new Shape(3, request.side(), request.side()), 10);
  }

  private static ImageData imageFolder(Request request) throws IOException, TranslateException {
    if (request.dataDir() == null) {
      throw new DatasetUnavailableException(
          "--dataset imagefolder needs --data-dir DIR, a directory with one subfolder of images per"
              + " class",
          null);
    }
    ImageFolder folder =
        ImageFolder.builder()
            .setRepositoryPath(request.dataDir())
            .addTransform(new Resize(request.side(), request.side()))
            .addTransform(new ToTensor())
            .setSampling(request.batchSize(), true)
            .optLimit(request.limit() == Long.MAX_VALUE ? Long.MAX_VALUE : request.limit() * 10 / 9)
            .build();
    folder.prepare();
    int classes = folder.getSynset().size();
    if (classes < 2) {
      throw new DatasetUnavailableException(
          "ImageFolder "
              + request.dataDir()
              + " has "
              + classes
              + " class folder(s); at least 2 are needed",
          null);
    }
    for (String name : folder.getSynset()) {
      Path classDir = request.dataDir().resolve(name);
      try (java.util.stream.Stream<Path> files = Files.list(classDir)) {
        if (files.noneMatch(Files::isRegularFile)) {
          // ImageFolder counts it as a class all the same, and the model trains on the others.
          throw new DatasetUnavailableException(
              "ImageFolder class folder " + classDir + " holds no image", null);
        }
      }
    }
    // 90 % training, 10 % validation, shuffled with the sampler's random order.
    RandomAccessDataset[] split = folder.randomSplit(9, 1);
    return new ImageData(
        "imagefolder", split[0], split[1], new Shape(3, request.side(), request.side()), classes);
  }

  /** A local directory as a DJL repository; its file names are the artifact's item names. */
  private static Repository localRepository(Path dir) {
    if (!Files.isDirectory(dir)) {
      throw new DatasetUnavailableException("--data-dir " + dir + " is not a directory", null);
    }
    return Repository.newInstance("local", dir.toAbsolutePath());
  }

  /** HWC [0, 255] images of side {@code source} to CHW [0, 1] tensors of side {@code side}. */
  private static Pipeline pipeline(int source, int side) {
    Pipeline pipeline = new Pipeline();
    if (side < source && source - side <= 4) {
      // Small margins: crop (keeps the pixels as they are).
      pipeline.add(new CenterCropTransform(side));
    } else if (side != source) {
      pipeline.add(new Resize(side, side));
    }
    return pipeline.add(new ToTensor());
  }
}
