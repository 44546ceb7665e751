package dev.surgery.trainer.config;

import dev.surgery.core.events.Event;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;

/**
 * A validated surgery schedule read from YAML: which algorithms run after how many completed
 * epochs, what to do when one fails, and where to write the JSON report.
 *
 * <pre>{@code
 * algorithms:
 *   - name: blurpool        # a registered algorithm name (see Algorithms.names())
 *     epoch: 1              # apply when 1 training epoch has completed; 0: before the first batch
 *     min_channels: 16      # any other key: a hyperparameter of that algorithm
 * on_error: fail            # fail (default) | skip
 * report: surgery-log.json      # optional, relative to the working directory
 * total_epochs: 10          # optional, passed to algorithms that follow a schedule
 * }</pre>
 *
 * <p>Instances are immutable. {@link #load} and {@link #parse} check everything before returning
 * and throw one {@link SurgeryConfigException} listing every problem, each as {@code
 * file:line:column: message} with 1-based positions. Problems with the file itself (missing, a
 * directory, unreadable, a symbolic link loop, too large) have no position inside the file and use
 * line 0, column 0; problems with its content (empty, binary data, YAML syntax, wrong values) point
 * at the offending place, 1:1 for an empty file.
 */
public final class SurgeryConfig {

  /**
   * The largest epoch an entry may name, and the largest {@code total_epochs}: larger values are
   * taken for typos.
   */
  public static final int MAX_EPOCH = 1_000_000;

  /**
   * The suffix of the file the report is first written to, then moved over the report (so that a
   * reader never sees half a report); its name must fit the file system too.
   */
  public static final String REPORT_TEMP_SUFFIX = ".tmp";

  /**
   * The longest file or directory name, in UTF-8 bytes, that the report's path may hold: the limit
   * of the common file systems (ext4, XFS, APFS; NTFS counts 255 UTF-16 units, never fewer).
   */
  public static final int MAX_NAME_BYTES = 255;

  /** The largest {@code step} and {@code total_steps}; larger values are taken for typos. */
  public static final long MAX_STEP = 1_000_000_000_000L;

  /**
   * Checks a surgery log's path as a config's {@code report} is checked, before any training: a
   * path the log could not be written to after training (a directory, a name a file system does not
   * take, a folder where nothing can be created) is refused rather than lost at the end.
   *
   * @param report the path of the surgery log
   * @throws IllegalArgumentException saying what is wrong with it
   */
  public static void checkReportPath(Path report) {
    java.util.Objects.requireNonNull(report, "report must not be null");
    String problem = ReportPath.problem(report.toString(), report, null);
    if (problem != null) {
      throw new IllegalArgumentException(problem);
    }
  }

  /** The largest config file read, in bytes; anything larger is not a surgery config. */
  public static final int MAX_FILE_BYTES = 1 << 20;

  private final String fileName;
  private final List<ScheduledAlgorithm> algorithms;
  private final OnError onError;
  private final Path reportPath;
  private final int totalEpochs;
  private final long totalSteps;

  /** Per entry, the 1-based line and column of what decides its events (schedule key or entry). */
  private final List<int[]> triggerPositions;

  SurgeryConfig(
      String fileName,
      List<ScheduledAlgorithm> algorithms,
      OnError onError,
      Path reportPath,
      int totalEpochs,
      long totalSteps,
      List<int[]> triggerPositions) {
    this.fileName = fileName;
    this.algorithms = List.copyOf(algorithms);
    this.onError = onError;
    this.reportPath = reportPath;
    this.totalEpochs = totalEpochs;
    this.totalSteps = totalSteps;
    this.triggerPositions = List.copyOf(triggerPositions);
  }

  /**
   * Reads and validates a config file.
   *
   * @param file the YAML file; messages name it as given
   * @return the config
   * @throws SurgeryConfigException listing every problem, file-level ones included
   */
  public static SurgeryConfig load(Path file) {
    Objects.requireNonNull(file, "file must not be null");
    return load(file, Files::readAllBytes);
  }

  /**
   * Reads and validates a config file through {@code reader}: a seam for tests, since a process
   * running as root reads even mode-000 files and so never meets the permission-denied path.
   *
   * @param file the YAML file; messages name it as given
   * @param reader reads the whole file, as {@link Files#readAllBytes} does
   * @return the config
   * @throws SurgeryConfigException listing every problem, file-level ones included
   */
  static SurgeryConfig load(Path file, FileReader reader) {
    return new ConfigParser(file.toString(), file).parse(read(file, reader));
  }

  /** Reads a whole file; {@link Files#readAllBytes} outside tests. */
  @FunctionalInterface
  interface FileReader {
    /**
     * Reads every byte of a file.
     *
     * @param file the file
     * @return its bytes
     * @throws IOException as {@link Files#readAllBytes} throws it, {@link AccessDeniedException}
     *     when the file may not be read
     */
    byte[] readAllBytes(Path file) throws IOException;
  }

  /**
   * Validates config text.
   *
   * @param text the YAML text
   * @param fileName the name to use in messages
   * @return the config
   * @throws SurgeryConfigException listing every problem
   */
  public static SurgeryConfig parse(String text, String fileName) {
    Objects.requireNonNull(text, "text must not be null");
    return new ConfigParser(fileName).parse(text);
  }

  /**
   * Returns the name of the file the config came from, as given.
   *
   * @return the file name
   */
  public String getFileName() {
    return fileName;
  }

  /**
   * Returns the scheduled algorithms, in file order.
   *
   * @return the entries
   */
  public List<ScheduledAlgorithm> getAlgorithms() {
    return algorithms;
  }

  /**
   * Returns what to do when an algorithm fails.
   *
   * @return the policy; {@link OnError#FAIL} unless the file says {@code skip}
   */
  public OnError getOnError() {
    return onError;
  }

  /**
   * Returns where to write the JSON report, relative to the working directory.
   *
   * @return the report path, if set
   */
  public Optional<Path> getReportPath() {
    return Optional.ofNullable(reportPath);
  }

  /**
   * Returns the planned number of training epochs.
   *
   * @return the {@code total_epochs} value, or 0 when the file does not set it
   */
  public int getTotalEpochs() {
    return totalEpochs;
  }

  /**
   * Returns the planned number of optimizer steps.
   *
   * @return the {@code total_steps} value, or 0 when the file does not set it
   */
  public long getTotalSteps() {
    return totalSteps;
  }

  /**
   * Refuses the entries whose trigger or algorithm needs an event the driving mode cannot report:
   * such an entry would never run, and must not be skipped silently.
   *
   * @param observable the events the driver reports
   * @throws SurgeryConfigException with one problem per such entry, at its schedule key (or the
   *     entry, for an event-driven one) as file:line:column
   */
  public void requireObservable(Set<Event> observable) {
    Objects.requireNonNull(observable, "observable must not be null");
    if (observable.contains(null)) {
      throw new NullPointerException("observable must not hold null");
    }
    List<ConfigProblem> problems = new ArrayList<>();
    for (int i = 0; i < algorithms.size(); i++) {
      ScheduledAlgorithm entry = algorithms.get(i);
      Set<Event> missing = EnumSet.noneOf(Event.class);
      missing.addAll(entry.trigger().events(entry.algorithm()));
      missing.removeAll(observable);
      if (missing.isEmpty()) {
        continue;
      }
      int[] at = triggerPositions.get(i);
      problems.add(
          new ConfigProblem(
              fileName,
              at[0],
              at[1],
              "algorithms entry "
                  + (i + 1)
                  + " ("
                  + entry.algorithm().name()
                  + " "
                  + entry.trigger().describe()
                  + ") needs the "
                  + (missing.size() == 1 ? "event " : "events ")
                  + missing.stream().map(Event::configName).toList()
                  + ", which this training mode does not report (it reports "
                  + observable.stream().map(Event::configName).toList()
                  + ")"
                  + advice(missing, observable)));
    }
    if (!problems.isEmpty()) {
      throw new SurgeryConfigException(problems);
    }
  }

  /**
   * Tells how to get the missing events reported. Load events come from no training loop, not even
   * {@code SurgeryTrain.fit}: they are reported around {@code Model.load}, by the program or the
   * agent, so they get their own advice.
   */
  private static String advice(Set<Event> missing, Set<Event> observable) {
    Set<Event> load = EnumSet.of(Event.BEFORE_LOAD, Event.AFTER_LOAD);
    load.retainAll(missing);
    StringBuilder sb = new StringBuilder();
    if (load.size() < missing.size()) {
      // The callbacks' own set is the usual case; a listener built for other events was given
      // its set by the program, which the advice must not call DJL's (an outside probe: a
      // listener built for {batch_end} was told "callbacks report only epoch ends").
      sb.append(
          observable.equals(EnumSet.of(Event.EPOCH_END))
              ? ". DJL's TrainingListener callbacks report only epoch ends; train with"
                  + " SurgeryTrain.fit, call listener.onEvent from your loop and build the listener"
                  + " with those events (SurgeryListener.fromConfig(config, events)), or use the"
                  + " surgery agent"
              : ". The listener was built for the events it reports and no others: add the"
                  + " missing ones to the events it is built with"
                  + " (SurgeryListener.fromConfig(config, events)) and report them from your"
                  + " loop (listener.onEvent), or train with SurgeryTrain.fit (build the listener"
                  + " with SurgeryTrain.EVENTS), or use the surgery agent");
    }
    if (!load.isEmpty()) {
      sb.append(
              ". No training loop reports load events, SurgeryTrain.fit included: build the"
                  + " listener with ")
          .append(load.stream().map(Event::configName).toList())
          .append(
              " among its events (SurgeryListener.fromConfig(config, events)) and call"
                  + " listener.onEvent(Event.BEFORE_LOAD, model) before and"
                  + " listener.onEvent(Event.AFTER_LOAD, model) after your own Model.load, or use"
                  + " the surgery agent, which reports them around Model.load");
    }
    return sb.toString();
  }

  /** {@inheritDoc} */
  @Override
  public String toString() {
    StringBuilder sb = new StringBuilder("SurgeryConfig(").append(fileName).append(": ");
    for (ScheduledAlgorithm a : algorithms) {
      sb.append(a.algorithm().name()).append(' ').append(a.trigger().describe()).append("; ");
    }
    sb.append("on_error=").append(onError.configName());
    if (reportPath != null) {
      sb.append(", report=").append(reportPath);
    }
    return sb.append(')').toString();
  }

  // ------------------------------------------------------------------ reading the file

  private static String read(Path file, FileReader reader) {
    String name = file.toString();
    if (!Files.exists(file)) {
      throw fileProblem(name, whyMissing(file));
    }
    if (Files.isDirectory(file)) {
      throw fileProblem(name, "is a directory, not a YAML file");
    }
    if (!Files.isRegularFile(file)) {
      throw fileProblem(name, "is not a regular file (a device, pipe or socket?)");
    }
    byte[] bytes;
    try {
      long size = Files.size(file);
      if (size > MAX_FILE_BYTES) {
        throw fileProblem(
            name,
            String.format(
                Locale.ROOT,
                "is %,d bytes; a surgery config is YAML text of at most %,d bytes",
                size,
                MAX_FILE_BYTES));
      }
      bytes = reader.readAllBytes(file);
    } catch (AccessDeniedException e) {
      throw fileProblem(name, "cannot be read: permission denied");
    } catch (IOException e) {
      throw fileProblem(name, "cannot be read: " + e.getMessage());
    }
    return decode(bytes, name);
  }

  private static String whyMissing(Path file) {
    try {
      file.toRealPath();
      return "file not found (looked for " + file.toAbsolutePath() + ")";
    } catch (NoSuchFileException e) {
      if (Files.isSymbolicLink(file)) {
        return "is a symbolic link to a missing file: " + missingTarget(file) + " does not exist";
      }
      return "file not found (looked for " + file.toAbsolutePath() + ")";
    } catch (FileSystemException e) {
      String reason = e.getReason() == null ? "" : e.getReason();
      if (reason.toLowerCase(Locale.ROOT).contains("symbolic link")) {
        return "cannot be opened: symbolic link loop (" + reason + ")";
      }
      return "cannot be opened: " + (reason.isEmpty() ? e.getMessage() : reason);
    } catch (IOException | SecurityException e) {
      return "cannot be opened: " + e.getMessage();
    }
  }

  /**
   * Follows a dangling link to the path that is missing: the link's own path says nothing about
   * what to fix. A relative target is resolved against the link's folder, as the system does, and a
   * chain of links is followed to its last link.
   */
  private static Path missingTarget(Path link) {
    Path current = link.toAbsolutePath();
    // A chain longer than the system follows would be a loop, reported as such by toRealPath.
    for (int hops = 0; hops < 40 && Files.isSymbolicLink(current); hops++) {
      try {
        Path target = Files.readSymbolicLink(current);
        Path folder = current.getParent();
        current = (folder == null ? target : folder.resolve(target)).normalize();
      } catch (IOException | UnsupportedOperationException | SecurityException e) {
        break;
      }
    }
    return current;
  }

  /** Decodes strictly, so that binary data is reported at its first bad byte, not parsed. */
  private static String decode(byte[] bytes, String name) {
    CharsetDecoder decoder =
        StandardCharsets.UTF_8
            .newDecoder()
            .onMalformedInput(CodingErrorAction.REPORT)
            .onUnmappableCharacter(CodingErrorAction.REPORT);
    ByteBuffer in = ByteBuffer.wrap(bytes);
    CharBuffer out = CharBuffer.allocate(bytes.length + 1);
    CoderResult result = decoder.decode(in, out, true);
    if (result.isError()) {
      int offset = in.position();
      out.flip();
      int[] position = ConfigYaml.lineAndColumn(out.toString(), out.length());
      throw new SurgeryConfigException(
          List.of(
              new ConfigProblem(
                  name,
                  position[0],
                  position[1],
                  String.format(
                      Locale.ROOT,
                      "binary data: byte 0x%02X at offset %d is not UTF-8 text; a surgery config"
                          + " is a UTF-8 YAML file",
                      bytes[offset] & 0xFF,
                      offset))));
    }
    decoder.flush(out);
    out.flip();
    return out.toString();
  }

  private static SurgeryConfigException fileProblem(String name, String message) {
    return new SurgeryConfigException(List.of(new ConfigProblem(name, 0, 0, message)));
  }
}
