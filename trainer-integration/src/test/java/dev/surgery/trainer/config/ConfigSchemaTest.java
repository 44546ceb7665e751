package dev.surgery.trainer.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.networknt.schema.JsonSchema;
import com.networknt.schema.JsonSchemaFactory;
import com.networknt.schema.SchemaLocation;
import com.networknt.schema.SpecVersion;
import com.networknt.schema.ValidationMessage;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.trainer.docs.MarkdownDoc;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.snakeyaml.engine.v2.api.Load;
import org.snakeyaml.engine.v2.api.LoadSettings;
import org.snakeyaml.engine.v2.exceptions.YamlEngineException;
import org.snakeyaml.engine.v2.schema.CoreSchema;

/**
 * Checks {@code docs/surgery-config.schema.json} against the parser, which is the oracle: every
 * config the parser accepts (the samples, the YAML examples of the docs, {@code good-configs}) is
 * valid under the schema, and every file of the bad-input corpus is either refused by the schema or
 * listed as a rule only the parser can check. The schema's algorithms and their keys are those of
 * the registry.
 */
class ConfigSchemaTest {

  private static final ObjectMapper JSON = new ObjectMapper();

  /** Corpus files the schema refuses: wrong keys, types, ranges, choices, patterns. */
  static final Set<String> SCHEMA_CATCHES =
      Set.of(
          "01-empty.yaml",
          "03-only-comments.yaml",
          "15-unknown-top-level-key.yaml",
          "16-unknown-algorithm.yaml",
          "17-algorithm-wrong-case.yaml",
          "18-unknown-hyperparameter.yaml",
          "19-epoch-is-a-word.yaml",
          "20-negative-epoch.yaml",
          "21-huge-epoch.yaml",
          "22-epoch-one-past-limit.yaml",
          "23-fractional-epoch.yaml",
          "24-quoted-epoch.yaml",
          "25-epoch-is-a-list.yaml",
          "26-epoch-missing.yaml",
          "27-name-missing.yaml",
          "28-name-is-a-number.yaml",
          "29-algorithms-is-a-scalar.yaml",
          "30-algorithms-is-a-mapping.yaml",
          "31-top-level-list.yaml",
          "32-top-level-scalar.yaml",
          "33-boolean-yes.yaml",
          "34-negative-min-channels.yaml",
          "35-drop-rate-above-one.yaml",
          "37-choice-typo.yaml",
          "38-on-error-typo.yaml",
          "39-report-is-a-number.yaml",
          "45-crlf-negative-epoch.yaml",
          "46-bom-unknown-algorithm.yaml",
          "48-every-problem-reported.yaml",
          "49-valid-entry-then-bad-entry.yaml",
          "50-non-string-key.yaml",
          "54-include-empty-path-segment.yaml",
          "55-exclude-double-star-inside-segment.yaml",
          "56-include-number-and-empty-type.yaml",
          "57-include-key-typo.yaml",
          "58-include-mapping-exclude-absolute.yaml",
          "59-step-zero.yaml",
          "60-epoch-and-step.yaml",
          "62-every-duration.yaml",
          "63-time-string-upper-case.yaml",
          "65-drop-rate-one.yaml",
          "69-include-empty-list.yaml",
          "73-pattern-with-escape.yaml",
          "74-pattern-after-astral-character.yaml",
          "77-integer-beyond-long.yaml",
          "81-entry-key-wrong-case.yaml",
          "93-algorithm-name-with-invisible-characters.yaml",
          "94-algorithm-name-look-alike.yaml",
          "95-factorize-nothing-to-factorize.yaml",
          "64-fractional-epochs-time-string.yaml", // counts are whole numbers in the pattern
          "97-decimal-point-in-a-count.yaml");

  /**
   * Corpus files only the parser refuses: not YAML text at all (binary, syntax errors, several
   * documents, unknown tags, alias and nesting bombs, duplicate keys, which JSON cannot hold), a
   * NaN (JSON has none), and rules across values (an epoch after total_epochs, combinations).
   */
  static final Set<String> PARSER_ONLY =
      Set.of(
          "02-blank.yaml", // its tab is a YAML error before any schema sees it
          "04-binary-garbage.yaml",
          "05-png-image.yaml",
          "06-utf16.yaml",
          "07-nul-in-text.yaml",
          "08-bad-indentation.yaml",
          "09-tab-indentation.yaml",
          "10-unclosed-flow-list.yaml",
          "11-undefined-alias.yaml",
          "12-duplicate-top-level-key.yaml",
          "13-duplicate-entry-key.yaml",
          "14-duplicate-hyperparameter.yaml",
          "36-drop-rate-nan.yaml",
          "40-epoch-after-total-epochs.yaml",
          "41-two-documents.yaml",
          "42-python-tag.yaml",
          "43-nesting-bomb.yaml",
          "44-alias-bomb.yaml",
          "47-invalid-utf8-in-name.yaml",
          "51-unclosed-quote.yaml",
          "52-squeeze-excite-repeated.yaml",
          "53-blurpool-repeated.yaml",
          "61-duration-without-length.yaml", // needs a length the file does not give
          "66-every-after-last-epoch.yaml", // compares a schedule with total_epochs
          "67-at-after-last-epoch.yaml",
          "68-every-after-last-step.yaml",
          "70-include-and-exclude-same.yaml", // compares two lists
          "71-python-tag-on-entry.yaml", // a tag: JSON has none to check
          "72-tag-on-list.yaml",
          "75-pattern-with-no-break-space.yaml", // the validator's Java \\s leaves U+00A0 out
          "76-at-past-the-last-step.yaml", // a range inside a time string
          "78-pattern-with-zero-width-space.yaml", // \\s has no format characters
          "82-stochastic-depth-twice-by-step.yaml", // compares two entries
          "83-ghost-batchnorm-by-epoch-and-duration.yaml",
          "79-every-count-beyond-a-long.yaml",
          "80-pattern-with-astral-format-character.yaml",
          "84-plus-infinity.yaml", // JSON has no infinity
          "85-tagged-value-not-of-its-type.yaml", // tags: JSON has none
          "86-merge-key.yaml", // the editor's reader merges; JSON never sees the key
          "87-merge-key-with-a-scalar.yaml",
          "88-merge-tag.yaml",
          "96-merge-tag-on-an-ordinary-key.yaml", // a tag: JSON has none
          "89-yaml-version-2.yaml", // not YAML 1.2 text
          "90-second-document-of-comments.yaml",
          "91-report-name-too-long.yaml", // a file system's limit, with the writer's suffix
          "92-report-no-break-space.yaml"); // as 75: the validator's Java \\s

  static JsonSchema schema() throws IOException {
    JsonNode node = JSON.readTree(schemaFile().toFile());
    return JsonSchemaFactory.getInstance(SpecVersion.VersionFlag.V202012).getSchema(node);
  }

  static Path schemaFile() {
    return MarkdownDoc.repositoryRoot().resolve("docs/surgery-config.schema.json");
  }

  /**
   * Reads a config file as JSON the way an editor's YAML plugin would see it.
   *
   * @return the JSON value, or null when the file is not a single well-formed YAML document that
   *     JSON can represent
   */
  static JsonNode toJson(byte[] bytes) {
    String text;
    try {
      text =
          StandardCharsets.UTF_8
              .newDecoder()
              .onMalformedInput(CodingErrorAction.REPORT)
              .onUnmappableCharacter(CodingErrorAction.REPORT)
              .decode(ByteBuffer.wrap(bytes))
              .toString();
    } catch (CharacterCodingException e) {
      return null;
    }
    if (!text.isEmpty() && text.charAt(0) == '\uFEFF') {
      text = text.substring(1);
    }
    LoadSettings settings =
        LoadSettings.builder().setSchema(new CoreSchema()).setAllowDuplicateKeys(false).build();
    Object value;
    try {
      value = new Load(settings).loadFromString(text);
    } catch (YamlEngineException | StackOverflowError e) {
      // StackOverflowError: the nesting bomb; the parser reports it as a config problem
      return null;
    }
    if (containsNaN(value)) {
      return null;
    }
    return JSON.valueToTree(value);
  }

  private static boolean containsNaN(Object value) {
    if (value instanceof Double d) {
      return d.isNaN() || d.isInfinite();
    }
    if (value instanceof Iterable<?> list) {
      for (Object o : list) {
        if (containsNaN(o)) {
          return true;
        }
      }
    }
    if (value instanceof java.util.Map<?, ?> map) {
      return containsNaN(map.values());
    }
    return false;
  }

  /** The configs the parser accepts: samples, good-configs and the YAML examples of the docs. */
  static List<Path> goodConfigFiles() throws IOException {
    Path root = MarkdownDoc.repositoryRoot();
    List<Path> files = new ArrayList<>();
    for (String dir :
        List.of("samples/configs", "trainer-integration/src/test/resources/good-configs")) {
      try (Stream<Path> s = Files.list(root.resolve(dir))) {
        files.addAll(s.filter(p -> p.toString().endsWith(".yaml")).sorted().toList());
      }
    }
    return files;
  }

  static List<MarkdownDoc.Block> docExamples() throws IOException {
    List<MarkdownDoc.Block> blocks = new ArrayList<>();
    for (String doc :
        List.of(
            "README.md",
            "docs/configuration.md",
            "docs/user-guide.md",
            "trainer-integration/README.md",
            "agent/README.md")) {
      if (Files.exists(MarkdownDoc.repositoryRoot().resolve(doc))) {
        blocks.addAll(MarkdownDoc.read(doc).codeBlocks("yaml"));
      }
    }
    return blocks;
  }

  @Test
  void theSchemaIsAValidDraft202012Schema() throws Exception {
    JsonSchemaFactory factory = JsonSchemaFactory.getInstance(SpecVersion.VersionFlag.V202012);
    JsonSchema meta =
        factory.getSchema(SchemaLocation.of("https://json-schema.org/draft/2020-12/schema"));
    Set<ValidationMessage> problems = meta.validate(JSON.readTree(schemaFile().toFile()));
    assertTrue(problems.isEmpty(), "schema is not valid against its meta-schema: " + problems);
  }

  @Test
  void theSchemaKnowsEveryBuiltinAlgorithmAndItsKeys() throws Exception {
    JsonNode defs = JSON.readTree(schemaFile().toFile()).get("$defs");
    Set<String> builtins = ConfigurationDocTest.builtinAlgorithms();
    Set<String> names = new TreeSet<>();
    defs.at("/entry/properties/name/enum").forEach(n -> names.add(n.asText()));
    assertEquals(builtins, names, "entry name enum");
    for (String name : builtins) {
      JsonNode props = defs.at("/" + name + "/properties");
      assertFalse(props.isMissingNode(), "$defs/" + name + " has no properties");
      Set<String> keys = new TreeSet<>();
      props.fieldNames().forEachRemaining(keys::add);
      assertEquals(new TreeSet<>(Algorithms.spec(name).names()), keys, name + " keys");
    }
    Set<String> top = new TreeSet<>();
    JSON.readTree(schemaFile().toFile()).get("properties").fieldNames().forEachRemaining(top::add);
    assertEquals(new TreeSet<>(ConfigParser.TOP_LEVEL_KEYS), top, "top-level keys");
    Set<String> entry = new TreeSet<>();
    defs.at("/entry/properties").fieldNames().forEachRemaining(entry::add);
    assertEquals(new TreeSet<>(ConfigParser.ENTRY_KEYS), entry, "entry keys");
  }

  @Test
  void everyConfigTheParserAcceptsIsValidUnderTheSchema() throws Exception {
    JsonSchema schema = schema();
    List<String> failures = new ArrayList<>();
    int checked = 0;
    for (Path file : goodConfigFiles()) {
      SurgeryConfig.load(file); // the parser is the oracle: it must accept the file
      JsonNode json = toJson(Files.readAllBytes(file));
      assertNotNull(json, file + " is not a single YAML document JSON can hold");
      Set<ValidationMessage> problems = schema.validate(json);
      if (!problems.isEmpty()) {
        failures.add(file + ": " + problems);
      }
      checked++;
    }
    for (MarkdownDoc.Block block : docExamples()) {
      SurgeryConfig.parse(block.text(), block.where());
      JsonNode json = toJson(block.text().getBytes(StandardCharsets.UTF_8));
      assertNotNull(json, block.where());
      Set<ValidationMessage> problems = schema.validate(json);
      if (!problems.isEmpty()) {
        failures.add(block.where() + ": " + problems);
      }
      checked++;
    }
    assertTrue(checked >= 10, "expected samples, good-configs and doc examples, got " + checked);
    assertTrue(failures.isEmpty(), "valid configs refused by the schema:\n" + failures);
  }

  @Test
  void theSchemaRefusesTheCorpusWhereItCanExpressTheRule() throws Exception {
    JsonSchema schema = schema();
    Set<String> corpus = BadConfigCorpusTest.expectations().keySet();
    Set<String> caught = new TreeSet<>();
    Set<String> passed = new TreeSet<>();
    for (String name : corpus) {
      JsonNode json = toJson(Files.readAllBytes(BadConfigCorpusTest.corpusDir().resolve(name)));
      if (json != null && !schema.validate(json).isEmpty()) {
        caught.add(name);
      } else {
        passed.add(name);
      }
    }
    Set<String> listed = new TreeSet<>(SCHEMA_CATCHES);
    listed.addAll(PARSER_ONLY);
    assertEquals(new TreeSet<>(corpus), listed, "every corpus file is in exactly one list");
    assertEquals(new TreeSet<>(SCHEMA_CATCHES), caught, "files the schema refuses");
    assertEquals(new TreeSet<>(PARSER_ONLY), passed, "files only the parser refuses");
  }

  @Test
  void everyCorpusFileIsRefusedByTheParser() throws Exception {
    // The oracle for both lists above: the corpus is bad input (BadConfigCorpusTest checks the
    // messages); a file that the parser accepted could not be in either list.
    for (String name : BadConfigCorpusTest.expectations().keySet()) {
      Path file = BadConfigCorpusTest.corpusDir().resolve(name);
      boolean refused;
      try {
        SurgeryConfig.load(file);
        refused = false;
      } catch (SurgeryConfigException e) {
        refused = true;
      }
      assertTrue(refused, name);
    }
  }

  /** YAML values tried for every hyperparameter: numbers at and around range edges, other types. */
  static final List<String> PROBES =
      List.of(
          "-1",
          "0",
          "0.5",
          "1",
          "1.5",
          "2",
          "16",
          "64",
          "1000000",
          "2147483648",
          "-0.25",
          "1e-3",
          "true",
          "false",
          "block",
          "sample",
          "uniform",
          "linear",
          "ResNetV1Unit",
          "yes",
          "''",
          "~",
          "[1]",
          "{a: 1}");

  @Test
  void theSchemaAndTheParserAgreeOnEveryHyperParameterValue() throws Exception {
    // The parser (HyperParameter declarations) is the oracle; reading keys through names only
    // keeps this independent of how declarations are written.
    JsonSchema schema = schema();
    List<String> disagreements = new ArrayList<>();
    int cases = 0;
    for (String name : ConfigurationDocTest.builtinAlgorithms()) {
      for (String key : Algorithms.spec(name).names()) {
        for (String value : PROBES) {
          String yaml =
              "algorithms:\n  - name: " + name + "\n    epoch: 1\n    " + key + ": " + value + "\n";
          boolean parserAccepts = parserAccepts(yaml);
          boolean schemaAccepts = schemaAccepts(schema, yaml);
          if (parserAccepts != schemaAccepts) {
            disagreements.add(
                name
                    + " "
                    + key
                    + ": "
                    + value
                    + " (parser "
                    + parserAccepts
                    + ", schema "
                    + schemaAccepts
                    + ")");
          }
          cases++;
        }
      }
    }
    assertTrue(cases > 300, "cases: " + cases);
    assertTrue(
        disagreements.isEmpty(),
        "schema and parser disagree:\n" + String.join("\n", disagreements));
  }

  /** Whether the config parser takes the YAML text. */
  private static boolean parserAccepts(String yaml) {
    try {
      SurgeryConfig.parse(yaml, "probe.yaml");
      return true;
    } catch (SurgeryConfigException e) {
      return false;
    }
  }

  /** Whether the schema takes the YAML text (which must read as JSON data first). */
  private static boolean schemaAccepts(JsonSchema schema, String yaml) {
    JsonNode json = toJson(yaml.getBytes(StandardCharsets.UTF_8));
    return json != null && schema.validate(json).isEmpty();
  }

  @Test
  void theSchemaAndTheParserAgreeOnTopLevelValuesAndEpochs() throws Exception {
    JsonSchema schema = schema();
    List<String> configs = new ArrayList<>();
    List<String> probes = new ArrayList<>(PROBES);
    probes.addAll(List.of("999999", "1000001", "fail", "skip", "out/r.json", "' '"));
    for (String value : probes) {
      configs.add("algorithms:\n  - {name: blurpool, epoch: " + value + "}\n");
      for (String key : ConfigParser.TOP_LEVEL_KEYS) {
        if (!key.equals(ConfigParser.ALGORITHMS)) {
          configs.add("algorithms: []\n" + key + ": " + value + "\n");
        }
      }
      configs.add("algorithms:\n  - {name: blurpool, epoch: 1, include: " + value + "}\n");
    }
    List<String> disagreements = new ArrayList<>();
    for (String yaml : configs) {
      boolean parserAccepts = parserAccepts(yaml);
      boolean schemaAccepts = schemaAccepts(schema, yaml);
      if (parserAccepts != schemaAccepts) {
        disagreements.add(
            yaml.replace("\n", " | ")
                + " (parser "
                + parserAccepts
                + ", schema "
                + schemaAccepts
                + ")");
      }
    }
    assertTrue(
        disagreements.isEmpty(),
        "schema and parser disagree:\n" + String.join("\n", disagreements));
  }
}
