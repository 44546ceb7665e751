package dev.surgery.core.testing;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Makes a read of freed memory visible: a garbage collection, then small direct buffers that take
 * the freed blocks and write into them. A collection alone frees a Java-owned operand that a
 * backward pass still reads (a number DJL's PyTorch engine turned into a tensor over a direct
 * buffer), but the freed block usually keeps its old bytes until something reuses it.
 */
public final class FreedMemory {

  private FreedMemory() {}

  /** Collects garbage, lets the cleaner free what it found, and writes over the freed blocks. */
  public static void collectAndOverwrite() {
    System.gc();
    try {
      Thread.sleep(2); // the cleaner thread frees direct buffers after the collection
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    List<ByteBuffer> reuse = new ArrayList<>();
    for (int i = 0; i < 2000; i++) {
      // Sizes of a scalar of every type the engine makes (1 to 8 bytes), then some larger ones.
      ByteBuffer b = ByteBuffer.allocateDirect(i < 1600 ? 1 << (i % 4) : 64);
      b.order(ByteOrder.nativeOrder());
      while (b.hasRemaining()) {
        // Bytes that differ from call to call and run to run: a twin run that read them would
        // not repeat, even where both read freed memory at the same place.
        b.put((byte) ThreadLocalRandom.current().nextInt(256));
      }
      reuse.add(b);
    }
  }
}
