package dev.surgery.samples.data;

import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.basicdataset.tabular.CsvDataset;
import ai.djl.basicdataset.tabular.utils.Feature;
import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.commons.csv.CSVFormat;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The samples' class path is the one the user guide has programs run with under the agent (DJL, its
 * engine, the zoo and basicdataset). DJL's tabular datasets read their files with commons-csv
 * 1.14.1, which needs commons-io 2.17 or later; Maven's nearest-wins rule picked commons-compress's
 * commons-io 2.16.1, and every CsvDataset (DJL's TrainAirfoilWithTabNet, an outside probe found)
 * failed in prepare() with NoClassDefFoundError: UnsynchronizedBufferedReader.
 */
class CsvDatasetClassPathTest {

  @Test
  void aCsvDatasetPreparesOnTheSamplesClassPath(@TempDir Path dir) throws Exception {
    Path csv = dir.resolve("airfoil.tsv");
    Files.writeString(
        csv,
        "800\t0.0\t0.3048\t71.3\t0.00266\t126.201\n1000\t0.0\t0.3048\t71.3\t0.00266\t125.201\n");
    CsvDataset.CsvBuilder<?> builder = CsvDataset.builder();
    builder
        .optCsvFile(csv)
        .setCsvFormat(
            CSVFormat.TDF
                .builder()
                .setHeader("freq", "aoa", "chordlen", "freestreamvel", "ssdt", "ssoundpres")
                .get())
        .setSampling(2, false);
    for (String name : new String[] {"freq", "aoa", "chordlen", "freestreamvel", "ssdt"}) {
      builder.addFeature(new Feature(name, true));
    }
    builder.addNumericLabel("ssoundpres", false);
    CsvDataset dataset = builder.build();
    dataset.prepare();
    assertEquals(2, dataset.size());
  }
}
