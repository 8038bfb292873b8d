//! The error of the `__consumer_offsets` record schemas ([`crate::consumer_offsets`],
//! [`crate::consumer_group_records`]), also re-exported as `consumer_offsets::RecordError`.

/// Why a stored record could not be decoded or a record could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Fewer bytes than the schema needs.
    #[error("record truncated while reading {field}")]
    Truncated {
        /// The schema field being read.
        field: &'static str,
    },
    /// A negative length other than -1 (null), or null where the schema forbids it.
    #[error("invalid length {length} for {field}")]
    InvalidLength {
        /// The schema field being read.
        field: &'static str,
        /// The length prefix as stored.
        length: i32,
    },
    /// A string field that is not UTF-8.
    #[error("field {field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The schema field being read.
        field: &'static str,
    },
    /// A value schema version this broker does not read.
    #[error("unsupported {schema} version {version}")]
    UnsupportedVersion {
        /// The schema (`OffsetCommitValue`, `GroupMetadataValue`, ...).
        schema: &'static str,
        /// The version as stored.
        version: i16,
    },
    /// A record without a key.
    #[error("record without a key")]
    MissingKey,
    /// A string or byte field longer than its length prefix can say.
    #[error("field {field} is {length} bytes, too long to encode")]
    TooLong {
        /// The schema field being written.
        field: &'static str,
        /// Its length in bytes.
        length: usize,
    },
    /// The record batch itself could not be encoded or decoded.
    #[error("record batch: {source}")]
    Batch {
        /// kafka-protocol's record encoder or decoder error.
        #[source]
        source: anyhow::Error,
    },
}
