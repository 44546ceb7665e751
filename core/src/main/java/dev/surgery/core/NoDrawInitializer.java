package dev.surgery.core;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.initializer.Initializer;
import ai.djl.training.initializer.TruncatedNormalInitializer;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * Runs a parameter's own initializer on a manager whose random draws are zeros: a plan places and
 * initializes the replacements, so that it learns their shapes and refuses what the apply refuses
 * (an initializer that rejects a shape fails the plan as it fails the apply), without moving the
 * engine's random generator, on which the program's next draws (data, dropout, the apply's own
 * initialization) depend. The arrays are freed by the plan's rollback; their values are never read.
 *
 * <p>The draws whose result is the shape asked for ({@code randomUniform}, {@code randomNormal},
 * {@code truncatedNormal}, {@code randomInteger}) give zeros and {@code randomPermutation} the
 * identity; sub-managers are wrapped alike. DJL's {@code TruncatedNormalInitializer} attaches its
 * result to the manager it was given, which must be DJL's own class: it is given its one check (a
 * determined shape) and zeros. That covers every initializer DJL ships. An initializer of the
 * program's own runs as it is, within these limits: a draw of another kind (a sample shaped like
 * other arrays, DJL's host generator {@code RandomUtils}, a {@code java.util.Random}) still draws,
 * and one that attaches its result to the manager it was given is given zeros from there on (a
 * check it would make after that is not made).
 */
final class NoDrawInitializer implements Initializer {

  private final Initializer initializer;

  NoDrawInitializer(Initializer initializer) {
    this.initializer = initializer;
  }

  /** {@inheritDoc} */
  @Override
  public NDArray initialize(NDManager manager, Shape shape, DataType dataType) {
    if (initializer instanceof TruncatedNormalInitializer) {
      if (shape.size() < 0) {
        throw new IllegalArgumentException("Shape is not determined.");
      }
      return manager.zeros(shape, dataType);
    }
    List<NDManager> subManagers = new ArrayList<>();
    try {
      return initializer.initialize(withoutDraws(manager, subManagers), shape, dataType);
    } catch (ClassCastException e) {
      // It handed the stand-in to DJL code that wants DJL's own manager class (attach): its checks
      // had passed by then.
      subManagers.forEach(NDManager::close);
      return manager.zeros(shape, dataType);
    }
  }

  /**
   * The manager, with its shaped random draws giving zeros of their shape, type and device; the
   * sub-managers it creates are wrapped alike and listed in {@code subManagers}.
   */
  static NDManager withoutDraws(NDManager manager, List<NDManager> subManagers) {
    return (NDManager)
        Proxy.newProxyInstance(
            NDManager.class.getClassLoader(),
            new Class<?>[] {NDManager.class},
            (proxy, method, args) -> {
              if (method.getName().equals("randomPermutation")
                  && args != null
                  && args.length == 1
                  && args[0] instanceof Long n) {
                // The identity is a permutation too, drawn from nothing (PyTorch's randperm is
                // int64).
                return manager.arange(0, (int) (long) n, 1, DataType.INT64);
              }
              if (DRAWS.contains(method.getName()) && args != null) {
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
              Object result;
              try {
                result = method.invoke(manager, args);
              } catch (InvocationTargetException e) {
                throw e.getCause();
              }
              if (method.getName().equals("newSubManager") && result instanceof NDManager sub) {
                subManagers.add(sub);
                return withoutDraws(sub, subManagers);
              }
              return result;
            });
  }

  /** The draws whose result has the shape they are given (a sample's has the parameters' too). */
  private static final Set<String> DRAWS =
      Set.of("randomUniform", "randomNormal", "truncatedNormal", "randomInteger");
}
