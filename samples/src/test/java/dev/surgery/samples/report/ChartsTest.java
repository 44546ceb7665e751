package dev.surgery.samples.report;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.text.NumberFormat;
import java.util.List;
import java.util.Locale;
import org.junit.jupiter.api.Test;
import org.knowm.xchart.XYChart;

/** The reports' charts number their axes alike whatever the JVM's default locale. */
class ChartsTest {

  /**
   * An outside tester: under de_DE the y axes read "0,5" beside the x axis's "0.33", under th_TH_TH
   * in Thai digits the chart's font draws as empty boxes. XChart formats its axes with {@code
   * NumberFormat.getNumberInstance(styler.getLocale())}, which defaulted to the JVM's locale.
   */
  @Test
  void axisNumbersDoNotFollowTheDefaultLocale() {
    Locale saved = Locale.getDefault();
    try {
      for (Locale locale :
          List.of(Locale.GERMANY, new Locale("th", "TH", "TH"), new Locale("ar", "SA"))) {
        Locale.setDefault(locale);
        XYChart chart = Charts.newChart("t", "x", "y");
        Locale used = chart.getStyler().getLocale();
        assertEquals(Locale.ROOT, used, locale.toString());
        assertEquals("0.5", NumberFormat.getNumberInstance(used).format(0.5), locale.toString());
      }
    } finally {
      Locale.setDefault(saved);
    }
  }
}
