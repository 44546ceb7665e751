package dev.surgery.trainer.config;

import org.snakeyaml.engine.v2.nodes.Node;

/**
 * An entry as bound (null when it has problems), the node that decides its events, and its schedule
 * as read (null when unreadable or absent), also for an entry with other problems.
 */
record BoundEntry(ScheduledAlgorithm algorithm, Node triggerNode, Trigger trigger) {
  BoundEntry(ScheduledAlgorithm algorithm, Node triggerNode) {
    this(algorithm, triggerNode, algorithm == null ? null : algorithm.trigger());
  }
}
