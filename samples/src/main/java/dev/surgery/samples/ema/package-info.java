/**
 * An exponential moving average of the weights (Composer's {@code EMA}) as an algorithm plugin:
 * {@link dev.surgery.samples.ema.Ema} reacts to training events by itself, and {@link
 * dev.surgery.samples.ema.EmaProvider} adds it to YAML configs through {@link
 * java.util.ServiceLoader}. The build packages this package alone, with its service file, as the
 * jar {@code surgery-samples-<version>-ema-plugin.jar}, to be put on the class path or given to the
 * agent with {@code extensions=}.
 */
package dev.surgery.samples.ema;
