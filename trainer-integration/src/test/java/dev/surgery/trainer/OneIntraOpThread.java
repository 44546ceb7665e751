package dev.surgery.trainer;

import ai.djl.engine.Engine;
import ai.djl.pytorch.jni.JniUtils;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * One PyTorch intra-op thread while a test class runs
 * ({@code @ExtendWith(OneIntraOpThread.class)}): its operations are tiny, and on a shared CPU the
 * OpenMP threads of two-thread operations spin-wait for each other (measured on the 2-core build
 * machine under load: 196 s for CompositionMatrixTest with two threads, 19 s with one). The JVM's
 * setting is put back after.
 */
final class OneIntraOpThread implements BeforeAllCallback, AfterAllCallback {

  private static final ExtensionContext.Namespace NAMESPACE =
      ExtensionContext.Namespace.create(OneIntraOpThread.class);

  @Override
  public void beforeAll(ExtensionContext context) {
    Engine.getInstance();
    context.getStore(NAMESPACE).put("threads", JniUtils.getNumThreads());
    JniUtils.setNumThreads(1);
  }

  @Override
  public void afterAll(ExtensionContext context) {
    JniUtils.setNumThreads(context.getStore(NAMESPACE).get("threads", Integer.class));
  }
}
