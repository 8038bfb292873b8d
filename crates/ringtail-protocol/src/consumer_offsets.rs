//! Key/value schemas of the records in `__consumer_offsets`, Kafka's own byte layout.
//!
//! Each record key and value starts with an `i16` schema version, followed by the fields of
//! that version in Kafka's non-flexible encoding (`i16`-length strings, `i32`-length bytes and
//! arrays). The schemas are Kafka's `group-coordinator/src/main/resources/common/message/`
//! JSON files:
//!
//! ```text
//! OffsetCommitKey    v0-1  group string, topic string, partition i32
//! GroupMetadataKey   v2    group string
//! OffsetCommitValue  v3    offset i64, leader_epoch i32, metadata string, commit_timestamp i64
//!                          (v0/v2 lack leader_epoch; v1 adds expire_timestamp i64 at the end;
//!                          v4, read only, is v3 in the flexible encoding with a tagged topic id)
//! GroupMetadataValue v3    protocol_type string, generation i32, protocol string?, leader string?,
//!                          current_state_timestamp i64 (v2+), members [MemberMetadata]
//! MemberMetadata     v3    member_id string, group_instance_id string? (v3+), client_id string,
//!                          client_host string, rebalance_timeout i32 (v1+), session_timeout i32,
//!                          subscription bytes, assignment bytes
//! ```
//!
//! A record with a null value is a tombstone: the offset or the group was deleted. Records are
//! written as uncompressed record batch v2 with `RecordBatchEncoder`. The KIP-848 consumer group
//! records (key versions 3, 5-8, 16) are [`consumer_group_records`]'s; keys of other versions
//! (share and streams groups, the retired `ConsumerGroupPartitionMetadata`) are skipped on
//! replay. This module does no I/O and never panics on input.
//!
//! [`consumer_group_records`]: crate::consumer_group_records

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;

use crate::consumer_group_records::{self as cg, decode_key, decode_value, encode_key};
pub use crate::consumer_group_records::{
    ClassicMemberMetadata, ClassicProtocol, ConsumerGroupCurrentMemberAssignmentValue,
    ConsumerGroupMemberMetadataValue, ConsumerGroupMetadataValue,
    ConsumerGroupRegularExpressionValue, ConsumerGroupTargetAssignmentMemberValue,
    ConsumerGroupTargetAssignmentMetadataValue, TopicPartitions,
};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// Key version written for offset commits (Kafka's `OffsetCommitKey`, versions 0 and 1).
pub const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
/// Key version written for group metadata (Kafka's `GroupMetadataKey`).
pub const GROUP_METADATA_KEY_VERSION: i16 = 2;
/// Value version written for offset commits (`OffsetCommitValue` v3: with `leader_epoch`).
pub const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
/// Value version written for group metadata (`GroupMetadataValue` v3: static members).
pub const GROUP_METADATA_VALUE_VERSION: i16 = 3;

pub use crate::record_error::RecordError;

/// Key of a committed offset: (group, topic, partition).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OffsetCommitKey {
    /// The group id.
    pub group: String,
    /// The topic name.
    pub topic: String,
    /// The partition index.
    pub partition: i32,
}

/// A committed offset (Kafka's `OffsetCommitValue`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetCommitValue {
    /// The next offset the group will consume.
    pub offset: i64,
    /// Leader epoch of the last consumed record (KIP-320), -1 when unknown.
    pub leader_epoch: i32,
    /// Free-form client metadata, returned verbatim by OffsetFetch.
    pub metadata: String,
    /// Milliseconds since the Unix epoch when the commit was received.
    pub commit_timestamp: i64,
}

/// One member as stored in `GroupMetadataValue`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberMetadataValue {
    /// The member id the coordinator assigned.
    pub member_id: String,
    /// `group.instance.id` of a static member (KIP-345).
    pub group_instance_id: Option<String>,
    /// The member's `client.id`.
    pub client_id: String,
    /// The member's address as the coordinator saw it (`/ip`).
    pub client_host: String,
    /// Milliseconds.
    pub rebalance_timeout: i32,
    /// Milliseconds.
    pub session_timeout: i32,
    /// The member's metadata for the selected protocol.
    pub subscription: Bytes,
    /// The member's assignment from the leader's SyncGroup.
    pub assignment: Bytes,
}

/// A group's membership as of its last stored generation (Kafka's `GroupMetadataValue`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMetadataValue {
    /// `consumer` for consumer groups (the JoinGroup `protocol_type`).
    pub protocol_type: String,
    /// The generation id.
    pub generation: i32,
    /// The selected protocol (assignor), `None` while the group is empty.
    pub protocol: Option<String>,
    /// The leader's member id, `None` while the group is empty.
    pub leader: Option<String>,
    /// Milliseconds since the Unix epoch of the last state change, -1 when unknown.
    pub current_state_timestamp: i64,
    /// The members of the generation.
    pub members: Vec<MemberMetadataValue>,
}

/// One record of `__consumer_offsets`; `None` values are tombstones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoordinatorRecord {
    /// A committed offset (key versions 0-1); `None` deletes it.
    OffsetCommit {
        /// Which offset.
        key: OffsetCommitKey,
        /// The offset, or a tombstone.
        value: Option<OffsetCommitValue>,
    },
    /// A group's membership (key version 2); `None` deletes the group.
    GroupMetadata {
        /// The group id.
        group: String,
        /// The membership, or a tombstone.
        value: Option<GroupMetadataValue>,
    },
    /// A consumer group's epoch (KIP-848, key version 3); `None` deletes the group.
    ConsumerGroupMetadata {
        /// The group id.
        group: String,
        /// The epoch, or a tombstone.
        value: Option<ConsumerGroupMetadataValue>,
    },
    /// A consumer group member's subscription (key version 5); `None` removes the member.
    ConsumerGroupMemberMetadata {
        /// The group id.
        group: String,
        /// The member id.
        member_id: String,
        /// The member, or a tombstone.
        value: Option<ConsumerGroupMemberMetadataValue>,
    },
    /// The target assignment's epoch (key version 6); `None` with the group's deletion.
    ConsumerGroupTargetAssignmentMetadata {
        /// The group id.
        group: String,
        /// The epoch, or a tombstone.
        value: Option<ConsumerGroupTargetAssignmentMetadataValue>,
    },
    /// One member's target assignment (key version 7); `None` removes it.
    ConsumerGroupTargetAssignmentMember {
        /// The group id.
        group: String,
        /// The member id.
        member_id: String,
        /// The assignment, or a tombstone.
        value: Option<ConsumerGroupTargetAssignmentMemberValue>,
    },
    /// One member's current assignment and epoch (key version 8); `None` removes it.
    ConsumerGroupCurrentMemberAssignment {
        /// The group id.
        group: String,
        /// The member id.
        member_id: String,
        /// The assignment, or a tombstone.
        value: Option<ConsumerGroupCurrentMemberAssignmentValue>,
    },
    /// The topics a subscribed regular expression resolved to (key version 16); `None` once
    /// no member subscribes to it.
    ConsumerGroupRegularExpression {
        /// The group id.
        group: String,
        /// The regular expression as the members sent it.
        regex: String,
        /// The resolution, or a tombstone.
        value: Option<ConsumerGroupRegularExpressionValue>,
    },
}

impl CoordinatorRecord {
    /// The group this record belongs to.
    pub fn group(&self) -> &str {
        match self {
            CoordinatorRecord::OffsetCommit { key, .. } => &key.group,
            CoordinatorRecord::GroupMetadata { group, .. }
            | CoordinatorRecord::ConsumerGroupMetadata { group, .. }
            | CoordinatorRecord::ConsumerGroupMemberMetadata { group, .. }
            | CoordinatorRecord::ConsumerGroupTargetAssignmentMetadata { group, .. }
            | CoordinatorRecord::ConsumerGroupTargetAssignmentMember { group, .. }
            | CoordinatorRecord::ConsumerGroupCurrentMemberAssignment { group, .. }
            | CoordinatorRecord::ConsumerGroupRegularExpression { group, .. } => group,
        }
    }

    /// Whether this record is a tombstone (a null value).
    pub fn is_tombstone(&self) -> bool {
        match self {
            CoordinatorRecord::OffsetCommit { value, .. } => value.is_none(),
            CoordinatorRecord::GroupMetadata { value, .. } => value.is_none(),
            CoordinatorRecord::ConsumerGroupMetadata { value, .. } => value.is_none(),
            CoordinatorRecord::ConsumerGroupMemberMetadata { value, .. } => value.is_none(),
            CoordinatorRecord::ConsumerGroupTargetAssignmentMetadata { value, .. } => {
                value.is_none()
            }
            CoordinatorRecord::ConsumerGroupTargetAssignmentMember { value, .. } => value.is_none(),
            CoordinatorRecord::ConsumerGroupCurrentMemberAssignment { value, .. } => {
                value.is_none()
            }
            CoordinatorRecord::ConsumerGroupRegularExpression { value, .. } => value.is_none(),
        }
    }

    /// Encodes the key with its version prefix.
    pub fn encode_key(&self) -> Result<Bytes, RecordError> {
        let mut buf = BytesMut::new();
        match self {
            CoordinatorRecord::OffsetCommit { key, .. } => {
                buf.put_i16(OFFSET_COMMIT_KEY_VERSION);
                put_string(&mut buf, "group", &key.group)?;
                put_string(&mut buf, "topic", &key.topic)?;
                buf.put_i32(key.partition);
            }
            CoordinatorRecord::GroupMetadata { group, .. } => {
                buf.put_i16(GROUP_METADATA_KEY_VERSION);
                put_string(&mut buf, "group", group)?;
            }
            CoordinatorRecord::ConsumerGroupMetadata { group, .. } => {
                return encode_key(cg::CONSUMER_GROUP_METADATA_RECORD_TYPE, group, None)
            }
            CoordinatorRecord::ConsumerGroupMemberMetadata {
                group, member_id, ..
            } => {
                return encode_key(
                    cg::CONSUMER_GROUP_MEMBER_METADATA_RECORD_TYPE,
                    group,
                    Some(member_id),
                )
            }
            CoordinatorRecord::ConsumerGroupTargetAssignmentMetadata { group, .. } => {
                return encode_key(
                    cg::CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA_RECORD_TYPE,
                    group,
                    None,
                )
            }
            CoordinatorRecord::ConsumerGroupTargetAssignmentMember {
                group, member_id, ..
            } => {
                return encode_key(
                    cg::CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER_RECORD_TYPE,
                    group,
                    Some(member_id),
                )
            }
            CoordinatorRecord::ConsumerGroupCurrentMemberAssignment {
                group, member_id, ..
            } => {
                return encode_key(
                    cg::CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT_RECORD_TYPE,
                    group,
                    Some(member_id),
                )
            }
            CoordinatorRecord::ConsumerGroupRegularExpression { group, regex, .. } => {
                return encode_key(
                    cg::CONSUMER_GROUP_REGULAR_EXPRESSION_RECORD_TYPE,
                    group,
                    Some(regex),
                )
            }
        }
        Ok(buf.freeze())
    }

    /// Encodes the value with its version prefix, `None` for a tombstone.
    pub fn encode_value(&self) -> Result<Option<Bytes>, RecordError> {
        if self.is_tombstone() {
            return Ok(None);
        }
        let mut buf = BytesMut::new();
        match self {
            CoordinatorRecord::OffsetCommit { value: None, .. }
            | CoordinatorRecord::GroupMetadata { value: None, .. } => return Ok(None),
            CoordinatorRecord::ConsumerGroupMetadata { value, .. } => {
                return value.as_ref().map(cg::encode_value).transpose()
            }
            CoordinatorRecord::ConsumerGroupMemberMetadata { value, .. } => {
                return value.as_ref().map(cg::encode_value).transpose()
            }
            CoordinatorRecord::ConsumerGroupTargetAssignmentMetadata { value, .. } => {
                return value.as_ref().map(cg::encode_value).transpose()
            }
            CoordinatorRecord::ConsumerGroupTargetAssignmentMember { value, .. } => {
                return value.as_ref().map(cg::encode_value).transpose()
            }
            CoordinatorRecord::ConsumerGroupCurrentMemberAssignment { value, .. } => {
                return value.as_ref().map(cg::encode_value).transpose()
            }
            CoordinatorRecord::ConsumerGroupRegularExpression { value, .. } => {
                return value.as_ref().map(cg::encode_value).transpose()
            }
            CoordinatorRecord::OffsetCommit {
                value: Some(value), ..
            } => {
                buf.put_i16(OFFSET_COMMIT_VALUE_VERSION);
                buf.put_i64(value.offset);
                buf.put_i32(value.leader_epoch);
                put_string(&mut buf, "metadata", &value.metadata)?;
                buf.put_i64(value.commit_timestamp);
            }
            CoordinatorRecord::GroupMetadata {
                value: Some(value), ..
            } => encode_group_metadata_value(&mut buf, value)?,
        }
        Ok(Some(buf.freeze()))
    }

    /// Decodes one record. `Ok(None)` for keys of schemas this broker does not keep (Kafka's
    /// share and streams group records, `ConsumerGroupPartitionMetadata` (4), unknown types:
    /// Kafka's loader skips an unknown record type with a warning, `UnknownRecordTypeException`).
    /// Use [`record_type`] to name a skipped key.
    pub fn decode(
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<Option<CoordinatorRecord>, RecordError> {
        let mut reader = Reader { bytes: key };
        let key_version = reader.i16("key version")?;
        match key_version {
            0 | 1 => {
                let key = OffsetCommitKey {
                    group: reader.string("group")?,
                    topic: reader.string("topic")?,
                    partition: reader.i32("partition")?,
                };
                let value = value.map(decode_offset_commit_value).transpose()?;
                Ok(Some(CoordinatorRecord::OffsetCommit { key, value }))
            }
            2 => {
                let group = reader.string("group")?;
                let value = value.map(decode_group_metadata_value).transpose()?;
                Ok(Some(CoordinatorRecord::GroupMetadata { group, value }))
            }
            cg::CONSUMER_GROUP_METADATA_RECORD_TYPE => {
                let (group, _) = decode_key(reader.bytes, None)?;
                let value = value.map(decode_value).transpose()?;
                Ok(Some(CoordinatorRecord::ConsumerGroupMetadata {
                    group,
                    value,
                }))
            }
            cg::CONSUMER_GROUP_PARTITION_METADATA_RECORD_TYPE => {
                decode_key(reader.bytes, None)?;
                Ok(None)
            }
            cg::CONSUMER_GROUP_MEMBER_METADATA_RECORD_TYPE => {
                let (group, member_id) = decode_key(reader.bytes, Some("member_id"))?;
                let value = value.map(decode_value).transpose()?;
                Ok(Some(CoordinatorRecord::ConsumerGroupMemberMetadata {
                    group,
                    member_id: member_id.unwrap_or_default(),
                    value,
                }))
            }
            cg::CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA_RECORD_TYPE => {
                let (group, _) = decode_key(reader.bytes, None)?;
                let value = value.map(decode_value).transpose()?;
                Ok(Some(
                    CoordinatorRecord::ConsumerGroupTargetAssignmentMetadata { group, value },
                ))
            }
            cg::CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER_RECORD_TYPE => {
                let (group, member_id) = decode_key(reader.bytes, Some("member_id"))?;
                let value = value.map(decode_value).transpose()?;
                Ok(Some(
                    CoordinatorRecord::ConsumerGroupTargetAssignmentMember {
                        group,
                        member_id: member_id.unwrap_or_default(),
                        value,
                    },
                ))
            }
            cg::CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT_RECORD_TYPE => {
                let (group, member_id) = decode_key(reader.bytes, Some("member_id"))?;
                let value = value.map(decode_value).transpose()?;
                Ok(Some(
                    CoordinatorRecord::ConsumerGroupCurrentMemberAssignment {
                        group,
                        member_id: member_id.unwrap_or_default(),
                        value,
                    },
                ))
            }
            cg::CONSUMER_GROUP_REGULAR_EXPRESSION_RECORD_TYPE => {
                let (group, regex) = decode_key(reader.bytes, Some("regular_expression"))?;
                let value = value.map(decode_value).transpose()?;
                Ok(Some(CoordinatorRecord::ConsumerGroupRegularExpression {
                    group,
                    regex: regex.unwrap_or_default(),
                    value,
                }))
            }
            _ => Ok(None),
        }
    }
}

/// The record type (key version) of a stored key, `None` when shorter than two bytes.
pub fn record_type(key: &[u8]) -> Option<i16> {
    Some(i16::from_be_bytes([*key.first()?, *key.get(1)?]))
}

/// Encodes records as one uncompressed record batch v2 with base offset 0; the caller assigns
/// the real base offset in place before appending.
pub fn encode_batch(
    records: &[CoordinatorRecord],
    timestamp_ms: i64,
) -> Result<BytesMut, RecordError> {
    let mut wire = Vec::with_capacity(records.len());
    for (delta, record) in records.iter().enumerate() {
        wire.push(Record {
            delete_horizon: false,
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: delta as i64,
            // The encoder keeps records in one batch while `offset - sequence` is constant;
            // this keeps the batch's base sequence at -1 (no producer id) as Kafka writes it.
            sequence: delta as i32 - 1,
            timestamp: timestamp_ms,
            key: Some(record.encode_key()?),
            value: record.encode_value()?,
            headers: IndexMap::new(),
        });
    }
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, wire.iter(), &options)
        .map_err(|source| RecordError::Batch { source })?;
    Ok(buf)
}

/// Decodes every record of the batches in `bytes`, skipping control records and keys of
/// unknown schemas. Stops with an error at the first batch or record that does not decode.
pub fn decode_batches(bytes: Bytes) -> Result<Vec<CoordinatorRecord>, RecordError> {
    let mut out = Vec::new();
    crate::stored_records::for_each_batch(
        &bytes,
        |header, records| {
            if header.is_control() {
                return Ok(());
            }
            for record in records {
                let key = record.key.as_deref().ok_or(RecordError::MissingKey)?;
                if let Some(decoded) = CoordinatorRecord::decode(key, record.value.as_deref())? {
                    out.push(decoded);
                }
            }
            Ok(())
        },
        |reason| RecordError::Batch {
            source: anyhow::anyhow!(reason),
        },
    )?;
    Ok(out)
}

fn encode_group_metadata_value(
    buf: &mut BytesMut,
    value: &GroupMetadataValue,
) -> Result<(), RecordError> {
    buf.put_i16(GROUP_METADATA_VALUE_VERSION);
    put_string(buf, "protocol_type", &value.protocol_type)?;
    buf.put_i32(value.generation);
    put_nullable_string(buf, "protocol", value.protocol.as_deref())?;
    put_nullable_string(buf, "leader", value.leader.as_deref())?;
    buf.put_i64(value.current_state_timestamp);
    buf.put_i32(value.members.len() as i32);
    for member in &value.members {
        put_string(buf, "member_id", &member.member_id)?;
        put_nullable_string(
            buf,
            "group_instance_id",
            member.group_instance_id.as_deref(),
        )?;
        put_string(buf, "client_id", &member.client_id)?;
        put_string(buf, "client_host", &member.client_host)?;
        buf.put_i32(member.rebalance_timeout);
        buf.put_i32(member.session_timeout);
        put_bytes(buf, "subscription", &member.subscription)?;
        put_bytes(buf, "assignment", &member.assignment)?;
    }
    Ok(())
}

fn decode_offset_commit_value(bytes: &[u8]) -> Result<OffsetCommitValue, RecordError> {
    let mut reader = Reader { bytes };
    let version = reader.i16("value version")?;
    if version == 4 {
        // Kafka 4.1 writes the flexible v4 (with a tagged topic id).
        let (offset, leader_epoch, metadata, commit_timestamp) =
            cg::read_offset_commit_value_v4(reader.bytes)?;
        return Ok(OffsetCommitValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp,
        });
    }
    if !(0..=3).contains(&version) {
        return Err(RecordError::UnsupportedVersion {
            schema: "OffsetCommitValue",
            version,
        });
    }
    let offset = reader.i64("offset")?;
    let leader_epoch = if version >= 3 {
        reader.i32("leader_epoch")?
    } else {
        -1
    };
    let metadata = reader.string("metadata")?;
    let commit_timestamp = reader.i64("commit_timestamp")?;
    if version == 1 {
        reader.i64("expire_timestamp")?;
    }
    Ok(OffsetCommitValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
    })
}

fn decode_group_metadata_value(bytes: &[u8]) -> Result<GroupMetadataValue, RecordError> {
    let mut reader = Reader { bytes };
    let version = reader.i16("value version")?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::UnsupportedVersion {
            schema: "GroupMetadataValue",
            version,
        });
    }
    let protocol_type = reader.string("protocol_type")?;
    let generation = reader.i32("generation")?;
    let protocol = reader.nullable_string("protocol")?;
    let leader = reader.nullable_string("leader")?;
    let current_state_timestamp = if version >= 2 {
        reader.i64("current_state_timestamp")?
    } else {
        -1
    };
    let count = reader.i32("members")?;
    if count < 0 {
        return Err(RecordError::InvalidLength {
            field: "members",
            length: count,
        });
    }
    let mut members = Vec::new();
    for _ in 0..count {
        let member_id = reader.string("member_id")?;
        let group_instance_id = if version >= 3 {
            reader.nullable_string("group_instance_id")?
        } else {
            None
        };
        let client_id = reader.string("client_id")?;
        let client_host = reader.string("client_host")?;
        // v0 has no rebalance timeout; Kafka then uses the session timeout for both.
        let rebalance_timeout = if version >= 1 {
            Some(reader.i32("rebalance_timeout")?)
        } else {
            None
        };
        let session_timeout = reader.i32("session_timeout")?;
        let rebalance_timeout = rebalance_timeout.unwrap_or(session_timeout);
        members.push(MemberMetadataValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout,
            session_timeout,
            subscription: reader.bytes("subscription")?,
            assignment: reader.bytes("assignment")?,
        });
    }
    Ok(GroupMetadataValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp,
        members,
    })
}

fn put_string(buf: &mut BytesMut, field: &'static str, value: &str) -> Result<(), RecordError> {
    if value.len() > i16::MAX as usize {
        return Err(RecordError::TooLong {
            field,
            length: value.len(),
        });
    }
    buf.put_i16(value.len() as i16);
    buf.put_slice(value.as_bytes());
    Ok(())
}

fn put_nullable_string(
    buf: &mut BytesMut,
    field: &'static str,
    value: Option<&str>,
) -> Result<(), RecordError> {
    match value {
        Some(value) => put_string(buf, field, value),
        None => {
            buf.put_i16(-1);
            Ok(())
        }
    }
}

fn put_bytes(buf: &mut BytesMut, field: &'static str, value: &[u8]) -> Result<(), RecordError> {
    if value.len() > i32::MAX as usize {
        return Err(RecordError::TooLong {
            field,
            length: value.len(),
        });
    }
    buf.put_i32(value.len() as i32);
    buf.put_slice(value);
    Ok(())
}

/// Big-endian reader over untrusted bytes: every read checks the length first.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&[u8], RecordError> {
        if self.bytes.len() < n {
            return Err(RecordError::Truncated { field });
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn i16(&mut self, field: &'static str) -> Result<i16, RecordError> {
        let b = self.take(2, field)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, field: &'static str) -> Result<i32, RecordError> {
        let b = self.take(4, field)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self, field: &'static str) -> Result<i64, RecordError> {
        let b = self.take(8, field)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(b);
        Ok(i64::from_be_bytes(array))
    }

    fn nullable_string(&mut self, field: &'static str) -> Result<Option<String>, RecordError> {
        let length = self.i16(field)?;
        if length == -1 {
            return Ok(None);
        }
        if length < 0 {
            return Err(RecordError::InvalidLength {
                field,
                length: length as i32,
            });
        }
        let bytes = self.take(length as usize, field)?;
        let text = std::str::from_utf8(bytes).map_err(|_| RecordError::InvalidUtf8 { field })?;
        Ok(Some(text.to_owned()))
    }

    fn string(&mut self, field: &'static str) -> Result<String, RecordError> {
        self.nullable_string(field)?
            .ok_or(RecordError::InvalidLength { field, length: -1 })
    }

    fn bytes(&mut self, field: &'static str) -> Result<Bytes, RecordError> {
        let length = self.i32(field)?;
        if length < 0 {
            return Err(RecordError::InvalidLength { field, length });
        }
        Ok(Bytes::copy_from_slice(self.take(length as usize, field)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset_record(partition: i32, value: Option<OffsetCommitValue>) -> CoordinatorRecord {
        CoordinatorRecord::OffsetCommit {
            key: OffsetCommitKey {
                group: "payments".into(),
                topic: "orders".into(),
                partition,
            },
            value,
        }
    }

    fn group_record() -> CoordinatorRecord {
        CoordinatorRecord::GroupMetadata {
            group: "payments".into(),
            value: Some(GroupMetadataValue {
                protocol_type: "consumer".into(),
                generation: 7,
                protocol: Some("cooperative-sticky".into()),
                leader: Some("rdkafka-1".into()),
                current_state_timestamp: 1_700_000_000_123,
                members: vec![MemberMetadataValue {
                    member_id: "rdkafka-1".into(),
                    group_instance_id: Some("instance-a".into()),
                    client_id: "rdkafka".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout: 300_000,
                    session_timeout: 45_000,
                    subscription: Bytes::from_static(b"\x00\x01sub"),
                    assignment: Bytes::from_static(b"assign"),
                }],
            }),
        }
    }

    fn check_round_trip(record: CoordinatorRecord) {
        let key = record.encode_key().expect("key");
        let value = record.encode_value().expect("value");
        let decoded = CoordinatorRecord::decode(&key, value.as_deref()).expect("decode");
        assert_eq!(decoded, Some(record));
    }

    #[test]
    fn round_trips_each_schema() {
        check_round_trip(offset_record(
            3,
            Some(OffsetCommitValue {
                offset: 42,
                leader_epoch: 5,
                metadata: "meta data".into(),
                commit_timestamp: 1_700_000_000_000,
            }),
        ));
        check_round_trip(offset_record(4, None));
        check_round_trip(group_record());
        check_round_trip(CoordinatorRecord::GroupMetadata {
            group: "gone".into(),
            value: None,
        });
    }

    #[test]
    fn matches_kafka_bytes() {
        // OffsetCommitKey v1 {group "g", topic "t", partition 2}, as Kafka writes it.
        let record = CoordinatorRecord::OffsetCommit {
            key: OffsetCommitKey {
                group: "g".into(),
                topic: "t".into(),
                partition: 2,
            },
            value: Some(OffsetCommitValue {
                offset: 10,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp: 1,
            }),
        };
        assert_eq!(
            record.encode_key().expect("key").as_ref(),
            b"\x00\x01\x00\x01g\x00\x01t\x00\x00\x00\x02"
        );
        assert_eq!(
            record.encode_value().expect("value").expect("some").as_ref(),
            b"\x00\x03\x00\x00\x00\x00\x00\x00\x00\x0a\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
        );
    }

    #[test]
    fn reads_older_value_versions() {
        // OffsetCommitValue v1: offset, metadata, commit_timestamp, expire_timestamp.
        let mut v1 = BytesMut::new();
        v1.put_i16(1);
        v1.put_i64(99);
        v1.put_i16(2);
        v1.put_slice(b"md");
        v1.put_i64(5);
        v1.put_i64(6);
        let key = offset_record(0, None).encode_key().expect("key");
        let decoded = CoordinatorRecord::decode(&key, Some(&v1)).expect("decode");
        assert_eq!(
            decoded,
            Some(offset_record(
                0,
                Some(OffsetCommitValue {
                    offset: 99,
                    leader_epoch: -1,
                    metadata: "md".into(),
                    commit_timestamp: 5
                })
            ))
        );
    }

    #[test]
    fn rejects_truncated_and_skips_unknown_keys() {
        let record = group_record();
        let key = record.encode_key().expect("key");
        let value = record.encode_value().expect("value").expect("some");
        for cut in 0..value.len() {
            assert!(
                CoordinatorRecord::decode(&key, Some(&value[..cut])).is_err(),
                "cut {cut}"
            );
        }
        for cut in 0..key.len() {
            assert!(
                CoordinatorRecord::decode(&key[..cut], None).is_err(),
                "key cut {cut}"
            );
        }
        // Share group keys (version 10 and up) are not ours to replay.
        assert_eq!(
            CoordinatorRecord::decode(b"\x00\x0a\x00\x01g", Some(b"x")).expect("skip"),
            None
        );
    }

    #[test]
    fn batch_round_trip() {
        let records = vec![
            offset_record(
                1,
                Some(OffsetCommitValue {
                    offset: 1,
                    leader_epoch: 0,
                    metadata: String::new(),
                    commit_timestamp: 2,
                }),
            ),
            offset_record(2, None),
            group_record(),
        ];
        let batch = encode_batch(&records, 1_700_000_000_000).expect("encode");
        let header = crate::record_batch::validate_batch(&batch, 1 << 20).expect("valid batch");
        assert_eq!(header.record_count, 3, "one batch holds every record");
        assert_eq!(header.base_sequence, -1);
        assert_eq!(header.producer_id, -1);
        let decoded = decode_batches(batch.freeze()).expect("decode");
        assert_eq!(decoded, records);
    }
}
