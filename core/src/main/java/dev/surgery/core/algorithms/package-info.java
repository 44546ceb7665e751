/**
 * The surgery algorithms (BlurPool, squeeze-excite, ghost batch norm, factorization, stochastic
 * depth, weight standardization, layer freezing), each applied to a model through {@code
 * ModuleSurgery}, and the registry that names them for YAML configs.
 */
package dev.surgery.core.algorithms;
