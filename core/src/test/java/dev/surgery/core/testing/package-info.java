/**
 * Test fixtures shared by every module's tests through core's test-jar: tiny layers and models,
 * generated data, the open-array counter and the exactness oracle.
 */
package dev.surgery.core.testing;
