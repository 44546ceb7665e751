package dev.surgery.core.internal;

import java.lang.reflect.Field;

/**
 * A block class (or a function a block runs) belongs to a named module that does not open its
 * package to DJL Surgery, so the engine cannot read or write the fields that may hold a block: the
 * Java module system refuses the reflection. The message names the class, the field, the module and
 * package, and the {@code opens} directive (or {@code --add-opens} option) that allows it.
 */
public final class ClosedPackageException extends IllegalStateException {

  private static final long serialVersionUID = 1L;

  /** The class whose field cannot be opened. */
  private final transient Class<?> type;

  private ClosedPackageException(String message, Class<?> type, Throwable cause) {
    super(message, cause);
    this.type = type;
  }

  static ClosedPackageException of(Field field, RuntimeException cause) {
    Class<?> owner = field.getDeclaringClass();
    return new ClosedPackageException(
        "cannot read field "
            + owner.getName()
            + "."
            + field.getName()
            + " by reflection: "
            + advice(owner)
            + " (the engine reads and writes the fields of block classes that may hold a block)",
        owner,
        cause);
  }

  /**
   * Returns the class whose field cannot be opened.
   *
   * @return the class that declares the field
   */
  public Class<?> getType() {
    return type;
  }

  /**
   * Whether a class is in a named module that does not open its package to DJL Surgery.
   *
   * @param type any class
   * @return true when reflection into its fields is refused
   */
  public static boolean isClosed(Class<?> type) {
    Module module = type.getModule();
    return module.isNamed()
        && !module.isOpen(type.getPackageName(), ClosedPackageException.class.getModule());
  }

  /**
   * Says which module does not open which package to DJL Surgery, and how to open it.
   *
   * @param type a class of that package
   * @return the advice, one sentence
   */
  public static String advice(Class<?> type) {
    Module module = type.getModule();
    String pkg = type.getPackageName();
    Module ours = ClosedPackageException.class.getModule();
    if (ours.isNamed()) {
      return "module "
          + module.getName()
          + " does not open package "
          + pkg
          + " to module "
          + ours.getName()
          + ": add 'opens "
          + pkg
          + " to "
          + ours.getName()
          + ";' to its module-info.java (or run java with --add-opens "
          + module.getName()
          + "/"
          + pkg
          + "="
          + ours.getName()
          + ")";
    }
    // DJL Surgery on the class path (or inside the surgery agent): a qualified opens cannot name
    // the unnamed module.
    return "module "
        + module.getName()
        + " does not open package "
        + pkg
        + " to DJL Surgery, which runs from the class path: add 'opens "
        + pkg
        + ";' to its module-info.java (or run java with --add-opens "
        + module.getName()
        + "/"
        + pkg
        + "=ALL-UNNAMED)";
  }
}
