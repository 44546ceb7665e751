package dev.surgery.core;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.initializer.Initializer;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;

/**
 * Runs a parameter's own initializer on a manager whose random draws are zeros: a plan places and
 * initializes the replacements, so that it learns their shapes and refuses what the apply refuses
 * (an initializer that rejects a shape fails the plan as it fails the apply), without moving the
 * engine's random generator, on which the program's next draws (data, dropout, the apply's own
 * initialization) depend. The arrays are freed by the plan's rollback; their values are never read.
 * A draw without a shape to give zeros of (a permutation, a sample shaped like another array) still
 * draws: DJL's initializers make none.
 */
final class NoDrawInitializer implements Initializer {

  private final Initializer initializer;

  NoDrawInitializer(Initializer initializer) {
    this.initializer = initializer;
  }

  /** {@inheritDoc} */
  @Override
  public NDArray initialize(NDManager manager, Shape shape, DataType dataType) {
    return initializer.initialize(withoutDraws(manager), shape, dataType);
  }

  /** The manager, with its shaped random draws giving zeros of their shape, type and device. */
  static NDManager withoutDraws(NDManager manager) {
    return (NDManager)
        Proxy.newProxyInstance(
            NDManager.class.getClassLoader(),
            new Class<?>[] {NDManager.class},
            (proxy, method, args) -> {
              if (draws(method) && args != null) {
                Shape shape = null;
                DataType dataType = DataType.FLOAT32;
                Device device = manager.getDevice();
                for (Object arg : args) {
                  if (arg instanceof Shape s) {
                    shape = s;
                  } else if (arg instanceof DataType t) {
                    dataType = t;
                  } else if (arg instanceof Device d) {
                    device = d;
                  }
                }
                if (shape != null) {
                  return manager.zeros(shape, dataType, device);
                }
              }
              try {
                return method.invoke(manager, args);
              } catch (InvocationTargetException e) {
                throw e.getCause();
              }
            });
  }

  private static boolean draws(Method method) {
    String name = method.getName();
    return name.startsWith("random") || name.startsWith("sample") || name.equals("truncatedNormal");
  }
}
