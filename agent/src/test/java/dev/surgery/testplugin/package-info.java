/**
 * Algorithm plugins the agent's integration tests build into jars at test time (with their {@code
 * META-INF/services} file) and pass to the agent with {@code extensions=}. The package is outside
 * {@code dev.surgery.agent}, {@code dev.surgery.core} and {@code dev.surgery.trainer}, as a user's
 * plugin would be: the agent's extension loader defines it from the jar, linked against the agent's
 * copy of the surgery library, even though the test class path holds these classes too.
 */
package dev.surgery.testplugin;
