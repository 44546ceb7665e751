package dev.surgery.trainer.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * {@link ConfigText}: blank as the published schema's ECMAScript {@code \S} counts it, and text
 * shown so that a message stays on one line and tells look-alikes apart.
 */
class ConfigTextTest {

  /** ECMAScript's white space and line terminators, as the ECMA-262 standard lists them. */
  private static final Pattern ECMA_SPACE =
      Pattern.compile(
          "[\\t\\n\\u000B\\f\\r \\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000\\uFEFF]");

  @Test
  void blankIsExactlyWhatTheSchemasPatternCallsSpace() {
    // The oracle: the standard's list, character by character over the Basic Multilingual Plane.
    for (int c = 0; c <= 0xFFFF; c++) {
      if (c >= 0xD800 && c <= 0xDFFF) {
        continue; // surrogates are not characters on their own
      }
      String one = new String(Character.toChars(c));
      assertEquals(
          ECMA_SPACE.matcher(one).matches(), ConfigText.blank(one), String.format("U+%04X", c));
    }
    assertTrue(ConfigText.blank("\u00A0 \u202F"));
    assertFalse(ConfigText.blank("\u001C"), "a file separator is no space to the schema");
    assertFalse(ConfigText.blank(" a "));
  }

  @Test
  void invisibleCharactersAreNamedAndLookAlikesFlagged() {
    assertEquals("'blurpool<U+200B>'", ConfigText.shown("blurpool\u200B"));
    assertEquals("'ghost<U+2028>batchnorm'", ConfigText.shown("ghost\u2028batchnorm"));
    assertEquals(
        "'blurp\u043Eol' (not ASCII: U+043E at character 6)", ConfigText.shown("blurp\u043Eol"));
    // A character beyond U+FFFF counts once, and a plain name is only quoted.
    assertEquals(
        "'a\uD83D\uDE00b' (not ASCII: U+1F600 at character 2)", ConfigText.shown("a\uD83D\uDE00b"));
    assertEquals("'blurpool'", ConfigText.shown("blurpool"));
  }
}
