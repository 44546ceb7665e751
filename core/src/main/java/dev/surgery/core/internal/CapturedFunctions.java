package dev.surgery.core.internal;

import ai.djl.nn.Block;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.List;

/**
 * What functions captured: the values a lambda or method reference holds (a {@code LambdaBlock}'s
 * function, a pooling call's arguments), whether they can reach a block, and whether they can be
 * read at all. The engine asks to find the blocks a function calls in its forward, which a surgery
 * must not replace behind its back. Fields are looked up once per function class ({@link
 * ClassValue}s) and made accessible by reflection; the fields of block classes themselves are
 * {@link BlockFields}'.
 */
public final class CapturedFunctions {

  private CapturedFunctions() {}

  /**
   * Whether a function class captured nothing able to reach a block, whatever the instance: true
   * for a lambda or method reference without captured fields of such types (a walk meets the same
   * few function classes again and again, so callers may cache the answer per class).
   *
   * @param type the class of a {@code LambdaBlock}'s function
   * @return true when no instance of it can reach a block
   */
  public static boolean inertFunctionClass(Class<?> type) {
    if (!type.isSynthetic() && !type.isHidden()) {
      return false;
    }
    List<Field> captured = CAPTURED_FIELDS.get(type);
    return captured != UNREADABLE && captured.isEmpty();
  }

  /**
   * Whether a function's captured values may hold a block but cannot be read: a lambda of a module
   * that does not open its package, such as the one {@code Function.andThen} returns.
   *
   * @param function a lambda or method reference
   * @return true when the engine cannot tell what the function calls
   */
  public static boolean opaqueFunction(Object function) {
    Class<?> type = function.getClass();
    if (java.lang.reflect.Proxy.isProxyClass(type)) {
      // A proxy calls what its handler holds: a handler of the program's own is looked into, one
      // of the JDK's (MethodHandleProxies' wrappers) or a lambda of a closed package is not. An
      // annotation instance, or a handler of a type that holds no block (an enum), calls none.
      if (function instanceof java.lang.annotation.Annotation) {
        return false;
      }
      Class<?> handler = java.lang.reflect.Proxy.getInvocationHandler(function).getClass();
      return handler.isSynthetic() || handler.isHidden()
          ? CAPTURED_FIELDS.get(handler) == UNREADABLE
          : !BlockFields.isPlainHolder(handler) && BlockFields.mayHoldBlock(handler);
    }
    return (type.isSynthetic() || type.isHidden()) && CAPTURED_FIELDS.get(type) == UNREADABLE;
  }

  /**
   * Whether a value cannot reach a block: a value of a type that holds none, or a function whose
   * captured values (looked into {@code depth} levels, as {@code LambdaBlock.singleton} wraps the
   * user's function once) cannot.
   *
   * @param value a field's value
   * @param depth how many levels of captured functions to look into
   * @return true when the value cannot reach a block
   */
  public static boolean inert(Object value, int depth) {
    Class<?> type = value.getClass();
    if (!type.isSynthetic() && !type.isHidden()) {
      return !BlockFields.mayHoldBlock(type);
    }
    List<Field> captured = CAPTURED_FIELDS.get(type);
    if (captured == UNREADABLE) {
      return false; // a field that cannot be read: assume the worst
    }
    if (captured.isEmpty()) {
      return true;
    }
    if (depth == 0) {
      return false;
    }
    for (Field f : captured) {
      Object held = DjlInternals.read(f, value);
      if (held != null && !inert(held, depth - 1)) {
        return false;
      }
    }
    return true;
  }

  /** Stands for a function class with a field that cannot be made accessible. */
  private static final List<Field> UNREADABLE =
      java.util.Collections.unmodifiableList(new ArrayList<>());

  /**
   * A function class's instance fields whose type may hold a block; {@link #UNREADABLE} when one
   * cannot be made accessible.
   */
  private static final ClassValue<List<Field>> CAPTURED_FIELDS =
      new ClassValue<>() {
        @Override
        protected List<Field> computeValue(Class<?> type) {
          List<Field> fields = new ArrayList<>();
          for (Field f : type.getDeclaredFields()) {
            if (Modifier.isStatic(f.getModifiers()) || !BlockFields.mayHoldBlock(f.getType())) {
              continue;
            }
            if (!f.trySetAccessible()) {
              return UNREADABLE;
            }
            fields.add(f);
          }
          return List.copyOf(fields);
        }
      };

  /**
   * Returns the values a lambda captured, in capture order (the arguments of a pooling call).
   * Singleton lambdas wrap the real function once more; that wrapper is looked through.
   *
   * @param function a lambda object
   * @return the captured values; empty for method references and non-lambda objects
   */
  public static List<Object> capturedValues(Object function) {
    List<Object> values = capturedOf(function);
    // LambdaBlock.singleton wraps the user function in a one-argument lambda: unwrap it.
    if (values.size() == 1 && values.get(0) instanceof java.util.function.Function) {
      List<Object> inner = capturedOf(values.get(0));
      if (!inner.isEmpty()) {
        return inner;
      }
    }
    return values;
  }

  private static List<Object> capturedOf(Object function) {
    List<Object> values = new ArrayList<>();
    if (function == null || !function.getClass().isSynthetic() && !isLambda(function)) {
      return values;
    }
    List<Field> fields = ALL_CAPTURED_FIELDS.get(function.getClass());
    if (fields == UNREADABLE) {
      return values;
    }
    for (Field f : fields) {
      values.add(DjlInternals.read(f, function));
    }
    return values;
  }

  /**
   * Every instance field of a function class, in declaration order (what it captured); {@link
   * #UNREADABLE} when one cannot be made accessible. Looked up per class: the field searches ask
   * for captured values once per lambda they meet.
   */
  private static final ClassValue<List<Field>> ALL_CAPTURED_FIELDS =
      new ClassValue<>() {
        @Override
        protected List<Field> computeValue(Class<?> type) {
          List<Field> fields = new ArrayList<>();
          for (Field f : type.getDeclaredFields()) {
            if (Modifier.isStatic(f.getModifiers())) {
              continue;
            }
            if (!f.trySetAccessible()) {
              return UNREADABLE;
            }
            fields.add(f);
          }
          return List.copyOf(fields);
        }
      };

  private static boolean isLambda(Object function) {
    return function.getClass().isHidden() || function.getClass().getName().contains("$$Lambda");
  }

  /**
   * Returns the class of a function the block runs in its forward (a {@code LambdaBlock}'s, a
   * {@code ParallelBlock}'s) when that class is in a named module that does not open its package to
   * DJL Surgery: what it captured cannot be read, so a surgery that replaces a block it may call is
   * refused. JDK classes (the one {@code Function.andThen} returns) are left to that refusal's own
   * advice, and a lambda whose captured values cannot hold a block (a method reference such as
   * {@code Activation::relu}, a lambda over a number or a shape) is one the engine reads past as
   * well ({@link #opaqueFunction}); a named function class is named as before.
   *
   * @param block a block
   * @return the function's class, or null
   */
  public static Class<?> closedFunctionClass(Block block) {
    for (Field f : FORWARD_FUNCTIONS.get(block.getClass())) {
      Object function = DjlInternals.read(f, block);
      if (function != null) {
        Class<?> type = function.getClass();
        Module module = type.getModule();
        if (ClosedPackageException.isClosed(type)
            && !module.getName().startsWith("java.")
            && (opaqueFunction(function) || !(type.isSynthetic() || type.isHidden()))) {
          return type;
        }
      }
    }
    return null;
  }

  /** The function-typed fields DJL's own block classes (ai.djl.nn) declare: run in forward. */
  private static final ClassValue<List<Field>> FORWARD_FUNCTIONS =
      new ClassValue<>() {
        @Override
        protected List<Field> computeValue(Class<?> type) {
          List<Field> fields = new ArrayList<>();
          for (Class<?> c = type; c != null && c != Object.class; c = c.getSuperclass()) {
            if (!c.getName().startsWith("ai.djl.nn.")) {
              continue;
            }
            for (Field f : c.getDeclaredFields()) {
              if (!Modifier.isStatic(f.getModifiers())
                  && java.util.function.Function.class.isAssignableFrom(f.getType())
                  && f.trySetAccessible()) {
                fields.add(f);
              }
            }
          }
          return List.copyOf(fields);
        }
      };
}
