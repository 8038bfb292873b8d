package dev.ringtail.it;

import java.io.File;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs one of Apache Kafka's command-line tools by its main class (as Kafka's
 * {@code bin/kafka-*.sh} scripts do through {@code kafka-run-class.sh}) in a child JVM on this
 * suite's test classpath. A child process, not in-process, because the tools end with
 * {@code Exit.exit}. Each run is bounded by a timeout and killed after it.
 */
public final class Tool {
  /** kafka-topics.sh */
  public static final String TOPICS = "org.apache.kafka.tools.TopicCommand";
  /** kafka-console-producer.sh */
  public static final String CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer";
  /** kafka-console-consumer.sh */
  public static final String CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer";
  /** kafka-consumer-groups.sh */
  public static final String CONSUMER_GROUPS =
      "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";
  /** kafka-get-offsets.sh */
  public static final String GET_OFFSETS = "org.apache.kafka.tools.GetOffsetShell";

  /** What a tool run produced. */
  public record Result(String mainClass, List<String> args, int exitCode, String stdout, String stderr) {
    /** stdout split into non-empty lines. */
    public List<String> lines() {
      List<String> lines = new ArrayList<>();
      for (String line : stdout.split("\n")) {
        if (!line.isBlank()) {
          lines.add(line);
        }
      }
      return lines;
    }

    /** Everything, for assertion messages. */
    public String describe() {
      return mainClass + " " + String.join(" ", args) + "\nexit " + exitCode + "\n--- stdout\n"
          + stdout + "--- stderr\n" + stderr;
    }
  }

  private Tool() {}

  /** Runs {@code mainClass args} with no input; fails if it takes longer than {@code timeout}. */
  public static Result run(Duration timeout, String mainClass, String... args) throws IOException {
    return runWithInput(timeout, null, mainClass, args);
  }

  /** Runs {@code mainClass args} with {@code stdin} (null: none) as its standard input. */
  public static Result runWithInput(
      Duration timeout, String stdin, String mainClass, String... args)
      throws IOException {
    List<String> command = new ArrayList<>();
    command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    command.add("-Xmx256M");
    command.add("-XX:TieredStopAtLevel=1"); // short-lived: start fast
    command.add("-cp");
    command.add(classpath());
    command.add(mainClass);
    command.addAll(Arrays.asList(args));
    Path out = Files.createTempFile("tool-", ".out");
    Path err = Files.createTempFile("tool-", ".err");
    try {
      ProcessBuilder builder = new ProcessBuilder(command);
      builder.redirectOutput(out.toFile());
      builder.redirectError(err.toFile());
      if (stdin == null) {
        builder.redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
      }
      Process process = builder.start();
      if (stdin != null) {
        try (OutputStream input = process.getOutputStream()) {
          input.write(stdin.getBytes(StandardCharsets.UTF_8));
        }
      }
      boolean finished;
      try {
        finished = process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        process.destroyForcibly();
        throw new IOException("interrupted while running " + mainClass, e);
      }
      if (!finished) {
        process.destroyForcibly();
        try {
          process.waitFor(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
        throw new AssertionError(mainClass + " " + String.join(" ", args) + " did not finish within "
            + timeout + "\n--- stdout\n" + Files.readString(out) + "--- stderr\n" + Files.readString(err));
      }
      return new Result(mainClass, Arrays.asList(args), process.exitValue(),
          Files.readString(out), Files.readString(err));
    } finally {
      Files.deleteIfExists(out);
      Files.deleteIfExists(err);
    }
  }

  /** The test classpath: Surefire's, else this JVM's. */
  private static String classpath() {
    String surefire = System.getProperty("surefire.test.class.path");
    return surefire != null && !surefire.isEmpty() ? surefire : System.getProperty("java.class.path");
  }
}
