package dev.surgery.trainer.config;

import java.util.Collection;
import java.util.Locale;

/** Finds the closest known name to a misspelled one, for "did you mean" hints. */
final class EditDistance {

  private EditDistance() {}

  /**
   * Returns the candidate closest to {@code input} if it is close enough to be a likely typo.
   *
   * @param input what the user wrote
   * @param candidates the valid names
   * @return the suggestion, or null
   */
  static String suggest(String input, Collection<String> candidates) {
    String in = normalize(input);
    String best = null;
    int bestDistance = Integer.MAX_VALUE;
    for (String candidate : candidates) {
      int d = distance(in, normalize(candidate));
      if (d < bestDistance) {
        bestDistance = d;
        best = candidate;
      }
    }
    if (best == null) {
      return null;
    }
    // A third of the word may be wrong, at least one character, at most three: "blurpol" ->
    // "blurpool" is a typo, "foo" -> "blurpool" is not.
    int allowed = Math.max(1, Math.min(3, Math.max(in.length(), best.length()) / 3));
    return bestDistance <= allowed ? best : sameStem(in, candidates);
  }

  /**
   * The candidate whose name the input shares all but the last character of, over at least six
   * (another ending of the same word: "squeeze_excitation" for "squeeze_excite", "layer_freeze" for
   * "layer_freezing"), or null.
   */
  private static String sameStem(String in, Collection<String> candidates) {
    String best = null;
    int bestPrefix = 0;
    boolean tied = false;
    for (String candidate : candidates) {
      String c = normalize(candidate);
      int prefix = 0;
      while (prefix < Math.min(in.length(), c.length()) && in.charAt(prefix) == c.charAt(prefix)) {
        prefix++;
      }
      if (prefix < 6 || prefix < Math.min(in.length(), c.length()) - 1) {
        continue;
      }
      if (prefix > bestPrefix) {
        bestPrefix = prefix;
        best = candidate;
        tied = false;
      } else if (prefix == bestPrefix) {
        tied = true; // "latent": latent_channels or latent_features? Neither is a good guess.
      }
    }
    return tied ? null : best;
  }

  /** Case and separator differences (BlurPool, min-channels) cost nothing. */
  private static String normalize(String s) {
    return s.toLowerCase(Locale.ROOT).replace('-', '_');
  }

  /** Optimal string alignment distance: insertions, deletions, substitutions, transpositions. */
  static int distance(String a, String b) {
    int[][] d = new int[a.length() + 1][b.length() + 1];
    for (int i = 0; i <= a.length(); i++) {
      d[i][0] = i;
    }
    for (int j = 0; j <= b.length(); j++) {
      d[0][j] = j;
    }
    for (int i = 1; i <= a.length(); i++) {
      for (int j = 1; j <= b.length(); j++) {
        int cost = a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1;
        d[i][j] = Math.min(Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1), d[i - 1][j - 1] + cost);
        if (i > 1
            && j > 1
            && a.charAt(i - 1) == b.charAt(j - 2)
            && a.charAt(i - 2) == b.charAt(j - 1)) {
          d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
        }
      }
    }
    return d[a.length()][b.length()];
  }
}
