package dev.ringtail.it;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterOptions;

/**
 * A broker started from a whole {@code server.properties} text, the same text for both targets
 * (the security tests: listeners, TLS stores, JAAS, authorizer), chosen as {@link Broker} does
 * by {@code RINGTAIL_TEST_TARGET}:
 *
 * <ul>
 *   <li>Ringtail: {@code ringtail storage add-scram --config FILE SEED...} when SCRAM seeds are
 *       given, then {@code ringtail serve --config FILE --shards 1 --set ringtail.http.listener=}
 *       (no HTTP listener: its default port would clash between brokers);
 *   <li>Kafka: {@code kafka.tools.StorageTool format --standalone -c FILE [--add-scram SEED]...},
 *       then {@code kafka.Kafka FILE} with the jars of {@code KAFKA_PEER_LIBS} (or those
 *       {@link Broker} installs).
 * </ul>
 *
 * <p>The text may use {@code @LOG_DIRS@} (replaced by a fresh data directory). Ready when an
 * AdminClient with {@code readyClient} settings answers DescribeCluster; bounded by {@link
 * #START_TIMEOUT}. {@link #close()} stops it (SIGTERM, then SIGKILL).
 */
public final class SecuredBroker implements AutoCloseable {
  /**
   * How long start-up may take: longer than {@link Broker#START_TIMEOUT}, as Kafka's node
   * authenticates its own controller connections, and a JVM on a shared 2-core machine is slow.
   */
  public static final Duration START_TIMEOUT = Duration.ofSeconds(300);

  private final Broker.Target target;
  private final Path directory;
  private final Path logFile;
  private Process process;

  private SecuredBroker(Broker.Target target, Path directory) {
    this.target = target;
    this.directory = directory;
    this.logFile = directory.resolve("broker.log");
  }

  /** Which broker runs. */
  public Broker.Target target() {
    return target;
  }

  /**
   * Starts a broker from {@code properties} after seeding {@code scramSeeds} (Kafka's {@code
   * --add-scram} syntax, e.g. {@code SCRAM-SHA-256=[name=alice,password=alice-secret]}).
   *
   * @throws IllegalStateException with the log tail when it does not start in time
   */
  public static SecuredBroker start(
      String properties, List<String> scramSeeds, Map<String, Object> readyClient) {
    Broker.Target target = Broker.Target.fromEnvironment();
    try {
      Path directory = Files.createTempDirectory("ringtail-java-secured-");
      SecuredBroker broker = new SecuredBroker(target, directory);
      try {
        broker.launch(properties.replace("@LOG_DIRS@", directory.resolve("data").toString()),
            scramSeeds);
        broker.waitReady(readyClient);
      } catch (RuntimeException | IOException e) {
        String tail = broker.logTail();
        broker.close();
        throw new IllegalStateException("secured broker did not start: " + e + "\n" + tail, e);
      }
      return broker;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private void launch(String properties, List<String> scramSeeds) throws IOException {
    Path config = directory.resolve("server.properties");
    Files.writeString(config, properties);
    List<String> seed = new ArrayList<>();
    List<String> serve = new ArrayList<>();
    if (target == Broker.Target.RINGTAIL) {
      String configured = System.getenv("RINGTAIL_BIN");
      Path binary = configured != null && !configured.isEmpty()
          ? Paths.get(configured)
          : Broker.repositoryRoot().resolve("target/release/ringtail");
      if (!Files.isExecutable(binary)) {
        throw new IllegalStateException("ringtail binary not found at " + binary);
      }
      if (!scramSeeds.isEmpty()) {
        seed.addAll(List.of(binary.toString(), "storage", "add-scram", "--config",
            config.toString()));
        seed.addAll(scramSeeds);
      }
      serve.addAll(List.of(binary.toString(), "serve", "--config", config.toString(),
          "--shards", "1", "--set", "ringtail.http.listener="));
    } else {
      String libs = Broker.kafkaPeerLibs();
      Path libsDir = Paths.get(libs);
      String toolsLog = "-Dlog4j2.configurationFile=file:"
          + libsDir.getParent().resolve("config/tools-log4j2.properties");
      String clusterId = java.util.Base64.getUrlEncoder().withoutPadding()
          .encodeToString(uuidBytes());
      seed.addAll(List.of("java", "-Xmx256M", "-cp", libs + "/*", toolsLog,
          "kafka.tools.StorageTool", "format", "--standalone", "-t", clusterId, "-c",
          config.toString()));
      for (String scram : scramSeeds) {
        seed.add("--add-scram");
        seed.add(scram);
      }
      serve.addAll(List.of("java", "-Xmx1G", "-Xms1G", "-XX:+UseG1GC", "-cp", libs + "/*",
          "-Dlog4j2.configurationFile=file:"
              + libsDir.getParent().resolve("config/log4j2.properties"),
          "-Dkafka.logs.dir=" + directory.resolve("logs"), "kafka.Kafka", config.toString()));
    }
    Files.writeString(logFile, "");
    if (!seed.isEmpty()) {
      append("===== harness: " + String.join(" ", seed) + "\n");
      Process seeding = processBuilder(seed).start();
      try {
        if (!seeding.waitFor(120, TimeUnit.SECONDS) || seeding.exitValue() != 0) {
          seeding.destroyForcibly();
          throw new IllegalStateException("seeding failed\n" + logTail());
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException("interrupted", e);
      }
    }
    append("===== harness: " + String.join(" ", serve) + "\n");
    process = processBuilder(serve).start();
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      if (process.isAlive()) {
        process.destroyForcibly();
      }
    }));
  }

  private static byte[] uuidBytes() {
    UUID uuid = UUID.randomUUID();
    return java.nio.ByteBuffer.allocate(16)
        .putLong(uuid.getMostSignificantBits())
        .putLong(uuid.getLeastSignificantBits())
        .array();
  }

  private ProcessBuilder processBuilder(List<String> command) {
    ProcessBuilder builder = new ProcessBuilder(command).directory(directory.toFile());
    builder.environment().putIfAbsent("RUST_LOG", "info");
    builder.environment().put("NO_COLOR", "1");
    builder.redirectErrorStream(true);
    builder.redirectOutput(ProcessBuilder.Redirect.appendTo(logFile.toFile()));
    builder.redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
    return builder;
  }

  private void append(String text) throws IOException {
    Files.writeString(logFile, text, java.nio.file.StandardOpenOption.APPEND);
  }

  private void waitReady(Map<String, Object> readyClient) {
    long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
    String lastError = "none";
    while (System.nanoTime() < deadline) {
      if (!process.isAlive()) {
        throw new IllegalStateException("broker exited with status " + process.exitValue());
      }
      Properties properties = new Properties();
      properties.putAll(readyClient);
      properties.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 5000);
      properties.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 5000);
      try (Admin admin = Admin.create(properties)) {
        admin.describeCluster(new DescribeClusterOptions().timeoutMs(5000)).nodes()
            .get(6, TimeUnit.SECONDS);
        return;
      } catch (Exception e) {
        lastError = e.toString();
      }
      Broker.sleep(500);
    }
    throw new IllegalStateException("not ready after " + START_TIMEOUT + ": " + lastError);
  }

  /** The broker's output (Kafka: also its server.log), last lines. */
  public String logTail() {
    StringBuilder tail = new StringBuilder();
    List<Path> files = new ArrayList<>(List.of(logFile));
    if (target == Broker.Target.KAFKA) {
      files.add(directory.resolve("logs/server.log"));
    }
    for (Path file : files) {
      try {
        String[] lines = Files.readString(file, StandardCharsets.UTF_8).split("\n", -1);
        tail.append("----- tail of ").append(file).append(" -----\n");
        for (int i = Math.max(0, lines.length - Broker.LOG_TAIL_LINES); i < lines.length; i++) {
          tail.append(lines[i]).append('\n');
        }
      } catch (IOException e) {
        // not written
      }
    }
    return tail.toString();
  }

  /** Ringtail's log shows a panic or abort (always false for Kafka). */
  public boolean panicked() {
    if (target != Broker.Target.RINGTAIL) {
      return false;
    }
    try {
      return java.util.regex.Pattern.compile("panicked at|stack backtrace:")
          .matcher(Files.readString(logFile, StandardCharsets.UTF_8)).find();
    } catch (IOException e) {
      return false;
    }
  }

  @Override
  public void close() {
    if (process == null || !process.isAlive()) {
      return;
    }
    process.destroy();
    try {
      if (!process.waitFor(Duration.ofSeconds(60).toMillis(), TimeUnit.MILLISECONDS)) {
        process.destroyForcibly();
        process.waitFor(20, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      process.destroyForcibly();
    }
  }
}
