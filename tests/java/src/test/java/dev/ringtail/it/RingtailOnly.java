package dev.ringtail.it;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.condition.DisabledIfEnvironmentVariable;

/**
 * A test of Ringtail's own behaviour (its files, its logs), not of the Kafka protocol: tagged
 * {@code ringtail-only} and reported as skipped when {@code RINGTAIL_TEST_TARGET=kafka}.
 */
@Target({ElementType.TYPE, ElementType.METHOD})
@Retention(RetentionPolicy.RUNTIME)
@Tag("ringtail-only")
@DisabledIfEnvironmentVariable(
    named = "RINGTAIL_TEST_TARGET",
    matches = "(?i)kafka",
    disabledReason = "Ringtail-only behaviour: not run against Apache Kafka")
public @interface RingtailOnly {}
