package dev.surgery.samples.report;

/** What the report pages share to write HTML. */
final class Html {

  private Html() {}

  /**
   * Escapes text for an HTML element or a double-quoted attribute.
   *
   * @param s the text
   * @return the text with {@code & < > "} escaped
   */
  static String escape(String s) {
    return s.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\"", "&quot;");
  }
}
