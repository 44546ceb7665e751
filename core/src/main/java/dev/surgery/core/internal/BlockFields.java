package dev.surgery.core.internal;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.nn.AbstractBaseBlock;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.nn.LambdaBlock;
import ai.djl.nn.Parameter;
import ai.djl.util.Pair;
import ai.djl.util.PairList;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The fields of block classes (DJL's and the program's) that may hold or reference blocks: what the
 * engine must read to find every place a block is held or called from, and write to replace it.
 * Looked up once per class ({@link ClassValue}s) and made accessible by reflection; what lambdas
 * captured is {@link CapturedFunctions}', DJL's own private fields are read in {@link
 * DjlInternals}.
 */
public final class BlockFields {

  private BlockFields() {}

  private static final ClassValue<List<Field>> INSTANCE_FIELDS =
      new ClassValue<>() {
        @Override
        protected List<Field> computeValue(Class<?> type) {
          List<Field> fields = new ArrayList<>();
          for (Class<?> c = type; c != null && c != Object.class; c = c.getSuperclass()) {
            for (Field f : c.getDeclaredFields()) {
              if (!Modifier.isStatic(f.getModifiers())) {
                open(f);
                fields.add(f);
              }
            }
          }
          return List.copyOf(fields);
        }
      };

  /**
   * Lists every instance field of a block class and its superclasses, DJL's included (a layer's
   * settings such as {@code Linear.units}, which DJL's {@code loadMetadata} writes as it reads a
   * parameter file): what a snapshot of the block must record to put it back.
   *
   * @param type the block class
   * @return accessible fields, from the most derived class upwards
   */
  public static List<FieldSlot> instanceFields(Class<?> type) {
    return INSTANCE_SLOTS.get(type);
  }

  private static final ClassValue<List<FieldSlot>> INSTANCE_SLOTS = slotsOf(INSTANCE_FIELDS);

  /** {@link #instanceFields} as fields, for {@link DjlShapes}' snapshot of a block's state. */
  static List<Field> instanceFieldsOf(Class<?> type) {
    return INSTANCE_FIELDS.get(type);
  }

  /**
   * Lists every instance field, declared anywhere in the class hierarchy below {@link
   * AbstractBlock}, that may hold child blocks: block-typed fields, collections, maps and arrays.
   * The {@code children} list itself is excluded.
   *
   * @param type the block class
   * @return accessible fields, in declaration order from the most derived class upwards (cached per
   *     class)
   */
  public static List<FieldSlot> blockHoldingFields(Class<?> type) {
    return HOLDING_SLOTS.get(type);
  }

  private static final ClassValue<List<Field>> HOLDING_FIELDS =
      new ClassValue<>() {
        @Override
        protected List<Field> computeValue(Class<?> type) {
          return scanHoldingFields(type);
        }
      };

  private static List<Field> scanHoldingFields(Class<?> type) {
    List<Field> fields = new ArrayList<>();
    for (Class<?> c = type; c != null && c != Object.class; c = c.getSuperclass()) {
      if (c == AbstractBlock.class || c == AbstractBaseBlock.class) {
        break;
      }
      for (Field f : c.getDeclaredFields()) {
        if (Modifier.isStatic(f.getModifiers()) || f.getType().isPrimitive()) {
          continue;
        }
        Class<?> t = f.getType();
        boolean candidate =
            Block.class.isAssignableFrom(t)
                || java.util.Collection.class.isAssignableFrom(t)
                || Map.class.isAssignableFrom(t)
                || (t.isArray() && !t.getComponentType().isPrimitive())
                || t == Object.class;
        if (candidate) {
          open(f);
          fields.add(f);
        }
      }
    }
    return List.copyOf(fields);
  }

  /**
   * Lists every field, declared anywhere in the class hierarchy below {@link AbstractBlock}, whose
   * value may reference a child block where {@link #blockHoldingFields} does not reach it: fields
   * typed {@code Object} or an interface (other than a {@code Block} type), fields of DJL's {@code
   * Pair} or {@code PairList}, {@code Optional}, {@code AtomicReference}, a reference ({@code
   * WeakReference}), an {@code AtomicReferenceArray}, a class of the program's own (a record, a
   * box), arrays (written at the top level only), and static fields that may hold a block (never
   * written). Fields of other classes (a {@code String}, a {@code Shape}, a {@code Parameter})
   * cannot hold a block nor one of those holders, so they are left out.
   *
   * @param type the block class
   * @return accessible fields, in declaration order from the most derived class upwards (cached per
   *     class)
   */
  public static List<FieldSlot> blockReferencingFields(Class<?> type) {
    return REFERENCING_SLOTS.get(type);
  }

  private static final ClassValue<List<Field>> REFERENCING_FIELDS =
      new ClassValue<>() {
        @Override
        protected List<Field> computeValue(Class<?> type) {
          return scanReferencingFields(type);
        }
      };

  private static List<Field> scanReferencingFields(Class<?> type) {
    List<Field> fields = new ArrayList<>();
    for (Class<?> c = type; c != null && c != Object.class; c = c.getSuperclass()) {
      if (c == AbstractBlock.class || c == AbstractBaseBlock.class) {
        break;
      }
      for (Field f : c.getDeclaredFields()) {
        Class<?> t = f.getType();
        if (t.isPrimitive()) {
          continue;
        }
        if (Modifier.isStatic(f.getModifiers())) {
          // Shared by every instance and never written: one holding the block refuses.
          if (mayHoldBlock(t) && !f.isSynthetic()) {
            open(f);
            fields.add(f);
          }
          continue;
        }
        if (Block.class.isAssignableFrom(t)) {
          continue; // written
        }
        // Any container class too: a HashMap's keys, an AbstractMap.SimpleEntry, an ArrayDeque;
        // arrays are written at their top level and looked into one level deeper here.
        boolean candidate =
            t == Object.class
                || t.isInterface()
                || Pair.class.isAssignableFrom(t)
                || PairList.class.isAssignableFrom(t)
                || t == Optional.class
                || AtomicReference.class.isAssignableFrom(t)
                || Map.class.isAssignableFrom(t)
                || Map.Entry.class.isAssignableFrom(t)
                || java.util.Collection.class.isAssignableFrom(t)
                || (t.isArray() && mayHoldBlock(t.getComponentType()))
                || java.lang.ref.Reference.class.isAssignableFrom(t)
                || java.util.concurrent.atomic.AtomicReferenceArray.class.isAssignableFrom(t)
                || isPlainHolder(t);
        if (candidate) {
          open(f);
          fields.add(f);
        }
      }
    }
    return List.copyOf(fields);
  }

  /** How a class's instances may reach other blocks through their own fields. */
  public enum TieKind {
    /** No field other than the children list can reach a block. */
    NONE,
    /** Exactly DJL's {@link LambdaBlock}: its function may have captured a block. */
    LAMBDA_BLOCK,
    /** Some fields may reach a block: their values must be looked at. */
    FIELDS
  }

  /**
   * How the instances of a block class may reach other blocks through their own fields (those
   * {@link #blockHoldingFields} and {@link #blockReferencingFields} list). Such a block may call a
   * block of the tree without being its parent (weight tying), so a surgery that replaces that
   * block must look at it.
   *
   * @param type a block class
   * @return its kind (computed once per class)
   */
  public static TieKind tieKind(Class<?> type) {
    return TIE_KINDS.get(type);
  }

  private static final ClassValue<TieKind> TIE_KINDS =
      new ClassValue<>() {
        @Override
        protected TieKind computeValue(Class<?> type) {
          if (ALIAS_FIELDS.get(type).isEmpty()) {
            return TieKind.NONE;
          }
          return type == LambdaBlock.class ? TieKind.LAMBDA_BLOCK : TieKind.FIELDS;
        }
      };

  /**
   * Whether a block's own fields may reach another block: a field of {@link #blockHoldingFields} or
   * {@link #blockReferencingFields} holds something other than an inert function (a lambda or
   * method reference that captured nothing able to reach a block, as DJL's activation, pooling and
   * identity blocks hold).
   *
   * @param block a block
   * @return false when no field of the block can reach another block
   */
  public static boolean mayReferenceBlocks(Block block) {
    switch (tieKind(block.getClass())) {
      case NONE:
        return false;
      case LAMBDA_BLOCK:
        Object function = DjlBlocks.lambdaFunction((LambdaBlock) block);
        return function != null && !CapturedFunctions.inert(function, 2);
      default:
        return fieldsMayReferenceBlocks(block);
    }
  }

  /**
   * Whether a field of {@link #aliasFields} holds something other than an inert value: the answer
   * for a block of kind {@link TieKind#FIELDS}, whose kind the caller looked up already.
   *
   * @param block a block
   * @return false when no field of the block can reach another block
   */
  public static boolean fieldsMayReferenceBlocks(Block block) {
    for (Field field : ALIAS_FIELDS.get(block.getClass())) {
      Object value = get(field, block);
      if (value != null && !CapturedFunctions.inert(value, 2)) {
        return true;
      }
    }
    return false;
  }

  /**
   * Every field of {@link #blockHoldingFields} and {@link #blockReferencingFields}, each once: the
   * fields through which a block may reach another block.
   *
   * @param type a block class
   * @return accessible fields (cached per class)
   */
  public static List<FieldSlot> aliasFields(Class<?> type) {
    return ALIAS_SLOTS.get(type);
  }

  private static final ClassValue<List<Field>> ALIAS_FIELDS =
      new ClassValue<>() {
        @Override
        protected List<Field> computeValue(Class<?> type) {
          java.util.Set<Field> fields = new java.util.LinkedHashSet<>(HOLDING_FIELDS.get(type));
          fields.addAll(REFERENCING_FIELDS.get(type));
          return List.copyOf(fields);
        }
      };

  /**
   * Whether a value of this type can be, or hold, a block: not a primitive, string, number, enum or
   * class, none of DJL's array, shape, parameter or device types, and not a final data class of the
   * program's own whose fields reach none of those (a node of a chain of strings).
   *
   * @param type a field's or an array's component type
   * @return false when no value of the type can reach a block
   */
  public static boolean mayHoldBlock(Class<?> type) {
    // Asked per element of the collections a field check searches: the answer is cached per class.
    return MAY_HOLD_BLOCK.get(type);
  }

  private static final ClassValue<Boolean> MAY_HOLD_BLOCK =
      new ClassValue<>() {
        @Override
        protected Boolean computeValue(Class<?> type) {
          return computeMayHoldBlock(type);
        }
      };

  private static boolean computeMayHoldBlock(Class<?> type) {
    if (!mayHoldBlockByKind(type)) {
      return false;
    }
    Class<?> element = elementType(type);
    // A plain holder of the program's own reaches a block only through its fields: a chain of data
    // nodes (a vocabulary, a linked list) whose fields hold strings and nodes reaches none. Only a
    // final class: a field declared with another may hold a subclass with fields of its own.
    return !isDataClass(element)
        || !Modifier.isFinal(element.getModifiers())
        || fieldsMayHoldBlock(element, new java.util.HashSet<>());
  }

  /**
   * A plain holder whose fields tell what it can hold: not a lambda or other hidden or synthetic
   * class (what those capture is read another way, and may not be readable at all).
   */
  private static boolean isDataClass(Class<?> type) {
    if (type.isSynthetic() || type.isHidden()) {
      return false;
    }
    // Every class up to Object (or Record) the program's own: a JDK or DJL superclass may hold
    // values in fields of its own (a Proxy's handler).
    for (Class<?> c = type; c != Object.class && c != Record.class; c = c.getSuperclass()) {
      if (c == null || !isPlainHolder(c)) {
        return false;
      }
    }
    return true;
  }

  /** An array's innermost component type; the type itself otherwise. */
  private static Class<?> elementType(Class<?> type) {
    Class<?> t = type;
    while (t.isArray()) {
      t = t.getComponentType();
    }
    return t;
  }

  /**
   * Whether a plain holder's fields may reach a block: a field of a type that may hold one, except
   * one whose type is a final plain holder whose own fields reach none (looked at once per class: a
   * class met again on the way adds nothing new).
   */
  private static boolean fieldsMayHoldBlock(Class<?> holder, java.util.Set<Class<?>> looked) {
    if (!looked.add(holder)) {
      return false;
    }
    // Declared types are read without access, so a field the search could not open counts too.
    for (Class<?> c = holder; c != null && isPlainHolder(c); c = c.getSuperclass()) {
      for (Field field : c.getDeclaredFields()) {
        Class<?> type = field.getType();
        if (Modifier.isStatic(field.getModifiers()) || !mayHoldBlockByKind(type)) {
          continue;
        }
        Class<?> element = elementType(type);
        // A class that is not final may be given a subclass with fields of its own.
        if (isDataClass(element) && Modifier.isFinal(element.getModifiers())) {
          if (fieldsMayHoldBlock(element, looked)) {
            return true;
          }
          continue;
        }
        return true;
      }
    }
    return false;
  }

  /** Whether values of a type may be or hold a block, by the kind of type alone. */
  private static boolean mayHoldBlockByKind(Class<?> type) {
    if (type.isPrimitive()) {
      return false;
    }
    if (type.isArray()) {
      return mayHoldBlockByKind(type.getComponentType());
    }
    return !(type == String.class
        || Number.class.isAssignableFrom(type)
        || type == Boolean.class
        || type == Character.class
        || type.isEnum()
        || type == Class.class
        || NDArray.class.isAssignableFrom(type)
        || ai.djl.ndarray.NDManager.class.isAssignableFrom(type)
        || Parameter.class.isAssignableFrom(type)
        || type.getName().startsWith("ai.djl.ndarray.types.")
        || type == Device.class);
  }

  /**
   * Whether a class is a plain holder of the program's own (a record, a small box class): not a
   * block, not of the JDK or DJL, whose own fields may hold a block one level down.
   *
   * @param type a field's type
   * @return true for a class of the program's own
   */
  public static boolean isPlainHolder(Class<?> type) {
    String name = type.getName();
    return !type.isInterface()
        && !type.isArray()
        && !type.isPrimitive()
        && !Enum.class.isAssignableFrom(type)
        && !Block.class.isAssignableFrom(type)
        && !name.startsWith("java.")
        && !name.startsWith("javax.")
        && !name.startsWith("jdk.")
        && !name.startsWith("sun.")
        && !name.startsWith("ai.djl.");
  }

  /**
   * Lists the instance fields a plain holder declares, and its superclasses that are plain holders
   * too (a JDK or DJL superclass, such as {@code Random} or {@code Record}, is not looked into),
   * leaving out primitives and fields that cannot be made accessible.
   *
   * @param type a class for which {@link #isPlainHolder} is true
   * @return accessible fields (cached per class)
   */
  public static List<FieldSlot> plainHolderFields(Class<?> type) {
    return PLAIN_HOLDER_SLOTS.get(type);
  }

  private static final ClassValue<List<Field>> PLAIN_HOLDER_FIELDS =
      new ClassValue<>() {
        @Override
        protected List<Field> computeValue(Class<?> type) {
          List<Field> fields = new ArrayList<>();
          for (Class<?> c = type; c != null && isPlainHolder(c); c = c.getSuperclass()) {
            for (Field f : c.getDeclaredFields()) {
              if (!Modifier.isStatic(f.getModifiers())
                  && !f.getType().isPrimitive()
                  && f.trySetAccessible()) {
                fields.add(f);
              }
            }
          }
          return List.copyOf(fields);
        }
      };

  /**
   * Returns the first class of a block class's hierarchy (DJL's {@code AbstractBlock} and above
   * aside) that declares instance fields the engine may need but cannot read: its named module does
   * not open its package to DJL Surgery ({@link ClosedPackageException#isClosed}).
   *
   * @param type a block class
   * @return that class, or null when every field can be read (cached per class)
   */
  public static Class<?> closedFieldOwner(Class<?> type) {
    return CLOSED_FIELD_OWNERS.get(type).orElse(null);
  }

  private static final ClassValue<java.util.Optional<Class<?>>> CLOSED_FIELD_OWNERS =
      new ClassValue<>() {
        @Override
        protected java.util.Optional<Class<?>> computeValue(Class<?> type) {
          for (Class<?> c = type; c != null && c != AbstractBlock.class; c = c.getSuperclass()) {
            if (!ClosedPackageException.isClosed(c)) {
              continue;
            }
            for (Field f : c.getDeclaredFields()) {
              if (!Modifier.isStatic(f.getModifiers())) {
                return java.util.Optional.of(c);
              }
            }
          }
          return java.util.Optional.empty();
        }
      };

  private static final ClassValue<List<FieldSlot>> HOLDING_SLOTS = slotsOf(HOLDING_FIELDS);
  private static final ClassValue<List<FieldSlot>> REFERENCING_SLOTS = slotsOf(REFERENCING_FIELDS);
  private static final ClassValue<List<FieldSlot>> ALIAS_SLOTS = slotsOf(ALIAS_FIELDS);
  private static final ClassValue<List<FieldSlot>> PLAIN_HOLDER_SLOTS =
      slotsOf(PLAIN_HOLDER_FIELDS);

  /** The slots of what {@code fields} lists, made once per class. */
  private static ClassValue<List<FieldSlot>> slotsOf(ClassValue<List<Field>> fields) {
    return new ClassValue<>() {
      @Override
      protected List<FieldSlot> computeValue(Class<?> type) {
        return FieldSlot.all(fields.get(type));
      }
    };
  }

  /**
   * Makes a field accessible; a named module that does not open its package refuses, which is said
   * with the {@code opens} that allows it.
   */
  private static void open(Field f) {
    try {
      f.setAccessible(true);
    } catch (java.lang.reflect.InaccessibleObjectException e) {
      throw ClosedPackageException.of(f, e);
    }
  }

  private static Object get(Field f, Object target) {
    return DjlInternals.read(f, target);
  }
}
