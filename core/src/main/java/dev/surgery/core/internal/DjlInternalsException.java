package dev.surgery.core.internal;

/**
 * DJL no longer has the shape this library was built against: a class or field that surgery reads
 * by reflection is missing or has another type. The message names the DJL class and field.
 */
public final class DjlInternalsException extends IllegalStateException {

  private static final long serialVersionUID = 1L;

  DjlInternalsException(String message, Throwable cause) {
    super(message, cause);
  }
}
