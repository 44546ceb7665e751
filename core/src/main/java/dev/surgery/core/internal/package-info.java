/**
 * Everything that depends on DJL's non-public internals, kept in one place: {@link
 * dev.surgery.core.internal.DjlInternals} resolves every DJL field the library reads by reflection
 * (built for DJL 0.36.0) and names the class and field when one is missing; {@link
 * dev.surgery.core.internal.BlockFields} lists the fields of block classes that may hold a block
 * and the values lambdas captured; {@link dev.surgery.core.internal.BirthAwareOptimizer} gives
 * parameters added mid-training the updates of a fresh optimizer. Beside them, the identity maps
 * ({@link dev.surgery.core.internal.LinkedIdentityMap}, {@link
 * dev.surgery.core.internal.WeakIdentityMap}) the other packages share: blocks and models are keyed
 * by identity, since a user's block class may override {@code equals}. Not an API: it may change in
 * any release, but for {@link dev.surgery.core.internal.DjlInternalsException}, which a DJL whose
 * internals differ raises at first use (the user guide names it), and which keeps its name and
 * package.
 */
package dev.surgery.core.internal;
