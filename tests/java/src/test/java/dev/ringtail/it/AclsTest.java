package dev.ringtail.it;

import static dev.ringtail.it.SecurityTestSupport.causedBy;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AccessControlEntryFilter;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.errors.GroupAuthorizationException;
import org.apache.kafka.common.errors.TopicAuthorizationException;
import org.apache.kafka.common.errors.TransactionalIdAuthorizationException;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourcePatternFilter;
import org.apache.kafka.common.resource.ResourceType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.Test;

/**
 * ACLs with Kafka's Java client (issue 11), StandardAuthorizer with
 * {@code allow.everyone.if.no.acl.found=false}: the AdminClient creates, describes and deletes
 * ACLs; SASL PLAIN users alice and bob get exactly what their ACLs allow --
 * TopicAuthorizationException for a topic without one, a PREFIXED allow, a DENY beating an
 * ALLOW, a consumer group's READ, a transactional id's WRITE. PLAINTEXT's ANONYMOUS is the super
 * user (the Kafka node's own controller connections come as ANONYMOUS over PLAINTEXT; the admin
 * client here too). Kafka applies a new ACL asynchronously, so checks are retried until a bound.
 */
class AclsTest {
  private static final String PLAIN_JAAS =
      "org.apache.kafka.common.security.plain.PlainLoginModule required "
          + "username=\"admin\" password=\"admin-secret\" user_admin=\"admin-secret\" "
          + "user_alice=\"alice-secret\" user_bob=\"bob-secret\";";
  private static final Duration ACL_WAIT = Duration.ofSeconds(30);

  private static SecuredBroker broker;
  private static int plaintext;
  private static int sasl;
  private static String prefix;

  @BeforeAll
  @Timeout(value = 420, unit = TimeUnit.SECONDS) // a Kafka JVM on a loaded machine
  static void start() throws Exception {
    plaintext = SecurityTestSupport.port();
    sasl = SecurityTestSupport.port();
    String properties = SecurityTestSupport.baseProperties(
        "PLAINTEXT://127.0.0.1:" + plaintext + ",SASL_PLAINTEXT://127.0.0.1:" + sasl,
        "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT", SecurityTestSupport.port())
        + String.join("\n",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users=User:ANONYMOUS",
            "allow.everyone.if.no.acl.found=false",
            "sasl.enabled.mechanisms=PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config=" + PLAIN_JAAS,
            "");
    broker = SecuredBroker.start(properties, List.of(), anonymous());
    // alice may write every topic of this class's prefix (so her idempotent producer may
    // also InitProducerId: WRITE on any topic is enough, as in Kafka).
    prefix = Clients.unique("acl") + "-";
    createAcls(new AclBinding(new ResourcePattern(ResourceType.TOPIC, prefix, PatternType.PREFIXED),
        allow("User:alice", AclOperation.WRITE)));
  }

  @AfterAll
  static void stop() {
    if (broker != null) {
      boolean panicked = broker.panicked();
      broker.close();
      assertFalse(panicked, "broker log shows a panic");
    }
  }

  private static Map<String, Object> anonymous() {
    return Map.of("bootstrap.servers", "127.0.0.1:" + plaintext);
  }

  private static Map<String, Object> user(String name) {
    Map<String, Object> client = new HashMap<>();
    client.put("bootstrap.servers", "127.0.0.1:" + sasl);
    client.put("security.protocol", "SASL_PLAINTEXT");
    client.put("sasl.mechanism", "PLAIN");
    client.put("sasl.jaas.config", "org.apache.kafka.common.security.plain.PlainLoginModule "
        + "required username=\"" + name + "\" password=\"" + name + "-secret\";");
    return client;
  }

  private static AccessControlEntry allow(String principal, AclOperation operation) {
    return new AccessControlEntry(principal, "*", operation, AclPermissionType.ALLOW);
  }

  private static void createAcls(AclBinding... bindings) throws Exception {
    try (Admin admin = SecurityTestSupport.admin(anonymous())) {
      admin.createAcls(List.of(bindings)).all().get(30, TimeUnit.SECONDS);
    }
  }

  private static String topic(String name) throws Exception {
    String topic = prefix + name;
    SecurityTestSupport.createTopic(anonymous(), topic, 1);
    return topic;
  }

  /** Sends one record as {@code client}; the exception it failed with, or null. */
  private static Throwable send(Map<String, Object> client, String topic) {
    try (KafkaProducer<String, String> producer = SecurityTestSupport.producer(client)) {
      producer.send(new ProducerRecord<>(topic, "v")).get(30, TimeUnit.SECONDS);
      return null;
    } catch (Exception e) {
      return e;
    }
  }

  private static void eventually(String what, java.util.function.BooleanSupplier check) {
    Clients.waitUntil(ACL_WAIT, () -> what, check);
  }

  @Test
  void adminClientCreatesDescribesAndDeletesAcls() throws Exception {
    String name = Clients.unique("acl-admin");
    AclBinding literal = new AclBinding(
        new ResourcePattern(ResourceType.TOPIC, name, PatternType.LITERAL),
        allow("User:bob", AclOperation.READ));
    AclBinding prefixed = new AclBinding(
        new ResourcePattern(ResourceType.TOPIC, name + "-", PatternType.PREFIXED),
        new AccessControlEntry("User:bob", "127.0.0.1", AclOperation.WRITE,
            AclPermissionType.DENY));
    AclBinding group = new AclBinding(
        new ResourcePattern(ResourceType.GROUP, name, PatternType.LITERAL),
        allow("User:bob", AclOperation.DESCRIBE));
    try (Admin admin = SecurityTestSupport.admin(anonymous())) {
      admin.createAcls(List.of(literal, prefixed, group)).all().get(30, TimeUnit.SECONDS);
      AclBindingFilter byBob = new AclBindingFilter(ResourcePatternFilter.ANY,
          new AccessControlEntryFilter("User:bob", null, AclOperation.ANY, AclPermissionType.ANY));
      eventually("the three ACLs described", () -> described(admin, byBob, name).size() == 3);
      assertEquals(Set.of(literal, prefixed, group), described(admin, byBob, name));
      // MATCH: every pattern that applies to the topic `name-x`.
      AclBindingFilter match = new AclBindingFilter(
          new ResourcePatternFilter(ResourceType.TOPIC, name + "-x", PatternType.MATCH),
          AccessControlEntryFilter.ANY);
      assertEquals(Set.of(prefixed), described(admin, match, name));
      AclBindingFilter literalOnly = new AclBindingFilter(
          new ResourcePatternFilter(ResourceType.ANY, name, PatternType.LITERAL),
          AccessControlEntryFilter.ANY);
      Collection<AclBinding> deleted =
          admin.deleteAcls(List.of(literalOnly)).all().get(30, TimeUnit.SECONDS);
      assertEquals(Set.of(literal, group), new HashSet<>(deleted));
      eventually("only the prefixed ACL left",
          () -> described(admin, byBob, name).equals(Set.of(prefixed)));
      admin.deleteAcls(List.of(prefixed.toFilter())).all().get(30, TimeUnit.SECONDS);
    }
  }

  private static Set<AclBinding> described(Admin admin, AclBindingFilter filter, String name) {
    try {
      return admin.describeAcls(filter).values().get(30, TimeUnit.SECONDS).stream()
          .filter(b -> b.pattern().name().startsWith(name))
          .collect(Collectors.toSet());
    } catch (Exception e) {
      throw new AssertionError(e);
    }
  }

  @Test
  void aProducerWithoutAnAclGetsTopicAuthorizationException() throws Exception {
    String other = Clients.unique("acl-nobody");
    SecurityTestSupport.createTopic(anonymous(), other, 1);
    Throwable error = send(user("alice"), other);
    assertTrue(error != null && causedBy(error, TopicAuthorizationException.class),
        String.valueOf(error));
  }

  @Test
  void aPrefixedAllowLetsTheProducerWrite() throws Exception {
    String topic = topic("prefixed");
    eventually("alice writes " + topic, () -> send(user("alice"), topic) == null);
    // bob has no ACL for it.
    Throwable error = send(SecurityTestSupport.with(user("bob"), "enable.idempotence", false),
        topic);
    assertTrue(error != null && causedBy(error, TopicAuthorizationException.class),
        String.valueOf(error));
  }

  @Test
  void aDenyBeatsAnAllow() throws Exception {
    String topic = topic("denied");
    createAcls(new AclBinding(new ResourcePattern(ResourceType.TOPIC, topic, PatternType.LITERAL),
        new AccessControlEntry("User:alice", "*", AclOperation.WRITE, AclPermissionType.DENY)));
    eventually("alice refused on " + topic, () -> {
      Throwable error = send(user("alice"), topic);
      return error != null && causedBy(error, TopicAuthorizationException.class);
    });
  }

  @Test
  void aConsumerNeedsItsGroupAcl() throws Exception {
    String topic = topic("grouped");
    String group = Clients.unique("acl-group");
    createAcls(
        new AclBinding(new ResourcePattern(ResourceType.TOPIC, topic, PatternType.LITERAL),
            allow("User:bob", AclOperation.READ)),
        new AclBinding(new ResourcePattern(ResourceType.GROUP, group, PatternType.LITERAL),
            allow("User:bob", AclOperation.READ)));
    eventually("alice writes " + topic, () -> send(user("alice"), topic) == null);
    eventually("bob reads " + topic + " in " + group, () -> {
      try (KafkaConsumer<String, String> consumer =
          SecurityTestSupport.consumer(user("bob"), group)) {
        consumer.subscribe(List.of(topic));
        List<ConsumerRecord<String, String>> records =
            Clients.pollCount(consumer, 1, Duration.ofSeconds(10));
        if (records.isEmpty()) {
          return false;
        }
        consumer.commitSync(Duration.ofSeconds(10));
        return true;
      } catch (Exception e) {
        return false;
      }
    });
    // Another group, without an ACL: GroupAuthorizationException.
    try (KafkaConsumer<String, String> consumer =
        SecurityTestSupport.consumer(user("bob"), group + "-other")) {
      consumer.subscribe(List.of(topic));
      Throwable error = null;
      long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
      while (error == null && System.nanoTime() < deadline) {
        try {
          consumer.poll(Duration.ofMillis(500));
        } catch (Exception e) {
          error = e;
        }
      }
      assertTrue(error != null && causedBy(error, GroupAuthorizationException.class),
          String.valueOf(error));
    }
  }

  @Test
  @Timeout(value = 200, unit = TimeUnit.SECONDS)
  void aTransactionalIdNeedsItsAcl() throws Exception {
    String topic = topic("txn");
    String allowed = Clients.unique("acl-tx-ok");
    createAcls(new AclBinding(
        new ResourcePattern(ResourceType.TRANSACTIONAL_ID, allowed, PatternType.LITERAL),
        allow("User:alice", AclOperation.WRITE)));
    // Kafka creates __transaction_state on the first InitProducerId: slow on a loaded machine.
    Throwable[] last = new Throwable[1];
    Clients.waitUntil(Duration.ofSeconds(100),
        () -> "alice's transactional producer commits (last error: " + last[0] + ")", () -> {
          try (KafkaProducer<String, String> producer = SecurityTestSupport.producer(
              SecurityTestSupport.with(user("alice"), "transactional.id", allowed,
                  "max.block.ms", 40_000))) {
            producer.initTransactions();
            producer.beginTransaction();
            producer.send(new ProducerRecord<>(topic, "in-a-transaction"))
                .get(30, TimeUnit.SECONDS);
            producer.commitTransaction();
            return true;
          } catch (Exception e) {
            last[0] = e;
            return false;
          }
        });
    try (KafkaProducer<String, String> producer = SecurityTestSupport.producer(
        SecurityTestSupport.with(user("alice"), "transactional.id",
            Clients.unique("acl-tx-no")))) {
      Throwable error = null;
      try {
        producer.initTransactions();
      } catch (Exception e) {
        error = e;
      }
      assertTrue(error != null && causedBy(error, TransactionalIdAuthorizationException.class),
          String.valueOf(error));
    }
  }
}
