package dev.ringtail.it;

import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.LifecycleMethodExecutionExceptionHandler;
import org.junit.jupiter.api.extension.TestExecutionExceptionHandler;

/**
 * Starts one {@link Broker} for a test class (register it as a {@code static} field with
 * {@code @RegisterExtension}) and stops it after the class.
 *
 * <p>A failing test gets the broker's log tail attached to its exception (as a suppressed
 * exception, so Surefire's report shows it) and printed to stderr. After each test the Ringtail
 * log is checked for a panic or abort: one fails the test that was running. A class whose tests
 * all passed removes the broker's temporary directory; otherwise it is kept for inspection.
 */
public final class BrokerExtension
    implements BeforeAllCallback,
        AfterAllCallback,
        AfterEachCallback,
        TestExecutionExceptionHandler,
        LifecycleMethodExecutionExceptionHandler {
  private final int shards;
  private final Map<String, String> settings = new LinkedHashMap<>();
  private Broker broker;
  private boolean failed;

  /** One shard, and {@code group.initial.rebalance.delay.ms=0} as the Kafka peer sets it. */
  public BrokerExtension() {
    this(1);
  }

  /** A broker with {@code shards} Ringtail shards (Kafka ignores this). */
  public BrokerExtension(int shards) {
    this.shards = shards;
    settings.put("group.initial.rebalance.delay.ms", "0");
  }

  /** Adds a broker property (Kafka name) given to Ringtail as {@code --set key=value}. */
  public BrokerExtension with(String key, String value) {
    settings.put(key, value);
    return this;
  }

  /** The running broker. */
  public Broker broker() {
    if (broker == null) {
      throw new IllegalStateException("broker not started (is the extension static?)");
    }
    return broker;
  }

  /** {@code bootstrap.servers} of the running broker. */
  public String bootstrap() {
    return broker().bootstrap();
  }

  @Override
  public void beforeAll(ExtensionContext context) {
    broker = Broker.start(shards, settings);
    System.err.println(
        "[it] " + context.getDisplayName() + ": " + broker.target().name().toLowerCase()
            + " broker on " + broker.bootstrap() + " in " + broker.directory());
  }

  @Override
  public void afterEach(ExtensionContext context) {
    if (broker == null || broker.target() != Broker.Target.RINGTAIL) {
      return;
    }
    String panic = broker.panic();
    if (panic != null) {
      failed = true;
      throw new AssertionError("broker log shows a panic or abort:\n" + panic);
    }
    if (!broker.alive()) {
      failed = true;
      throw new AssertionError("the broker is no longer running\n" + broker.logTail());
    }
  }

  @Override
  public void afterAll(ExtensionContext context) {
    if (broker == null) {
      return;
    }
    broker.close();
    if (failed || context.getExecutionException().isPresent()) {
      System.err.println("[it] broker directory kept: " + broker.directory());
    } else {
      broker.deleteDirectory();
    }
    broker = null;
  }

  @Override
  public void handleTestExecutionException(ExtensionContext context, Throwable throwable)
      throws Throwable {
    throw withLogTail(throwable);
  }

  @Override
  public void handleBeforeAllMethodExecutionException(ExtensionContext context, Throwable throwable)
      throws Throwable {
    throw withLogTail(throwable);
  }

  @Override
  public void handleBeforeEachMethodExecutionException(ExtensionContext context, Throwable throwable)
      throws Throwable {
    throw withLogTail(throwable);
  }

  @Override
  public void handleAfterEachMethodExecutionException(ExtensionContext context, Throwable throwable)
      throws Throwable {
    throw withLogTail(throwable);
  }

  private Throwable withLogTail(Throwable throwable) {
    failed = true;
    if (broker != null) {
      String tail = broker.logTail();
      System.err.println(tail);
      throwable.addSuppressed(new BrokerLog(tail));
    }
    return throwable;
  }

  /** Carries the broker's log tail into the failure report. */
  static final class BrokerLog extends RuntimeException {
    private static final long serialVersionUID = 1L;

    BrokerLog(String tail) {
      super("broker log tail:\n" + tail, null, false, false);
    }
  }
}
