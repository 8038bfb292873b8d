//! Bootstrap, topic creation (CreateTopics) and partition leaders (Metadata).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest};
use kafka_protocol::protocol::StrBytes;

use super::client::{topic_name, ClientError, Connection};
use super::consumer::{list_offsets, StartFrom};
use super::BenchError;

/// Kafka error code UNKNOWN_TOPIC_OR_PARTITION.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// Kafka error code LEADER_NOT_AVAILABLE.
const LEADER_NOT_AVAILABLE: i16 = 5;
/// Kafka error code TOPIC_ALREADY_EXISTS.
const TOPIC_ALREADY_EXISTS: i16 = 36;

/// Where a topic's partitions live.
#[derive(Debug, Clone)]
pub struct TopicLayout {
    /// Topic name.
    pub topic: String,
    /// Leader broker id of each partition, indexed by partition.
    pub leaders: Vec<i32>,
    /// `host:port` of each broker id.
    pub brokers: HashMap<i32, String>,
}

impl TopicLayout {
    /// Number of partitions.
    pub fn partitions(&self) -> usize {
        self.leaders.len()
    }

    /// Leaders with the partitions each leads, among `partitions`, sorted by broker id.
    pub fn by_leader(&self, partitions: &[usize]) -> Vec<(i32, Vec<usize>)> {
        let mut map: std::collections::BTreeMap<i32, Vec<usize>> = Default::default();
        for &p in partitions {
            map.entry(self.leaders[p]).or_default().push(p);
        }
        map.into_iter().collect()
    }
}

/// Connects to the first reachable address of a comma-separated `bootstrap.servers` list.
pub async fn bootstrap(
    servers: &str,
    client_id: &str,
    timeout: Duration,
) -> Result<Connection, BenchError> {
    let mut last = None;
    for addr in servers.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        match Connection::connect(addr, client_id, timeout).await {
            Ok(connection) => return Ok(connection),
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .map(BenchError::from)
        .unwrap_or_else(|| BenchError::NoBootstrap(servers.to_string())))
}

/// Creates `topic` with `partitions` partitions and the topic configs `configs` (name, value);
/// an existing topic is left as it is. Returns whether the topic was created.
pub async fn create_topic(
    connection: &Connection,
    topic: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(String, String)],
    timeout: Duration,
) -> Result<bool, BenchError> {
    let version = connection.version::<CreateTopicsRequest>(7)?;
    let configs = configs
        .iter()
        .map(|(name, value)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(name.clone()))
                .with_value(Some(StrBytes::from_string(value.clone())))
        })
        .collect();
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(timeout.as_millis() as i32)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)
            .with_configs(configs)]);
    let response = connection.call(&request, version).await?;
    let Some(result) = response.topics.into_iter().next() else {
        return Err(BenchError::Protocol(format!(
            "CreateTopics answered nothing for topic {topic}"
        )));
    };
    match result.error_code {
        0 => Ok(true),
        TOPIC_ALREADY_EXISTS => Ok(false),
        code => {
            let message = result
                .error_message
                .map(|m| format!(" ({})", m.as_str()))
                .unwrap_or_default();
            Err(ClientError::broker(
                ApiKey::CreateTopics,
                format!(" for topic {topic}{message}"),
                code,
            )
            .into())
        }
    }
}

/// The topic's layout, waiting up to `wait` for every partition to have a leader (a topic just
/// created may need a moment). An unknown topic is an error at once unless `wait_for_creation`.
///
/// With `auto_create` the Metadata request sets `allow_auto_topic_creation`, as Kafka's producer
/// (and so kafka-producer-perf-test) does: a broker with `auto.create.topics.enable=true`
/// creates the topic with its `num.partitions`. Apache Kafka (KRaft) answers that first request
/// with UNKNOWN_TOPIC_OR_PARTITION or LEADER_NOT_AVAILABLE while the controller creates it, so,
/// like the Java producer (which retries until `max.block.ms`), both are retried until `wait`;
/// a topic still unknown then is [`BenchError::UnknownTopic`] (the broker does not auto-create).
pub async fn describe_topic(
    connection: &Connection,
    topic: &str,
    wait: Duration,
    wait_for_creation: bool,
    auto_create: bool,
) -> Result<TopicLayout, BenchError> {
    let deadline = Instant::now() + wait;
    let mut unknown = false;
    loop {
        let response = connection
            .metadata(Some(&[topic.to_string()]), auto_create)
            .await?;
        let brokers: HashMap<i32, String> = response
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        let retry_reason = match response.topics.first() {
            None => Some(format!("no metadata for topic {topic}")),
            Some(t) if t.error_code == UNKNOWN_TOPIC_OR_PARTITION && auto_create => {
                unknown = true;
                Some(format!("topic {topic} unknown (auto-creation requested)"))
            }
            Some(t) if t.error_code == UNKNOWN_TOPIC_OR_PARTITION && !wait_for_creation => {
                return Err(BenchError::UnknownTopic {
                    topic: topic.to_string(),
                    broker: connection.addr.clone(),
                })
            }
            Some(t) if t.error_code != 0 => Some(format!("topic error code {}", t.error_code)),
            Some(t) if t.partitions.is_empty() => Some("no partitions yet".to_string()),
            Some(t) => {
                let mut leaders = vec![-1; t.partitions.len()];
                let mut missing = None;
                for p in &t.partitions {
                    let index = p.partition_index as usize;
                    if index >= leaders.len() {
                        missing = Some(format!("partition index {index} out of range"));
                        break;
                    }
                    leaders[index] = p.leader_id.0;
                    if p.leader_id.0 < 0
                        || p.error_code == LEADER_NOT_AVAILABLE
                        || !brokers.contains_key(&p.leader_id.0)
                    {
                        missing = Some(format!("partition {index} has no leader"));
                    }
                }
                match missing {
                    None => {
                        return Ok(TopicLayout {
                            topic: topic.to_string(),
                            leaders,
                            brokers,
                        })
                    }
                    reason => reason,
                }
            }
        };
        if Instant::now() >= deadline {
            if unknown && !wait_for_creation {
                return Err(BenchError::UnknownTopic {
                    topic: topic.to_string(),
                    broker: connection.addr.clone(),
                });
            }
            return Err(BenchError::TopicNotReady {
                topic: topic.to_string(),
                reason: retry_reason.unwrap_or_default(),
                waited_ms: wait.as_millis() as u64,
            });
        }
        glommio::timer::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits up to `wait` until every partition's leader serves it: ListOffsets (latest) answers
/// without error. A topic just created can be in the Metadata answer before its leader has
/// opened the partition (Apache Kafka answers NOT_LEADER_OR_FOLLOWER to a Produce then, which a
/// Java producer retries); the bench producer does not retry, so it starts only after this.
pub async fn wait_until_served(
    layout: &TopicLayout,
    client_id: &str,
    wait: Duration,
) -> Result<(), BenchError> {
    let deadline = Instant::now() + wait;
    let partitions: Vec<usize> = (0..layout.partitions()).collect();
    for (broker, led) in layout.by_leader(&partitions) {
        let connection = Connection::connect(&layout.brokers[&broker], client_id, wait).await?;
        loop {
            match list_offsets(&connection, &layout.topic, &led, StartFrom::Latest).await {
                Ok(_) => break,
                Err(e) if Instant::now() >= deadline => {
                    return Err(BenchError::TopicNotReady {
                        topic: layout.topic.clone(),
                        reason: e.to_string(),
                        waited_ms: wait.as_millis() as u64,
                    })
                }
                Err(_) => glommio::timer::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    Ok(())
}
