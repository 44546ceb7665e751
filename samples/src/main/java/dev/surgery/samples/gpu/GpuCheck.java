package dev.surgery.samples.gpu;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.engine.StandardCapabilities;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.TrainingResult;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.listener.TrainingListener;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.translate.TranslateException;
import ai.djl.util.cuda.CudaUtils;
import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.core.algorithms.SqueezeExcite;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.internal.DjlOptimizers;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.samples.models.SmallCnn;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Enumeration;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;

/**
 * The Java half of {@code scripts/gpu-check.sh}: proves on a CUDA machine that DJL runs on the GPU
 * and that live surgery is right when the trainer trains device copies of the model's arrays.
 *
 * <ul>
 *   <li>{@code probe}: which libtorch DJL loaded (flavour, jar, library file), the CUDA runtime,
 *       every GPU DJL sees, and a matrix product computed on each of them.
 *   <li>{@code surgery [--devices N]}: a small convolutional network whose arrays live on the CPU
 *       ({@code Model.newInstance(name, Device.cpu())}) trained with Adam by a trainer on the first
 *       {@code N} GPUs (0: all), so that DJL's parameter store trains copies; then live BlurPool
 *       and squeeze-excite, checked against the values captured before (see {@link #surgery}).
 * </ul>
 *
 * <p>Every line it prints says what ran where. Exit status: 0 passed, 1 failed, 2 no GPU (DJL sees
 * none, or loaded a CPU build of libtorch): a machine without a GPU never passes. {@code --cpu}
 * runs the surgery check with the trainer on the CPU instead (no copies), for the build's own test
 * of this class.
 */
public final class GpuCheck {

  /** Exit status: every check held. */
  public static final int PASSED = 0;

  /** Exit status: a check failed. */
  public static final int FAILED = 1;

  /** Exit status: DJL sees no GPU. */
  public static final int NO_GPU = 2;

  private static final Shape IMAGE = new Shape(3, 16, 16);
  private static final int CLASSES = 4;
  private static final int BATCH = 8;

  private final PrintStream out;

  private GpuCheck(PrintStream out) {
    this.out = out;
  }

  /**
   * Runs one check and exits with its status.
   *
   * @param args {@code probe} or {@code surgery [--devices N] [--cpu]}
   */
  public static void main(String[] args) {
    System.exit(run(args, System.out));
  }

  /**
   * Runs one check.
   *
   * @param args {@code probe} or {@code surgery [--devices N] [--cpu]}
   * @param out where the report goes
   * @return {@link #PASSED}, {@link #FAILED} or {@link #NO_GPU}
   */
  public static int run(String[] args, PrintStream out) {
    GpuCheck check = new GpuCheck(out);
    List<String> list = Arrays.asList(args);
    try {
      if (list.isEmpty() || !List.of("probe", "surgery").contains(list.get(0))) {
        out.println(
            (list.isEmpty() ? "" : "unknown check: " + list.get(0) + "; ")
                + "usage: GpuCheck probe | surgery [--devices N] [--cpu]");
        return FAILED;
      }
      int gpus = check.engineReport();
      boolean cpu = list.contains("--cpu");
      if (gpus == 0 && !cpu) {
        out.println("NO GPU: DJL sees no GPU with the libtorch it loaded (see above)");
        return NO_GPU;
      }
      if (list.get(0).equals("probe")) {
        return check.probe(gpus);
      }
      int wanted = intFlag(list, "--devices", 1);
      Device[] devices =
          cpu
              ? new Device[] {Device.cpu()}
              : Engine.getInstance().getDevices(wanted == 0 ? Integer.MAX_VALUE : wanted);
      return check.surgery(devices);
    } catch (CheckFailed e) {
      out.println("FAILED: " + e.getMessage());
      return FAILED;
    } catch (Exception | AssertionError e) {
      out.println("FAILED with " + e);
      e.printStackTrace(out);
      return FAILED;
    }
  }

  // ------------------------------------------------------------------ probe

  /** Prints the engine, native library and GPUs; returns the GPU count DJL sees. */
  private int engineReport() throws IOException {
    Engine engine = Engine.getInstance();
    out.println("engine: " + engine.getEngineName() + " " + engine.getVersion());
    Enumeration<URL> natives =
        Thread.currentThread()
            .getContextClassLoader()
            .getResources("native/lib/pytorch.properties");
    boolean bundled = false;
    while (natives.hasMoreElements()) {
      URL url = natives.nextElement();
      Properties p = new Properties();
      try (InputStream in = url.openStream()) {
        p.load(in);
      }
      if (p.getProperty("placeholder") == null) {
        bundled = true;
        out.println(
            "native jar on the class path: flavour "
                + p.getProperty("flavor")
                + ", "
                + p.getProperty("classifier")
                + ", "
                + p.getProperty("version")
                + " ("
                + url
                + ")");
      }
    }
    if (!bundled) {
      out.println("native jar on the class path: none (DJL downloads or uses its cache)");
    }
    for (String library : loadedLibraries("libtorch")) {
      out.println("loaded: " + library);
    }
    boolean cuda = engine.hasCapability(StandardCapabilities.CUDA);
    out.println(
        "capabilities: CUDA "
            + cuda
            + ", CUDNN "
            + engine.hasCapability(StandardCapabilities.CUDNN));
    int gpus = engine.getGpuCount();
    if (gpus > 0) {
      out.println("CUDA runtime (libcudart DJL found): " + CudaUtils.getCudaVersionString());
    }
    out.println("GPUs DJL sees: " + gpus + ", default device " + engine.defaultDevice());
    for (int i = 0; i < gpus; i++) {
      Device gpu = Device.gpu(i);
      out.println(
          "  "
              + gpu
              + ": compute capability "
              + CudaUtils.getComputeCapability(i)
              + ", memory "
              + CudaUtils.getGpuMemory(gpu).getMax() / (1024 * 1024)
              + " MiB");
    }
    return gpus;
  }

  /** The native libraries of this process whose file name starts with a prefix (Linux). */
  private static Set<String> loadedLibraries(String prefix) {
    Set<String> found = new TreeSet<>();
    Path maps = Path.of("/proc/self/maps");
    if (!Files.isReadable(maps)) {
      return found;
    }
    try {
      for (String line : Files.readAllLines(maps)) {
        int slash = line.indexOf('/');
        if (slash >= 0) {
          String file = line.substring(slash);
          if (Path.of(file).getFileName().toString().startsWith(prefix)) {
            found.add(file);
          }
        }
      }
    } catch (IOException e) {
      // informational only
    }
    return found;
  }

  /** A matrix product on every GPU, checked against its known value. */
  private int probe(int gpus) {
    for (int i = 0; i < gpus; i++) {
      Device gpu = Device.gpu(i);
      try (NDManager manager = NDManager.newBaseManager(gpu)) {
        NDArray ones = manager.ones(new Shape(64, 64));
        NDArray product = ones.matMul(ones);
        check(product.getDevice().equals(gpu), "the product is on " + product.getDevice());
        float value = product.getFloat(0, 0);
        check(value == 64f, gpu + ": 64 x 64 ones squared gives " + value + ", not 64");
        out.println("  " + gpu + ": matrix product computed on " + product.getDevice() + ", ok");
      }
    }
    out.println("PASSED: probe");
    return PASSED;
  }

  // ------------------------------------------------------------------ surgery

  /**
   * The case where the trainer trains device copies: the model's arrays on the CPU, the trainer on
   * {@code devices}. Checks, against values captured before each surgery:
   *
   * <ol>
   *   <li>the store's copies are on the trainer's devices (copy {@code i} on device {@code i}), the
   *       model's arrays on the CPU, and training left the model's arrays stale;
   *   <li>after BlurPool (which adopts the convolutions' parameters) the store's copies still hold
   *       the trained values, bit for bit, and the model's arrays were synced to the first device's
   *       copy before the replacements read them;
   *   <li>after squeeze-excite the store holds exactly the model's parameters, each on every
   *       device, and optimizer state only for them, on the trainer's devices;
   *   <li>training goes on: finite loss, the new gate weights move;
   *   <li>closing the trainer leaves the trained values in the model's arrays.
   * </ol>
   */
  private int surgery(Device[] devices) throws IOException, TranslateException {
    boolean copies = !devices[0].equals(Device.cpu());
    out.println(
        "surgery: model arrays on "
            + Device.cpu()
            + ", trainer on "
            + Arrays.toString(devices)
            + (copies ? " (the store trains copies)" : " (no copies: --cpu)"));
    Engine.getInstance().setRandomSeed(7);
    try (Model model = Model.newInstance("gpu-check", Device.cpu());
        NDManager data = NDManager.newBaseManager(Device.cpu())) {
      model.setBlock(
          SmallCnn.builder().setFilters(8, 16, 16).optGlobalPool(true).setClasses(CLASSES).build());
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
              .optDevices(devices)
              .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build())
              .addTrainingListeners(TrainingListener.Defaults.basic());
      ArrayDataset dataset =
          new ArrayDataset.Builder()
              .setData(data.randomNormal(new Shape(4L * BATCH).addAll(IMAGE)))
              .optLabels(
                  data.randomInteger(0, CLASSES, new Shape(4L * BATCH), DataType.INT32)
                      .toType(DataType.FLOAT32, false))
              .setSampling(BATCH, false)
              .build();
      Map<Parameter, float[]> finalValues;
      Trainer trainer = model.newTrainer(config);
      try {
        trainer.initialize(new Shape(BATCH).addAll(IMAGE));
        EasyTrain.fit(trainer, 2, dataset, null);
        Block root = model.getBlock();

        // 1. where everything is
        Map<Parameter, float[]> trained = storeValues(trainer, root, devices);
        int stale = 0;
        for (Map.Entry<Parameter, float[]> e : trained.entrySet()) {
          Parameter p = e.getKey();
          check(
              p.getArray().getDevice().equals(Device.cpu()),
              p.getName() + ": model array on " + p.getArray().getDevice());
          if (!Arrays.equals(e.getValue(), p.getArray().toFloatArray())) {
            stale++;
          }
        }
        if (copies) {
          check(stale > 0, "precondition: training on copies leaves model arrays stale");
        }
        out.println(
            "  trained 2 epochs: "
                + trained.size()
                + " parameters, store copies on "
                + Arrays.toString(devices)
                + ", "
                + stale
                + " model arrays stale");

        // 2. BlurPool
        SurgeryChanges blur =
            BlurPool.builder()
                .optMinChannels(0)
                .build()
                .apply(SurgeryContext.live(root, trainer, 2, 0));
        check(!blur.isEmpty(), "BlurPool changed nothing");
        out.println("  blurpool: " + blur.countsByType());
        Map<Parameter, float[]> afterBlur = storeValues(trainer, root, devices);
        for (Map.Entry<Parameter, float[]> e : trained.entrySet()) {
          Parameter p = e.getKey();
          check(afterBlur.containsKey(p), p.getName() + " left the model");
          check(
              Arrays.equals(e.getValue(), afterBlur.get(p)),
              p.getName() + ": the store's copy changed in surgery");
          check(
              Arrays.equals(e.getValue(), p.getArray().toFloatArray()),
              p.getName() + ": the model array was not synced to the trained copy");
        }
        out.println("  blurpool kept every trained value; model arrays synced from " + devices[0]);

        // 3. squeeze-excite
        SurgeryChanges se =
            SqueezeExcite.builder()
                .optMinChannels(0)
                .optLatentChannels(4)
                .build()
                .apply(SurgeryContext.live(root, trainer, 2, 0));
        check(!se.isEmpty(), "squeeze-excite changed nothing");
        out.println("  squeeze_excite: " + se.countsByType());
        Map<Parameter, float[]> born = storeValues(trainer, root, devices);
        born.keySet().removeAll(trained.keySet());
        check(!born.isEmpty(), "squeeze-excite added no parameter");
        checkTrainerHoldsExactly(trainer, root, devices);

        // 4. training goes on
        TrainingResult result = fit(trainer, dataset);
        Float loss = result.getTrainLoss();
        check(loss != null && Float.isFinite(loss), "training loss after surgery is " + loss);
        Map<Parameter, float[]> later = storeValues(trainer, root, devices);
        int moved = 0;
        for (Map.Entry<Parameter, float[]> e : born.entrySet()) {
          if (e.getKey().requiresGradient()
              && !Arrays.equals(e.getValue(), later.get(e.getKey()))) {
            moved++;
          }
        }
        check(moved > 0, "no gate weight moved in training");
        checkTrainerHoldsExactly(trainer, root, devices);
        out.println(
            "  trained 1 more epoch: loss "
                + loss
                + ", "
                + moved
                + " of "
                + born.size()
                + " new parameters moved, optimizer state on "
                + Arrays.toString(devices));
        finalValues = later;
      } finally {
        trainer.close();
      }

      // 5. DJL copies the first device's values into the model's arrays when the trainer closes.
      for (Map.Entry<Parameter, float[]> e : finalValues.entrySet()) {
        check(
            Arrays.equals(e.getValue(), e.getKey().getArray().toFloatArray()),
            e.getKey().getName() + ": model array differs from the trained copy after close");
      }
      out.println("  trainer closed: the model's arrays hold the trained values");
    }
    out.println("PASSED: surgery on " + Arrays.toString(devices));
    return PASSED;
  }

  private static TrainingResult fit(Trainer trainer, ArrayDataset dataset)
      throws IOException, TranslateException {
    EasyTrain.fit(trainer, 1, dataset, null);
    return trainer.getTrainingResult();
  }

  /**
   * The store's copy of every model parameter on the trainer's first device, checking that copy
   * {@code i} of each lies on device {@code i}.
   */
  private static Map<Parameter, float[]> storeValues(
      Trainer trainer, Block root, Device[] devices) {
    Map<String, Object> entries = DjlTrainers.storeEntries(DjlTrainers.parameterStore(trainer));
    Map<Parameter, float[]> values = new IdentityHashMap<>();
    for (Parameter p : parameters(root)) {
      Object entry = entries.get(p.getId());
      check(entry != null, p.getName() + " (" + p.getId() + ") is not in the trainer's store");
      List<NDArray> mirrors = DjlTrainers.mirrors(entry);
      check(mirrors.size() == devices.length, p.getName() + ": " + mirrors.size() + " copies");
      for (int i = 0; i < devices.length; i++) {
        check(
            mirrors.get(i).getDevice().equals(devices[i]),
            p.getName() + ": copy " + i + " on " + mirrors.get(i).getDevice());
      }
      values.put(p, mirrors.get(0).toFloatArray());
    }
    return values;
  }

  /** The store holds exactly the model's parameters; optimizer state only for them, on devices. */
  private static void checkTrainerHoldsExactly(Trainer trainer, Block root, Device[] devices) {
    Set<String> live = new TreeSet<>();
    for (Parameter p : parameters(root)) {
      live.add(p.getId());
    }
    Set<String> stored =
        new TreeSet<>(DjlTrainers.storeEntries(DjlTrainers.parameterStore(trainer)).keySet());
    check(live.equals(stored), "store ids " + stored + " differ from the model's " + live);
    List<Device> allowed = Arrays.asList(devices);
    DjlOptimizers.optimizerStates(DjlTrainers.optimizer(trainer))
        .forEach(
            (field, state) ->
                state.forEach(
                    (id, perDevice) -> {
                      check(live.contains(id), field + " holds removed parameter " + id);
                      for (Device d : perDevice.keySet()) {
                        check(allowed.contains(d), field + " of " + id + " on " + d);
                      }
                    }));
  }

  private static List<Parameter> parameters(Block root) {
    List<Parameter> all = new ArrayList<>();
    Set<Parameter> seen = Collections.newSetFromMap(new IdentityHashMap<>());
    for (Parameter p : root.getParameters().values()) {
      if (seen.add(p)) {
        all.add(p);
      }
    }
    return all;
  }

  private static int intFlag(List<String> args, String name, int fallback) {
    int i = args.indexOf(name);
    if (i < 0 || i + 1 >= args.size()) {
      return fallback;
    }
    return Integer.parseInt(args.get(i + 1));
  }

  private static void check(boolean condition, String message) {
    if (!condition) {
      throw new CheckFailed(message);
    }
  }

  /** A check that did not hold. */
  private static final class CheckFailed extends RuntimeException {
    private static final long serialVersionUID = 1L;

    CheckFailed(String message) {
      super(message);
    }
  }
}
