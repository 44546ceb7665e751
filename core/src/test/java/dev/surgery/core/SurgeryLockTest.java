package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.nn.Block;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.Dropout;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Lock;
import org.junit.jupiter.api.Test;

/**
 * {@link SurgeryLock}: two threads never change (or plan on) one model at once. An outside probe
 * ran blurpool and factorize on one model from two threads: in 7 of 10 rounds the model was neither
 * order's, and a plan's temporary tree was seen by another thread's forward. Each case here holds
 * one surgery inside its replacement function and checks what the other thread can do then.
 */
class SurgeryLockTest {

  /**
   * Each task on a thread of its own: the common pool may have one thread on a small machine (and
   * CompletableFuture uses it from JDK 25 on), where a task that waits would keep the next from
   * starting.
   */
  private static final java.util.concurrent.ExecutorService THREADS =
      java.util.concurrent.Executors.newCachedThreadPool(
          r -> {
            Thread t = new Thread(r, "surgery-lock-test");
            t.setDaemon(true);
            return t;
          });

  private static <T> CompletableFuture<T> async(java.util.function.Supplier<T> task) {
    return CompletableFuture.supplyAsync(task, THREADS);
  }

  private static final long WAIT_MS = 300;

  private static SequentialBlock model() {
    SequentialBlock model = new SequentialBlock();
    model.add(Linear.builder().setUnits(4).build());
    model.add(Dropout.builder().build());
    model.add(Linear.builder().setUnits(2).build());
    return model;
  }

  /** A policy on Linear blocks whose function tells it runs, then waits for {@code release}. */
  private static Map<BlockMatcher, ReplacementFunction> holdingLinears(
      CountDownLatch inside, CountDownLatch release) {
    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(
        BlockMatcher.ofClass(Linear.class),
        (block, index) -> {
          inside.countDown();
          try {
            assertTrue(release.await(30, TimeUnit.SECONDS));
          } catch (InterruptedException e) {
            throw new IllegalStateException(e);
          }
          return Linear.builder().setUnits(index == 0 ? 4 : 2).build();
        });
    return policies;
  }

  private static Map<BlockMatcher, ReplacementFunction> dropoutToIdentity() {
    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(BlockMatcher.ofClass(Dropout.class), (block, index) -> new SequentialBlock());
    return policies;
  }

  @Test
  void aSecondSurgeryOnTheModelWaitsForTheFirst() throws Exception {
    SequentialBlock model = model();
    List<Block> before = model.getChildren().values();
    CountDownLatch inside = new CountDownLatch(1);
    CountDownLatch release = new CountDownLatch(1);
    CompletableFuture<Map<Block, Block>> first =
        async(
            () ->
                ModuleSurgery.replaceModules(
                    model, holdingLinears(inside, release), SurgeryOptions.defaults()));
    assertTrue(inside.await(30, TimeUnit.SECONDS));
    CompletableFuture<Map<Block, Block>> second =
        async(
            () ->
                ModuleSurgery.replaceModules(
                    model, dropoutToIdentity(), SurgeryOptions.defaults()));
    Thread.sleep(WAIT_MS);
    assertFalse(second.isDone(), "the second surgery ran while the first was half way");
    release.countDown();
    assertEquals(2, first.get(30, TimeUnit.SECONDS).size());
    assertEquals(1, second.get(30, TimeUnit.SECONDS).size());
    // Both, one after the other: the Linear blocks new, the dropout gone.
    List<Block> after = model.getChildren().values();
    assertEquals(3, after.size());
    assertTrue(after.get(0) instanceof Linear && after.get(0) != before.get(0));
    assertTrue(after.get(1) instanceof SequentialBlock);
    assertTrue(after.get(2) instanceof Linear && after.get(2) != before.get(2));
  }

  @Test
  void aPlansTemporaryTreeIsNotSeenByAThreadHoldingTheLock() throws Exception {
    SequentialBlock model = model();
    List<Block> before = model.getChildren().values();
    CountDownLatch inside = new CountDownLatch(1);
    CountDownLatch release = new CountDownLatch(1);
    CompletableFuture<SurgeryPlan> plan =
        async(
            () ->
                ModuleSurgery.plan(
                    model, holdingLinears(inside, release), SurgeryOptions.defaults(), null));
    assertTrue(inside.await(30, TimeUnit.SECONDS));
    // What a program's inference thread does: it cannot enter while the plan has the tree.
    Lock lock = SurgeryLock.get();
    CompletableFuture<Boolean> user =
        async(
            () -> {
              try {
                if (!lock.tryLock(WAIT_MS, TimeUnit.MILLISECONDS)) {
                  return false;
                }
              } catch (InterruptedException e) {
                throw new IllegalStateException(e);
              }
              lock.unlock();
              return true;
            });
    assertFalse(user.get(30, TimeUnit.SECONDS), "another thread took the lock during the plan");
    release.countDown();
    assertEquals(2, plan.get(30, TimeUnit.SECONDS).steps().size());
    assertEquals(before, model.getChildren().values(), "a plan leaves the model as it was");
    assertTrue(lock.tryLock(30, TimeUnit.SECONDS), "free again once the plan returned");
    lock.unlock();
  }

  @Test
  void aThreadHoldingTheLockHoldsSurgeryOff() throws Exception {
    SequentialBlock model = model();
    Lock lock = SurgeryLock.get();
    lock.lock();
    CompletableFuture<Map<Block, Block>> surgery;
    try {
      surgery =
          async(
              () ->
                  ModuleSurgery.replaceModules(
                      model, dropoutToIdentity(), SurgeryOptions.defaults()));
      Thread.sleep(WAIT_MS);
      assertFalse(surgery.isDone(), "surgery ran while the program held the lock");
      assertTrue(model.getChildren().values().get(1) instanceof Dropout);
    } finally {
      lock.unlock();
    }
    assertEquals(1, surgery.get(30, TimeUnit.SECONDS).size());
  }

  /**
   * Whether this thread holds the lock: inside a surgery's replacement function and inside the
   * program's own hold, and not after, nor for another thread while this one holds it.
   */
  @Test
  void isHeldByCurrentThreadTellsThisThreadsHoldOnly() throws Exception {
    assertFalse(SurgeryLock.isHeldByCurrentThread());
    boolean[] heldInFunction = {false};
    Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(
        Linear.class,
        (block, index) -> {
          heldInFunction[0] = SurgeryLock.isHeldByCurrentThread();
          return null;
        });
    ModuleSurgery.replaceModuleClasses(
        new SequentialBlock().add(Linear.builder().setUnits(2).build()), policies);
    assertTrue(heldInFunction[0], "a replacement function runs under the lock");
    Lock lock = SurgeryLock.get();
    lock.lock();
    try {
      assertTrue(SurgeryLock.isHeldByCurrentThread());
      assertFalse(
          CompletableFuture.supplyAsync(SurgeryLock::isHeldByCurrentThread)
              .get(10, TimeUnit.SECONDS),
          "another thread does not hold it");
    } finally {
      lock.unlock();
    }
    assertFalse(SurgeryLock.isHeldByCurrentThread(), "released after");
  }
}
