//! The partition as leader: its leader epoch (stamped on appended batches, checked against a
//! request's `current_leader_epoch`) and DeleteRecords (moving the log start offset).
//!
//! Kafka's rules: `Partition.makeLeader` assigns the new epoch at the log end offset in the
//! leader epoch cache; `Partition.getLocalLog` / `checkCurrentLeaderEpoch` answer
//! FENCED_LEADER_EPOCH for an older and UNKNOWN_LEADER_EPOCH for a newer epoch than the leader's
//! (-1: not checked); `Partition.deleteRecordsOnLeader` takes -1 as the high watermark and
//! refuses offsets below 0 or above the high watermark with OFFSET_OUT_OF_RANGE.

use std::sync::Arc;

use super::Partition;
use crate::log::LogError;

/// A request's `current_leader_epoch` does not match the partition's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LeaderEpochError {
    /// Older than the leader's: the client has stale metadata (FENCED_LEADER_EPOCH).
    #[error("leader epoch {requested} is older than the current {current}")]
    Fenced { requested: i32, current: i32 },
    /// Newer than the leader's: the broker has not seen it yet (UNKNOWN_LEADER_EPOCH).
    #[error("leader epoch {requested} is newer than the current {current}")]
    Unknown { requested: i32, current: i32 },
}

/// Why DeleteRecords did not move the log start offset.
#[derive(Debug, thiserror::Error)]
pub enum DeleteRecordsError {
    /// Below 0 (other than -1) or above the high watermark (OFFSET_OUT_OF_RANGE).
    #[error("offset {offset} is not in [0, high watermark {high_watermark}]")]
    OffsetOutOfRange { offset: i64, high_watermark: i64 },
    /// The partition is offline after a storage error.
    #[error("partition offline: {0}")]
    Offline(Arc<LogError>),
    /// The checkpoint or a segment deletion failed.
    #[error(transparent)]
    Log(#[from] LogError),
}

/// DeleteRecords' offset meaning "up to the high watermark" (`DeleteRecordsRequest.HIGH_WATERMARK`).
pub const DELETE_RECORDS_HIGH_WATERMARK: i64 = -1;

impl Partition {
    /// Makes this partition leader in `leader_epoch` (from the metadata image): later appends
    /// are stamped with it and the epoch starts at the log end offset in `leader-epoch-checkpoint`.
    pub fn become_leader(&self, leader_epoch: i32) -> Result<(), LogError> {
        assert!(
            leader_epoch >= 0,
            "invariant: a leader epoch is not negative"
        );
        self.leader_epoch.set(leader_epoch);
        self.log.assign_leader_epoch(leader_epoch)
    }

    /// The partition leader epoch (-1 before [`Self::become_leader`]).
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.get()
    }

    /// Checks a request's `current_leader_epoch` (-1 = no check).
    pub fn check_leader_epoch(&self, requested: i32) -> Result<(), LeaderEpochError> {
        let current = self.leader_epoch.get();
        match requested {
            -1 => Ok(()),
            r if r < current => Err(LeaderEpochError::Fenced { requested, current }),
            r if r > current => Err(LeaderEpochError::Unknown { requested, current }),
            _ => Ok(()),
        }
    }

    /// DeleteRecords: moves the log start offset to `offset` (-1 = the high watermark), deleting
    /// whole segments below it and dropping cached batches below it; reads below it then answer
    /// OFFSET_OUT_OF_RANGE. Returns the new low watermark (the log start offset).
    pub async fn delete_records(&self, offset: i64) -> Result<i64, DeleteRecordsError> {
        if let Some(error) = self.offline.borrow().as_ref() {
            return Err(DeleteRecordsError::Offline(error.clone()));
        }
        let high_watermark = self.high_watermark.get();
        let target = if offset == DELETE_RECORDS_HIGH_WATERMARK {
            high_watermark
        } else {
            offset
        };
        if target < 0 || target > high_watermark {
            return Err(DeleteRecordsError::OffsetOutOfRange {
                offset,
                high_watermark,
            });
        }
        let low_watermark = self.log.delete_records(target).await?;
        self.cache.borrow_mut().drop_below(low_watermark);
        self.assert_offsets();
        Ok(low_watermark)
    }
}
