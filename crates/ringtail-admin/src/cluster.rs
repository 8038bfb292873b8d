//! The cluster as an admin client sees it: a connection to a `--bootstrap-server`, Metadata,
//! and lazily opened connections to each broker by node id (partition leaders for
//! ListOffsets, group coordinators found with FindCoordinator), as Kafka's AdminClient routes
//! requests.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, BrokerId, FindCoordinatorRequest, ListOffsetsRequest, MetadataRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::connection::Connection;
use crate::error::AdminError;

/// Metadata versions the request builder handles: v1 (null topics = all) to v12 (topic ids,
/// nullable names; v13 only adds an error code we would not use).
pub const METADATA_VERSIONS: (i16, i16) = (1, 12);
/// ListOffsets v1 (offsets, not v0's arrays) to v7 (v8+ add tiered-storage timestamps we do
/// not ask for).
pub const LIST_OFFSETS_VERSIONS: (i16, i16) = (1, 7);
/// ListOffsets' timestamp for the log start offset (Kafka's `EARLIEST_TIMESTAMP`).
pub const EARLIEST_TIMESTAMP: i64 = -2;
/// ListOffsets' timestamp for the high watermark (`LATEST_TIMESTAMP`, read_uncommitted).
pub const LATEST_TIMESTAMP: i64 = -1;
/// FindCoordinator v0-v3 (one key per request; v4 batches keys).
pub const FIND_COORDINATOR_VERSIONS: (i16, i16) = (0, 3);

/// How to reach the cluster. Security settings (`--command-config` with `security.protocol`,
/// SASL, TLS) join this struct when Ringtail gains them.
#[derive(Clone, Debug, clap::Args)]
pub struct ConnectionArgs {
    /// Broker(s) to bootstrap from, `host:port[,host:port...]` (Kafka's tools' flag).
    #[arg(
        long = "bootstrap-server",
        short = 'b',
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    pub bootstrap_server: String,
    /// Bound on connecting and on every request, in milliseconds (Kafka's admin client
    /// `request.timeout.ms`, default 30000).
    #[arg(
        long = "timeout-ms",
        value_name = "MS",
        default_value_t = 30_000,
        global = true
    )]
    pub timeout_ms: u64,
}

/// A response's nullable topic name as text (empty when null).
pub fn topic_name_of(name: Option<&TopicName>) -> String {
    name.map(|n| n.0.to_string()).unwrap_or_default()
}

/// A broker from Metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerNode {
    /// `node.id`.
    pub node_id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// `broker.rack`, if set.
    pub rack: Option<String>,
}

/// Connections to a cluster.
pub struct Cluster {
    bootstrap: Connection,
    timeout: Duration,
    brokers: BTreeMap<i32, BrokerNode>,
    nodes: BTreeMap<i32, Connection>,
}

impl Cluster {
    /// Connects to the first reachable address of `args.bootstrap_server`.
    ///
    /// Errors: [`AdminError::Connect`] naming every address tried when none answers.
    pub fn connect(args: &ConnectionArgs) -> Result<Cluster, AdminError> {
        let timeout = Duration::from_millis(args.timeout_ms.max(1));
        let mut failures = Vec::new();
        for addr in args.bootstrap_server.split(',').map(str::trim) {
            if addr.is_empty() {
                continue;
            }
            match Connection::connect(addr, timeout) {
                Ok(bootstrap) => {
                    return Ok(Cluster {
                        bootstrap,
                        timeout,
                        brokers: BTreeMap::new(),
                        nodes: BTreeMap::new(),
                    })
                }
                Err(AdminError::Connect { reason, .. }) => {
                    failures.push(format!("{addr}: {reason}"))
                }
                Err(other) => return Err(other),
            }
        }
        Err(AdminError::Connect {
            addr: args.bootstrap_server.clone(),
            reason: match failures.as_slice() {
                [] => "no address given".to_string(),
                [only] => only
                    .split_once(": ")
                    .map_or(only.clone(), |(_, reason)| reason.to_string()),
                _ => failures.join("; "),
            },
        })
    }

    /// The bootstrap connection.
    pub fn bootstrap(&mut self) -> &mut Connection {
        &mut self.bootstrap
    }

    /// Metadata for `topics` (`None`: every topic; `Some(&[])`: brokers only), without
    /// auto-creating topics. Remembers the brokers for [`Cluster::node`].
    pub fn metadata(&mut self, topics: Option<&[String]>) -> Result<MetadataResponse, AdminError> {
        let response = self.bootstrap.send(METADATA_VERSIONS, |_| {
            MetadataRequest::default()
                .with_topics(topics.map(|names| {
                    names
                        .iter()
                        .map(|name| {
                            MetadataRequestTopic::default()
                                .with_name(Some(TopicName(StrBytes::from_string(name.clone()))))
                        })
                        .collect()
                }))
                .with_allow_auto_topic_creation(false)
        })?;
        for broker in &response.brokers {
            self.brokers.insert(
                broker.node_id.0,
                BrokerNode {
                    node_id: broker.node_id.0,
                    host: broker.host.to_string(),
                    port: broker.port,
                    rack: broker.rack.as_ref().map(|r| r.to_string()),
                },
            );
        }
        Ok(response)
    }

    /// The connection to broker `node_id` (opened on first use at its advertised address).
    pub fn node(&mut self, node_id: i32) -> Result<&mut Connection, AdminError> {
        if !self.brokers.contains_key(&node_id) {
            self.metadata(Some(&[]))?;
        }
        let Some(broker) = self.brokers.get(&node_id) else {
            return Err(AdminError::Invalid(format!(
                "broker {node_id} is not in the cluster's metadata"
            )));
        };
        if !self.nodes.contains_key(&node_id) {
            let addr = format!("{}:{}", broker.host, broker.port);
            let connection = Connection::connect(&addr, self.timeout)?;
            self.nodes.insert(node_id, connection);
        }
        Ok(self.nodes.get_mut(&node_id).expect("inserted above"))
    }

    /// The node id of `group`'s coordinator (FindCoordinator, key type 0 = group).
    pub fn coordinator_id(&mut self, group: &str) -> Result<i32, AdminError> {
        let response = self.bootstrap.send(FIND_COORDINATOR_VERSIONS, |_| {
            FindCoordinatorRequest::default()
                .with_key(StrBytes::from_string(group.to_string()))
                .with_key_type(0)
        })?;
        self.bootstrap.check(
            ApiKey::FindCoordinator,
            response.error_code,
            response.error_message.as_deref(),
            || format!("finding the coordinator of group {group}"),
        )?;
        self.brokers.insert(
            response.node_id.0,
            BrokerNode {
                node_id: response.node_id.0,
                host: response.host.to_string(),
                port: response.port,
                rack: None,
            },
        );
        Ok(response.node_id.0)
    }

    /// The connection to `group`'s coordinator.
    pub fn coordinator(&mut self, group: &str) -> Result<&mut Connection, AdminError> {
        let id = self.coordinator_id(group)?;
        self.node(id)
    }
}

/// A topic's partitions and their leaders, from Metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicLayout {
    /// Partition index -> leader node id (-1 when leaderless).
    pub leaders: BTreeMap<i32, i32>,
}

impl Cluster {
    /// The partitions and leaders of each of `topics`.
    ///
    /// Errors: [`AdminError::Kafka`] with UNKNOWN_TOPIC_OR_PARTITION (or the topic's other
    /// error) for a topic the broker does not know.
    pub fn layouts(
        &mut self,
        topics: &[String],
    ) -> Result<BTreeMap<String, TopicLayout>, AdminError> {
        let metadata = self.metadata(Some(topics))?;
        let mut layouts = BTreeMap::new();
        for topic in &metadata.topics {
            let name = topic_name_of(topic.name.as_ref());
            crate::error::check(topic.error_code, None, || format!("topic {name}"))?;
            let leaders = topic
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.leader_id.0))
                .collect();
            layouts.insert(name, TopicLayout { leaders });
        }
        Ok(layouts)
    }

    /// ListOffsets for `partitions` at `timestamp` (a time in ms since the epoch, or
    /// [`EARLIEST_TIMESTAMP`] / [`LATEST_TIMESTAMP`]), each asked of its leader. The answer
    /// per partition is the offset, `None` when no record has a timestamp at or after the one
    /// asked (Kafka answers offset -1 then).
    ///
    /// Errors: a partition without a leader, or any partition error (as [`AdminError::Kafka`]).
    pub fn list_offsets(
        &mut self,
        partitions: &[(String, i32)],
        timestamp: i64,
    ) -> Result<BTreeMap<(String, i32), Option<i64>>, AdminError> {
        let topics: Vec<String> = partitions
            .iter()
            .map(|(t, _)| t.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if topics.is_empty() {
            return Ok(BTreeMap::new());
        }
        let layouts = self.layouts(&topics)?;
        let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
        for (topic, partition) in partitions {
            let leader = layouts
                .get(topic)
                .and_then(|l| l.leaders.get(partition))
                .copied()
                .ok_or_else(|| AdminError::Kafka {
                    context: format!("partition {topic}-{partition}"),
                    code: 3,
                    message: Some(format!("topic {topic} has no partition {partition}")),
                })?;
            if leader < 0 {
                return Err(AdminError::Kafka {
                    context: format!("partition {topic}-{partition}"),
                    code: 5,
                    message: Some("the partition has no leader".to_string()),
                });
            }
            by_leader
                .entry(leader)
                .or_default()
                .entry(topic.clone())
                .or_default()
                .push(*partition);
        }
        let mut answers = BTreeMap::new();
        for (leader, topics) in by_leader {
            let connection = self.node(leader)?;
            let response = connection.send(LIST_OFFSETS_VERSIONS, |_| {
                ListOffsetsRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_isolation_level(0)
                    .with_topics(
                        topics
                            .iter()
                            .map(|(topic, partitions)| {
                                ListOffsetsTopic::default()
                                    .with_name(TopicName(StrBytes::from_string(topic.clone())))
                                    .with_partitions(
                                        partitions
                                            .iter()
                                            .map(|&p| {
                                                ListOffsetsPartition::default()
                                                    .with_partition_index(p)
                                                    .with_current_leader_epoch(-1)
                                                    .with_timestamp(timestamp)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    )
            })?;
            for topic in &response.topics {
                for partition in &topic.partitions {
                    let name = topic.name.0.to_string();
                    connection.check(ApiKey::ListOffsets, partition.error_code, None, || {
                        format!("ListOffsets of {name}-{}", partition.partition_index)
                    })?;
                    let offset = (partition.offset >= 0).then_some(partition.offset);
                    answers.insert((name, partition.partition_index), offset);
                }
            }
        }
        Ok(answers)
    }
}
