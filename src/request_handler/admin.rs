//! CreateTopics (19), DeleteTopics (20), DescribeCluster (60) and InitProducerId (22)
//! (DescribeConfigs is in `configs`). Topic changes run on shard 0, the metadata owner, which then publishes
//! the new image to every shard before answering.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::metadata::{MetadataError, TopicMetadata};
use crate::shard::{self, ShardContext};

/// Why a topic could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateTopicError {
    #[error("topic already exists")]
    Exists,
    #[error("{0}")]
    InvalidName(String),
    #[error("invalid number of partitions {0}")]
    InvalidPartitions(i32),
    /// Kafka's messages (`StripedReplicaPlacer`, `ReplicationControlManager.createTopic`).
    #[error("{}", replication_factor_message(*.0))]
    InvalidReplicationFactor(i16),
    /// A manual replica assignment Kafka refuses (`create_partitions::check_replica_assignment`).
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// A request Kafka refuses as a whole (assignments with a partition count, ...).
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidConfig(String),
    /// The topic store could not record the topic.
    #[error(transparent)]
    Store(MetadataError),
    /// A shard could not open the topic's partitions.
    #[error(transparent)]
    Publish(#[from] shard::PublishError),
}

impl CreateTopicError {
    pub fn code(&self) -> ResponseError {
        match self {
            CreateTopicError::Exists => ResponseError::TopicAlreadyExists,
            CreateTopicError::InvalidName(_) => ResponseError::InvalidTopicException,
            CreateTopicError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            CreateTopicError::InvalidReplicationFactor(_) => {
                ResponseError::InvalidReplicationFactor
            }
            CreateTopicError::InvalidConfig(_) => ResponseError::InvalidConfig,
            CreateTopicError::InvalidReplicaAssignment(_) => {
                ResponseError::InvalidReplicaAssignment
            }
            CreateTopicError::InvalidRequest(_) => ResponseError::InvalidRequest,
            CreateTopicError::Store(_) | CreateTopicError::Publish(_) => {
                ResponseError::KafkaStorageError
            }
        }
    }
}

/// Creates a topic on shard 0 and waits until every shard has opened its partitions.
pub async fn create_topic(
    ctx: &ShardContext,
    name: &str,
    partitions: i32,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<Arc<TopicMetadata>, CreateTopicError> {
    let defaults = ctx.replica_manager.broker_config().default_topic_config();
    defaults
        .with_override_map(&configs)
        .map_err(|e| CreateTopicError::InvalidConfig(e.to_string()))?;
    crate::metadata::validate_topic_name(name)
        .map_err(|e| CreateTopicError::InvalidName(e.to_string()))?;
    if name == crate::metadata::CONSUMER_OFFSETS_TOPIC {
        // Its partitions are the group coordinators' logs, not replica-manager partitions.
        return Err(CreateTopicError::InvalidName(format!(
            "{name} is kept by the group coordinator"
        )));
    }
    if name == crate::transaction_coordinator::TRANSACTION_STATE_TOPIC_NAME {
        // Its partitions are the transaction coordinators' logs.
        return Err(CreateTopicError::InvalidName(format!(
            "{name} is kept by the transaction coordinator"
        )));
    }
    if validate_only {
        return match ctx.metadata().topic(name) {
            Some(_) => Err(CreateTopicError::Exists),
            None => Ok(Arc::new(TopicMetadata {
                name: name.to_string(),
                topic_id: uuid::Uuid::nil(),
                partitions: Vec::new(),
                configs,
                internal: false,
            })),
        };
    }
    let name = name.to_string();
    shard::invoke_on(0, move |ctx| {
        Box::pin(async move {
            let store = ctx
                .topic_store
                .as_ref()
                .expect("shard 0 owns the topic store");
            let created = store
                .borrow_mut()
                .create_topic(&name, partitions, configs, false);
            let topic = created.map_err(|e| match e {
                MetadataError::TopicExists(_) => CreateTopicError::Exists,
                MetadataError::InvalidTopicName { .. } => {
                    CreateTopicError::InvalidName(e.to_string())
                }
                MetadataError::InvalidPartitions(n) => CreateTopicError::InvalidPartitions(n),
                other => CreateTopicError::Store(other),
            })?;
            let image = store.borrow().image();
            shard::publish_metadata(image).await?;
            Ok(topic)
        })
    })
    .await
}

pub async fn create_topics(
    ctx: Rc<ShardContext>,
    request: CreateTopicsRequest,
    _version: i16,
) -> CreateTopicsResponse {
    let mut response = CreateTopicsResponse::default();
    for topic in request.topics {
        let name = topic.name.to_string();
        let partitions = if !topic.assignments.is_empty() {
            topic.assignments.len() as i32
        } else if topic.num_partitions == -1 {
            ctx.config.num_partitions
        } else {
            topic.num_partitions
        };
        let configs: BTreeMap<String, String> = topic
            .configs
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect();
        let result = if !matches!(topic.replication_factor, -1 | 1) {
            Err(CreateTopicError::InvalidReplicationFactor(
                topic.replication_factor,
            ))
        } else if let Err(e) = check_assignments(&topic, ctx.config.node_id) {
            Err(e)
        } else {
            create_topic(&ctx, &name, partitions, configs, request.validate_only).await
        };
        let mut entry = CreatableTopicResult::default().with_name(topic.name.clone());
        match result {
            Ok(created) => {
                tracing::info!(topic = %name, partitions, validate_only = request.validate_only, "created topic");
                entry = entry
                    .with_topic_id(created.topic_id)
                    .with_num_partitions(partitions)
                    .with_replication_factor(1);
            }
            Err(e) => {
                tracing::info!(topic = %name, "create topic refused: {e}");
                entry = entry
                    .with_error_code(e.code().code())
                    .with_error_message(Some(StrBytes::from_string(e.to_string())))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1);
            }
        }
        response.topics.push(entry);
    }
    response
}

/// Kafka's message for a replication factor this one-broker cluster cannot hold.
fn replication_factor_message(replication_factor: i16) -> String {
    if replication_factor < 1 {
        return "Replication factor must be larger than 0, or -1 to use the default value."
            .to_string();
    }
    format!(
        "Unable to replicate the partition {replication_factor} time(s): The target replication \
         factor of {replication_factor} cannot be reached because only 1 broker(s) are registered."
    )
}

/// Manual replica assignments of CreateTopics, checked as Kafka's
/// `ReplicationControlManager.createTopic` does: only with num_partitions and
/// replication_factor -1, partition ids 0..n, each replica list naming only this broker.
fn check_assignments(
    topic: &create_topics_request::CreatableTopic,
    node_id: i32,
) -> Result<(), CreateTopicError> {
    if topic.assignments.is_empty() {
        return Ok(());
    }
    if topic.num_partitions != -1 {
        return Err(CreateTopicError::InvalidRequest(
            "A manual partition assignment was specified, but numPartitions was not set to -1."
                .to_string(),
        ));
    }
    if topic.replication_factor != -1 {
        return Err(CreateTopicError::InvalidRequest(
            "A manual partition assignment was specified, but replicationFactor was not set to -1."
                .to_string(),
        ));
    }
    let mut indexes: Vec<i32> = topic
        .assignments
        .iter()
        .map(|a| a.partition_index)
        .collect();
    indexes.sort_unstable();
    if indexes.iter().enumerate().any(|(i, &p)| p != i as i32) {
        return Err(CreateTopicError::InvalidReplicaAssignment(
            "partitions should be a consecutive 0-based integer sequence".to_string(),
        ));
    }
    for assignment in &topic.assignments {
        super::create_partitions::check_replica_assignment(&assignment.broker_ids, node_id, None)
            .map_err(|(_, message)| CreateTopicError::InvalidReplicaAssignment(message))?;
    }
    Ok(())
}

pub async fn delete_topics(
    ctx: Rc<ShardContext>,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let wanted: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        request
            .topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.to_string()), t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| (Some(n.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut response = DeleteTopicsResponse::default();
    for (name, topic_id) in wanted {
        let image = ctx.metadata();
        let found = match &name {
            Some(name) => image.topic(name).cloned(),
            None => image.topic_by_id(&topic_id).cloned(),
        };
        let unknown = if name.is_some() {
            ResponseError::UnknownTopicOrPartition
        } else {
            ResponseError::UnknownTopicId
        };
        let result = match found {
            None => Err(unknown),
            Some(_) if !ctx.config.delete_topic_enable => Err(ResponseError::TopicDeletionDisabled),
            Some(topic) => {
                let topic_name = topic.name.clone();
                shard::invoke_on(0, move |ctx| {
                    Box::pin(async move {
                        let store = ctx
                            .topic_store
                            .as_ref()
                            .expect("shard 0 owns the topic store");
                        let deleted = store.borrow_mut().delete_topic(&topic_name);
                        deleted.map_err(|_| ResponseError::UnknownTopicOrPartition)?;
                        let image = store.borrow().image();
                        shard::publish_metadata(image)
                            .await
                            .map_err(|_| ResponseError::KafkaStorageError)?;
                        Ok(topic)
                    })
                })
                .await
            }
        };
        let mut entry = DeletableTopicResult::default()
            .with_name(name.clone().map(|n| TopicName(StrBytes::from_string(n))))
            .with_topic_id(topic_id);
        match result {
            Ok(topic) => {
                tracing::info!(topic = %topic.name, "deleted topic");
                entry.name = Some(TopicName(StrBytes::from_string(topic.name.clone())));
                entry.topic_id = topic.topic_id;
            }
            Err(error) => entry.error_code = error.code(),
        }
        response.responses.push(entry);
    }
    response
}

pub async fn describe_cluster(
    ctx: Rc<ShardContext>,
    _request: DescribeClusterRequest,
    _version: i16,
) -> DescribeClusterResponse {
    let listener = &ctx.config.advertised_listeners[0];
    let node = BrokerId(ctx.config.node_id);
    DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(ctx.metadata().cluster_id.clone()))
        .with_controller_id(node)
        .with_endpoint_type(1)
        .with_cluster_authorized_operations(i32::MIN)
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(node)
            .with_host(StrBytes::from_string(listener.host.clone()))
            .with_port(listener.port as i32)])
}

/// InitProducerId v0-5. With a transactional id it goes to the transaction coordinator
/// ([`super::transactions::init_producer_id`]). For idempotent producers (null transactional
/// id): a fresh producer id with epoch 0, or, when the client passes its current id and epoch
/// (KIP-360), the same id with the epoch bumped.
pub async fn init_producer_id(
    ctx: Rc<ShardContext>,
    request: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    if request.transactional_id.is_some() {
        return super::transactions::init_producer_id(ctx, request, version).await;
    }
    let response = InitProducerIdResponse::default();
    let current = request.producer_id.0;
    if current >= 0 && request.producer_epoch >= 0 && request.producer_epoch < i16::MAX - 1 {
        return response
            .with_producer_id(ProducerId(current))
            .with_producer_epoch(request.producer_epoch + 1);
    }
    let _ = ctx;
    let producer_id =
        shard::invoke_on(0, |ctx| Box::pin(async move { ctx.allocate_producer_id() })).await;
    response
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(0)
}
