package dev.surgery.core.layers;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.convolutional.Conv2d;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The anti-aliasing blur of BlurPool (Zhang, 2019, as in MosaicML Composer): a per-channel 3 x 3
 * binomial low-pass filter {@code [1,2,1] x [1,2,1] / 16}, applied as one native depthwise
 * convolution (groups = channels) with zero padding 1, optionally strided.
 *
 * <p>The filter is a constant, never a {@code Parameter}, so that blocks that blur save and load
 * exactly like the blocks they replace. One filter array per device, data type and channel count is
 * cached for the whole process and shared by every blurring block, so replacing blocks again and
 * again (apply, revert, apply) allocates nothing new. The cached arrays are detached from the
 * manager of the input they were first built for (a batch manager closes after its step); each is
 * only {@code 9 x channels} values.
 */
public final class BlurFilter {

  /** The 1-D binomial taps; the 2-D filter is their outer product divided by {@link #SUM}. */
  private static final float[] TAPS = {1, 2, 1};

  /** The sum of the 2-D filter's taps, which normalizes it to preserve the mean. */
  private static final float SUM = 16;

  /** The filter's height and width. */
  public static final int SIZE = 3;

  /** The zero padding that keeps a stride-1 blur's output the size of its input. */
  public static final Shape SAME_PADDING = new Shape(1, 1);

  private static final Map<Key, NDArray> CACHE = new ConcurrentHashMap<>();

  private record Key(Device device, DataType dataType, long channels) {}

  /** Creates a blur; the filters themselves are shared by all instances. */
  public BlurFilter() {}

  /**
   * Returns the 2-D filter values in row-major order: {@code [[1,2,1],[2,4,2],[1,2,1]] / 16}.
   *
   * @return a new array of 9 values
   */
  public static float[] kernel() {
    float[] values = new float[SIZE * SIZE];
    for (int i = 0; i < SIZE; i++) {
      for (int j = 0; j < SIZE; j++) {
        values[i * SIZE + j] = TAPS[i] * TAPS[j] / SUM;
      }
    }
    return values;
  }

  /**
   * Creates the depthwise filter for {@code channels} channels: shape {@code (channels, 1, 3, 3)},
   * every channel the same {@link #kernel()}.
   *
   * @param manager the manager that owns the new array (and decides its device)
   * @param channels the number of channels
   * @param dataType the data type of the array
   * @return the filter array
   * @throws IllegalArgumentException if {@code channels} is below 1, or so large that the filter
   *     would hold 2^31 values or more
   */
  public static NDArray create(NDManager manager, long channels, DataType dataType) {
    if (channels < 1 || channels > Integer.MAX_VALUE / (SIZE * SIZE)) {
      throw new IllegalArgumentException("channels must be in [1, 2^31/9), got " + channels);
    }
    float[] one = kernel();
    float[] all = new float[(int) channels * one.length];
    for (int c = 0; c < channels; c++) {
      System.arraycopy(one, 0, all, c * one.length, one.length);
    }
    NDArray filter = manager.create(all, new Shape(channels, 1, SIZE, SIZE));
    if (dataType != DataType.FLOAT32) {
      NDArray cast = filter.toType(dataType, false);
      filter.close();
      filter = cast;
    }
    return filter;
  }

  /**
   * Blurs every channel of an NCHW array with one depthwise convolution.
   *
   * @param input the array, shape {@code (N, C, H, W)}
   * @param filter the filter from {@link #create}, shape {@code (C, 1, 3, 3)}, same device and type
   * @param stride the subsampling stride (height, width)
   * @param padding the zero padding (height, width); {@link #SAME_PADDING} in BlurPool
   * @return the blurred array, shape {@code (N, C, (H + 2p - 3) / s + 1, (W + 2p - 3) / s + 1)}
   */
  public static NDArray blurWith(NDArray input, NDArray filter, Shape stride, Shape padding) {
    long channels = input.getShape().get(1);
    return Conv2d.conv2d(input, filter, null, stride, padding, new Shape(1, 1), (int) channels)
        .singletonOrThrow();
  }

  /**
   * Blurs an NCHW array with zero padding 1, using the shared cached filter for the array's device,
   * data type and channel count (created on first use).
   *
   * @param input the array, shape {@code (N, C, H, W)}
   * @param stride the subsampling stride (height, width)
   * @return the blurred array, shape {@code (N, C, (H - 1) / s + 1, (W - 1) / s + 1)}
   */
  public NDArray blur(NDArray input, Shape stride) {
    return blurWith(input, filterFor(input), stride, SAME_PADDING);
  }

  /**
   * Returns the cached filter matching an input's device, data type and channel count.
   *
   * @param input an NCHW array
   * @return the filter, shape {@code (C, 1, 3, 3)}; shared and cached, do not close it
   */
  public NDArray filterFor(NDArray input) {
    Key key = new Key(input.getDevice(), input.getDataType(), input.getShape().get(1));
    NDArray cached = CACHE.get(key);
    if (cached != null && !cached.isReleased()) {
      return cached;
    }
    return CACHE.compute(
        key, (k, old) -> old != null && !old.isReleased() ? old : newFilter(input.getManager(), k));
  }

  private static NDArray newFilter(NDManager manager, Key key) {
    NDArray filter = create(manager, key.channels(), key.dataType());
    if (!filter.getDevice().equals(key.device())) {
      NDArray moved = filter.toDevice(key.device(), false);
      filter.close();
      filter = moved;
    }
    // The input's manager is usually a per-batch one: keep the constant out of it.
    filter.detach();
    return filter;
  }

  /**
   * Computes the output length of a blur along one axis.
   *
   * @param length the input length
   * @param stride the stride
   * @param padding the zero padding on each side
   * @return {@code (length + 2 padding - 3) / stride + 1}
   * @throws IllegalArgumentException for a stride below 1 or a negative padding
   */
  public static long outputLength(long length, long stride, long padding) {
    if (stride < 1 || padding < 0) {
      throw new IllegalArgumentException(
          "a blur's stride must be at least 1 and its padding at least 0, got stride "
              + stride
              + " and padding "
              + padding);
    }
    return Math.floorDiv(length + 2 * padding - SIZE, stride) + 1;
  }
}
