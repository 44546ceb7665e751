/**
 * Everything that reaches past a public API, kept in one place.
 *
 * <ul>
 *   <li>DJL's internals: {@link dev.surgery.core.internal.DjlInternals} resolves every DJL field
 *       the library reads by reflection (built for DJL 0.36.0) and names the class and field when
 *       one is missing; {@link dev.surgery.core.internal.DjlBlocks}, {@link
 *       dev.surgery.core.internal.DjlShapes}, {@link dev.surgery.core.internal.DjlTrainers} and
 *       {@link dev.surgery.core.internal.DjlOptimizers} read and write them, grouped by what they
 *       reach; {@link dev.surgery.core.internal.BlockFields} lists the fields of block classes that
 *       may hold a block (as {@link dev.surgery.core.internal.FieldSlot}s, the only way the rest of
 *       the library reads or writes a field) and the values lambdas captured, and {@link
 *       dev.surgery.core.internal.ClosedPackageException} says which module to open when the Java
 *       module system refuses that reflection.
 *   <li>The optimizer's view of surgery: {@link dev.surgery.core.internal.BirthAwareOptimizer}
 *       gives parameters added mid-training the updates of a fresh optimizer, {@link
 *       dev.surgery.core.internal.KeptIdTracker} keeps a moved parameter's per-id learning rate,
 *       both through {@link dev.surgery.core.internal.IdMarks}, marks per parameter id that a
 *       rollback puts back.
 *   <li>The JVM: {@link dev.surgery.core.internal.IdentityHashes} reads from an object's header
 *       whether its identity hash was ever computed (checked at start-up, off where the layout is
 *       not HotSpot's of JDK 17 to 22).
 *   <li>The identity maps the other packages share ({@link
 *       dev.surgery.core.internal.LinkedIdentityMap}, {@link
 *       dev.surgery.core.internal.WeakIdentityMap}): blocks, models and trainers are keyed by
 *       identity, since a user's class may override {@code equals}.
 * </ul>
 *
 * <p>Not an API: it may change in any release, but for {@link
 * dev.surgery.core.internal.DjlInternalsException}, which a DJL whose internals differ raises at
 * first use (the user guide names it), and which keeps its name and package.
 */
package dev.surgery.core.internal;
