//! DescribeConfigs (32), AlterConfigs (33) and IncrementalAlterConfigs (44) for TOPIC and
//! BROKER resources.
//!
//! Alterations run on shard 0, which owns the [`crate::metadata::TopicStore`] (Kafka's
//! controller): it computes each resource's new configs from the stored ones, validates them as
//! Kafka's `ControllerConfigurationValidator` / `ConfigAdminManager` do, persists them in
//! `ringtail-metadata.json` and publishes the new image to every shard, whose replica manager
//! applies them to the open partitions before the answer goes out. Kafka's answers were checked
//! against a Kafka 4.1 node: the error codes and messages below are Kafka's.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::authorize;
use crate::config::{self, BrokerConfig, ConfigEntry, TopicConfig};
use crate::metadata::MetadataImage;
use crate::security::authorizer::{AclOperation, ResourceType};
use crate::security::Session;
use crate::shard::{self, ShardContext};

/// Kafka's `ConfigResource.Type` ids.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// IncrementalAlterConfigs operations (`AlterConfigOp.OpType`).
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// One resource of an AlterConfigs / IncrementalAlterConfigs request.
struct AlterResource {
    resource_type: i8,
    name: String,
    /// `(config name, operation, value)`; AlterConfigs sends only SET.
    ops: Vec<(String, i8, Option<String>)>,
}

/// An alteration refused: Kafka's error code and message.
type Refusal = (ResponseError, String);

/// The ACL check of a config resource (KafkaApis `configsAuthorizationApiError`): `op`
/// (DESCRIBE_CONFIGS / ALTER_CONFIGS) on the TOPIC, on the CLUSTER for broker and broker-logger
/// resources, on the GROUP for group resources; the error if refused.
fn config_denied(
    ctx: &ShardContext,
    session: &Session,
    resource_type: i8,
    name: &str,
    op: AclOperation,
) -> Option<ResponseError> {
    let (acl_type, acl_name, error) = match resource_type {
        RESOURCE_TOPIC => (
            ResourceType::Topic,
            name,
            ResponseError::TopicAuthorizationFailed,
        ),
        // GROUP config resources (type 32).
        32 => (
            ResourceType::Group,
            name,
            ResponseError::GroupAuthorizationFailed,
        ),
        // BROKER (4), BROKER_LOGGER (8), and anything else Kafka checks on the cluster.
        _ => (
            ResourceType::Cluster,
            authorize::CLUSTER_NAME,
            ResponseError::ClusterAuthorizationFailed,
        ),
    };
    (!authorize::authorize(ctx, session, op, acl_type, acl_name)).then_some(error)
}

/// DescribeConfigs v1-4. ACLs: DESCRIBE_CONFIGS per resource ([`config_denied`]).
pub async fn describe_configs(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    request: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let broker = ctx.replica_manager.broker_config();
    let image = ctx.metadata();
    let mut response = DescribeConfigsResponse::default();
    for resource in request.resources {
        let name = resource.resource_name.to_string();
        let denied = config_denied(
            &ctx,
            &session,
            resource.resource_type,
            &name,
            AclOperation::DescribeConfigs,
        );
        let entries = match denied {
            Some(error) => Err((error, String::new())),
            None => describe_resource(&broker, &image, resource.resource_type, &name),
        };
        let mut result = DescribeConfigsResult::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        match entries {
            Ok(entries) => {
                let keys = resource.configuration_keys.as_ref();
                result.configs = entries
                    .into_iter()
                    .filter(|e| keys.is_none_or(|keys| keys.iter().any(|k| k.as_str() == e.name)))
                    .map(|e| {
                        encode_entry(
                            e,
                            request.include_synonyms,
                            version >= 3 && request.include_documentation,
                        )
                    })
                    .collect();
            }
            Err((error, message)) => {
                result.error_code = error.code();
                result.error_message = (!message.is_empty() || denied.is_none())
                    .then(|| StrBytes::from_string(message));
            }
        }
        response.results.push(result);
    }
    response
}

/// IncrementalAlterConfigs v0-1 (KIP-339). ACLs: ALTER_CONFIGS per resource.
pub async fn incremental_alter_configs(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    request: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
    let resources: Vec<AlterResource> = request
        .resources
        .iter()
        .map(|r| AlterResource {
            resource_type: r.resource_type,
            name: r.resource_name.to_string(),
            ops: r
                .configs
                .iter()
                .map(|c| {
                    let value = c.value.as_ref().map(|v| v.to_string());
                    (c.name.to_string(), c.config_operation, value)
                })
                .collect(),
        })
        .collect();
    let outcomes = alter_authorized(&ctx, &session, resources, request.validate_only, true).await;
    let responses = request
        .resources
        .iter()
        .zip(outcomes)
        .map(|(r, outcome)| {
            let (code, message) = outcome_fields(outcome);
            AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// AlterConfigs v0-2: the resource's dynamic configs become exactly the ones given. ACLs:
/// ALTER_CONFIGS per resource.
pub async fn alter_configs(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    request: AlterConfigsRequest,
    _version: i16,
) -> AlterConfigsResponse {
    use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
    let resources: Vec<AlterResource> = request
        .resources
        .iter()
        .map(|r| AlterResource {
            resource_type: r.resource_type,
            name: r.resource_name.to_string(),
            ops: r
                .configs
                .iter()
                .map(|c| {
                    let value = c.value.as_ref().map(|v| v.to_string());
                    (c.name.to_string(), OP_SET, value)
                })
                .collect(),
        })
        .collect();
    let outcomes = alter_authorized(&ctx, &session, resources, request.validate_only, false).await;
    let responses = request
        .resources
        .iter()
        .zip(outcomes)
        .map(|(r, outcome)| {
            let (code, message) = outcome_fields(outcome);
            AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

/// [`alter_on_shard_0`] for the resources the session may ALTER_CONFIGS; the others answer
/// their authorization error (no message, as Kafka's `ApiError(error, null)`).
async fn alter_authorized(
    ctx: &ShardContext,
    session: &Session,
    resources: Vec<AlterResource>,
    validate_only: bool,
    incremental: bool,
) -> Vec<Result<(), Refusal>> {
    let denied: Vec<Option<ResponseError>> = resources
        .iter()
        .map(|r| {
            config_denied(
                ctx,
                session,
                r.resource_type,
                &r.name,
                AclOperation::AlterConfigs,
            )
        })
        .collect();
    let allowed: Vec<AlterResource> = resources
        .into_iter()
        .zip(&denied)
        .filter(|(_, d)| d.is_none())
        .map(|(r, _)| r)
        .collect();
    let mut outcomes = alter_on_shard_0(allowed, validate_only, incremental)
        .await
        .into_iter();
    denied
        .into_iter()
        .map(|d| match d {
            Some(error) => Err((error, String::new())),
            None => outcomes
                .next()
                .unwrap_or_else(|| Err((ResponseError::UnknownServerError, String::new()))),
        })
        .collect()
}

fn outcome_fields(outcome: Result<(), Refusal>) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err((error, message)) if message.is_empty() => (error.code(), None),
        Err((error, message)) => (error.code(), Some(StrBytes::from_string(message))),
    }
}

/// What one resource's configs become.
enum Change {
    Topic(String, BTreeMap<String, String>),
    Broker(String, BTreeMap<String, String>),
}

/// Runs the alteration on shard 0 against the stored configs; one outcome per resource, in
/// request order. `incremental`: IncrementalAlterConfigs (ops on the stored configs), else
/// AlterConfigs (the given configs replace the stored ones).
async fn alter_on_shard_0(
    resources: Vec<AlterResource>,
    validate_only: bool,
    incremental: bool,
) -> Vec<Result<(), Refusal>> {
    shard::invoke_on(0, move |ctx| {
        Box::pin(async move {
            let store = ctx
                .topic_store
                .as_ref()
                .expect("shard 0 owns the topic store");
            let mut keys = BTreeMap::<(i8, &str), usize>::new();
            for r in &resources {
                *keys.entry((r.resource_type, r.name.as_str())).or_default() += 1;
            }
            let mut outcomes = Vec::with_capacity(resources.len());
            let mut changed = false;
            for resource in &resources {
                if keys[&(resource.resource_type, resource.name.as_str())] > 1 {
                    outcomes.push(Err(invalid_request(
                        "Each resource must appear at most once.",
                    )));
                    continue;
                }
                let image = store.borrow().image();
                let change = plan(&ctx.config, &image, resource, incremental);
                let outcome = match change {
                    Err(refusal) => Err(refusal),
                    Ok(_) if validate_only => Ok(()),
                    Ok(change) => {
                        let stored = match &change {
                            Change::Topic(name, configs) => {
                                store.borrow_mut().set_topic_configs(name, configs.clone())
                            }
                            Change::Broker(name, configs) => {
                                store.borrow_mut().set_broker_configs(name, configs.clone())
                            }
                        };
                        match stored {
                            Ok(()) => {
                                changed = true;
                                log_change(&change);
                                Ok(())
                            }
                            Err(e) => Err((ResponseError::KafkaStorageError, e.to_string())),
                        }
                    }
                };
                outcomes.push(outcome);
            }
            if changed {
                let image = store.borrow().image();
                if let Err(e) = shard::publish_metadata(image).await {
                    tracing::warn!("altered configs not applied on every shard: {e}");
                    for outcome in outcomes.iter_mut().filter(|o| o.is_ok()) {
                        *outcome = Err((ResponseError::KafkaStorageError, e.to_string()));
                    }
                }
            }
            outcomes
        })
    })
    .await
}

fn log_change(change: &Change) {
    match change {
        Change::Topic(name, configs) => {
            tracing::info!(topic = %name, ?configs, "altered topic configs")
        }
        Change::Broker(name, configs) => {
            tracing::info!(resource = %name, ?configs, "altered dynamic broker configs")
        }
    }
}

/// Checks one resource and computes its new configs (Kafka: `ConfigAdminManager.preprocess`,
/// `ConfigurationControlManager.incrementalAlterConfigResource`, then the validators).
fn plan(
    static_config: &BrokerConfig,
    image: &MetadataImage,
    resource: &AlterResource,
    incremental: bool,
) -> Result<Change, Refusal> {
    let mut names = BTreeSet::new();
    for (name, op, value) in &resource.ops {
        if !names.insert(name.as_str()) {
            return Err(invalid_request("Error due to duplicate config keys"));
        }
        if !(OP_SET..=OP_SUBTRACT).contains(op) {
            return Err(invalid_request(&format!("Unknown operations type {op}")));
        }
        if *op != OP_DELETE && value.is_none() {
            return Err(invalid_request(&format!(
                "Null value not supported for : {name}"
            )));
        }
    }
    match resource.resource_type {
        RESOURCE_TOPIC => plan_topic(static_config, image, resource, incremental),
        RESOURCE_BROKER => plan_broker(static_config, image, resource, incremental),
        other => Err(invalid_request(&format!("Unknown resource type {other}"))),
    }
}

fn plan_topic(
    static_config: &BrokerConfig,
    image: &MetadataImage,
    resource: &AlterResource,
    incremental: bool,
) -> Result<Change, Refusal> {
    let name = &resource.name;
    if let Err(e) = crate::metadata::validate_topic_name(name) {
        return Err((
            ResponseError::InvalidTopicException,
            format!("Topic name is invalid: {e}"),
        ));
    }
    let Some(topic) = image.topic(name) else {
        return Err((
            ResponseError::UnknownTopicOrPartition,
            format!("The topic '{name}' does not exist."),
        ));
    };
    let broker = effective_broker_config(static_config, image)?;
    let defaults = broker.default_topic_config();
    let current = crate::replica_manager::topic_config(&defaults, topic);
    let base = if incremental {
        topic.configs.clone()
    } else {
        BTreeMap::new()
    };
    let configs = apply_ops(base, &resource.ops, |n| current_value(&current, n))
        .map_err(|message| (ResponseError::InvalidConfig, message))?;
    for config_name in configs.keys() {
        if !config::topic_config_names().any(|n| n == config_name) {
            return Err((
                ResponseError::InvalidConfig,
                format!("Unknown topic config name: {config_name}"),
            ));
        }
    }
    defaults
        .with_override_map(&configs)
        .map_err(|e| (ResponseError::InvalidConfig, e.kafka_message()))?;
    Ok(Change::Topic(name.clone(), configs))
}

fn plan_broker(
    static_config: &BrokerConfig,
    image: &MetadataImage,
    resource: &AlterResource,
    incremental: bool,
) -> Result<Change, Refusal> {
    let name = resource.name.as_str();
    let node = static_config.node_id;
    if !name.is_empty() {
        match name.parse::<i32>() {
            Err(_) => {
                return Err(invalid_request(&format!(
                    "Node id must be an integer, but it is: {name}"
                )))
            }
            Ok(id) if id != node => {
                return Err(invalid_request(&format!(
                    "Unexpected broker id, expected {node}, but received {name}"
                )))
            }
            Ok(_) => {}
        }
    }
    let not_dynamic: Vec<&str> = resource
        .ops
        .iter()
        .map(|(n, _, _)| n.as_str())
        .filter(|n| !config::is_dynamic_broker_config(n))
        .collect();
    if !not_dynamic.is_empty() {
        // Kafka accepts names it does not know on brokers; Ringtail refuses them too, since a
        // stored setting without effect would mislead.
        return Err(invalid_request(&format!(
            "Cannot update these configs dynamically: Set({})",
            not_dynamic.join(", ")
        )));
    }
    let broker = effective_broker_config(static_config, image)?;
    let base = if incremental {
        image.broker_configs(name).clone()
    } else {
        BTreeMap::new()
    };
    let configs = apply_ops(base, &resource.ops, |n| {
        broker
            .describe()
            .into_iter()
            .find(|e| e.name == n)
            .and_then(|e| e.value)
    })
    .map_err(|message| (ResponseError::InvalidConfig, message))?;
    let node_name = node.to_string();
    let (cluster_default, per_broker) = if name.is_empty() {
        (&configs, image.broker_configs(&node_name))
    } else {
        (image.broker_configs(""), &configs)
    };
    static_config
        .with_dynamic(cluster_default, per_broker)
        .map_err(|e| invalid_request(&e.kafka_message()))?;
    Ok(Change::Broker(name.to_string(), configs))
}

/// The static config with `image`'s dynamic broker configs, as every shard computes it.
fn effective_broker_config(
    static_config: &BrokerConfig,
    image: &MetadataImage,
) -> Result<BrokerConfig, Refusal> {
    let node = static_config.node_id.to_string();
    static_config
        .with_dynamic(image.broker_configs(""), image.broker_configs(&node))
        .map_err(|e| invalid_request(&e.kafka_message()))
}

/// The current value of a topic config, for APPEND / SUBTRACT on one not overridden.
fn current_value(current: &TopicConfig, name: &str) -> Option<String> {
    let defaults = current.clone();
    current
        .describe(&defaults)
        .into_iter()
        .find(|e| e.name == name)
        .and_then(|e| e.value)
}

/// Applies SET / DELETE / APPEND / SUBTRACT to `configs` (Kafka's
/// `ConfigurationControlManager`: APPEND adds the values not yet in the list, SUBTRACT removes
/// them; both start from the stored value, else the current one, and only on LIST configs).
fn apply_ops(
    mut configs: BTreeMap<String, String>,
    ops: &[(String, i8, Option<String>)],
    current: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, String> {
    for (name, op, value) in ops {
        let value = value.clone().unwrap_or_default();
        match *op {
            OP_SET => {
                configs.insert(name.clone(), value.trim().to_string());
            }
            OP_DELETE => {
                configs.remove(name);
            }
            _ => {
                let op_name = if *op == OP_APPEND {
                    "APPEND"
                } else {
                    "SUBTRACT"
                };
                if !config::LIST_CONFIGS.contains(&name.as_str()) {
                    return Err(format!(
                        "Can't {op_name} to key {name} because its type is not LIST."
                    ));
                }
                let old = configs.get(name).cloned().or_else(|| current(name));
                let mut list: Vec<String> = split_list(old.as_deref().unwrap_or(""));
                for item in split_list(&value) {
                    if *op == OP_APPEND {
                        if !list.contains(&item) {
                            list.push(item);
                        }
                    } else {
                        list.retain(|v| *v != item);
                    }
                }
                configs.insert(name.clone(), list.join(","));
            }
        }
    }
    Ok(configs)
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn invalid_request(message: &str) -> Refusal {
    (ResponseError::InvalidRequest, message.to_string())
}

/// The entries of one DescribeConfigs resource (Kafka: `ConfigHelper.describeConfigs`).
fn describe_resource(
    broker: &BrokerConfig,
    image: &MetadataImage,
    resource_type: i8,
    name: &str,
) -> Result<Vec<ConfigEntry>, Refusal> {
    match resource_type {
        RESOURCE_TOPIC => {
            let topic = image.topic(name).ok_or_else(|| {
                (
                    ResponseError::UnknownTopicOrPartition,
                    format!("The topic '{name}' does not exist."),
                )
            })?;
            let defaults = broker.default_topic_config();
            let current = crate::replica_manager::topic_config(&defaults, topic);
            Ok(broker.describe_topic(&current, &topic.configs))
        }
        RESOURCE_BROKER if name.is_empty() => Ok(broker.describe_cluster_defaults()),
        RESOURCE_BROKER => match name.parse::<i32>() {
            Ok(id) if id == broker.node_id => Ok(broker.describe()),
            Ok(_) => Err(invalid_request(&format!(
                "Unexpected broker id, expected {} or empty string, but received {name}",
                broker.node_id
            ))),
            Err(_) => Err(invalid_request(&format!(
                "Broker id must be an integer, but it is: {name}"
            ))),
        },
        other => Err(invalid_request(&format!(
            "Unsupported resource type {other} in DescribeConfigs"
        ))),
    }
}

fn encode_entry(
    entry: ConfigEntry,
    include_synonyms: bool,
    include_documentation: bool,
) -> DescribeConfigsResourceResult {
    let synonyms = if include_synonyms {
        entry
            .synonyms
            .iter()
            .map(|s| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_string(s.name.clone()))
                    .with_value(s.value.clone().map(StrBytes::from_string))
                    .with_source(s.source as i8)
            })
            .collect()
    } else {
        Vec::new()
    };
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(entry.name))
        .with_value(entry.value.map(StrBytes::from_string))
        .with_read_only(entry.read_only)
        .with_is_sensitive(entry.sensitive)
        .with_config_source(entry.source as i8)
        .with_synonyms(synonyms)
        .with_config_type(entry.config_type as i8)
        .with_documentation(
            entry
                .documentation
                .filter(|_| include_documentation)
                .map(StrBytes::from_static_str),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(list: &[(&str, i8, Option<&str>)]) -> Vec<(String, i8, Option<String>)> {
        list.iter()
            .map(|(n, op, v)| (n.to_string(), *op, v.map(str::to_string)))
            .collect()
    }

    fn check(
        base: &[(&str, &str)],
        list: &[(&str, i8, Option<&str>)],
        expected: Result<&[(&str, &str)], &str>,
    ) {
        let base = base
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let got = apply_ops(base, &ops(list), |_| Some("delete".to_string()));
        let expected = expected.map(|pairs| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        });
        assert_eq!(got, expected.map_err(str::to_string), "{list:?}");
    }

    #[test]
    fn incremental_operations() {
        check(
            &[],
            &[("retention.ms", OP_SET, Some(" 5 "))],
            Ok(&[("retention.ms", "5")]),
        );
        check(
            &[("retention.ms", "5")],
            &[("retention.ms", OP_DELETE, None)],
            Ok(&[]),
        );
        check(&[], &[("segment.ms", OP_DELETE, None)], Ok(&[]));
        check(
            &[],
            &[("cleanup.policy", OP_APPEND, Some("compact"))],
            Ok(&[("cleanup.policy", "delete,compact")]),
        );
        check(
            &[("cleanup.policy", "compact")],
            &[("cleanup.policy", OP_APPEND, Some("compact,delete"))],
            Ok(&[("cleanup.policy", "compact,delete")]),
        );
        check(
            &[("cleanup.policy", "compact,delete")],
            &[("cleanup.policy", OP_SUBTRACT, Some("delete"))],
            Ok(&[("cleanup.policy", "compact")]),
        );
        check(
            &[],
            &[("retention.ms", OP_APPEND, Some("5"))],
            Err("Can't APPEND to key retention.ms because its type is not LIST."),
        );
        check(
            &[],
            &[("segment.bytes", OP_SUBTRACT, Some("5"))],
            Err("Can't SUBTRACT to key segment.bytes because its type is not LIST."),
        );
    }
}
