//! KIP-848 consumer group properties (Kafka's `GroupCoordinatorConfig`, 4.1 names, defaults,
//! bounds and start-up checks).
//!
//! Each integer has Kafka's `ConfigDef` lower bound (`atLeast(1)`, `atLeast(10000)` for the
//! regex refresh); the cross-checks are the `require(...)` calls of `GroupCoordinatorConfig`'s
//! constructor, refused at start-up with Kafka's message. `group.coordinator.rebalance.protocols`
//! takes Kafka's values (`classic`, `consumer`, `share`, `streams`), must keep `classic`
//! (Kafka's `KafkaConfig`: "Disabling the 'classic' protocol is not supported."); `share` and
//! `streams` are accepted and warned about: Ringtail serves neither.

use super::{invalid, ConfigError, Layers, MAX32};

/// `group.consumer.migration.policy` (Kafka's `ConsumerGroupMigrationPolicy`): whether a
/// classic group converts to a consumer group when a member joins with the consumer protocol
/// (upgrade) and back when the last consumer-protocol member leaves (downgrade).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumerGroupMigrationPolicy {
    /// `bidirectional`: both directions (Kafka's default).
    Bidirectional,
    /// `upgrade`: classic to consumer only.
    Upgrade,
    /// `downgrade`: consumer to classic only.
    Downgrade,
    /// `disabled`: neither.
    Disabled,
}

impl ConsumerGroupMigrationPolicy {
    /// Parses Kafka's value, case-insensitively as `ConsumerGroupMigrationPolicy.parse` does.
    pub fn parse(value: &str) -> Option<ConsumerGroupMigrationPolicy> {
        match value.trim().to_ascii_lowercase().as_str() {
            "bidirectional" => Some(ConsumerGroupMigrationPolicy::Bidirectional),
            "upgrade" => Some(ConsumerGroupMigrationPolicy::Upgrade),
            "downgrade" => Some(ConsumerGroupMigrationPolicy::Downgrade),
            "disabled" => Some(ConsumerGroupMigrationPolicy::Disabled),
            _ => None,
        }
    }

    /// Kafka's name of the policy.
    pub fn name(self) -> &'static str {
        match self {
            ConsumerGroupMigrationPolicy::Bidirectional => "bidirectional",
            ConsumerGroupMigrationPolicy::Upgrade => "upgrade",
            ConsumerGroupMigrationPolicy::Downgrade => "downgrade",
            ConsumerGroupMigrationPolicy::Disabled => "disabled",
        }
    }

    /// Whether a classic group may become a consumer group.
    pub fn is_upgrade_enabled(self) -> bool {
        matches!(
            self,
            ConsumerGroupMigrationPolicy::Bidirectional | ConsumerGroupMigrationPolicy::Upgrade
        )
    }

    /// Whether a consumer group may become a classic group.
    pub fn is_downgrade_enabled(self) -> bool {
        matches!(
            self,
            ConsumerGroupMigrationPolicy::Bidirectional | ConsumerGroupMigrationPolicy::Downgrade
        )
    }
}

/// Kafka's `ConfigDef.Type` LIST properties of this block (the others are INT or STRING).
pub(super) fn is_list(name: &str) -> bool {
    matches!(
        name,
        "group.coordinator.rebalance.protocols" | "group.consumer.assignors"
    )
}

/// Kafka's `ConfigDef.Type` INT properties of this block.
pub(super) fn is_int(name: &str) -> bool {
    name.starts_with("group.consumer.") && name.ends_with(".ms")
        || name == "group.consumer.max.size"
}

/// The server-side assignors Ringtail has, by Kafka's short name and class name.
const ASSIGNORS: &[(&str, &str)] = &[
    (
        "uniform",
        "org.apache.kafka.coordinator.group.assignor.UniformAssignor",
    ),
    (
        "range",
        "org.apache.kafka.coordinator.group.assignor.RangeAssignor",
    ),
];

/// The rebalance protocols Kafka 4.1 accepts (`Group.GroupType`).
const REBALANCE_PROTOCOLS: &[&str] = &["classic", "consumer", "share", "streams"];

/// The consumer group block of [`super::BrokerConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupConfig {
    /// `group.coordinator.rebalance.protocols`, lower case, in the order given.
    pub group_coordinator_rebalance_protocols: Vec<String>,
    /// `group.consumer.assignors` as short names (`uniform`, `range`); class names of Kafka's
    /// built-in assignors are mapped to them.
    pub group_consumer_assignors: Vec<String>,
    /// `group.consumer.session.timeout.ms`.
    pub group_consumer_session_timeout_ms: i32,
    /// `group.consumer.min.session.timeout.ms`.
    pub group_consumer_min_session_timeout_ms: i32,
    /// `group.consumer.max.session.timeout.ms`.
    pub group_consumer_max_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`.
    pub group_consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.min.heartbeat.interval.ms`.
    pub group_consumer_min_heartbeat_interval_ms: i32,
    /// `group.consumer.max.heartbeat.interval.ms`.
    pub group_consumer_max_heartbeat_interval_ms: i32,
    /// `group.consumer.max.size`.
    pub group_consumer_max_size: i32,
    /// `group.consumer.migration.policy`.
    pub group_consumer_migration_policy: ConsumerGroupMigrationPolicy,
    /// `group.consumer.regex.refresh.interval.ms`.
    pub group_consumer_regex_refresh_interval_ms: i32,
}

/// Reads and checks the block (Kafka's `GroupCoordinatorConfig` constructor).
pub(super) fn parse(layers: &Layers) -> Result<ConsumerGroupConfig, ConfigError> {
    let protocols_raw = layers.get("group.coordinator.rebalance.protocols");
    let mut protocols = Vec::new();
    for item in split_list(protocols_raw) {
        let lower = item.to_ascii_lowercase();
        if !REBALANCE_PROTOCOLS.contains(&lower.as_str()) {
            return Err(invalid(
                "group.coordinator.rebalance.protocols",
                protocols_raw,
                format!("{item}: String must be one of: consumer, classic, share, streams"),
            ));
        }
        if !protocols.contains(&lower) {
            protocols.push(lower);
        }
    }
    if !protocols.iter().any(|p| p == "classic") {
        return Err(invalid(
            "group.coordinator.rebalance.protocols",
            protocols_raw,
            "Disabling the 'classic' protocol is not supported.",
        ));
    }

    let assignors_raw = layers.get("group.consumer.assignors");
    let mut assignors = Vec::new();
    for item in split_list(assignors_raw) {
        let Some((name, _)) = ASSIGNORS
            .iter()
            .find(|(name, class)| item.eq_ignore_ascii_case(name) || item == *class)
        else {
            // Kafka instantiates any other entry as a class name (`Utils.newInstance`).
            return Err(invalid(
                "group.consumer.assignors",
                assignors_raw,
                format!(
                    "Class {item} cannot be found (Ringtail has the built-in assignors uniform \
                     and range only)"
                ),
            ));
        };
        assignors.push((*name).to_string());
    }
    if assignors.is_empty() {
        // Kafka accepts the empty list and then has no assignor for the first heartbeat.
        return Err(invalid(
            "group.consumer.assignors",
            assignors_raw,
            "at least one assignor is needed (uniform, range)",
        ));
    }

    let policy_raw = layers.get("group.consumer.migration.policy");
    let policy = ConsumerGroupMigrationPolicy::parse(policy_raw).ok_or_else(|| {
        invalid(
            "group.consumer.migration.policy",
            policy_raw,
            "String must be one of (case insensitive): DISABLED, DOWNGRADE, UPGRADE, BIDIRECTIONAL",
        )
    })?;

    let config = ConsumerGroupConfig {
        group_coordinator_rebalance_protocols: protocols,
        group_consumer_assignors: assignors,
        group_consumer_session_timeout_ms: layers.int(
            "group.consumer.session.timeout.ms",
            1,
            MAX32,
        )?,
        group_consumer_min_session_timeout_ms: layers.int(
            "group.consumer.min.session.timeout.ms",
            1,
            MAX32,
        )?,
        group_consumer_max_session_timeout_ms: layers.int(
            "group.consumer.max.session.timeout.ms",
            1,
            MAX32,
        )?,
        group_consumer_heartbeat_interval_ms: layers.int(
            "group.consumer.heartbeat.interval.ms",
            1,
            MAX32,
        )?,
        group_consumer_min_heartbeat_interval_ms: layers.int(
            "group.consumer.min.heartbeat.interval.ms",
            1,
            MAX32,
        )?,
        group_consumer_max_heartbeat_interval_ms: layers.int(
            "group.consumer.max.heartbeat.interval.ms",
            1,
            MAX32,
        )?,
        group_consumer_max_size: layers.int("group.consumer.max.size", 1, MAX32)?,
        group_consumer_migration_policy: policy,
        group_consumer_regex_refresh_interval_ms: layers.int(
            "group.consumer.regex.refresh.interval.ms",
            10_000,
            MAX32,
        )?,
    };
    check_bounds(layers, &config)?;
    Ok(config)
}

/// The `require(...)` checks of Kafka's `GroupCoordinatorConfig`, in Kafka's order.
fn check_bounds(layers: &Layers, c: &ConsumerGroupConfig) -> Result<(), ConfigError> {
    const HB: &str = "group.consumer.heartbeat.interval.ms";
    const MIN_HB: &str = "group.consumer.min.heartbeat.interval.ms";
    const MAX_HB: &str = "group.consumer.max.heartbeat.interval.ms";
    const ST: &str = "group.consumer.session.timeout.ms";
    const MIN_ST: &str = "group.consumer.min.session.timeout.ms";
    const MAX_ST: &str = "group.consumer.max.session.timeout.ms";
    let checks: [(bool, &'static str, String); 7] = [
        (
            c.group_consumer_max_heartbeat_interval_ms
                >= c.group_consumer_min_heartbeat_interval_ms,
            MAX_HB,
            format!("{MAX_HB} must be greater than or equal to {MIN_HB}"),
        ),
        (
            c.group_consumer_heartbeat_interval_ms >= c.group_consumer_min_heartbeat_interval_ms,
            HB,
            format!("{HB} must be greater than or equal to {MIN_HB}"),
        ),
        (
            c.group_consumer_heartbeat_interval_ms <= c.group_consumer_max_heartbeat_interval_ms,
            HB,
            format!("{HB} must be less than or equal to {MAX_HB}"),
        ),
        (
            c.group_consumer_max_session_timeout_ms >= c.group_consumer_min_session_timeout_ms,
            MAX_ST,
            format!("{MAX_ST} must be greater than or equal to {MIN_ST}"),
        ),
        (
            c.group_consumer_session_timeout_ms >= c.group_consumer_min_session_timeout_ms,
            ST,
            format!("{ST} must be greater than or equal to {MIN_ST}"),
        ),
        (
            c.group_consumer_session_timeout_ms <= c.group_consumer_max_session_timeout_ms,
            ST,
            format!("{ST} must be less than or equal to {MAX_ST}"),
        ),
        (
            c.group_consumer_heartbeat_interval_ms < c.group_consumer_session_timeout_ms,
            HB,
            format!("{HB} must be less than {ST}"),
        ),
    ];
    for (ok, name, message) in checks {
        if !ok {
            return Err(invalid(name, layers.get(name), message));
        }
    }
    Ok(())
}

/// Whether Ringtail converts groups between the classic and the consumer protocol online
/// (KIP-848 migration). Until it does, `group.consumer.migration.policy` set to anything
/// but `disabled` is warned about: a group of one protocol refuses members of the other.
pub const ONLINE_MIGRATION_SUPPORTED: bool = false;

/// Warnings for values that are accepted but have no effect on Ringtail; `protocols_set` and
/// `policy_set` say whether the operator set those properties.
pub(super) fn warnings(
    protocols_set: bool,
    policy_set: bool,
    c: &ConsumerGroupConfig,
) -> Vec<String> {
    let mut out = Vec::new();
    if policy_set
        && !ONLINE_MIGRATION_SUPPORTED
        && c.group_consumer_migration_policy != ConsumerGroupMigrationPolicy::Disabled
    {
        out.push(format!(
            "group.consumer.migration.policy={} has no effect: Ringtail does not convert groups \
             between the classic and consumer protocols online (as with disabled, a group with \
             members of one protocol refuses members of the other)",
            c.group_consumer_migration_policy.name()
        ));
    }
    if protocols_set {
        for protocol in &c.group_coordinator_rebalance_protocols {
            if protocol == "share" || protocol == "streams" {
                out.push(format!(
                    "group.coordinator.rebalance.protocols lists {protocol}, which has no effect: \
                     Ringtail serves the classic and consumer protocols only"
                ));
            }
        }
    }
    out
}

/// A Kafka LIST value: comma-separated, items trimmed, empty items dropped.
fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::super::{BrokerConfig, ConfigError};
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<BrokerConfig, ConfigError> {
        let overrides: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        BrokerConfig::load(None, &overrides)
    }

    fn refused(pairs: &[(&str, &str)]) -> (String, String) {
        match load(pairs) {
            Err(ConfigError::InvalidValue { name, reason, .. }) => (name, reason),
            other => panic!("{pairs:?} should be refused: {other:?}"),
        }
    }

    #[test]
    fn defaults_are_kafka_41s() {
        let config = BrokerConfig::default();
        let c = &config.consumer_group;
        assert_eq!(
            c.group_coordinator_rebalance_protocols,
            ["classic", "consumer", "streams"]
        );
        assert_eq!(c.group_consumer_assignors, ["uniform", "range"]);
        assert_eq!(c.group_consumer_session_timeout_ms, 45_000);
        assert_eq!(c.group_consumer_min_session_timeout_ms, 45_000);
        assert_eq!(c.group_consumer_max_session_timeout_ms, 60_000);
        assert_eq!(c.group_consumer_heartbeat_interval_ms, 5_000);
        assert_eq!(c.group_consumer_min_heartbeat_interval_ms, 5_000);
        assert_eq!(c.group_consumer_max_heartbeat_interval_ms, 15_000);
        assert_eq!(c.group_consumer_max_size, i32::MAX);
        assert_eq!(
            c.group_consumer_migration_policy,
            ConsumerGroupMigrationPolicy::Bidirectional
        );
        assert_eq!(c.group_consumer_regex_refresh_interval_ms, 600_000);
        assert!(config.consumer_group_warnings().is_empty());
    }

    #[test]
    fn accepts_kafka_spellings() {
        let config = load(&[
            (
                "group.consumer.assignors",
                "org.apache.kafka.coordinator.group.assignor.RangeAssignor, uniform",
            ),
            ("group.consumer.migration.policy", "DISABLED"),
            ("group.coordinator.rebalance.protocols", "CLASSIC,consumer"),
            ("group.consumer.heartbeat.interval.ms", "6000"),
            ("group.consumer.session.timeout.ms", "50000"),
        ])
        .expect("valid");
        let c = &config.consumer_group;
        assert_eq!(c.group_consumer_assignors, ["range", "uniform"]);
        assert_eq!(
            c.group_consumer_migration_policy,
            ConsumerGroupMigrationPolicy::Disabled
        );
        assert_eq!(
            c.group_coordinator_rebalance_protocols,
            ["classic", "consumer"]
        );
        assert_eq!(c.group_consumer_heartbeat_interval_ms, 6_000);
        assert!(config.consumer_group_warnings().is_empty());
        let warned = load(&[
            (
                "group.coordinator.rebalance.protocols",
                "classic,consumer,share",
            ),
            ("group.consumer.migration.policy", "upgrade"),
        ])
        .expect("valid");
        assert_eq!(warned.consumer_group_warnings().len(), 2);
    }

    /// Kafka 4.1.2's own messages for each refused value (from `GroupCoordinatorConfig` and
    /// its `ConfigDef`, run against the jars).
    #[test]
    #[allow(clippy::type_complexity)]
    fn refuses_what_kafka_refuses() {
        let cases: &[(&[(&str, &str)], &str, &str)] = &[
            (
                &[("group.consumer.heartbeat.interval.ms", "4000")],
                "group.consumer.heartbeat.interval.ms",
                "group.consumer.heartbeat.interval.ms must be greater than or equal to group.consumer.min.heartbeat.interval.ms",
            ),
            (
                &[("group.consumer.heartbeat.interval.ms", "16000")],
                "group.consumer.heartbeat.interval.ms",
                "group.consumer.heartbeat.interval.ms must be less than or equal to group.consumer.max.heartbeat.interval.ms",
            ),
            (
                &[("group.consumer.session.timeout.ms", "44000")],
                "group.consumer.session.timeout.ms",
                "group.consumer.session.timeout.ms must be greater than or equal to group.consumer.min.session.timeout.ms",
            ),
            (
                &[("group.consumer.session.timeout.ms", "61000")],
                "group.consumer.session.timeout.ms",
                "group.consumer.session.timeout.ms must be less than or equal to group.consumer.max.session.timeout.ms",
            ),
            (
                &[("group.consumer.max.heartbeat.interval.ms", "4000")],
                "group.consumer.max.heartbeat.interval.ms",
                "group.consumer.max.heartbeat.interval.ms must be greater than or equal to group.consumer.min.heartbeat.interval.ms",
            ),
            (
                &[("group.consumer.max.session.timeout.ms", "40000")],
                "group.consumer.max.session.timeout.ms",
                "group.consumer.max.session.timeout.ms must be greater than or equal to group.consumer.min.session.timeout.ms",
            ),
            (
                &[
                    ("group.consumer.heartbeat.interval.ms", "50000"),
                    ("group.consumer.max.heartbeat.interval.ms", "60000"),
                ],
                "group.consumer.heartbeat.interval.ms",
                "group.consumer.heartbeat.interval.ms must be less than group.consumer.session.timeout.ms",
            ),
            (
                &[("group.consumer.max.size", "0")],
                "group.consumer.max.size",
                "Value must be at least 1",
            ),
            (
                &[("group.consumer.regex.refresh.interval.ms", "9999")],
                "group.consumer.regex.refresh.interval.ms",
                "Value must be at least 10000",
            ),
            (
                &[("group.consumer.migration.policy", "sideways")],
                "group.consumer.migration.policy",
                "String must be one of (case insensitive): DISABLED, DOWNGRADE, UPGRADE, BIDIRECTIONAL",
            ),
            (
                &[("group.coordinator.rebalance.protocols", "classic,foo")],
                "group.coordinator.rebalance.protocols",
                "foo: String must be one of: consumer, classic, share, streams",
            ),
            (
                &[("group.coordinator.rebalance.protocols", "consumer")],
                "group.coordinator.rebalance.protocols",
                "Disabling the 'classic' protocol is not supported.",
            ),
            (
                &[("group.consumer.assignors", "nosuch")],
                "group.consumer.assignors",
                "Class nosuch cannot be found",
            ),
            (
                &[("group.consumer.assignors", " ")],
                "group.consumer.assignors",
                "at least one assignor",
            ),
        ];
        for (pairs, name, message) in cases {
            let (got_name, reason) = refused(pairs);
            assert_eq!(&got_name, name, "{pairs:?}");
            assert!(reason.starts_with(message), "{pairs:?}: {reason}");
        }
    }
}
