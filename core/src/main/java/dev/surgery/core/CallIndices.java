package dev.surgery.core;

import java.util.List;
import java.util.Map;

/**
 * The call index each policy's replacement function receives in one surgery, counted on from the
 * caller's counters (one per policy key, kept across surgeries). A counter is read at the policy's
 * first call and journaled then (one entry per policy and surgery), and written back once when the
 * traversal ends rather than updated per call, so that a rolled-back surgery leaves the caller's
 * counters as they were and a retry passes the same indices again.
 */
final class CallIndices {

  private final List<TreeSurgery.Policy> policies;

  /** The caller's counters, by policy key. */
  private final Map<Object, Integer> indices;

  private final Journal journal;

  /** Which policies' counters are read (and journaled) already. */
  private final boolean[] journaled;

  /** Each policy's next call index, read from the caller's counters at its first call. */
  private final int[] counters;

  CallIndices(List<TreeSurgery.Policy> policies, Map<Object, Integer> indices, Journal journal) {
    this.policies = policies;
    this.indices = indices;
    this.journal = journal;
    this.journaled = new boolean[policies.size()];
    this.counters = new int[policies.size()];
  }

  /** Hands out the next call index of the policy at {@code policy} (its position). */
  int next(int policy) {
    if (!journaled[policy]) {
      journaled[policy] = true;
      Object key = policies.get(policy).key();
      boolean had = indices.containsKey(key);
      Integer previous = indices.get(key);
      counters[policy] = previous == null ? 0 : previous;
      journal.onRollback(
          () -> {
            if (had) {
              indices.put(key, previous);
            } else {
              indices.remove(key);
            }
          });
    }
    return counters[policy]++;
  }

  /** Writes the counters of the policies called back to the caller's, once per policy. */
  void writeBack() {
    for (int i = 0; i < policies.size(); i++) {
      if (journaled[i]) {
        indices.put(policies.get(i).key(), counters[i]);
      }
    }
  }
}
