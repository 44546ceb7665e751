package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.util.PairList;
import dev.surgery.core.internal.BirthAwareOptimizer;
import dev.surgery.core.internal.DjlOptimizers;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.internal.KeptIdTracker;
import dev.surgery.core.testing.GcSafeL2Loss;
import dev.surgery.core.testing.OpenArrays;
import dev.surgery.core.testing.OptimizerKind;
import dev.surgery.core.testing.TinyDense;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.Collections;
import java.util.Deque;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.BiFunction;
import java.util.function.Consumer;
import java.util.function.Function;

/**
 * A fault sweep over the k-th opportunity: a subject and a control twin built alike (models,
 * trainers, data), a surgery attempted on the subject with a failure injected at its k-th chance
 * for k = 1, 2, 3, ... until it succeeds, and after every failed attempt a check that everything
 * reachable is as it was, object for object and bit for bit ({@link DeepState}), and that ten more
 * steps leave the subject bit-identical to the control that never attempted anything.
 */
final class KthFaultRig implements AutoCloseable {

  /** Counts the chances of one kind of failure and fails at the k-th, while armed. */
  static final class Injector {
    final int k;
    int hits;
    String firedAt;

    Injector(int k) {
      this.k = k;
    }

    /** One chance to fail. */
    void hit(String where) {
      if (++hits == k) {
        firedAt = where;
        throw new InjectedFault("injected at " + where + " (chance " + k + ")");
      }
    }

    /** One chance that fails by what the caller does (a wrong replacement), not by a throw. */
    boolean take(String where) {
      throwing = false;
      if (++hits == k) {
        firedAt = where;
        return true;
      }
      return false;
    }

    boolean throwing = true;

    boolean fired() {
      return firedAt != null;
    }
  }

  /** The injected failure. */
  static final class InjectedFault extends RuntimeException {
    InjectedFault(String message) {
      super(message);
    }
  }

  /** The injector of the running attempt (null: none armed). */
  static final ThreadLocal<Injector> ARMED = new ThreadLocal<>();

  /** A trainer's map that fails at the armed injector's k-th change (store, optimizer state). */
  static final class ArmedMap<K, V> extends ConcurrentHashMap<K, V> {
    private final String name;

    ArmedMap(String name, Map<K, V> from) {
      super(from);
      this.name = name;
    }

    private void chance(String op) {
      Injector armed = ARMED.get();
      if (armed != null) {
        armed.hit(name + "." + op);
      }
    }

    @Override
    public V put(K key, V value) {
      chance("put");
      return super.put(key, value);
    }

    @Override
    public V putIfAbsent(K key, V value) {
      chance("putIfAbsent");
      return super.putIfAbsent(key, value);
    }

    @Override
    public V remove(Object key) {
      chance("remove");
      return super.remove(key);
    }

    @Override
    public V computeIfAbsent(K key, Function<? super K, ? extends V> f) {
      if (!containsKey(key)) {
        chance("computeIfAbsent");
      }
      return super.computeIfAbsent(key, f);
    }

    @Override
    public V compute(K key, BiFunction<? super K, ? super V, ? extends V> f) {
      chance("compute");
      return super.compute(key, f);
    }
  }

  final String name;
  final List<Block> roots;
  final List<Model> models = new ArrayList<>();
  final List<Trainer> trainers = new ArrayList<>();
  final NDManager data;

  /** Whatever a sweep's steps hand on to the attempt (the parameters a call moves). */
  final List<Object> handed = new ArrayList<>();

  /** The per-policy call counters a surgery on this rig is given (a rollback restores them). */
  final Map<Object, Integer> indices = new java.util.HashMap<>();

  private final List<NDArray> xs = new ArrayList<>();
  private final List<NDArray> ys = new ArrayList<>();

  /**
   * A float32 rig of one model, TinyDense(5) - ReLU - TinyDense(3), on batches of 4 x 5: the small
   * net the state-move and unfreeze probes train.
   */
  static KthFaultRig denseReluDense(String name, OptimizerKind kind) {
    List<Block> roots =
        List.of(
            new SequentialBlock()
                .add(new TinyDense(5))
                .add(Activation.reluBlock())
                .add(new TinyDense(3)));
    return new KthFaultRig(name, roots, new Shape(4, 5), DataType.FLOAT32, kind);
  }

  /**
   * Opens one model and trainer per root (roots may share blocks), initialized for {@code input}.
   */
  KthFaultRig(String name, List<Block> roots, Shape input, DataType type, OptimizerKind kind) {
    this.name = name;
    this.roots = roots;
    data = NDManager.newBaseManager();
    for (int i = 0; i < roots.size(); i++) {
      Model model = Model.newInstance(name + "-" + i);
      model.setBlock(roots.get(i));
      if (type != DataType.FLOAT32) {
        model.setDataType(type);
      }
      models.add(model);
      Trainer trainer =
          model.newTrainer(
              new DefaultTrainingConfig(new GcSafeL2Loss()).optOptimizer(kind.create()));
      trainer.initialize(input);
      trainers.add(trainer);
      Shape out = roots.get(i).getOutputShapes(new Shape[] {input})[0];
      xs.add(pattern(input, 0.37f * (i + 1), type));
      ys.add(pattern(out, 0.11f * (i + 2), type));
    }
  }

  private NDArray pattern(Shape shape, float scale, DataType type) {
    NDArray a = data.arange((int) shape.size()).toType(DataType.FLOAT32, false);
    NDArray v = a.mul(scale).sin().reshape(shape);
    return type == DataType.FLOAT32 ? v : v.toType(type, false);
  }

  /** Copies every parameter value into a twin built alike. */
  void copyValuesInto(KthFaultRig twin) {
    List<Parameter> mine = parameters();
    List<Parameter> theirs = twin.parameters();
    assertEquals(mine.size(), theirs.size(), "the twins are built alike");
    for (int i = 0; i < mine.size(); i++) {
      mine.get(i).getArray().copyTo(theirs.get(i).getArray());
    }
  }

  /** Every distinct parameter of the roots, in order. */
  List<Parameter> parameters() {
    Set<Parameter> all = Collections.newSetFromMap(new IdentityHashMap<>());
    List<Parameter> list = new ArrayList<>();
    for (Block root : roots) {
      for (Parameter p : BlockTrees.parametersOf(root)) {
        if (all.add(p)) {
          list.add(p);
        }
      }
    }
    return list;
  }

  /** Forward and backward on every trainer; the update too when {@code step}. */
  void round(boolean step) {
    for (int i = 0; i < trainers.size(); i++) {
      Trainer t = trainers.get(i);
      try (NDManager scope = data.newSubManager()) {
        NDArray x = xs.get(i).duplicate();
        x.attach(scope);
        NDArray y = ys.get(i).duplicate();
        y.attach(scope);
        try (GradientCollector gc = t.newGradientCollector()) {
          NDList out = t.forward(new NDList(x));
          gc.backward(t.getLoss().evaluate(new NDList(y), out));
        }
      }
      if (step) {
        t.step();
      }
    }
  }

  /** Swaps the trainers' store and optimizer maps for ones that fail at an armed chance. */
  void armTrainerMaps() {
    for (Trainer t : trainers) {
      ParameterStore store = DjlTrainers.parameterStore(t);
      swap(store, "parameterMap", "store");
      Optimizer o = DjlTrainers.optimizer(t);
      swap(o, "updateCounts", "updateCounts");
      for (String state : DjlOptimizers.optimizerStates(o).keySet()) {
        swap(o, state.substring(state.lastIndexOf('.') + 1), state);
      }
    }
  }

  @SuppressWarnings({"unchecked", "rawtypes"})
  private static void swap(Object owner, String fieldName, String label) {
    for (Class<?> c = owner.getClass(); c != null; c = c.getSuperclass()) {
      try {
        Field f = c.getDeclaredField(fieldName);
        f.setAccessible(true);
        Map old = (Map) f.get(owner);
        if (!(old instanceof ArmedMap)) {
          f.set(owner, new ArmedMap<>(label, old));
        }
        return;
      } catch (NoSuchFieldException e) {
        // up the hierarchy
      } catch (IllegalAccessException e) {
        throw new IllegalStateException(e);
      }
    }
    throw new IllegalStateException("no field " + fieldName + " in " + owner.getClass());
  }

  @Override
  public void close() {
    for (Trainer t : trainers) {
      t.close();
    }
    for (Model m : models) {
      m.close();
    }
    data.close();
  }

  // ------------------------------------------------------------------ twin comparison

  /**
   * What two twins must share bit for bit: structure, parameter values and flags, the store's
   * holdings and the optimizer state, update counts and birth marks, by parameter position.
   */
  List<String> valueSignature() {
    List<String> sig = new ArrayList<>();
    for (Block root : roots) {
      sig.add("structure " + root);
    }
    List<Parameter> params = parameters();
    Map<String, Integer> position = new LinkedHashMap<>();
    for (int i = 0; i < params.size(); i++) {
      Parameter p = params.get(i);
      position.put(p.getId(), i);
      sig.add("param " + i + " " + p.getName() + " " + p.requiresGradient() + " " + array(p));
    }
    for (int i = 0; i < trainers.size(); i++) {
      int ti = i;
      Trainer t = trainers.get(ti);
      TreeMap<Integer, String> held = new TreeMap<>();
      DjlTrainers.storeEntries(DjlTrainers.parameterStore(t))
          .forEach(
              (id, entry) -> {
                List<String> mirrors = new ArrayList<>();
                for (NDArray m : DjlTrainers.mirrors(entry)) {
                  mirrors.add(digest(m));
                }
                held.put(positionOf(position, id), String.valueOf(mirrors));
              });
      sig.add("trainer " + ti + " store " + held);
      Optimizer o = DjlTrainers.optimizer(t);
      DjlOptimizers.optimizerStates(o)
          .forEach(
              (stateName, state) -> {
                TreeMap<Integer, String> byPos = new TreeMap<>();
                state.forEach(
                    (id, perDevice) -> {
                      List<String> values = new ArrayList<>();
                      perDevice.values().forEach(a -> values.add(digest(a)));
                      byPos.put(positionOf(position, id), String.valueOf(values));
                    });
                sig.add("trainer " + ti + " state " + stateName + " " + byPos);
              });
      TreeMap<Integer, Integer> counts = new TreeMap<>();
      DjlOptimizers.updateCounts(o).forEach((id, c) -> counts.put(positionOf(position, id), c));
      sig.add("trainer " + ti + " counts " + counts);
      BirthAwareOptimizer stand = DjlTrainers.birthAwareOptimizer(t, false);
      TreeMap<Integer, Integer> births = new TreeMap<>();
      if (stand != null) {
        for (Parameter p : params) {
          if (stand.birthOf(p.getId()) != null) {
            births.put(position.get(p.getId()), stand.birthOf(p.getId()));
          }
        }
      }
      sig.add("trainer " + ti + " stand-in " + (stand != null) + " births " + births);
    }
    return sig;
  }

  private static int positionOf(Map<String, Integer> position, String id) {
    Integer i = position.get(id);
    return i == null ? -1_000_000 - (id.hashCode() & 0xffff) : i; // not in the model: odd one out
  }

  private static String array(Parameter p) {
    if (!p.isInitialized()) {
      return "no array";
    }
    return digest(p.getArray());
  }

  /** The exact bits of an array, with its type and shape; its gradient's too. */
  static String digest(NDArray a) {
    if (a.isReleased()) {
      return "released";
    }
    StringBuilder s =
        new StringBuilder(a.getDataType() + a.getShape().toString() + ":" + hash(a.toByteArray()));
    if (a.hasGradient()) {
      try (NDArray g = a.getGradient()) {
        s.append(" grad:").append(hash(g.toByteArray()));
      } catch (RuntimeException e) {
        s.append(" grad:none");
      }
    }
    return s.toString();
  }

  private static String hash(byte[] bytes) {
    try {
      byte[] d = MessageDigest.getInstance("SHA-256").digest(bytes);
      return Base64.getEncoder().encodeToString(d).substring(0, 16);
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  // ------------------------------------------------------------------ the deep snapshot

  /** Identity tokens shared by the snapshots of one subject, so objects compare by identity. */
  static final class Tokens {
    private final Map<Object, Integer> ids = new IdentityHashMap<>();

    String of(Object o) {
      return "#" + ids.computeIfAbsent(o, x -> ids.size());
    }
  }

  /**
   * Everything a failed surgery must leave as it was: every block reachable from the roots through
   * its children and its fields (the identity of the block at every path, every field of every
   * block, its listed children and parameters), every parameter (its fields, its array, the array's
   * bits, gradient and release), the engine's open arrays, and each trainer's store entries and
   * mirrors, parameter server, optimizer (fields, state arrays and bits, update counts), birth
   * marks and per-id rate tracker.
   */
  static final class DeepState {
    final LinkedHashMap<String, String> facts = new LinkedHashMap<>();
    private final Tokens tokens;
    private final Set<NDArray> arrays = Collections.newSetFromMap(new IdentityHashMap<>());

    private DeepState(Tokens tokens) {
      this.tokens = tokens;
    }

    static DeepState of(Tokens tokens, KthFaultRig rig) {
      DeepState s = new DeepState(tokens);
      s.take(rig);
      return s;
    }

    private void take(KthFaultRig rig) {
      Deque<Block> todo = new ArrayDeque<>();
      Set<Block> seen = Collections.newSetFromMap(new IdentityHashMap<>());
      Set<Parameter> params = new LinkedHashSet<>();
      Set<Parameter> seenParams = Collections.newSetFromMap(new IdentityHashMap<>());
      for (int r = 0; r < rig.roots.size(); r++) {
        paths("root" + r, rig.roots.get(r), 0);
        todo.add(rig.roots.get(r));
      }
      List<Object> refs = new ArrayList<>();
      while (!todo.isEmpty()) {
        Block b = todo.poll();
        if (!seen.add(b)) {
          continue;
        }
        String key = "block" + tokens.of(b);
        facts.put(key + " class", b.getClass().getName());
        fields(key, b, refs);
        facts.put(key + " getChildren()", contents(b.getChildren()));
        facts.put(key + " getDirectParameters()", contents(b.getDirectParameters()));
        refs.addAll(b.getChildren().values());
        refs.addAll(b.getDirectParameters().values());
        for (Object ref : refs) {
          if (ref instanceof Block child) {
            todo.add(child);
          } else if (ref instanceof Parameter p && seenParams.add(p)) {
            params.add(p);
          }
        }
        refs.clear();
      }
      for (Parameter p : params) {
        String key = "param" + tokens.of(p);
        fields(key, p, null);
        if (p.isInitialized()) {
          arrays.add(p.getArray());
        }
      }
      for (int ti = 0; ti < rig.trainers.size(); ti++) {
        trainer("trainer" + ti, rig.trainers.get(ti));
      }
      List<String> counters = new ArrayList<>();
      rig.indices.forEach((k, v) -> counters.add(k + "=" + v));
      Collections.sort(counters);
      facts.put("indices", counters.toString());
      NDManager any = rig.data;
      for (NDArray a : OpenArrays.ofEngine(any)) {
        facts.put(
            "open array" + tokens.of(a),
            a.getDataType() + " " + a.getShape() + " in " + a.getManager().getName());
      }
      for (NDArray a : arrays) {
        facts.put("array" + tokens.of(a), digest(a));
      }
    }

    private void paths(String path, Block b, int depth) {
      facts.put("path " + path, tokens.of(b));
      if (depth > 40) {
        return;
      }
      PairList<String, Block> children = b.getChildren();
      for (int i = 0; i < children.size(); i++) {
        paths(path + "/" + children.keyAt(i), children.valueAt(i), depth + 1);
      }
    }

    private void trainer(String key, Trainer t) {
      facts.put(key, tokens.of(t));
      ParameterStore store = DjlTrainers.parameterStore(t);
      facts.put(key + " store", tokens.of(store));
      fields(key + " store", store, null);
      Object server = fieldValue(store, "parameterServer");
      if (server != null) {
        fields(key + " server", server, null);
      }
      new TreeMap<>(DjlTrainers.storeEntries(store))
          .forEach(
              (id, entry) -> {
                List<NDArray> mirrors = DjlTrainers.mirrors(entry);
                arrays.addAll(mirrors);
                List<String> m = new ArrayList<>();
                mirrors.forEach(a -> m.add(tokens.of(a)));
                facts.put(
                    key + " entry " + id,
                    tokens.of(entry)
                        + " of "
                        + tokens.of(DjlTrainers.entryParameter(entry))
                        + " mirrors "
                        + m);
              });
      Optimizer o = DjlTrainers.optimizer(t);
      facts.put(key + " optimizer", tokens.of(o));
      fields(key + " optimizer", o, null);
      DjlOptimizers.optimizerStates(o)
          .forEach(
              (stateName, state) ->
                  new TreeMap<>(state)
                      .forEach(
                          (id, perDevice) -> {
                            List<String> m = new ArrayList<>();
                            for (Map.Entry<Device, NDArray> e : perDevice.entrySet()) {
                              arrays.add(e.getValue());
                              m.add(e.getKey() + "=" + tokens.of(e.getValue()));
                            }
                            facts.put(key + " state " + stateName + " " + id, m.toString());
                          }));
      facts.put(key + " counts", new TreeMap<>(DjlOptimizers.updateCounts(o)).toString());
      facts.put(key + " global count", String.valueOf(DjlOptimizers.globalUpdateCount(o)));
      BirthAwareOptimizer stand = DjlTrainers.birthAwareOptimizer(t, false);
      facts.put(key + " stand-in", stand == null ? "none" : tokens.of(stand));
      if (stand != null) {
        fields(key + " stand-in", stand, null);
        Map<String, Integer> births = new TreeMap<>();
        for (String id : DjlTrainers.storeEntries(store).keySet()) {
          if (stand.birthOf(id) != null) {
            births.put(id, stand.birthOf(id));
          }
        }
        facts.put(key + " births", births.toString());
      }
      KeptIdTracker kept = DjlOptimizers.keptIdTracker(o, false);
      facts.put(key + " kept-id tracker", kept == null ? "none" : tokens.of(kept));
      if (kept != null) {
        fields(key + " kept-id tracker", kept, null);
      }
    }

    /** Every instance field of the object's classes; Blocks and Parameters met go to refs. */
    private void fields(String key, Object o, List<Object> refs) {
      for (Class<?> c = o.getClass(); c != null && c != Object.class; c = c.getSuperclass()) {
        if (c.getName().startsWith("java.")) {
          break;
        }
        for (Field f : c.getDeclaredFields()) {
          if (Modifier.isStatic(f.getModifiers())) {
            continue;
          }
          Object v;
          try {
            f.setAccessible(true);
            v = f.get(o);
          } catch (ReflectiveOperationException | RuntimeException e) {
            facts.put(key + "." + c.getSimpleName() + "." + f.getName(), "unreadable");
            continue;
          }
          facts.put(key + "." + c.getSimpleName() + "." + f.getName(), fp(v, 0));
          if (refs != null) {
            collect(v, refs, 0);
          }
        }
      }
    }

    private static void collect(Object v, List<Object> refs, int depth) {
      if (v == null || depth > 3) {
        return;
      }
      if (v instanceof Block || v instanceof Parameter) {
        refs.add(v);
      } else if (v instanceof PairList<?, ?> pl) {
        collect(pl.values(), refs, depth + 1);
      } else if (v instanceof Map<?, ?> m) {
        for (Map.Entry<?, ?> e : m.entrySet()) {
          collect(e.getKey(), refs, depth + 1);
          collect(e.getValue(), refs, depth + 1);
        }
      } else if (v instanceof Collection<?> c) {
        for (Object e : c) {
          collect(e, refs, depth + 1);
        }
      } else if (v instanceof Object[] a) {
        for (Object e : a) {
          collect(e, refs, depth + 1);
        }
      }
    }

    /** A list a method builds (a new object per call): its keys and values only. */
    private String contents(PairList<?, ?> list) {
      return fp(new ArrayList<>(list.keys()), 1).replaceFirst("#\\d+", "")
          + fp(new ArrayList<>(list.values()), 1).replaceFirst("#\\d+", "");
    }

    /** A value's fingerprint: identity for objects, contents for containers and values. */
    private String fp(Object v, int depth) {
      if (v == null) {
        return "null";
      }
      if (v instanceof String
          || v instanceof Number
          || v instanceof Boolean
          || v instanceof Character
          || v instanceof Enum<?>
          || v instanceof Shape
          || v instanceof Device
          || v instanceof DataType) {
        return "=" + v;
      }
      if (v instanceof Class<?> c) {
        return "C" + c.getName();
      }
      if (v instanceof NDArray a) {
        arrays.add(a);
        return tokens.of(a);
      }
      if (v instanceof Block || v instanceof Parameter || depth > 3) {
        return tokens.of(v);
      }
      if (v instanceof PairList<?, ?> pl) {
        return "PL" + tokens.of(pl) + fp(pl.keys(), depth + 1) + fp(pl.values(), depth + 1);
      }
      if (v instanceof Map<?, ?> m) {
        List<String> entries = new ArrayList<>();
        for (Map.Entry<?, ?> e : m.entrySet()) {
          entries.add(fp(e.getKey(), depth + 1) + "->" + fp(e.getValue(), depth + 1));
        }
        if (!(m instanceof LinkedHashMap<?, ?>) && !(m instanceof SortedMap<?, ?>)) {
          Collections.sort(entries);
        }
        return "M" + tokens.of(m) + entries;
      }
      if (v instanceof Collection<?> c) {
        List<String> elements = new ArrayList<>();
        for (Object e : c) {
          elements.add(fp(e, depth + 1));
        }
        if (v instanceof Set<?> && !(v instanceof LinkedHashSet<?>)) {
          Collections.sort(elements);
        }
        return "L" + tokens.of(c) + elements;
      }
      if (v.getClass().isArray()) {
        int n = java.lang.reflect.Array.getLength(v);
        List<String> elements = new ArrayList<>();
        for (int i = 0; i < n; i++) {
          elements.add(fp(java.lang.reflect.Array.get(v, i), depth + 1));
        }
        return "A" + elements;
      }
      return v.getClass().getName() + tokens.of(v);
    }

    private static Object fieldValue(Object owner, String name) {
      for (Class<?> c = owner.getClass(); c != null; c = c.getSuperclass()) {
        try {
          Field f = c.getDeclaredField(name);
          f.setAccessible(true);
          return f.get(owner);
        } catch (NoSuchFieldException e) {
          // up
        } catch (IllegalAccessException e) {
          throw new IllegalStateException(e);
        }
      }
      return null;
    }

    /** The facts that differ, at most a dozen, for a message; empty when none. */
    List<String> differencesFrom(DeepState before) {
      List<String> diffs = new ArrayList<>();
      Set<String> keys = new LinkedHashSet<>(before.facts.keySet());
      keys.addAll(facts.keySet());
      for (String k : keys) {
        String was = before.facts.get(k);
        String now = facts.get(k);
        if (!java.util.Objects.equals(was, now)) {
          diffs.add(k + ": was " + was + ", now " + now);
        }
      }
      return diffs;
    }
  }

  // ------------------------------------------------------------------ the sweep

  /** One attempt at a surgery on the subject, with the injector of this attempt. */
  @FunctionalInterface
  interface Attempt {
    void run(KthFaultRig subject, Injector injector) throws Exception;
  }

  /** What a sweep saw. */
  static final class Sweep {
    final String label;
    int failedAttempts;

    /**
     * Failed attempts after which the engine's generator was not where it was before: only those
     * that failed among the held-back draws at the end of the surgery (a defect otherwise).
     */
    int drewFromTheGenerator;

    final List<String> defects = new ArrayList<>();
    final List<String> notes = new ArrayList<>();

    Sweep(String label) {
      this.label = label;
    }

    /** Prints what the sweep met (the build log keeps the counts) and fails on any defect. */
    void reportAndAssertNoDefect() {
      System.out.println(
          "SWEEP "
              + label
              + ": "
              + failedAttempts
              + " failures, "
              + drewFromTheGenerator
              + " drew "
              + notes);
      org.junit.jupiter.api.Assertions.assertTrue(
          defects.isEmpty(), label + ": " + String.join("\n", defects));
    }
  }

  static final int MAX_CHANCES = 200;
  static final int STEPS_AFTER = 10;

  /**
   * Builds subject and control, trains both, runs {@code prepare} on both, then attempts the
   * surgery on the subject with a failure at chance k = 1, 2, ... until it succeeds, checking after
   * each failure; {@code beforeAttempt} runs on both twins before each attempt (a pending
   * backward). When the successful surgery is deterministic ({@code sameOnControl}), it is made on
   * the control too and the twins must then train alike.
   */
  static Sweep sweep(
      String label,
      Function<String, KthFaultRig> build,
      Consumer<KthFaultRig> prepare,
      Consumer<KthFaultRig> beforeAttempt,
      Attempt attempt,
      boolean sameOnControl)
      throws Exception {
    return sweep(label, build, prepare, beforeAttempt, attempt, sameOnControl, true);
  }

  /** Gives {@code control} the subject's values, then trains both three rounds alike. */
  static void startAlike(KthFaultRig subject, KthFaultRig control) {
    subject.copyValuesInto(control);
    for (int i = 0; i < 3; i++) {
      subject.round(true);
      control.round(true);
    }
  }

  /**
   * {@link #sweep}, where {@code trainBetween} false trains the twins only after the surgery
   * succeeded: for a call whose model and trainer cannot train until it is made.
   */
  static Sweep sweep(
      String label,
      Function<String, KthFaultRig> build,
      Consumer<KthFaultRig> prepare,
      Consumer<KthFaultRig> beforeAttempt,
      Attempt attempt,
      boolean sameOnControl,
      boolean trainBetween)
      throws Exception {
    Sweep sweep = new Sweep(label);
    try (KthFaultRig subject = build.apply(label + "-subject");
        KthFaultRig control = build.apply(label + "-control")) {
      startAlike(subject, control);
      prepare.accept(subject);
      prepare.accept(control);
      if (trainBetween) {
        assertEquals(
            control.valueSignature(), subject.valueSignature(), label + ": prepared alike");
      }
      Tokens tokens = new Tokens();
      for (int k = 1; k <= MAX_CHANCES; k++) {
        // The same draws for both (a pending backward through a stochastic layer draws).
        Engine.getInstance().setRandomSeed(500 + k);
        beforeAttempt.accept(subject);
        Engine.getInstance().setRandomSeed(500 + k);
        beforeAttempt.accept(control);
        DeepState before = DeepState.of(tokens, subject);
        Engine.getInstance().setRandomSeed(4242);
        Injector injector = new Injector(k);
        Throwable failure = null;
        ARMED.set(injector);
        try {
          attempt.run(subject, injector);
        } catch (Throwable e) {
          failure = e;
        } finally {
          ARMED.remove();
        }
        if (failure == null) {
          assertTrue(!injector.fired(), label + ": fired but succeeded");
          sweep.notes.add("succeeded at chance " + k + " (" + injector.hits + " chances)");
          if (sameOnControl) {
            Engine.getInstance().setRandomSeed(4242); // as the subject's attempt: alike draws
            attempt.run(control, new Injector(Integer.MAX_VALUE));
          }
          trainTwins(subject, control, 1000 + k);
          if (sameOnControl) {
            compare(sweep, "after the successful surgery", control, subject);
          }
          break;
        }
        if (!injector.fired()) {
          fail(label + ": chance " + k + " failed without the injection: " + failure, failure);
        }
        if (injector.throwing && !hasInjectedCause(failure)) {
          sweep.defects.add("chance " + k + ": the failure lost its cause: " + failure);
        }
        sweep.failedAttempts++;
        DeepState after = DeepState.of(tokens, subject);
        if (drawsDiffer(subject)) {
          sweep.drewFromTheGenerator++;
          // The fresh layers' draws are held back to the end: only a failure among them has drawn,
          // or one whose wrong-shaped replacement its function initialized (which draws) itself.
          if (!"draw".equals(injector.firedAt) && !"replacement".equals(injector.firedAt)) {
            sweep.defects.add(
                "chance "
                    + k
                    + ": failed at "
                    + injector.firedAt
                    + " after drawing from the generator");
          }
        }
        List<String> diffs = after.differencesFrom(before);
        if (!diffs.isEmpty()) {
          sweep.defects.add(
              "chance "
                  + k
                  + " ("
                  + injector.firedAt
                  + "): left changed: "
                  + diffs.subList(0, Math.min(8, diffs.size()))
                  + (diffs.size() > 8 ? " ... (" + diffs.size() + ")" : ""));
        }
        if (!trainBetween) {
          continue;
        }
        trainTwins(subject, control, k);
        int before2 = sweep.defects.size();
        compare(sweep, "after chance " + k + " (" + injector.firedAt + ")", control, subject);
        if (sweep.defects.size() > before2 || sweep.defects.size() > 6) {
          break; // diverged: later chances compare against a different model
        }
      }
    }
    return sweep;
  }

  /**
   * Builds subject and control as {@link #sweep} does, and makes one surgery on the subject that
   * the engine refuses by itself (no injection), late or half way through; then checks as after an
   * injected failure.
   */
  static Sweep refused(
      String label,
      Function<String, KthFaultRig> build,
      Consumer<KthFaultRig> beforeAttempt,
      Attempt attempt)
      throws Exception {
    return once(label, build, beforeAttempt, attempt, true);
  }

  /**
   * Builds subject and control as {@link #sweep} does, runs one call on the subject that must leave
   * everything as it was ({@code refusal}: one the engine refuses; else one that changes nothing, a
   * plan), and checks it as after an injected failure, the engine's generator included where
   * nothing was refused.
   */
  static Sweep once(
      String label,
      Function<String, KthFaultRig> build,
      Consumer<KthFaultRig> beforeAttempt,
      Attempt attempt,
      boolean refusal)
      throws Exception {
    Sweep sweep = new Sweep(label);
    try (KthFaultRig subject = build.apply(label + "-subject");
        KthFaultRig control = build.apply(label + "-control")) {
      startAlike(subject, control);
      Engine.getInstance().setRandomSeed(501);
      beforeAttempt.accept(subject);
      Engine.getInstance().setRandomSeed(501);
      beforeAttempt.accept(control);
      Tokens tokens = new Tokens();
      DeepState before = DeepState.of(tokens, subject);
      Engine.getInstance().setRandomSeed(4242);
      Throwable failure = null;
      try {
        attempt.run(subject, new Injector(Integer.MAX_VALUE));
      } catch (Throwable e) {
        failure = e;
      }
      if (refusal && failure == null) {
        fail(label + ": the surgery was not refused");
      }
      if (!refusal && failure != null) {
        fail(label + ": failed: " + failure, failure);
      }
      sweep.failedAttempts++;
      sweep.notes.add(refusal ? "refused: " + failure.getMessage() : "left alone");
      List<String> diffs = DeepState.of(tokens, subject).differencesFrom(before);
      if (!diffs.isEmpty()) {
        sweep.defects.add("left changed: " + diffs.subList(0, Math.min(8, diffs.size())));
      }
      if (!refusal && drawsDiffer(subject)) {
        sweep.defects.add("drew from the engine's generator");
      }
      trainTwins(subject, control, 77);
      compare(sweep, "after the refusal", control, subject);
    }
    return sweep;
  }

  /**
   * Whether the next draw of the engine's generator differs from the first draw after seeding it
   * with 4242 (which the attempt started from): the failed attempt drew from it.
   */
  private static boolean drawsDiffer(KthFaultRig rig) {
    try (NDArray after = rig.data.randomUniform(0, 1, new Shape(4))) {
      Engine.getInstance().setRandomSeed(4242);
      try (NDArray fresh = rig.data.randomUniform(0, 1, new Shape(4))) {
        return !java.util.Arrays.equals(after.toFloatArray(), fresh.toFloatArray());
      }
    }
  }

  private static boolean hasInjectedCause(Throwable e) {
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t instanceof InjectedFault) {
        return true;
      }
    }
    return false;
  }

  private static boolean allFinite(NDArray array) {
    ai.djl.ndarray.types.DataType f32 = ai.djl.ndarray.types.DataType.FLOAT32;
    NDArray floats = array.getDataType() == f32 ? array : array.toType(f32, true);
    try {
      for (float v : floats.toFloatArray()) {
        if (!Float.isFinite(v)) {
          return false;
        }
      }
      return true;
    } finally {
      if (floats != array) {
        floats.close(); // a copy of our own: the sweeps count open arrays
      }
    }
  }

  private static void trainTwins(KthFaultRig subject, KthFaultRig control, long seed) {
    Engine.getInstance().setRandomSeed((int) seed);
    for (int i = 0; i < STEPS_AFTER; i++) {
      subject.round(true);
    }
    Engine.getInstance().setRandomSeed((int) seed);
    for (int i = 0; i < STEPS_AFTER; i++) {
      control.round(true);
    }
  }

  private static void compare(Sweep sweep, String when, KthFaultRig control, KthFaultRig subject) {
    // Equal bits are not enough: two twins that both went to NaN would agree.
    for (Parameter p : subject.parameters()) {
      if (p.isInitialized() && !allFinite(p.getArray())) {
        sweep.defects.add(when + ": " + p.getName() + " holds a value that is not finite");
      }
    }
    List<String> c = control.valueSignature();
    List<String> s = subject.valueSignature();
    if (!c.equals(s)) {
      List<String> diffs = new ArrayList<>();
      for (int i = 0; i < Math.max(c.size(), s.size()); i++) {
        String a = i < c.size() ? c.get(i) : null;
        String b = i < s.size() ? s.get(i) : null;
        if (!java.util.Objects.equals(a, b)) {
          diffs.add("control " + a + " / subject " + b);
        }
      }
      sweep.defects.add(
          when + ": differs from the control: " + diffs.subList(0, Math.min(4, diffs.size())));
    }
  }
}
