package dev.surgery.core.internal;

import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.util.ArrayList;
import java.util.List;

/**
 * A field of a block class (or of a holder one of its fields holds) that the engine reads, and may
 * write, made accessible by {@link BlockFields}: the rest of the library works with these, never
 * with reflection itself. Two slots of the same field are equal.
 */
public final class FieldSlot {

  private final Field field;

  private FieldSlot(Field field) {
    this.field = field;
  }

  /** Slots for accessible fields, in their order. */
  static List<FieldSlot> all(List<Field> fields) {
    List<FieldSlot> slots = new ArrayList<>(fields.size());
    for (Field f : fields) {
      slots.add(new FieldSlot(f));
    }
    return List.copyOf(slots);
  }

  /**
   * Reads the field.
   *
   * @param target the object holding it (ignored for a static field)
   * @return its value
   */
  public Object get(Object target) {
    return DjlInternals.read(field, target);
  }

  /**
   * Writes the field.
   *
   * @param target the object holding it
   * @param value the new value
   */
  public void set(Object target, Object value) {
    DjlInternals.write(field, target, value);
  }

  /**
   * Returns the field's name.
   *
   * @return the name, as declared
   */
  public String name() {
    return field.getName();
  }

  /**
   * Returns the field's declared type.
   *
   * @return the type, erased
   */
  public Class<?> type() {
    return field.getType();
  }

  /**
   * Returns the class that declares the field.
   *
   * @return the declaring class
   */
  public Class<?> declaringClass() {
    return field.getDeclaringClass();
  }

  /**
   * Tells whether the field is static (shared by every instance).
   *
   * @return true for a static field
   */
  public boolean isStatic() {
    return Modifier.isStatic(field.getModifiers());
  }

  /**
   * Returns the class a {@code java.util} collection or map field declares for one of its type
   * arguments ({@code List<Linear>}: {@code Linear} for argument 0), its raw class when the
   * argument is itself parameterized; null when the field declares none (an {@code Object} field, a
   * raw {@code List}, a type of the program's own, a wildcard or a type variable).
   *
   * @param index the type argument's position (a map's values: 1)
   * @return the declared element class, or null
   */
  public Class<?> declaredTypeArgument(int index) {
    Type type = field.getGenericType();
    if (!(type instanceof ParameterizedType parameterized)
        || !(parameterized.getRawType() instanceof Class<?> raw)
        || !raw.getName().startsWith("java.util.")) {
      return null;
    }
    Type[] arguments = parameterized.getActualTypeArguments();
    if (index >= arguments.length) {
      return null;
    }
    Type argument = arguments[index];
    if (argument instanceof ParameterizedType inner) {
      argument = inner.getRawType();
    }
    return argument instanceof Class<?> element ? element : null;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof FieldSlot other && other.field.equals(field);
  }

  @Override
  public int hashCode() {
    return field.hashCode();
  }

  @Override
  public String toString() {
    return field.getDeclaringClass().getName() + "." + field.getName();
  }
}
