//! KIP-848 consumer group records of `__consumer_offsets`, Kafka 4.1's byte layout.
//!
//! Kafka's new group coordinator (`group-coordinator/src/main/resources/common/message/
//! ConsumerGroup*{Key,Value}.json`, `CoordinatorRecordSerde`) stores a record as:
//!
//! - key: `i16` record type (Kafka's `CoordinatorRecordType` id, written where the classic
//!   records put their key version), then the key fields in the non-flexible version 0
//!   encoding (`i16`-length strings);
//! - value: `i16` value version (0 for every KIP-848 value in Kafka 4.1), then the fields in
//!   the flexible encoding (`flexibleVersions: "0+"`): compact strings and arrays
//!   (unsigned-varint length + 1, 0 = null), 16-byte UUIDs, and a tagged-field section after
//!   each struct. A null value is a tombstone.
//!
//! ```text
//! type key fields               value (version 0)
//!  3   group_id                 ConsumerGroupMetadataValue: epoch i32, [tag 0] metadata_hash i64
//!  4   group_id                 ConsumerGroupPartitionMetadataValue (not written by 4.1 groups
//!                               that use metadata_hash; read and skipped here)
//!  5   group_id, member_id      ConsumerGroupMemberMetadataValue: instance_id string?,
//!                               rack_id string?, client_id, client_host,
//!                               subscribed_topic_names [string], subscribed_topic_regex string?,
//!                               rebalance_timeout_ms i32, server_assignor string?,
//!                               [tag 0] classic_member_metadata {session_timeout_ms i32,
//!                               supported_protocols [{name, metadata bytes}]}? (a nullable
//!                               struct: marker byte 0 = null, 1 = present)
//!  6   group_id                 ConsumerGroupTargetAssignmentMetadataValue: assignment_epoch i32
//!  7   group_id, member_id      ConsumerGroupTargetAssignmentMemberValue:
//!                               topic_partitions [{topic_id uuid, partitions [i32]}]
//!  8   group_id, member_id      ConsumerGroupCurrentMemberAssignmentValue: member_epoch i32,
//!                               previous_member_epoch i32, state i8,
//!                               assigned_partitions [TopicPartitions],
//!                               partitions_pending_revocation [TopicPartitions]
//! 16   group_id, regular_expr.  ConsumerGroupRegularExpressionValue: topics [string],
//!                               version i64, timestamp i64
//! ```
//!
//! Tagged fields are written only when they differ from their default, as Kafka's generated
//! code does: `metadata_hash` is left out when 0; `classic_member_metadata` defaults to an
//! empty struct, so its null (every consumer-protocol member) is always written, as the one
//! marker byte 0 (checked against Kafka 4.1.2's bytes). A missing tag 0 reads as `None`.
//! Unknown tags are skipped on read. This module does no I/O and never panics on input.

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

use crate::record_error::RecordError;

/// Record type (key version) of `ConsumerGroupMetadataKey`.
pub const CONSUMER_GROUP_METADATA_RECORD_TYPE: i16 = 3;
/// Record type of `ConsumerGroupPartitionMetadataKey` (KIP-848 before KIP-1101's metadata hash).
pub const CONSUMER_GROUP_PARTITION_METADATA_RECORD_TYPE: i16 = 4;
/// Record type of `ConsumerGroupMemberMetadataKey`.
pub const CONSUMER_GROUP_MEMBER_METADATA_RECORD_TYPE: i16 = 5;
/// Record type of `ConsumerGroupTargetAssignmentMetadataKey`.
pub const CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA_RECORD_TYPE: i16 = 6;
/// Record type of `ConsumerGroupTargetAssignmentMemberKey`.
pub const CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER_RECORD_TYPE: i16 = 7;
/// Record type of `ConsumerGroupCurrentMemberAssignmentKey`.
pub const CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT_RECORD_TYPE: i16 = 8;
/// Record type of `ConsumerGroupRegularExpressionKey`.
pub const CONSUMER_GROUP_REGULAR_EXPRESSION_RECORD_TYPE: i16 = 16;
/// The value version of every KIP-848 consumer group value in Kafka 4.1 (`validVersions: "0"`).
pub const CONSUMER_GROUP_VALUE_VERSION: i16 = 0;

/// Partitions of one topic, by topic id (the `TopicPartitions` struct of Kafka's target and
/// current assignment values).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicPartitions {
    /// The topic id.
    pub topic_id: Uuid,
    /// The partition indexes.
    pub partitions: Vec<i32>,
}

/// A consumer group's epoch (Kafka's `ConsumerGroupMetadataValue`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsumerGroupMetadataValue {
    /// The group epoch.
    pub epoch: i32,
    /// Hash of the metadata of the subscribed topics (KIP-1101), tagged field 0, default 0.
    pub metadata_hash: i64,
}

/// One protocol of a member that joined with the classic protocol.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassicProtocol {
    /// The protocol (assignor) name.
    pub name: String,
    /// The protocol metadata (the consumer's subscription).
    pub metadata: Bytes,
}

/// The classic-protocol state of a member of a consumer group (KIP-848 online migration).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassicMemberMetadata {
    /// The JoinGroup session timeout, milliseconds.
    pub session_timeout_ms: i32,
    /// The protocols the member supports.
    pub supported_protocols: Vec<ClassicProtocol>,
}

/// A member's subscription and identity (Kafka's `ConsumerGroupMemberMetadataValue`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerGroupMemberMetadataValue {
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    /// `client.rack`.
    pub rack_id: Option<String>,
    /// The member's `client.id`.
    pub client_id: String,
    /// The member's address as the coordinator saw it (`/ip`).
    pub client_host: String,
    /// The subscribed topic names.
    pub subscribed_topic_names: Vec<String>,
    /// The subscribed regular expression (RE2J syntax), if any.
    pub subscribed_topic_regex: Option<String>,
    /// Milliseconds; Kafka's default -1.
    pub rebalance_timeout_ms: i32,
    /// The server-side assignor the member asked for, `None` for the group's default.
    pub server_assignor: Option<String>,
    /// Tagged field 0: set only for members that use the classic protocol; `None` otherwise.
    pub classic_member_metadata: Option<ClassicMemberMetadata>,
}

impl Default for ConsumerGroupMemberMetadataValue {
    /// Kafka's field defaults (`rebalance_timeout_ms` -1, everything else empty or null).
    fn default() -> Self {
        ConsumerGroupMemberMetadataValue {
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            subscribed_topic_names: Vec::new(),
            subscribed_topic_regex: None,
            rebalance_timeout_ms: -1,
            server_assignor: None,
            classic_member_metadata: None,
        }
    }
}

/// The epoch of the group's target assignment (`ConsumerGroupTargetAssignmentMetadataValue`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsumerGroupTargetAssignmentMetadataValue {
    /// The group epoch the target assignment was computed for.
    pub assignment_epoch: i32,
}

/// One member's target assignment (`ConsumerGroupTargetAssignmentMemberValue`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsumerGroupTargetAssignmentMemberValue {
    /// The partitions assigned to the member by the target assignment.
    pub topic_partitions: Vec<TopicPartitions>,
}

/// One member's current (reconciled) assignment (`ConsumerGroupCurrentMemberAssignmentValue`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsumerGroupCurrentMemberAssignmentValue {
    /// The member epoch.
    pub member_epoch: i32,
    /// The member epoch before the last change.
    pub previous_member_epoch: i32,
    /// Kafka's `MemberState` value: 0 STABLE, 1 UNREVOKED_PARTITIONS, 2 UNRELEASED_PARTITIONS,
    /// 3 UNKNOWN (Kafka's `MemberState.value()`).
    pub state: i8,
    /// The partitions the member owns.
    pub assigned_partitions: Vec<TopicPartitions>,
    /// The partitions the member must revoke.
    pub partitions_pending_revocation: Vec<TopicPartitions>,
}

/// The topics a subscribed regular expression resolved to (`ConsumerGroupRegularExpressionValue`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsumerGroupRegularExpressionValue {
    /// The matching topic names.
    pub topics: Vec<String>,
    /// The metadata image version the expression was resolved at.
    pub version: i64,
    /// Milliseconds since the Unix epoch of the resolution.
    pub timestamp: i64,
}

/// A KIP-848 value schema: its name and its flexible version 0 body.
pub(crate) trait FlexibleValue: Sized {
    /// Kafka's schema name, for errors.
    const SCHEMA: &'static str;
    /// Writes the body (after the version) including the trailing tagged-field section.
    fn write(&self, w: &mut Writer) -> Result<(), RecordError>;
    /// Reads the body (after the version) including the trailing tagged-field section.
    fn read(r: &mut Reader<'_>) -> Result<Self, RecordError>;
}

/// Encodes a value as `i16` version 0 then its flexible body.
pub(crate) fn encode_value<V: FlexibleValue>(value: &V) -> Result<Bytes, RecordError> {
    let mut w = Writer {
        buf: BytesMut::new(),
    };
    w.buf.put_i16(CONSUMER_GROUP_VALUE_VERSION);
    value.write(&mut w)?;
    Ok(w.buf.freeze())
}

/// Decodes a value written by [`encode_value`] (or by Kafka). Bytes after the value's
/// tagged fields are ignored, as Kafka's `ByteBufferAccessor` reader does.
pub(crate) fn decode_value<V: FlexibleValue>(bytes: &[u8]) -> Result<V, RecordError> {
    let mut reader = Reader { bytes };
    let version = reader.i16("value version")?;
    if version != CONSUMER_GROUP_VALUE_VERSION {
        return Err(RecordError::UnsupportedVersion {
            schema: V::SCHEMA,
            version,
        });
    }
    V::read(&mut reader)
}

/// Encodes the key of a KIP-848 record: type, group id, then the member id or regex.
pub(crate) fn encode_key(
    record_type: i16,
    group: &str,
    second: Option<&str>,
) -> Result<Bytes, RecordError> {
    let mut buf = BytesMut::new();
    buf.put_i16(record_type);
    put_key_string(&mut buf, "group_id", group)?;
    if let Some(second) = second {
        put_key_string(&mut buf, "member_id", second)?;
    }
    Ok(buf.freeze())
}

/// Reads the key fields after the record type: the group id, and the member id (or regular
/// expression) when `second` names that field.
pub(crate) fn decode_key(
    key_rest: &[u8],
    second: Option<&'static str>,
) -> Result<(String, Option<String>), RecordError> {
    let mut reader = Reader { bytes: key_rest };
    let group = reader.key_string("group_id")?;
    let second = second.map(|field| reader.key_string(field)).transpose()?;
    Ok((group, second))
}

impl FlexibleValue for ConsumerGroupMetadataValue {
    const SCHEMA: &'static str = "ConsumerGroupMetadataValue";

    fn write(&self, w: &mut Writer) -> Result<(), RecordError> {
        w.buf.put_i32(self.epoch);
        if self.metadata_hash != 0 {
            w.uvarint(1);
            w.uvarint(0);
            w.uvarint(8);
            w.buf.put_i64(self.metadata_hash);
        } else {
            w.uvarint(0);
        }
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, RecordError> {
        let epoch = r.i32("epoch")?;
        let mut metadata_hash = 0;
        r.tagged_fields(|tag, data| {
            if tag == 0 {
                let mut inner = Reader { bytes: data };
                metadata_hash = inner.i64("metadata_hash")?;
            }
            Ok(())
        })?;
        Ok(ConsumerGroupMetadataValue {
            epoch,
            metadata_hash,
        })
    }
}

impl FlexibleValue for ConsumerGroupMemberMetadataValue {
    const SCHEMA: &'static str = "ConsumerGroupMemberMetadataValue";

    fn write(&self, w: &mut Writer) -> Result<(), RecordError> {
        w.nullable_string("instance_id", self.instance_id.as_deref())?;
        w.nullable_string("rack_id", self.rack_id.as_deref())?;
        w.string("client_id", &self.client_id)?;
        w.string("client_host", &self.client_host)?;
        w.uvarint(self.subscribed_topic_names.len() as u64 + 1);
        for topic in &self.subscribed_topic_names {
            w.string("subscribed_topic_names", topic)?;
        }
        w.nullable_string(
            "subscribed_topic_regex",
            self.subscribed_topic_regex.as_deref(),
        )?;
        w.buf.put_i32(self.rebalance_timeout_ms);
        w.nullable_string("server_assignor", self.server_assignor.as_deref())?;
        // Tagged field 0, a nullable struct: Kafka's generated code writes it whenever it is
        // not the default (an empty struct), so a consumer-protocol member's null is written
        // as one byte 0x00; a present struct is 0x01 then the struct.
        w.uvarint(1);
        w.uvarint(0);
        match &self.classic_member_metadata {
            None => {
                w.uvarint(1);
                w.buf.put_i8(0);
            }
            Some(classic) => {
                let mut inner = Writer {
                    buf: BytesMut::new(),
                };
                inner.buf.put_i8(1);
                inner.buf.put_i32(classic.session_timeout_ms);
                inner.uvarint(classic.supported_protocols.len() as u64 + 1);
                for protocol in &classic.supported_protocols {
                    inner.string("name", &protocol.name)?;
                    inner.bytes(&protocol.metadata);
                    inner.uvarint(0);
                }
                inner.uvarint(0);
                w.uvarint(inner.buf.len() as u64);
                w.buf.put_slice(&inner.buf);
            }
        }
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, RecordError> {
        let instance_id = r.nullable_string("instance_id")?;
        let rack_id = r.nullable_string("rack_id")?;
        let client_id = r.string("client_id")?;
        let client_host = r.string("client_host")?;
        let subscribed_topic_names = r.string_array("subscribed_topic_names")?;
        let subscribed_topic_regex = r.nullable_string("subscribed_topic_regex")?;
        let rebalance_timeout_ms = r.i32("rebalance_timeout_ms")?;
        let server_assignor = r.nullable_string("server_assignor")?;
        let mut classic_member_metadata = None;
        r.tagged_fields(|tag, data| {
            if tag == 0 {
                let mut inner = Reader { bytes: data };
                match inner.i8("classic_member_metadata")? {
                    0 => {
                        classic_member_metadata = None;
                        return Ok(());
                    }
                    1 => {}
                    marker => {
                        return Err(RecordError::InvalidLength {
                            field: "classic_member_metadata",
                            length: marker as i32,
                        })
                    }
                }
                let session_timeout_ms = inner.i32("session_timeout_ms")?;
                let count = inner.array_len("supported_protocols")?;
                let mut supported_protocols = Vec::new();
                for _ in 0..count {
                    let name = inner.string("name")?;
                    let metadata = inner.compact_bytes("metadata")?;
                    inner.skip_tagged_fields()?;
                    supported_protocols.push(ClassicProtocol { name, metadata });
                }
                inner.skip_tagged_fields()?;
                classic_member_metadata = Some(ClassicMemberMetadata {
                    session_timeout_ms,
                    supported_protocols,
                });
            }
            Ok(())
        })?;
        Ok(ConsumerGroupMemberMetadataValue {
            instance_id,
            rack_id,
            client_id,
            client_host,
            subscribed_topic_names,
            subscribed_topic_regex,
            rebalance_timeout_ms,
            server_assignor,
            classic_member_metadata,
        })
    }
}

impl FlexibleValue for ConsumerGroupTargetAssignmentMetadataValue {
    const SCHEMA: &'static str = "ConsumerGroupTargetAssignmentMetadataValue";

    fn write(&self, w: &mut Writer) -> Result<(), RecordError> {
        w.buf.put_i32(self.assignment_epoch);
        w.uvarint(0);
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, RecordError> {
        let assignment_epoch = r.i32("assignment_epoch")?;
        r.skip_tagged_fields()?;
        Ok(ConsumerGroupTargetAssignmentMetadataValue { assignment_epoch })
    }
}

impl FlexibleValue for ConsumerGroupTargetAssignmentMemberValue {
    const SCHEMA: &'static str = "ConsumerGroupTargetAssignmentMemberValue";

    fn write(&self, w: &mut Writer) -> Result<(), RecordError> {
        w.topic_partitions(&self.topic_partitions);
        w.uvarint(0);
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, RecordError> {
        let topic_partitions = r.topic_partitions("topic_partitions")?;
        r.skip_tagged_fields()?;
        Ok(ConsumerGroupTargetAssignmentMemberValue { topic_partitions })
    }
}

impl FlexibleValue for ConsumerGroupCurrentMemberAssignmentValue {
    const SCHEMA: &'static str = "ConsumerGroupCurrentMemberAssignmentValue";

    fn write(&self, w: &mut Writer) -> Result<(), RecordError> {
        w.buf.put_i32(self.member_epoch);
        w.buf.put_i32(self.previous_member_epoch);
        w.buf.put_i8(self.state);
        w.topic_partitions(&self.assigned_partitions);
        w.topic_partitions(&self.partitions_pending_revocation);
        w.uvarint(0);
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, RecordError> {
        let value = ConsumerGroupCurrentMemberAssignmentValue {
            member_epoch: r.i32("member_epoch")?,
            previous_member_epoch: r.i32("previous_member_epoch")?,
            state: r.i8("state")?,
            assigned_partitions: r.topic_partitions("assigned_partitions")?,
            partitions_pending_revocation: r.topic_partitions("partitions_pending_revocation")?,
        };
        r.skip_tagged_fields()?;
        Ok(value)
    }
}

impl FlexibleValue for ConsumerGroupRegularExpressionValue {
    const SCHEMA: &'static str = "ConsumerGroupRegularExpressionValue";

    fn write(&self, w: &mut Writer) -> Result<(), RecordError> {
        w.uvarint(self.topics.len() as u64 + 1);
        for topic in &self.topics {
            w.string("topics", topic)?;
        }
        w.buf.put_i64(self.version);
        w.buf.put_i64(self.timestamp);
        w.uvarint(0);
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, RecordError> {
        let topics = r.string_array("topics")?;
        let value = ConsumerGroupRegularExpressionValue {
            topics,
            version: r.i64("version")?,
            timestamp: r.i64("timestamp")?,
        };
        r.skip_tagged_fields()?;
        Ok(value)
    }
}

/// Reads an `OffsetCommitValue` v4 body (after the version): the flexible layout Kafka 4.1
/// writes (`offset i64, leader_epoch i32, metadata compact string, commit_timestamp i64`, tagged
/// fields; the tagged `topic_id` is not kept). Returns (offset, leader_epoch, metadata,
/// commit_timestamp).
pub(crate) fn read_offset_commit_value_v4(
    body: &[u8],
) -> Result<(i64, i32, String, i64), RecordError> {
    let mut r = Reader { bytes: body };
    let offset = r.i64("offset")?;
    let leader_epoch = r.i32("leader_epoch")?;
    let metadata = r.string("metadata")?;
    let commit_timestamp = r.i64("commit_timestamp")?;
    r.skip_tagged_fields()?;
    Ok((offset, leader_epoch, metadata, commit_timestamp))
}

fn put_key_string(buf: &mut BytesMut, field: &'static str, value: &str) -> Result<(), RecordError> {
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

/// Writer of Kafka's flexible encoding.
pub(crate) struct Writer {
    buf: BytesMut,
}

impl Writer {
    fn uvarint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.buf.put_u8((value as u8 & 0x7f) | 0x80);
            value >>= 7;
        }
        self.buf.put_u8(value as u8);
    }

    fn string(&mut self, field: &'static str, value: &str) -> Result<(), RecordError> {
        if value.len() > i16::MAX as usize {
            // Kafka's generated writers refuse strings longer than 0x7fff bytes.
            return Err(RecordError::TooLong {
                field,
                length: value.len(),
            });
        }
        self.uvarint(value.len() as u64 + 1);
        self.buf.put_slice(value.as_bytes());
        Ok(())
    }

    fn nullable_string(
        &mut self,
        field: &'static str,
        value: Option<&str>,
    ) -> Result<(), RecordError> {
        match value {
            Some(value) => self.string(field, value),
            None => {
                self.uvarint(0);
                Ok(())
            }
        }
    }

    fn bytes(&mut self, value: &[u8]) {
        self.uvarint(value.len() as u64 + 1);
        self.buf.put_slice(value);
    }

    fn topic_partitions(&mut self, value: &[TopicPartitions]) {
        self.uvarint(value.len() as u64 + 1);
        for topic in value {
            self.buf.put_slice(topic.topic_id.as_bytes());
            self.uvarint(topic.partitions.len() as u64 + 1);
            for partition in &topic.partitions {
                self.buf.put_i32(*partition);
            }
            self.uvarint(0);
        }
    }
}

/// Reader of Kafka's (flexible and non-flexible) encodings over untrusted bytes.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], RecordError> {
        if self.bytes.len() < n {
            return Err(RecordError::Truncated { field });
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn i8(&mut self, field: &'static str) -> Result<i8, RecordError> {
        Ok(self.take(1, field)?[0] as i8)
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
        let mut array = [0u8; 8];
        array.copy_from_slice(self.take(8, field)?);
        Ok(i64::from_be_bytes(array))
    }

    fn uuid(&mut self, field: &'static str) -> Result<Uuid, RecordError> {
        let mut array = [0u8; 16];
        array.copy_from_slice(self.take(16, field)?);
        Ok(Uuid::from_bytes(array))
    }

    /// An unsigned varint of at most 32 bits, as Kafka's `ByteUtils.readUnsignedVarint`.
    fn uvarint(&mut self, field: &'static str) -> Result<u32, RecordError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = self.take(1, field)?[0];
            if i == 4 && b > 0x0f {
                return Err(RecordError::InvalidLength {
                    field,
                    length: i32::MIN,
                });
            }
            value |= ((b & 0x7f) as u32) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError::InvalidLength {
            field,
            length: i32::MIN,
        })
    }

    /// A compact length: `None` for null (0), else the length.
    fn compact_len(&mut self, field: &'static str) -> Result<Option<usize>, RecordError> {
        let raw = self.uvarint(field)?;
        Ok(raw.checked_sub(1).map(|n| n as usize))
    }

    fn array_len(&mut self, field: &'static str) -> Result<usize, RecordError> {
        self.compact_len(field)?
            .ok_or(RecordError::InvalidLength { field, length: -1 })
    }

    fn key_string(&mut self, field: &'static str) -> Result<String, RecordError> {
        let length = self.i16(field)?;
        if length < 0 {
            return Err(RecordError::InvalidLength {
                field,
                length: length as i32,
            });
        }
        let bytes = self.take(length as usize, field)?;
        let text = std::str::from_utf8(bytes).map_err(|_| RecordError::InvalidUtf8 { field })?;
        Ok(text.to_owned())
    }

    fn nullable_string(&mut self, field: &'static str) -> Result<Option<String>, RecordError> {
        let Some(length) = self.compact_len(field)? else {
            return Ok(None);
        };
        let bytes = self.take(length, field)?;
        let text = std::str::from_utf8(bytes).map_err(|_| RecordError::InvalidUtf8 { field })?;
        Ok(Some(text.to_owned()))
    }

    fn string(&mut self, field: &'static str) -> Result<String, RecordError> {
        self.nullable_string(field)?
            .ok_or(RecordError::InvalidLength { field, length: -1 })
    }

    fn compact_bytes(&mut self, field: &'static str) -> Result<Bytes, RecordError> {
        let length = self
            .compact_len(field)?
            .ok_or(RecordError::InvalidLength { field, length: -1 })?;
        Ok(Bytes::copy_from_slice(self.take(length, field)?))
    }

    fn string_array(&mut self, field: &'static str) -> Result<Vec<String>, RecordError> {
        let count = self.array_len(field)?;
        // Every element takes at least one byte: the loop ends at the input's end.
        let mut out = Vec::new();
        for _ in 0..count {
            out.push(self.string(field)?);
        }
        Ok(out)
    }

    fn topic_partitions(
        &mut self,
        field: &'static str,
    ) -> Result<Vec<TopicPartitions>, RecordError> {
        let count = self.array_len(field)?;
        let mut out = Vec::new();
        for _ in 0..count {
            let topic_id = self.uuid("topic_id")?;
            let partition_count = self.array_len("partitions")?;
            let mut partitions = Vec::new();
            for _ in 0..partition_count {
                partitions.push(self.i32("partitions")?);
            }
            self.skip_tagged_fields()?;
            out.push(TopicPartitions {
                topic_id,
                partitions,
            });
        }
        Ok(out)
    }

    /// Reads a tagged-field section, handing each field's tag and bytes to `each`.
    fn tagged_fields(
        &mut self,
        mut each: impl FnMut(u32, &[u8]) -> Result<(), RecordError>,
    ) -> Result<(), RecordError> {
        let count = self.uvarint("tagged fields")?;
        for _ in 0..count {
            let tag = self.uvarint("tag")?;
            let size = self.uvarint("tag size")? as usize;
            let data = self.take(size, "tagged field")?;
            each(tag, data)?;
        }
        Ok(())
    }

    fn skip_tagged_fields(&mut self) -> Result<(), RecordError> {
        self.tagged_fields(|_, _| Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer_offsets::{decode_batches, encode_batch, CoordinatorRecord};
    use kafka_protocol::records::RecordBatchDecoder;

    /// One `__consumer_offsets-7` segment of Kafka 4.1.2: a `group.protocol=consumer` group
    /// `g848` with two librdkafka members (one static, with a regex), commits, then both leave
    /// (see tests/fixtures/kafka-4.1.2-consumer-group/README.md).
    const KAFKA_SEGMENT: &[u8] =
        include_bytes!("../tests/fixtures/kafka-4.1.2-consumer-group/00000000000000000000.log");

    const CAP_A: Uuid = Uuid::from_u128(0x91ce58d38426486fac8c38746c1e7ad2);
    const CAP_B: Uuid = Uuid::from_u128(0xdc318b88aaad4d68be316f49ea56c623);
    const MEMBER_1: &str = "3vnjivm3SoKrksbkukwGAA";
    const MEMBER_2: &str = "fJEdleq6RsaLv60mudKtmg";

    /// Every (key, value) of the Kafka segment, as Kafka wrote the bytes.
    fn kafka_records() -> Vec<(Bytes, Option<Bytes>)> {
        let mut buf = Bytes::from_static(KAFKA_SEGMENT);
        let sets = RecordBatchDecoder::decode_all(&mut buf).expect("Kafka's segment decodes");
        sets.into_iter()
            .flat_map(|set| set.records)
            .map(|r| (r.key.expect("key"), r.value))
            .collect()
    }

    #[test]
    fn decodes_kafka_segment() {
        let records = decode_batches(Bytes::from_static(KAFKA_SEGMENT)).expect("decode");
        assert_eq!(
            records.len(),
            35,
            "every record of the segment: {records:#?}"
        );
        assert_eq!(
            records[0],
            CoordinatorRecord::ConsumerGroupMemberMetadata {
                group: "g848".into(),
                member_id: MEMBER_1.into(),
                value: Some(ConsumerGroupMemberMetadataValue {
                    instance_id: None,
                    rack_id: Some("rack-x".into()),
                    client_id: "cap-1".into(),
                    client_host: "/127.0.0.1".into(),
                    subscribed_topic_names: vec!["cap-a".into()],
                    // librdkafka sends an empty (not null) regex with a topic-name subscription.
                    subscribed_topic_regex: Some(String::new()),
                    rebalance_timeout_ms: 300_000,
                    server_assignor: None,
                    classic_member_metadata: None,
                }),
            }
        );
        assert_eq!(
            records[1],
            CoordinatorRecord::ConsumerGroupMetadata {
                group: "g848".into(),
                value: Some(ConsumerGroupMetadataValue {
                    epoch: 1,
                    metadata_hash: 7_994_317_240_276_783_047,
                }),
            }
        );
        assert_eq!(
            records[2],
            CoordinatorRecord::ConsumerGroupTargetAssignmentMember {
                group: "g848".into(),
                member_id: MEMBER_1.into(),
                value: Some(ConsumerGroupTargetAssignmentMemberValue {
                    topic_partitions: vec![TopicPartitions {
                        topic_id: CAP_A,
                        partitions: vec![0, 1],
                    }],
                }),
            }
        );
        assert_eq!(
            records[3],
            CoordinatorRecord::ConsumerGroupTargetAssignmentMetadata {
                group: "g848".into(),
                value: Some(ConsumerGroupTargetAssignmentMetadataValue {
                    assignment_epoch: 1
                }),
            }
        );
        assert_eq!(
            records[4],
            CoordinatorRecord::ConsumerGroupCurrentMemberAssignment {
                group: "g848".into(),
                member_id: MEMBER_1.into(),
                value: Some(ConsumerGroupCurrentMemberAssignmentValue {
                    member_epoch: 1,
                    previous_member_epoch: 0,
                    state: 0,
                    assigned_partitions: vec![TopicPartitions {
                        topic_id: CAP_A,
                        partitions: vec![0, 1],
                    }],
                    partitions_pending_revocation: vec![],
                }),
            }
        );
        match &records[5] {
            CoordinatorRecord::ConsumerGroupMemberMetadata {
                member_id,
                value: Some(value),
                ..
            } => {
                assert_eq!(member_id, MEMBER_2);
                assert_eq!(value.instance_id.as_deref(), Some("inst-2"));
                assert_eq!(value.subscribed_topic_regex.as_deref(), Some("(^cap-.*)"));
                assert!(value.subscribed_topic_names.is_empty());
            }
            other => panic!("record 5: {other:?}"),
        }
        assert_eq!(
            records[7],
            CoordinatorRecord::ConsumerGroupRegularExpression {
                group: "g848".into(),
                regex: "(^cap-.*)".into(),
                value: Some(ConsumerGroupRegularExpressionValue {
                    topics: vec!["cap-a".into(), "cap-b".into()],
                    version: 243,
                    timestamp: 1_796_153_558_986,
                }),
            }
        );
        match &records[9] {
            CoordinatorRecord::ConsumerGroupTargetAssignmentMember {
                value: Some(value), ..
            } => assert_eq!(value.topic_partitions[0].topic_id, CAP_B),
            other => panic!("record 9: {other:?}"),
        }
        // OffsetCommitValue v4 (flexible) as Kafka 4.1 writes it for this group.
        match &records[12] {
            CoordinatorRecord::OffsetCommit {
                key,
                value: Some(value),
            } => {
                assert_eq!((key.topic.as_str(), key.partition), ("cap-a", 1));
                assert_eq!((value.offset, value.leader_epoch), (1, 0));
                assert_eq!(value.commit_timestamp, 1_796_153_560_508);
            }
            other => panic!("record 12: {other:?}"),
        }
        // A static member's leave: epoch -2 (LEAVE_GROUP_STATIC_MEMBER_EPOCH).
        match &records[25] {
            CoordinatorRecord::ConsumerGroupCurrentMemberAssignment {
                value: Some(value), ..
            } => assert_eq!((value.member_epoch, value.previous_member_epoch), (-2, 1)),
            other => panic!("record 25: {other:?}"),
        }
        // The members' tombstones, then the empty group's epoch without a metadata hash.
        assert!(records[26..29].iter().all(CoordinatorRecord::is_tombstone));
        assert!(records[30..34].iter().all(CoordinatorRecord::is_tombstone));
        assert_eq!(
            records[33],
            CoordinatorRecord::ConsumerGroupRegularExpression {
                group: "g848".into(),
                regex: "(^cap-.*)".into(),
                value: None,
            }
        );
        assert_eq!(
            records[34],
            CoordinatorRecord::ConsumerGroupMetadata {
                group: "g848".into(),
                value: Some(ConsumerGroupMetadataValue {
                    epoch: 4,
                    metadata_hash: 0,
                }),
            }
        );
    }

    /// Every KIP-848 key and value re-encodes to exactly Kafka's bytes.
    #[test]
    fn encodes_kafka_bytes() {
        let mut checked = 0;
        for (key, value) in kafka_records() {
            let record = CoordinatorRecord::decode(&key, value.as_deref())
                .expect("decode")
                .expect("known record");
            if matches!(record, CoordinatorRecord::OffsetCommit { .. }) {
                // Ringtail writes OffsetCommitValue v3; Kafka 4.1 wrote v4.
                continue;
            }
            assert_eq!(record.encode_key().expect("key"), key, "{record:?}");
            assert_eq!(record.encode_value().expect("value"), value, "{record:?}");
            checked += 1;
        }
        assert_eq!(checked, 23, "the segment's KIP-848 records");
    }

    #[test]
    fn round_trips_classic_member_metadata_and_batches() {
        let records = vec![
            CoordinatorRecord::ConsumerGroupMemberMetadata {
                group: "g".into(),
                member_id: "m".into(),
                value: Some(ConsumerGroupMemberMetadataValue {
                    instance_id: Some("i".into()),
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    server_assignor: Some("range".into()),
                    classic_member_metadata: Some(ClassicMemberMetadata {
                        session_timeout_ms: 45_000,
                        supported_protocols: vec![ClassicProtocol {
                            name: "cooperative-sticky".into(),
                            metadata: Bytes::from_static(b"\x00\x03sub"),
                        }],
                    }),
                    ..Default::default()
                }),
            },
            CoordinatorRecord::ConsumerGroupCurrentMemberAssignment {
                group: "g".into(),
                member_id: "m".into(),
                value: Some(ConsumerGroupCurrentMemberAssignmentValue {
                    member_epoch: 3,
                    previous_member_epoch: 2,
                    state: 1,
                    assigned_partitions: vec![TopicPartitions {
                        topic_id: CAP_A,
                        partitions: vec![2],
                    }],
                    partitions_pending_revocation: vec![TopicPartitions {
                        topic_id: CAP_B,
                        partitions: vec![0, 5],
                    }],
                }),
            },
            CoordinatorRecord::ConsumerGroupTargetAssignmentMember {
                group: "g".into(),
                member_id: "m".into(),
                value: None,
            },
        ];
        for record in &records {
            let key = record.encode_key().expect("key");
            let value = record.encode_value().expect("value");
            let decoded = CoordinatorRecord::decode(&key, value.as_deref()).expect("decode");
            assert_eq!(decoded.as_ref(), Some(record));
        }
        let batch = encode_batch(&records, 1_700_000_000_000).expect("batch");
        assert_eq!(decode_batches(batch.freeze()).expect("decode"), records);
    }

    #[test]
    fn never_panics_on_cut_or_garbled_values() {
        for (key, value) in kafka_records() {
            let Some(value) = value else { continue };
            for cut in 0..value.len() {
                // A cut value is an error (or, for a cut inside trailing tagged fields, still
                // an error): never a panic, never a silent success.
                assert!(
                    CoordinatorRecord::decode(&key, Some(&value[..cut])).is_err(),
                    "cut {cut} of {key:?}"
                );
            }
            for cut in 0..key.len() {
                let _ = CoordinatorRecord::decode(&key[..cut], Some(&value));
            }
            let mut garbled = value.to_vec();
            for i in 2..garbled.len() {
                garbled[i] ^= 0xa5;
                let _ = CoordinatorRecord::decode(&key, Some(&garbled));
                garbled[i] ^= 0xa5;
            }
        }
    }

    #[test]
    fn skips_unknown_tags_and_refuses_other_value_versions() {
        // ConsumerGroupTargetAssignmentMetadataValue with an unknown tag 5 of 2 bytes.
        let key = CoordinatorRecord::ConsumerGroupTargetAssignmentMetadata {
            group: "g".into(),
            value: None,
        }
        .encode_key()
        .expect("key");
        let value = b"\x00\x00\x00\x00\x00\x07\x01\x05\x02\xab\xcd";
        assert_eq!(
            CoordinatorRecord::decode(&key, Some(value)).expect("decode"),
            Some(CoordinatorRecord::ConsumerGroupTargetAssignmentMetadata {
                group: "g".into(),
                value: Some(ConsumerGroupTargetAssignmentMetadataValue {
                    assignment_epoch: 7
                }),
            })
        );
        assert!(matches!(
            CoordinatorRecord::decode(&key, Some(b"\x00\x01\x00\x00\x00\x07\x00")),
            Err(RecordError::UnsupportedVersion { version: 1, .. })
        ));
        // ConsumerGroupPartitionMetadata (type 4) and share/streams types are skipped.
        assert_eq!(
            CoordinatorRecord::decode(b"\x00\x04\x00\x01g", Some(b"\x00\x00\x01\x00")).expect("4"),
            None
        );
        assert_eq!(
            CoordinatorRecord::decode(b"\x00\x11\x00\x01g", None).expect("17"),
            None
        );
    }

    /// Writes a segment of Ringtail-encoded batches holding every KIP-848 record type (values
    /// and tombstones) as `00000000000000000000.log` in `$RINGTAIL_K848_SEGMENT_DIR` (else a
    /// temporary directory), and reads it back. tests/test_consumer_group_records.py runs this
    /// test with the variable set and has Kafka's `kafka-dump-log.sh --offsets-decoder` read
    /// the file.
    #[test]
    fn writes_segment_for_kafka_dump_log() {
        let group = "rt848".to_string();
        let member = "rt-member-1".to_string();
        let batches = vec![
            vec![
                CoordinatorRecord::ConsumerGroupMemberMetadata {
                    group: group.clone(),
                    member_id: member.clone(),
                    value: Some(ConsumerGroupMemberMetadataValue {
                        instance_id: Some("rt-instance".into()),
                        rack_id: Some("rt-rack".into()),
                        client_id: "rt-client".into(),
                        client_host: "/127.0.0.1".into(),
                        subscribed_topic_names: vec!["rt-a".into()],
                        subscribed_topic_regex: Some("rt-.*".into()),
                        rebalance_timeout_ms: 300_000,
                        server_assignor: Some("range".into()),
                        classic_member_metadata: None,
                    }),
                },
                CoordinatorRecord::ConsumerGroupMetadata {
                    group: group.clone(),
                    value: Some(ConsumerGroupMetadataValue {
                        epoch: 7,
                        metadata_hash: -42,
                    }),
                },
                CoordinatorRecord::ConsumerGroupTargetAssignmentMember {
                    group: group.clone(),
                    member_id: member.clone(),
                    value: Some(ConsumerGroupTargetAssignmentMemberValue {
                        topic_partitions: vec![TopicPartitions {
                            topic_id: CAP_A,
                            partitions: vec![0, 2],
                        }],
                    }),
                },
                CoordinatorRecord::ConsumerGroupTargetAssignmentMetadata {
                    group: group.clone(),
                    value: Some(ConsumerGroupTargetAssignmentMetadataValue {
                        assignment_epoch: 7,
                    }),
                },
                CoordinatorRecord::ConsumerGroupCurrentMemberAssignment {
                    group: group.clone(),
                    member_id: member.clone(),
                    value: Some(ConsumerGroupCurrentMemberAssignmentValue {
                        member_epoch: 7,
                        previous_member_epoch: 6,
                        state: 1,
                        assigned_partitions: vec![TopicPartitions {
                            topic_id: CAP_A,
                            partitions: vec![0],
                        }],
                        partitions_pending_revocation: vec![TopicPartitions {
                            topic_id: CAP_B,
                            partitions: vec![3],
                        }],
                    }),
                },
                CoordinatorRecord::ConsumerGroupRegularExpression {
                    group: group.clone(),
                    regex: "rt-.*".into(),
                    value: Some(ConsumerGroupRegularExpressionValue {
                        topics: vec!["rt-a".into(), "rt-b".into()],
                        version: 12,
                        timestamp: 1_700_000_000_000,
                    }),
                },
                CoordinatorRecord::ConsumerGroupMemberMetadata {
                    group: group.clone(),
                    member_id: "rt-classic".into(),
                    value: Some(ConsumerGroupMemberMetadataValue {
                        client_id: "rt-classic-client".into(),
                        client_host: "/127.0.0.1".into(),
                        classic_member_metadata: Some(ClassicMemberMetadata {
                            session_timeout_ms: 45_000,
                            supported_protocols: vec![ClassicProtocol {
                                name: "range".into(),
                                metadata: Bytes::from_static(b"\x00\x03"),
                            }],
                        }),
                        ..Default::default()
                    }),
                },
            ],
            vec![
                CoordinatorRecord::ConsumerGroupCurrentMemberAssignment {
                    group: group.clone(),
                    member_id: member.clone(),
                    value: None,
                },
                CoordinatorRecord::ConsumerGroupTargetAssignmentMember {
                    group: group.clone(),
                    member_id: member.clone(),
                    value: None,
                },
                CoordinatorRecord::ConsumerGroupMemberMetadata {
                    group: group.clone(),
                    member_id: member,
                    value: None,
                },
                CoordinatorRecord::ConsumerGroupRegularExpression {
                    group: group.clone(),
                    regex: "rt-.*".into(),
                    value: None,
                },
                CoordinatorRecord::ConsumerGroupTargetAssignmentMetadata {
                    group: group.clone(),
                    value: None,
                },
                CoordinatorRecord::ConsumerGroupMetadata { group, value: None },
            ],
        ];
        let mut segment = Vec::new();
        let mut next_offset = 0i64;
        let mut all = Vec::new();
        for records in &batches {
            let mut batch = encode_batch(records, 1_700_000_000_000).expect("encode");
            crate::record_batch::set_base_offset(&mut batch, next_offset);
            next_offset += records.len() as i64;
            segment.extend_from_slice(&batch);
            all.extend(records.iter().cloned());
        }
        assert_eq!(
            decode_batches(Bytes::from(segment.clone())).expect("decode"),
            all
        );
        let dir = match std::env::var_os("RINGTAIL_K848_SEGMENT_DIR") {
            Some(dir) => std::path::PathBuf::from(dir),
            None => std::env::temp_dir().join(format!("rt-k848-{}", std::process::id())),
        };
        std::fs::create_dir_all(&dir).expect("segment dir");
        std::fs::write(dir.join("00000000000000000000.log"), &segment).expect("write segment");
    }
}
