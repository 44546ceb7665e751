package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/** The bounded, thread-safe list behind the listener's outcomes, warnings and entries not run. */
class RecentItemsTest {

  @Test
  void keepsTheLastItemsInTheOrderTheyCame() {
    RecentItems<Integer> items = RecentItems.last(3);
    IntStream.rangeClosed(1, 7).forEach(items::add);
    assertEquals(List.of(5, 6, 7), items.snapshot(i -> i));
    items.removeIf(i -> i == 6);
    items.add(8);
    assertEquals(List.of(5, 7, 8), items.snapshot(i -> i));
  }

  @Test
  void allKeepsEveryItem() {
    RecentItems<Integer> items = RecentItems.all();
    IntStream.range(0, 20_000).forEach(items::add);
    assertEquals(20_000, items.size());
  }

  @Test
  void concurrentAddsKeepExactlyTheBound() throws InterruptedException {
    RecentItems<Integer> items = RecentItems.last(1_000);
    List<Thread> threads = new ArrayList<>();
    for (int t = 0; t < 4; t++) {
      int base = t * 10_000;
      threads.add(new Thread(() -> IntStream.range(base, base + 5_000).forEach(items::add)));
    }
    threads.forEach(Thread::start);
    for (Thread thread : threads) {
      thread.join();
    }
    List<Integer> kept = items.snapshot(i -> i);
    assertEquals(1_000, kept.size());
    assertEquals(1_000, kept.stream().distinct().count());
  }

  @Test
  void aBoundBelowOneIsRefused() {
    assertThrows(IllegalArgumentException.class, () -> RecentItems.last(0));
    // One is positive: it keeps the latest item only.
    RecentItems<Integer> one = RecentItems.last(1);
    one.add(1);
    one.add(2);
    assertEquals(List.of(2), one.snapshot(i -> i));
  }
}
