package dev.surgery.trainer.config;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/** How the parser shows text from a config file in its messages, and which text counts as blank. */
final class ConfigText {

  private ConfigText() {}

  /**
   * A name from the file, quoted as a message shows it. A character that would not show (a space
   * other than ' ', a format character such as a zero-width space or a byte-order mark, a control
   * character, a line separator) is written as {@code <U+XXXX>}, so the message stays on one line
   * and says what is there; letters outside ASCII are named after the quote, since a look-alike (a
   * Cyrillic 'о') reads as the ASCII letter a valid name has.
   *
   * @param text the text as read from the file
   * @return the quoted text, with any such note
   */
  static String shown(String text) {
    StringBuilder quoted = new StringBuilder("'");
    List<String> foreign = new ArrayList<>();
    int position = 0;
    for (int i = 0; i < text.length(); i += Character.charCount(text.codePointAt(i))) {
      int c = text.codePointAt(i);
      position++;
      if (hidden(c)) {
        quoted.append(String.format(Locale.ROOT, "<U+%04X>", c));
      } else {
        quoted.appendCodePoint(c);
        if (c > 0x7E && foreign.size() < 3) {
          foreign.add(String.format(Locale.ROOT, "U+%04X at character %d", c, position));
        }
      }
    }
    quoted.append('\'');
    if (!foreign.isEmpty()) {
      quoted.append(" (not ASCII: ").append(String.join(", ", foreign)).append(')');
    }
    return quoted.toString();
  }

  /**
   * Whether text is blank as the published schema's {@code \S} counts it: only ECMAScript's white
   * space, which has the no-break spaces (U+00A0, U+2007, U+202F) and the byte-order mark that
   * {@link String#isBlank} does not count.
   *
   * @param text the text
   * @return true when it holds nothing but such spaces
   */
  static boolean blank(String text) {
    return text.codePoints().allMatch(ConfigText::ecmaScriptSpace);
  }

  /** ECMAScript's {@code \s}: Java's white space less U+001C to U+001F, plus the no-break ones. */
  private static boolean ecmaScriptSpace(int c) {
    return (Character.isWhitespace(c) && (c < 0x1C || c > 0x1F))
        || Character.isSpaceChar(c)
        || c == 0xFEFF;
  }

  /** A character a message cannot show as itself: any space but ' ', a control or format one. */
  private static boolean hidden(int c) {
    return c != ' '
        && (Character.isWhitespace(c)
            || Character.isSpaceChar(c)
            || Character.isISOControl(c)
            || Character.getType(c) == Character.FORMAT);
  }
}
