//! `ringtail group list|describe|reset-offsets|delete`: ListGroups on every broker,
//! DescribeGroups + OffsetFetch + ListOffsets at the group's coordinator and the partitions'
//! leaders (lag = log end offset - committed offset, as `kafka-consumer-groups.sh --describe`
//! computes it), OffsetCommit with generation -1 for a reset (as the AdminClient's
//! `alterConsumerGroupOffsets`), DeleteGroups.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Buf;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, DeleteGroupsRequest, DescribeGroupsRequest, GroupId,
    ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use serde_json::json;

use crate::cluster::{Cluster, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use crate::error::{describe_error, item_outcome, AdminError};
use crate::output::{Outcome, Output};
use crate::parse::{datetime_ms, local_offset, topic_partitions_arg, TopicPartitions};
use crate::table::{or_dash, section, Table};

/// ListGroups v0 to v4 (v4 adds the state).
pub const LIST_GROUPS_VERSIONS: (i16, i16) = (0, 4);
/// DescribeGroups v0 to v5 (v6 answers GROUP_ID_NOT_FOUND instead of state Dead).
pub const DESCRIBE_GROUPS_VERSIONS: (i16, i16) = (0, 5);
/// OffsetFetch v2 (null topics = all committed) to v7 (v8 batches groups).
pub const OFFSET_FETCH_VERSIONS: (i16, i16) = (2, 7);
/// OffsetCommit v2 (Kafka 4's oldest) to v8 (v9 adds KIP-848 member epochs).
pub const OFFSET_COMMIT_VERSIONS: (i16, i16) = (2, 8);
/// DeleteGroups v0 to v2.
pub const DELETE_GROUPS_VERSIONS: (i16, i16) = (0, 2);
/// Kafka's GROUP_ID_NOT_FOUND error code.
const GROUP_ID_NOT_FOUND: i16 = 69;

/// `ringtail group` operations.
#[derive(Debug, clap::Subcommand)]
pub enum GroupCommand {
    /// List groups on every broker (ListGroups).
    List,
    /// Per-partition committed offset, log end offset and lag, members and state.
    Describe {
        /// Group ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Reset a group's committed offsets; the group must have no members (Empty or Dead), as
    /// for `kafka-consumer-groups.sh --reset-offsets`. Without --execute it only shows the
    /// new offsets.
    ResetOffsets(ResetArgs),
    /// Delete groups without members (DeleteGroups).
    Delete {
        /// Group ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

/// `ringtail group reset-offsets` options (Kafka's tool's names).
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["topic", "all_topics"])))]
#[command(group(clap::ArgGroup::new("spec").required(true)
    .args(["to_earliest", "to_latest", "to_offset", "to_datetime"])))]
#[command(group(clap::ArgGroup::new("mode").args(["dry_run", "execute"])))]
pub struct ResetArgs {
    /// Group id.
    pub group: String,
    /// `topic` or `topic:0,1,2` (repeatable).
    #[arg(long, value_name = "TOPIC[:PARTITIONS]", value_parser = topic_partitions_arg)]
    pub topic: Vec<TopicPartitions>,
    /// Every topic the group has committed offsets for.
    #[arg(long)]
    pub all_topics: bool,
    /// To the log start offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// To the log end offset (high watermark).
    #[arg(long)]
    pub to_latest: bool,
    /// To this offset (kept within log start and log end offsets, as Kafka's tool does).
    #[arg(long, value_name = "OFFSET")]
    pub to_offset: Option<i64>,
    /// To the first offset with a timestamp at or after `YYYY-MM-DDTHH:mm:SS.sss[zone]`
    /// (ListOffsets by timestamp; the log end offset when none is).
    #[arg(long, value_name = "DATETIME")]
    pub to_datetime: Option<String>,
    /// Only show the new offsets (the default).
    #[arg(long)]
    pub dry_run: bool,
    /// Commit the new offsets.
    #[arg(long)]
    pub execute: bool,
}

/// Runs a group operation.
pub fn run(cluster: &mut Cluster, command: &GroupCommand) -> Outcome {
    match command {
        GroupCommand::List => list(cluster),
        GroupCommand::Describe { groups } => describe(cluster, groups),
        GroupCommand::ResetOffsets(args) => reset_offsets(cluster, args),
        GroupCommand::Delete { groups } => delete(cluster, groups),
    }
}

fn group_id(name: &str) -> GroupId {
    GroupId(StrBytes::from_string(name.to_string()))
}

fn list(cluster: &mut Cluster) -> Outcome {
    let metadata = cluster.metadata(Some(&[]))?;
    let mut node_ids: Vec<i32> = metadata.brokers.iter().map(|b| b.node_id.0).collect();
    node_ids.sort();
    let mut groups: BTreeMap<String, (i32, String, String)> = BTreeMap::new();
    for node_id in node_ids {
        let connection = cluster.node(node_id)?;
        let response = connection.send(LIST_GROUPS_VERSIONS, |_| ListGroupsRequest::default())?;
        connection.check(ApiKey::ListGroups, response.error_code, None, || {
            format!("listing groups on broker {node_id}")
        })?;
        for group in &response.groups {
            let state = if group.group_state.is_empty() {
                "-".to_string()
            } else {
                group.group_state.to_string()
            };
            groups.insert(
                group.group_id.0.to_string(),
                (node_id, state, group.protocol_type.to_string()),
            );
        }
    }
    let mut table = Table::new(["GROUP", "COORDINATOR", "STATE", "PROTOCOL-TYPE"]);
    let mut json_rows = Vec::new();
    for (group, (coordinator, state, protocol_type)) in groups {
        table.push([
            group.clone(),
            coordinator.to_string(),
            state.clone(),
            protocol_type.clone(),
        ]);
        json_rows.push(json!({
            "group": group, "coordinator": coordinator, "state": state,
            "protocol_type": protocol_type,
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

/// DescribeGroups of one group at its coordinator; returns the coordinator's node id too.
fn describe_group(cluster: &mut Cluster, group: &str) -> Result<(i32, DescribedGroup), AdminError> {
    let coordinator = cluster.coordinator_id(group)?;
    let connection = cluster.node(coordinator)?;
    let response = connection.send(DESCRIBE_GROUPS_VERSIONS, |_| {
        DescribeGroupsRequest::default().with_groups(vec![group_id(group)])
    })?;
    let Some(described) = response.groups.into_iter().next() else {
        return Err(AdminError::Invalid(format!(
            "DescribeGroups of {group} answered no group"
        )));
    };
    connection.check(
        ApiKey::DescribeGroups,
        described.error_code,
        described.error_message.as_deref(),
        || format!("describing group {group}"),
    )?;
    Ok((coordinator, described))
}

/// The group's committed offsets (OffsetFetch, all topics): (topic, partition) -> offset;
/// partitions without a committed offset (-1) are left out.
fn committed_offsets(
    cluster: &mut Cluster,
    coordinator: i32,
    group: &str,
) -> Result<BTreeMap<(String, i32), i64>, AdminError> {
    let connection = cluster.node(coordinator)?;
    let response = connection.send(OFFSET_FETCH_VERSIONS, |_| {
        OffsetFetchRequest::default()
            .with_group_id(group_id(group))
            .with_topics(None)
    })?;
    connection.check(ApiKey::OffsetFetch, response.error_code, None, || {
        format!("fetching the offsets of group {group}")
    })?;
    let mut offsets = BTreeMap::new();
    for topic in &response.topics {
        for partition in &topic.partitions {
            let name = topic.name.0.to_string();
            connection.check(ApiKey::OffsetFetch, partition.error_code, None, || {
                format!(
                    "offset of group {group} for {name}-{}",
                    partition.partition_index
                )
            })?;
            if partition.committed_offset >= 0 {
                offsets.insert(
                    (name, partition.partition_index),
                    partition.committed_offset,
                );
            }
        }
    }
    Ok(offsets)
}

/// A member's assigned partitions, from its `ConsumerProtocolAssignment` (the consumer
/// protocol's assignment bytes: a version, then the struct); empty for other protocols or
/// undecodable bytes.
pub fn assigned_partitions(assignment: &[u8]) -> Vec<(String, i32)> {
    let mut bytes = bytes::Bytes::copy_from_slice(assignment);
    if bytes.remaining() < 2 {
        return Vec::new();
    }
    let version = bytes.get_i16();
    match ConsumerProtocolAssignment::decode(&mut bytes, version.clamp(0, 3)) {
        Ok(decoded) => decoded
            .assigned_partitions
            .iter()
            .flat_map(|tp| {
                tp.partitions
                    .iter()
                    .map(move |&p| (tp.topic.0.to_string(), p))
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The high watermark of each partition, `None` where the topic is gone or has no such
/// partition any more (a committed offset can outlive its topic).
fn log_end_offsets(
    cluster: &mut Cluster,
    partitions: &BTreeSet<(String, i32)>,
) -> Result<BTreeMap<(String, i32), Option<i64>>, AdminError> {
    let mut by_topic: BTreeMap<&str, Vec<(String, i32)>> = BTreeMap::new();
    for (topic, partition) in partitions {
        by_topic
            .entry(topic)
            .or_default()
            .push((topic.clone(), *partition));
    }
    let mut ends = BTreeMap::new();
    for (_, keys) in by_topic {
        match cluster.list_offsets(&keys, LATEST_TIMESTAMP) {
            Ok(answers) => ends.extend(answers),
            Err(AdminError::Kafka { .. }) => ends.extend(keys.into_iter().map(|k| (k, None))),
            Err(other) => return Err(other),
        }
    }
    Ok(ends)
}

fn describe(cluster: &mut Cluster, groups: &[String]) -> Outcome {
    let mut text = String::new();
    let mut json_groups = Vec::new();
    for group in groups {
        let (coordinator, described) = describe_group(cluster, group)?;
        let committed = committed_offsets(cluster, coordinator, group)?;
        let state = described.group_state.to_string();
        if state == "Dead" && committed.is_empty() {
            return Err(AdminError::Kafka {
                context: format!("describing group {group}"),
                code: GROUP_ID_NOT_FOUND,
                message: Some(format!("Consumer group '{group}' does not exist.")),
            });
        }
        let is_consumer = described.protocol_type.as_str() == "consumer";
        let mut owner: BTreeMap<(String, i32), usize> = BTreeMap::new();
        let mut json_members = Vec::new();
        let mut members = Table::new([
            "MEMBER-ID",
            "GROUP-INSTANCE-ID",
            "CLIENT-ID",
            "HOST",
            "ASSIGNMENT",
        ]);
        for (index, member) in described.members.iter().enumerate() {
            let assigned = if is_consumer {
                assigned_partitions(&member.member_assignment)
            } else {
                Vec::new()
            };
            for key in &assigned {
                owner.insert(key.clone(), index);
            }
            let assignment: Vec<String> =
                assigned.iter().map(|(t, p)| format!("{t}-{p}")).collect();
            members.push([
                member.member_id.to_string(),
                or_dash(member.group_instance_id.as_ref()),
                member.client_id.to_string(),
                member.client_host.to_string(),
                assignment.join(","),
            ]);
            json_members.push(json!({
                "member_id": member.member_id.to_string(),
                "group_instance_id": member.group_instance_id.as_ref().map(|s| s.to_string()),
                "client_id": member.client_id.to_string(),
                "host": member.client_host.to_string(),
                "assignment": assigned.iter().map(|(t, p)| json!({"topic": t, "partition": p}))
                    .collect::<Vec<_>>(),
            }));
        }
        let partitions: BTreeSet<(String, i32)> = committed
            .keys()
            .cloned()
            .chain(owner.keys().cloned())
            .collect();
        let ends = log_end_offsets(cluster, &partitions)?;
        let mut offsets = Table::new([
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ]);
        let mut json_partitions = Vec::new();
        let mut total_lag = 0i64;
        for key in &partitions {
            let current = committed.get(key).copied();
            let end = ends.get(key).copied().flatten();
            let lag = match (current, end) {
                (Some(current), Some(end)) => Some(end - current),
                _ => None,
            };
            total_lag += lag.unwrap_or(0);
            let member = owner.get(key).map(|&i| &described.members[i]);
            offsets.push([
                key.0.clone(),
                key.1.to_string(),
                or_dash(current),
                or_dash(end),
                or_dash(lag),
                or_dash(member.map(|m| &m.member_id)),
                or_dash(member.map(|m| &m.client_host)),
                or_dash(member.map(|m| &m.client_id)),
            ]);
            json_partitions.push(json!({
                "topic": key.0, "partition": key.1, "current_offset": current,
                "log_end_offset": end, "lag": lag,
                "consumer_id": member.map(|m| m.member_id.to_string()),
                "host": member.map(|m| m.client_host.to_string()),
                "client_id": member.map(|m| m.client_id.to_string()),
            }));
        }
        let mut summary = Table::headless();
        summary.push(["GROUP".to_string(), group.clone()]);
        summary.push(["COORDINATOR".to_string(), coordinator.to_string()]);
        summary.push(["STATE".to_string(), state.clone()]);
        summary.push([
            "PROTOCOL-TYPE".to_string(),
            described.protocol_type.to_string(),
        ]);
        summary.push(["PROTOCOL".to_string(), described.protocol_data.to_string()]);
        summary.push(["MEMBERS".to_string(), described.members.len().to_string()]);
        summary.push(["TOTAL-LAG".to_string(), total_lag.to_string()]);
        text.push_str(&summary.render());
        if described.members.is_empty() {
            text.push_str(&format!(
                "\nConsumer group '{group}' has no active members.\n"
            ));
        }
        text.push('\n');
        text.push_str(&section("OFFSETS"));
        text.push_str(&offsets.render());
        if !described.members.is_empty() {
            text.push('\n');
            text.push_str(&section("MEMBERS"));
            text.push_str(&members.render());
        }
        text.push('\n');
        json_groups.push(json!({
            "group": group, "coordinator": coordinator, "state": state,
            "protocol_type": described.protocol_type.to_string(),
            "protocol": described.protocol_data.to_string(),
            "members": json_members, "partitions": json_partitions, "total_lag": total_lag,
        }));
    }
    if text.ends_with("\n\n") {
        text.pop();
    }
    Ok((
        Output {
            text,
            json: serde_json::Value::Array(json_groups),
        },
        None,
    ))
}

/// The offset a reset moves to for `--to-offset`: within `[start, end]`, as Kafka's tool
/// keeps it (it warns and uses the nearer bound).
pub fn clamp_offset(wanted: i64, start: i64, end: i64) -> i64 {
    wanted.max(start).min(end.max(start))
}

fn reset_offsets(cluster: &mut Cluster, args: &ResetArgs) -> Outcome {
    let group = args.group.as_str();
    let (coordinator, described) = describe_group(cluster, group)?;
    let state = described.group_state.to_string();
    if state != "Empty" && state != "Dead" {
        return Err(AdminError::Invalid(format!(
            "Assignments can only be reset if the group '{group}' is inactive, but the current \
             state is {state}."
        )));
    }
    let mut partitions: BTreeSet<(String, i32)> = BTreeSet::new();
    if args.all_topics {
        partitions.extend(committed_offsets(cluster, coordinator, group)?.into_keys());
    }
    if !args.topic.is_empty() {
        let names: Vec<String> = args.topic.iter().map(|t| t.topic.clone()).collect();
        let layouts = cluster.layouts(&names)?;
        for wanted in &args.topic {
            let layout = &layouts[&wanted.topic];
            match &wanted.partitions {
                None => {
                    partitions.extend(layout.leaders.keys().map(|&p| (wanted.topic.clone(), p)))
                }
                Some(list) => {
                    for &p in list {
                        if !layout.leaders.contains_key(&p) {
                            return Err(AdminError::Kafka {
                                context: format!("partition {}-{p}", wanted.topic),
                                code: 3,
                                message: Some(format!(
                                    "topic {} has no partition {p}",
                                    wanted.topic
                                )),
                            });
                        }
                        partitions.insert((wanted.topic.clone(), p));
                    }
                }
            }
        }
    }
    let keys: Vec<(String, i32)> = partitions.iter().cloned().collect();
    let new_offsets: BTreeMap<(String, i32), i64> = if args.to_earliest {
        resolved(cluster.list_offsets(&keys, EARLIEST_TIMESTAMP)?)
    } else if args.to_latest {
        resolved(cluster.list_offsets(&keys, LATEST_TIMESTAMP)?)
    } else if let Some(wanted) = args.to_offset {
        let starts = resolved(cluster.list_offsets(&keys, EARLIEST_TIMESTAMP)?);
        let ends = resolved(cluster.list_offsets(&keys, LATEST_TIMESTAMP)?);
        keys.iter()
            .map(|k| {
                let (start, end) = (starts[k], ends[k]);
                let offset = clamp_offset(wanted, start, end);
                if offset != wanted {
                    eprintln!(
                        "WARN: new offset ({wanted}) is outside {}-{}'s range {start}..{end}; \
                         using {offset}",
                        k.0, k.1
                    );
                }
                (k.clone(), offset)
            })
            .collect()
    } else if let Some(datetime) = &args.to_datetime {
        let timestamp = datetime_ms(datetime, local_offset())?;
        let at = cluster.list_offsets(&keys, timestamp)?;
        let ends = resolved(cluster.list_offsets(&keys, LATEST_TIMESTAMP)?);
        keys.iter()
            .map(|k| (k.clone(), at[k].unwrap_or(ends[k])))
            .collect()
    } else {
        return Err(AdminError::Invalid(
            "give one of --to-earliest, --to-latest, --to-offset, --to-datetime".to_string(),
        ));
    };
    if !args.execute && !args.dry_run {
        eprintln!(
            "WARN: No action will be performed as the --execute option is missing. Add \
             --dry-run to keep this behaviour without the warning."
        );
    }
    let mut failure = None;
    let mut errors: BTreeMap<(String, i32), String> = BTreeMap::new();
    if args.execute && !new_offsets.is_empty() {
        let mut by_topic: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
        for ((topic, partition), offset) in &new_offsets {
            by_topic
                .entry(topic)
                .or_default()
                .push((*partition, *offset));
        }
        let connection = cluster.node(coordinator)?;
        let response = connection.send(OFFSET_COMMIT_VERSIONS, |_| {
            OffsetCommitRequest::default()
                .with_group_id(group_id(group))
                .with_generation_id_or_member_epoch(-1)
                .with_member_id(StrBytes::from_static_str(""))
                .with_retention_time_ms(-1)
                .with_topics(
                    by_topic
                        .iter()
                        .map(|(topic, partitions)| {
                            OffsetCommitRequestTopic::default()
                                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                                .with_partitions(
                                    partitions
                                        .iter()
                                        .map(|&(p, offset)| {
                                            OffsetCommitRequestPartition::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(offset)
                                                .with_committed_leader_epoch(-1)
                                                .with_committed_metadata(Some(
                                                    StrBytes::from_static_str(""),
                                                ))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                )
        })?;
        for topic in &response.topics {
            for partition in &topic.partitions {
                connection.check_supported(ApiKey::OffsetCommit, partition.error_code)?;
                if partition.error_code != 0 {
                    errors.insert(
                        (topic.name.0.to_string(), partition.partition_index),
                        describe_error(partition.error_code, None),
                    );
                }
            }
        }
        if !errors.is_empty() {
            failure = Some(AdminError::Partial(format!(
                "{} of {} offsets of group {group} not committed",
                errors.len(),
                new_offsets.len()
            )));
        }
    }
    let mut table = Table::new(["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]);
    let mut json_rows = Vec::new();
    for (key, offset) in &new_offsets {
        let error = errors.get(key);
        let shown = match error {
            Some(error) => format!("{offset} ({error})"),
            None => offset.to_string(),
        };
        table.push([group.to_string(), key.0.clone(), key.1.to_string(), shown]);
        json_rows.push(json!({
            "group": group, "topic": key.0, "partition": key.1, "new_offset": offset,
            "error": error,
        }));
    }
    Ok((
        Output {
            text: table.render(),
            json: json!({"group": group, "executed": args.execute, "offsets": json_rows}),
        },
        failure,
    ))
}

/// Offsets from ListOffsets where an earliest/latest answer of -1 cannot happen; -1 kept as
/// 0 to stay a valid offset.
fn resolved(answers: BTreeMap<(String, i32), Option<i64>>) -> BTreeMap<(String, i32), i64> {
    answers
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or(0)))
        .collect()
}

fn delete(cluster: &mut Cluster, groups: &[String]) -> Outcome {
    let mut table = Table::new(["GROUP", "STATUS"]);
    let mut json_rows = Vec::new();
    let mut failed = 0;
    for group in groups {
        let connection = cluster.coordinator(group)?;
        let response = connection.send(DELETE_GROUPS_VERSIONS, |_| {
            DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)])
        })?;
        for result in &response.results {
            connection.check_supported(ApiKey::DeleteGroups, result.error_code)?;
            let error = item_outcome(result.error_code, None).err();
            failed += usize::from(error.is_some());
            table.push([
                result.group_id.0.to_string(),
                error.clone().unwrap_or_else(|| "OK".to_string()),
            ]);
            json_rows.push(json!({"group": result.group_id.0.to_string(), "error": error}));
        }
    }
    let failure = (failed > 0)
        .then(|| AdminError::Partial(format!("{failed} of {} group(s) not deleted", groups.len())));
    Ok((
        Output {
            text: table.render(),
            json: serde_json::Value::Array(json_rows),
        },
        failure,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn offsets_stay_in_range() {
        assert_eq!(clamp_offset(5, 0, 10), 5);
        assert_eq!(clamp_offset(50, 0, 10), 10);
        assert_eq!(clamp_offset(-3, 2, 10), 2);
        assert_eq!(clamp_offset(7, 3, 3), 3);
    }

    #[test]
    fn consumer_assignments_decode() {
        let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
            TopicPartition::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![0, 2]),
        ]);
        for version in [0i16, 1, 3] {
            let mut bytes = bytes::BytesMut::new();
            bytes.extend_from_slice(&version.to_be_bytes());
            assignment.encode(&mut bytes, version).unwrap();
            assert_eq!(
                assigned_partitions(&bytes),
                vec![("t".to_string(), 0), ("t".to_string(), 2)]
            );
        }
        assert!(assigned_partitions(&[]).is_empty());
        assert!(assigned_partitions(&[0, 0, 255]).is_empty());
    }
}
