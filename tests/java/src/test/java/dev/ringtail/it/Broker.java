package dev.ringtail.it;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterOptions;

/**
 * One broker under test on a free loopback port with its own temporary directory.
 *
 * <p>The target is chosen by the environment variable {@code RINGTAIL_TEST_TARGET}:
 *
 * <ul>
 *   <li>unset or {@code ringtail}: the {@code ringtail} binary ({@code RINGTAIL_BIN}, default
 *       {@code ../../target/release/ringtail} relative to {@code tests/java}), started as
 *       {@code ringtail serve --listeners PLAINTEXT://127.0.0.1:PORT --log-dirs DIR --shards N};
 *   <li>{@code kafka}: Apache Kafka through the peer script ({@code RINGTAIL_KAFKA_PEER}, default
 *       {@code ../../scripts/peers/kafka.sh}) as {@code kafka.sh start DIR PORT}, stopped with
 *       {@code kafka.sh stop DIR}. Its jars are {@code KAFKA_PEER_LIBS} if set, else the script
 *       installs them once ({@code kafka.sh install target/kafka-peer}, Maven's local repository
 *       as the cache).
 * </ul>
 *
 * <p>Everything is bounded in time: start-up waits at most {@link #START_TIMEOUT}, a stop at most
 * {@link #STOP_TIMEOUT} before SIGKILL. The broker's output goes to {@code broker.log} in the
 * temporary directory; {@link #logTail()} returns its last lines for failure reports.
 */
public final class Broker implements AutoCloseable {
  /**
   * How long start-up may take until the broker answers a DescribeCluster request: a Kafka JVM
   * on a loaded 2-core machine can take minutes.
   */
  public static final Duration START_TIMEOUT = Duration.ofSeconds(300);
  /** How long a stop (SIGTERM) may take before the process is killed. */
  public static final Duration STOP_TIMEOUT = Duration.ofSeconds(20);
  /** Lines of the broker log shown with a failing test. */
  public static final int LOG_TAIL_LINES = 80;

  /** A Rust panic or an abort in Ringtail's log (the same pattern as tests/harness.py). */
  private static final Pattern PANIC =
      Pattern.compile("panicked at|memory allocation of \\d+ bytes failed|stack backtrace:");

  /** Which broker the suite runs against. */
  public enum Target {
    RINGTAIL,
    KAFKA;

    /** The target named by {@code RINGTAIL_TEST_TARGET} (default: Ringtail). */
    public static Target fromEnvironment() {
      String name = System.getenv().getOrDefault("RINGTAIL_TEST_TARGET", "ringtail");
      switch (name.trim().toLowerCase()) {
        case "":
        case "ringtail":
          return RINGTAIL;
        case "kafka":
          return KAFKA;
        default:
          throw new IllegalArgumentException(
              "RINGTAIL_TEST_TARGET must be `ringtail` or `kafka`, not `" + name + "`");
      }
    }
  }

  private final Target target;
  private final Path directory;
  private final Path logFile;
  private final int port;
  private final int shards;
  private final Map<String, String> settings;
  private Process process;
  private volatile boolean closed;

  private Broker(Target target, Path directory, int port, int shards, Map<String, String> settings) {
    this.target = target;
    this.directory = directory;
    this.logFile = directory.resolve("broker.log");
    this.port = port;
    this.shards = shards;
    this.settings = settings;
  }

  /**
   * Starts a broker of the configured target and waits until it serves.
   *
   * @param shards Ringtail's {@code --shards} (ignored for Kafka)
   * @param settings extra broker properties, Kafka names (Ringtail: {@code --set k=v}; Kafka: the
   *     peer script's defaults are used, so only settings both accept belong here)
   * @throws IllegalStateException if the binary or script is missing or the broker does not
   *     become ready in time (the message holds the log tail)
   */
  public static Broker start(int shards, Map<String, String> settings) {
    Target target = Target.fromEnvironment();
    try {
      Path directory = Files.createTempDirectory("ringtail-java-it-");
      // Kafka's controller listens on PORT+1 (scripts/peers/kafka.sh), so both must be free.
      int port = target == Target.KAFKA ? freePortPair() : freePort();
      Broker broker = new Broker(target, directory, port, shards, settings);
      try {
        broker.launch();
      } catch (RuntimeException | IOException e) {
        try {
          broker.close(); // a half-started broker (e.g. Kafka whose script failed) is stopped too
        } catch (RuntimeException stopFailure) {
          e.addSuppressed(stopFailure);
        }
        throw e;
      }
      return broker;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** {@code 127.0.0.1:PORT}, for {@code bootstrap.servers}. */
  public String bootstrap() {
    return "127.0.0.1:" + port;
  }

  /** The listening port. */
  public int port() {
    return port;
  }

  /** Ringtail or Kafka. */
  public Target target() {
    return target;
  }

  /** The broker's temporary directory (Ringtail: {@code data/} inside it is {@code log.dirs}). */
  public Path directory() {
    return directory;
  }

  /** Ringtail's {@code log.dirs}. */
  public Path ringtailLogDir() {
    return directory.resolve("data");
  }

  /** The repository's root: {@code ../..} from {@code tests/java} (Maven's basedir). */
  public static Path repositoryRoot() {
    String basedir = System.getProperty("basedir", System.getProperty("user.dir"));
    return Paths.get(basedir).toAbsolutePath().resolve("../..").normalize();
  }

  private void launch() throws IOException {
    switch (target) {
      case RINGTAIL:
        launchRingtail();
        break;
      case KAFKA:
        launchKafka();
        break;
      default:
        throw new AssertionError(target);
    }
    Runtime.getRuntime().addShutdownHook(new Thread(this::killQuietly));
    waitReady();
  }

  private void launchRingtail() throws IOException {
    String configured = System.getenv("RINGTAIL_BIN");
    Path binary =
        configured != null && !configured.isEmpty()
            ? Paths.get(configured)
            : repositoryRoot().resolve("target/release/ringtail");
    if (!Files.isExecutable(binary)) {
      throw new IllegalStateException(
          "ringtail binary not found at " + binary + ": run `cargo build --release` or set RINGTAIL_BIN");
    }
    List<String> command = new ArrayList<>();
    command.add(binary.toString());
    command.add("serve");
    command.add("--listeners");
    command.add("PLAINTEXT://" + bootstrap());
    command.add("--log-dirs");
    command.add(ringtailLogDir().toString());
    command.add("--shards");
    command.add(Integer.toString(shards));
    // No HTTP listener: its default port 9644 would clash between brokers.
    command.add("--set");
    command.add("ringtail.http.listener=");
    for (Map.Entry<String, String> setting : settings.entrySet()) {
      command.add("--set");
      command.add(setting.getKey() + "=" + setting.getValue());
    }
    Files.writeString(logFile, "===== harness: " + String.join(" ", command) + "\n");
    ProcessBuilder builder = new ProcessBuilder(command);
    builder.environment().putIfAbsent("RUST_LOG", "info");
    builder.environment().putIfAbsent("RUST_BACKTRACE", "1");
    builder.environment().put("NO_COLOR", "1");
    builder.redirectErrorStream(true);
    builder.redirectOutput(ProcessBuilder.Redirect.appendTo(logFile.toFile()));
    builder.redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
    process = builder.start();
  }

  private static Path kafkaPeerScript() {
    String configured = System.getenv("RINGTAIL_KAFKA_PEER");
    Path script =
        configured != null && !configured.isEmpty()
            ? Paths.get(configured)
            : repositoryRoot().resolve("scripts/peers/kafka.sh");
    if (!Files.isRegularFile(script)) {
      throw new IllegalStateException(
          "Kafka peer script not found at " + script + " (set RINGTAIL_KAFKA_PEER)");
    }
    return script;
  }

  /** {@code KAFKA_PEER_LIBS}: from the environment, else installed once per JVM. */
  static synchronized String kafkaPeerLibs() throws IOException {
    String configured = System.getenv("KAFKA_PEER_LIBS");
    if (configured != null && !configured.isEmpty()) {
      return configured;
    }
    Path install =
        Paths.get(System.getProperty("basedir", System.getProperty("user.dir")))
            .toAbsolutePath()
            .resolve("target/kafka-peer");
    if (!Files.isRegularFile(install.resolve("libs/.installed"))) {
      Files.createDirectories(install);
      Path log = install.resolve("install.log");
      ProcessBuilder builder =
          new ProcessBuilder("bash", kafkaPeerScript().toString(), "install", install.toString());
      builder.redirectErrorStream(true);
      builder.redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()));
      builder.redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
      Process installer = builder.start();
      try {
        if (!installer.waitFor(20, TimeUnit.MINUTES) || installer.exitValue() != 0) {
          installer.destroyForcibly();
          throw new IllegalStateException(
              "kafka.sh install " + install + " failed:\n" + Files.readString(log));
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        installer.destroyForcibly();
        throw new IllegalStateException("interrupted while installing Kafka", e);
      }
    }
    return install.resolve("libs").toString();
  }

  private void launchKafka() throws IOException {
    Path script = kafkaPeerScript();
    List<String> command =
        List.of("bash", script.toString(), "start", directory.toString(), Integer.toString(port));
    Files.writeString(logFile, "===== harness: " + String.join(" ", command) + "\n");
    int status = runScript(command, START_TIMEOUT);
    if (status != 0) {
      throw new IllegalStateException(
          "kafka.sh start exited with status " + status + "\n" + logTail());
    }
  }

  private int runScript(List<String> command, Duration timeout) throws IOException {
    ProcessBuilder builder = new ProcessBuilder(command);
    builder.environment().put("KAFKA_PEER_LIBS", kafkaPeerLibs());
    builder.redirectErrorStream(true);
    builder.redirectOutput(ProcessBuilder.Redirect.appendTo(logFile.toFile()));
    builder.redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
    Process script = builder.start();
    try {
      if (!script.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
        script.destroyForcibly();
        throw new IllegalStateException(command + " did not finish within " + timeout);
      }
      return script.exitValue();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      script.destroyForcibly();
      throw new IllegalStateException("interrupted while running " + command, e);
    }
  }

  /** Waits until a DescribeCluster over a fresh AdminClient is answered. */
  private void waitReady() {
    long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
    String lastError = "none";
    while (System.nanoTime() < deadline) {
      if (process != null && !process.isAlive()) {
        throw new IllegalStateException(
            "broker exited with status " + process.exitValue() + " during start-up\n" + logTail());
      }
      if (portOpen()) {
        Properties properties = new Properties();
        properties.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap());
        properties.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 5000);
        properties.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 5000);
        try (Admin admin = Admin.create(properties)) {
          admin
              .describeCluster(new DescribeClusterOptions().timeoutMs(5000))
              .nodes()
              .get(6, TimeUnit.SECONDS);
          return;
        } catch (Exception e) {
          lastError = e.toString();
        }
      }
      sleep(100);
    }
    throw new IllegalStateException(
        "broker not ready on " + bootstrap() + " after " + START_TIMEOUT + " (last error: "
            + lastError + ")\n" + logTail());
  }

  private boolean portOpen() {
    try (Socket socket = new Socket()) {
      socket.connect(new InetSocketAddress("127.0.0.1", port), 1000);
      return true;
    } catch (IOException e) {
      return false;
    }
  }

  /** Whether the broker process still runs (Kafka: not known here, so {@code true}). */
  public boolean alive() {
    return process == null || process.isAlive();
  }

  /** The whole broker log (empty if it cannot be read). */
  public String logText() {
    StringBuilder text = new StringBuilder();
    for (Path file : logFiles()) {
      try {
        text.append(new String(Files.readAllBytes(file), StandardCharsets.UTF_8));
      } catch (IOException e) {
        // Not written (yet).
      }
    }
    return text.toString();
  }

  /** Ringtail: its output. Kafka: the script's output, then the broker's server.log. */
  private List<Path> logFiles() {
    if (target == Target.KAFKA) {
      return List.of(logFile, directory.resolve("logs/server.log"));
    }
    return List.of(logFile);
  }

  /** The last {@link #LOG_TAIL_LINES} lines of each broker log file, with headings. */
  public String logTail() {
    StringBuilder tail = new StringBuilder();
    tail.append("----- ")
        .append(target.name().toLowerCase())
        .append(" broker ")
        .append(bootstrap())
        .append(alive() ? " (running)" : " (NOT running)")
        .append(" -----\n");
    for (Path file : logFiles()) {
      String text;
      try {
        text = new String(Files.readAllBytes(file), StandardCharsets.UTF_8);
      } catch (IOException e) {
        continue;
      }
      String[] lines = text.split("\n", -1);
      int from = Math.max(0, lines.length - LOG_TAIL_LINES);
      tail.append("----- tail of ").append(file).append(" -----\n");
      for (int i = from; i < lines.length; i++) {
        tail.append(lines[i]).append('\n');
      }
    }
    return tail.toString();
  }

  /** The log around the first panic or abort, or {@code null} if there is none. */
  public String panic() {
    String text = logText();
    java.util.regex.Matcher matcher = PANIC.matcher(text);
    if (!matcher.find()) {
      return null;
    }
    return text.substring(Math.max(0, matcher.start() - 1500), Math.min(text.length(), matcher.start() + 3000));
  }

  /** Stops the broker (SIGTERM, SIGKILL after {@link #STOP_TIMEOUT}) and removes its directory. */
  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    try {
      if (target == Target.KAFKA) {
        runScript(
            List.of("bash", kafkaPeerScript().toString(), "stop", directory.toString()),
            STOP_TIMEOUT.plusSeconds(10));
      } else if (process != null && process.isAlive()) {
        process.destroy();
        if (!process.waitFor(STOP_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)) {
          process.destroyForcibly();
          process.waitFor(STOP_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      killQuietly();
    }
  }

  /** Removes the temporary directory (after a passing class; kept after a failure). */
  public void deleteDirectory() {
    try (var paths = Files.walk(directory)) {
      paths.sorted(java.util.Comparator.reverseOrder()).forEach(path -> path.toFile().delete());
    } catch (IOException e) {
      // Best effort: a leftover temp dir is harmless.
    }
  }

  /** For the JVM's shutdown hook: no broker outlives an interrupted run. */
  private void killQuietly() {
    if (closed) {
      return;
    }
    if (process != null && process.isAlive()) {
      process.destroyForcibly();
    }
    if (target == Target.KAFKA) {
      try {
        runScript(
            List.of("bash", kafkaPeerScript().toString(), "stop", directory.toString()),
            STOP_TIMEOUT);
      } catch (RuntimeException | IOException e) {
        // Nothing more to do while the JVM exits.
      }
    }
  }

  /** A free loopback port whose successor is free too (for Kafka's controller listener). */
  public static int freePortPair() throws IOException {
    for (int attempt = 0; attempt < 50; attempt++) {
      int port = freePort();
      if (port < 65535 && portFree(port + 1)) {
        return port;
      }
    }
    throw new IOException("no two adjacent free loopback ports found");
  }

  private static boolean portFree(int port) {
    try (ServerSocket probe = new ServerSocket()) {
      probe.setReuseAddress(true);
      probe.bind(new InetSocketAddress("127.0.0.1", port));
      return true;
    } catch (IOException e) {
      return false;
    }
  }

  /** A loopback port nobody listens on right now (the kernel picks it). */
  public static int freePort() throws IOException {
    try (ServerSocket probe = new ServerSocket()) {
      probe.setReuseAddress(true);
      probe.bind(new InetSocketAddress("127.0.0.1", 0));
      return probe.getLocalPort();
    }
  }

  static void sleep(long millis) {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted", e);
    }
  }
}
