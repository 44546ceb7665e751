/**
 * Weaves the advice into DJL's {@code Trainer}, {@code BaseModel} and {@code EasyTrain}, in
 * whichever class loader defines them, after checking that each has the shape the advice expects.
 *
 * <p>Defined by the system class loader. It links against the JDK, the relocated ByteBuddy, the
 * {@code advice} and {@code bridge} packages; DJL's classes are matched by name and described by
 * ByteBuddy, never linked.
 */
package dev.surgery.agent.install;
