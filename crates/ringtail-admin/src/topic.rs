//! `ringtail topic create|list|describe|delete|alter-config`: CreateTopics, Metadata,
//! DescribeConfigs + ListOffsets, DeleteTopics and IncrementalAlterConfigs (KIP-339), with
//! the semantics of `kafka-topics.sh` and `kafka-configs.sh --alter --entity-type topics`.

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::json;

use crate::cluster::{topic_name_of, Cluster, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use crate::error::{item_outcome, AdminError};
use crate::output::{Outcome, Output};
use crate::parse::key_value_arg;
use crate::table::{joined, or_dash, section, Table};

/// CreateTopics v2 (Kafka 4's oldest) to v7 (topic ids in the answer).
pub const CREATE_TOPICS_VERSIONS: (i16, i16) = (2, 7);
/// DeleteTopics v1 to v6 (v6 names topics in `topics` instead of `topic_names`).
pub const DELETE_TOPICS_VERSIONS: (i16, i16) = (1, 6);
/// DescribeConfigs v1 (config sources) to v4.
pub const DESCRIBE_CONFIGS_VERSIONS: (i16, i16) = (1, 4);
/// IncrementalAlterConfigs v0 to v1.
pub const INCREMENTAL_ALTER_CONFIGS_VERSIONS: (i16, i16) = (0, 1);
/// Kafka's ConfigResource type of a topic.
pub const TOPIC_RESOURCE: i8 = 2;
/// A request's `timeout_ms` for topic creation and deletion (Kafka's tools: 30 s).
const OPERATION_TIMEOUT_MS: i32 = 30_000;

/// `ringtail topic` operations.
#[derive(Debug, clap::Subcommand)]
pub enum TopicCommand {
    /// Create topics (CreateTopics).
    Create {
        /// Topic names.
        #[arg(required = true)]
        topics: Vec<String>,
        /// Partitions of each topic (-1: the broker's `num.partitions`).
        #[arg(long, short = 'p', default_value_t = -1, allow_negative_numbers = true)]
        partitions: i32,
        /// Replication factor (-1: the broker's `default.replication.factor`).
        #[arg(long, short = 'r', default_value_t = -1, allow_negative_numbers = true)]
        replication_factor: i16,
        /// A topic config `key=value` (repeatable), e.g. `-c cleanup.policy=compact`.
        #[arg(long = "config", short = 'c', value_name = "KEY=VALUE", value_parser = key_value_arg)]
        configs: Vec<(String, String)>,
        /// Succeed for topics that exist already (kafka-topics.sh `--if-not-exists`).
        #[arg(long)]
        if_not_exists: bool,
        /// Only validate (CreateTopics `validate_only`).
        #[arg(long)]
        dry_run: bool,
    },
    /// List topics with their partition and replica counts (Metadata).
    List {
        /// Include internal topics (`__consumer_offsets`).
        #[arg(long, short = 'i')]
        internal: bool,
    },
    /// A topic's summary, configs and partitions with their offsets (Metadata,
    /// DescribeConfigs, ListOffsets).
    Describe {
        /// Topic names.
        #[arg(required = true)]
        topics: Vec<String>,
    },
    /// Delete topics (DeleteTopics).
    Delete {
        /// Topic names.
        #[arg(required = true)]
        topics: Vec<String>,
    },
    /// Set or remove topic configs (IncrementalAlterConfigs, as `kafka-configs.sh --alter
    /// --add-config/--delete-config`).
    AlterConfig {
        /// Topic name.
        topic: String,
        /// Set `key=value` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = key_value_arg)]
        set: Vec<(String, String)>,
        /// Remove an override, back to the broker default (repeatable).
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
        /// Only validate (`validate_only`).
        #[arg(long)]
        dry_run: bool,
    },
}

/// Runs a topic operation.
pub fn run(cluster: &mut Cluster, command: &TopicCommand) -> Outcome {
    match command {
        TopicCommand::Create {
            topics,
            partitions,
            replication_factor,
            configs,
            if_not_exists,
            dry_run,
        } => create(
            cluster,
            topics,
            *partitions,
            *replication_factor,
            configs,
            *if_not_exists,
            *dry_run,
        ),
        TopicCommand::List { internal } => list(cluster, *internal),
        TopicCommand::Describe { topics } => describe(cluster, topics),
        TopicCommand::Delete { topics } => delete(cluster, topics),
        TopicCommand::AlterConfig {
            topic,
            set,
            delete,
            dry_run,
        } => alter_config(cluster, topic, set, delete, *dry_run),
    }
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// A TOPIC/STATUS table and its JSON for per-topic results; the error to exit with when any
/// failed (`what` names the operation: "created").
fn status_output(results: Vec<(String, Result<(), String>)>, what: &str) -> Outcome {
    let mut table = Table::new(["TOPIC", "STATUS"]);
    let mut json_rows = Vec::new();
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    let total = results.len();
    for (topic, result) in results {
        let status = match &result {
            Ok(()) => "OK".to_string(),
            Err(error) => error.clone(),
        };
        table.push([topic.clone(), status]);
        json_rows.push(json!({"topic": topic, "error": result.err()}));
    }
    let failure = (failed > 0)
        .then(|| AdminError::Partial(format!("{failed} of {total} topic(s) not {what}")));
    Ok((
        Output {
            text: table.render(),
            json: serde_json::Value::Array(json_rows),
        },
        failure,
    ))
}

fn create(
    cluster: &mut Cluster,
    topics: &[String],
    partitions: i32,
    replication_factor: i16,
    configs: &[(String, String)],
    if_not_exists: bool,
    dry_run: bool,
) -> Outcome {
    let connection = cluster.bootstrap();
    let response = connection.send(CREATE_TOPICS_VERSIONS, |_| {
        CreateTopicsRequest::default()
            .with_timeout_ms(OPERATION_TIMEOUT_MS)
            .with_validate_only(dry_run)
            .with_topics(
                topics
                    .iter()
                    .map(|name| {
                        CreatableTopic::default()
                            .with_name(topic_name(name))
                            .with_num_partitions(partitions)
                            .with_replication_factor(replication_factor)
                            .with_configs(
                                configs
                                    .iter()
                                    .map(|(k, v)| {
                                        CreatableTopicConfig::default()
                                            .with_name(StrBytes::from_string(k.clone()))
                                            .with_value(Some(StrBytes::from_string(v.clone())))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            )
    })?;
    let mut results = Vec::new();
    for result in &response.topics {
        connection.check_supported(ApiKey::CreateTopics, result.error_code)?;
        // TOPIC_ALREADY_EXISTS (36) is success with --if-not-exists, as in kafka-topics.sh.
        let code = if if_not_exists && result.error_code == 36 {
            0
        } else {
            result.error_code
        };
        let outcome = item_outcome(code, result.error_message.as_deref());
        results.push((result.name.0.to_string(), outcome));
    }
    status_output(results, "created")
}

fn list(cluster: &mut Cluster, internal: bool) -> Outcome {
    let metadata = cluster.metadata(None)?;
    let mut rows: Vec<(String, usize, usize, bool)> = metadata
        .topics
        .iter()
        .filter(|t| t.error_code == 0 && (internal || !t.is_internal))
        .map(|t| {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            let replicas = t.partitions.first().map_or(0, |p| p.replica_nodes.len());
            (name, t.partitions.len(), replicas, t.is_internal)
        })
        .collect();
    rows.sort();
    let mut table = Table::new(["NAME", "PARTITIONS", "REPLICAS"]);
    let mut json_rows = Vec::new();
    for (name, partitions, replicas, is_internal) in rows {
        table.push([name.clone(), partitions.to_string(), replicas.to_string()]);
        json_rows.push(json!({
            "name": name, "partitions": partitions, "replicas": replicas, "internal": is_internal,
        }));
    }
    Ok((
        Output {
            text: table.render(),
            json: serde_json::Value::Array(json_rows),
        },
        None,
    ))
}

/// Kafka's names of DescribeConfigs `config_source` values (ConfigSource in
/// DescribeConfigsResponse.json).
pub fn config_source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

fn describe(cluster: &mut Cluster, topics: &[String]) -> Outcome {
    let metadata = cluster.metadata(Some(topics))?;
    let mut text = String::new();
    let mut json_topics = Vec::new();
    for topic in &metadata.topics {
        let name = topic_name_of(topic.name.as_ref());
        cluster
            .bootstrap()
            .check(ApiKey::Metadata, topic.error_code, None, || {
                format!("topic {name}")
            })?;
        let mut partitions: Vec<_> = topic.partitions.iter().collect();
        partitions.sort_by_key(|p| p.partition_index);
        let replicas = partitions.first().map_or(0, |p| p.replica_nodes.len());
        let topic_id = (!topic.topic_id.is_nil()).then(|| topic.topic_id.to_string());

        // Configs: a broker without DescribeConfigs still gets its partitions described.
        let connection = cluster.bootstrap();
        let configs = match connection.send(DESCRIBE_CONFIGS_VERSIONS, |_| {
            DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(TOPIC_RESOURCE)
                    .with_resource_name(StrBytes::from_string(name.clone()))
                    .with_configuration_keys(None),
            ])
        }) {
            Ok(response) => {
                let mut rows = Vec::new();
                for result in &response.results {
                    connection.check(
                        ApiKey::DescribeConfigs,
                        result.error_code,
                        result.error_message.as_deref(),
                        || format!("configs of topic {name}"),
                    )?;
                    for entry in &result.configs {
                        let value = if entry.is_sensitive {
                            None
                        } else {
                            entry.value.as_ref().map(|v| v.to_string())
                        };
                        rows.push((
                            entry.name.to_string(),
                            value,
                            config_source_name(entry.config_source),
                        ));
                    }
                }
                rows.sort();
                Some(rows)
            }
            Err(error @ AdminError::Unsupported { .. }) => {
                eprintln!("ringtail: no configs shown: {error}");
                None
            }
            Err(error) => return Err(error),
        };

        let keys: Vec<(String, i32)> = partitions
            .iter()
            .map(|p| (name.clone(), p.partition_index))
            .collect();
        let starts = cluster.list_offsets(&keys, EARLIEST_TIMESTAMP)?;
        let ends = cluster.list_offsets(&keys, LATEST_TIMESTAMP)?;

        let mut summary = Table::headless();
        summary.push(["NAME".to_string(), name.clone()]);
        summary.push(["TOPIC-ID".to_string(), or_dash(topic_id.clone())]);
        summary.push(["INTERNAL".to_string(), topic.is_internal.to_string()]);
        summary.push(["PARTITIONS".to_string(), partitions.len().to_string()]);
        summary.push(["REPLICAS".to_string(), replicas.to_string()]);
        text.push_str(&section("SUMMARY"));
        text.push_str(&summary.render());
        let mut json_configs = Vec::new();
        if let Some(rows) = &configs {
            let mut table = Table::new(["KEY", "VALUE", "SOURCE"]);
            for (key, value, source) in rows {
                table.push([
                    key.clone(),
                    value.clone().unwrap_or_default(),
                    source.to_string(),
                ]);
                json_configs.push(json!({"name": key, "value": value, "source": source}));
            }
            text.push('\n');
            text.push_str(&section("CONFIGS"));
            text.push_str(&table.render());
        }
        let mut table = Table::new([
            "PARTITION",
            "LEADER",
            "EPOCH",
            "REPLICAS",
            "ISR",
            "LOG-START-OFFSET",
            "HIGH-WATERMARK",
        ]);
        let mut json_partitions = Vec::new();
        for p in &partitions {
            let key = (name.clone(), p.partition_index);
            let start = starts.get(&key).copied().flatten();
            let end = ends.get(&key).copied().flatten();
            let replicas: Vec<i32> = p.replica_nodes.iter().map(|b| b.0).collect();
            let isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
            table.push([
                p.partition_index.to_string(),
                p.leader_id.0.to_string(),
                p.leader_epoch.to_string(),
                joined(&replicas),
                joined(&isr),
                or_dash(start),
                or_dash(end),
            ]);
            json_partitions.push(json!({
                "partition": p.partition_index, "leader": p.leader_id.0,
                "leader_epoch": p.leader_epoch, "replicas": replicas, "isr": isr,
                "log_start_offset": start, "high_watermark": end,
            }));
        }
        text.push('\n');
        text.push_str(&section("PARTITIONS"));
        text.push_str(&table.render());
        json_topics.push(json!({
            "name": name, "topic_id": topic_id, "internal": topic.is_internal,
            "partitions": json_partitions, "replicas": replicas,
            "configs": configs.as_ref().map(|_| json_configs),
        }));
        text.push('\n');
    }
    if text.ends_with("\n\n") {
        text.pop();
    }
    Ok((
        Output {
            text,
            json: serde_json::Value::Array(json_topics),
        },
        None,
    ))
}

fn delete(cluster: &mut Cluster, topics: &[String]) -> Outcome {
    let connection = cluster.bootstrap();
    let response = connection.send(DELETE_TOPICS_VERSIONS, |version| {
        let request = DeleteTopicsRequest::default().with_timeout_ms(OPERATION_TIMEOUT_MS);
        if version >= 6 {
            request.with_topics(
                topics
                    .iter()
                    .map(|t| DeleteTopicState::default().with_name(Some(topic_name(t))))
                    .collect(),
            )
        } else {
            request.with_topic_names(topics.iter().map(|t| topic_name(t)).collect())
        }
    })?;
    let mut results = Vec::new();
    for result in &response.responses {
        connection.check_supported(ApiKey::DeleteTopics, result.error_code)?;
        let name = topic_name_of(result.name.as_ref());
        let outcome = item_outcome(result.error_code, result.error_message.as_deref());
        results.push((name, outcome));
    }
    status_output(results, "deleted")
}

fn alter_config(
    cluster: &mut Cluster,
    topic: &str,
    set: &[(String, String)],
    delete: &[String],
    dry_run: bool,
) -> Outcome {
    if set.is_empty() && delete.is_empty() {
        return Err(AdminError::Invalid(
            "nothing to alter: give --set key=value and/or --delete key".to_string(),
        ));
    }
    // AlterConfigOp.OpType: SET = 0, DELETE = 1.
    let mut configs: Vec<AlterableConfig> = set
        .iter()
        .map(|(k, v)| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(k.clone()))
                .with_config_operation(0)
                .with_value(Some(StrBytes::from_string(v.clone())))
        })
        .collect();
    configs.extend(delete.iter().map(|k| {
        AlterableConfig::default()
            .with_name(StrBytes::from_string(k.clone()))
            .with_config_operation(1)
            .with_value(None)
    }));
    let connection = cluster.bootstrap();
    let response = connection.send(INCREMENTAL_ALTER_CONFIGS_VERSIONS, |_| {
        IncrementalAlterConfigsRequest::default()
            .with_validate_only(dry_run)
            .with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(StrBytes::from_string(topic.to_string()))
                .with_configs(configs)])
    })?;
    let mut results = Vec::new();
    for result in &response.responses {
        connection.check_supported(ApiKey::IncrementalAlterConfigs, result.error_code)?;
        let outcome = item_outcome(result.error_code, result.error_message.as_deref());
        results.push((result.resource_name.to_string(), outcome));
    }
    status_output(results, "altered")
}
