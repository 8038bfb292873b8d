//! `log.preallocate` / `preallocate` (Kafka's names): the active segment's file is extended
//! ahead of its appends with written zeros, so that appends overwrite allocated blocks.
//!
//! Why: on ext4 an O_DIRECT write that extends the file (or fills an unwritten extent, which is
//! what `fallocate` makes) cannot be issued without blocking, so io_uring hands every append to
//! one of its worker threads (`iou-wrk-*`), and each append's fdatasync waits for a journal
//! commit. Measured on this project's machine (results/2026-12-02-preallocate): the workers
//! took about 30% of the broker's CPU at acks=1. An overwrite of written blocks is issued inline
//! by the shard. Kafka's `preallocate` sets the file length to `segment.bytes` at creation,
//! which on ext4 makes a sparse file and would not help here; the README says how they differ.
//!
//! How: after an append, when fewer than half a chunk of zeros lies ahead of the write
//! position, one background task writes the next chunk of zeros (one DMA write, no fdatasync:
//! the next group-commit fdatasync makes the new size durable with the data). A chunk starts
//! at [`CHUNK_MIN_BYTES`] and doubles, up to [`CHUNK_MAX_BYTES`], while the previous chunk was
//! used up within [`GROWTH_WINDOW`], so an idle partition holds at most a few MiB of zeros.
//! Fills never pass `segment.bytes` (rounded up to the alignment).
//!
//! Invariants (asserted in [`Preallocation::fill_range`] and the segment's append): a fill
//! writes only at or above the end of every append issued so far (`reserved_end`), and an
//! append whose aligned end lies beyond the zeroed end waits while a fill runs, so zeros never
//! overwrite data. A seal stops further fills and waits for the running one before it truncates
//! the file to its logical size. A failed fill (ENOSPC, EIO) is logged and stops preallocation
//! of that segment; appends then extend the file as without it and meet the fault themselves.
//! After a crash the zeros past the last batch are trimmed by recovery as zero padding.

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use glommio::io::DmaFile;

use super::segment::align_up;

/// Size of the first fill of a segment, and after a pause, in bytes.
pub const CHUNK_MIN_BYTES: u64 = 1 << 20;
/// Largest fill, in bytes.
pub const CHUNK_MAX_BYTES: u64 = 16 << 20;
/// A fill is written in pieces of this size, one after another, so that appends' writes
/// queued behind it on the device wait for at most one piece.
pub const WRITE_BYTES: u64 = 256 << 10;
/// A chunk used up within this time after the previous fill doubles the next one.
pub const GROWTH_WINDOW: Duration = Duration::from_secs(1);
const _: () = assert!(CHUNK_MIN_BYTES <= CHUNK_MAX_BYTES && CHUNK_MIN_BYTES.is_power_of_two());
const _: () = assert!(WRITE_BYTES.is_power_of_two() && WRITE_BYTES <= CHUNK_MIN_BYTES);

/// Preallocation state of one segment; shared (`Rc`) with its running fill task.
pub(crate) struct Preallocation {
    /// File bytes below this are written blocks (data or zeros of a completed fill).
    zeroed_end: Cell<u64>,
    /// Aligned end of the latest append issued (its write may still be in flight).
    reserved_end: Cell<u64>,
    /// A fill task is running.
    running: Cell<bool>,
    /// No fill starts any more (sealed, or a fill failed).
    stopped: Cell<bool>,
    /// Size of the next fill, bytes.
    next_chunk: Cell<u64>,
    /// When the last fill completed.
    last_fill: Cell<Option<Instant>>,
    /// Appends and seals waiting for the running fill.
    waiters: RefCell<Vec<oneshot::Sender<()>>>,
    /// Fills completed (tests, observability).
    fills: Cell<u64>,
}

impl Preallocation {
    /// State for a segment whose file holds `size_bytes` of data (and nothing beyond).
    pub(crate) fn new(size_bytes: u64, alignment: u64) -> Rc<Preallocation> {
        let end = align_up(size_bytes, alignment);
        Rc::new(Preallocation {
            zeroed_end: Cell::new(end),
            reserved_end: Cell::new(end),
            running: Cell::new(false),
            stopped: Cell::new(false),
            next_chunk: Cell::new(CHUNK_MIN_BYTES),
            last_fill: Cell::new(None),
            waiters: RefCell::new(Vec::new()),
            fills: Cell::new(0),
        })
    }

    /// Fills completed so far.
    #[cfg(test)]
    pub(crate) fn fills(&self) -> u64 {
        self.fills.get()
    }

    /// File bytes below this are written blocks.
    #[cfg(test)]
    pub(crate) fn zeroed_end(&self) -> u64 {
        self.zeroed_end.get()
    }

    /// Called by an append before its write of the aligned range ending at `end`: records the
    /// reservation, then waits while a running fill could cover part of it.
    pub(crate) async fn before_write(&self, end: u64) {
        self.reserved_end.set(self.reserved_end.get().max(end));
        while self.running.get() && end > self.zeroed_end.get() {
            self.wait_for_fill().await;
        }
        assert!(
            !self.running.get() || end <= self.zeroed_end.get(),
            "invariant: an append beyond the zeroed end never overlaps a running fill"
        );
    }

    /// After a write ending at `end` completed: the blocks below it are written.
    pub(crate) fn after_write(&self, end: u64) {
        self.zeroed_end.set(self.zeroed_end.get().max(end));
    }

    /// Stops further fills and waits for the running one (a seal, before its truncate).
    pub(crate) async fn stop(&self) {
        self.stopped.set(true);
        while self.running.get() {
            self.wait_for_fill().await;
        }
    }

    async fn wait_for_fill(&self) {
        let (tx, rx) = oneshot::channel();
        self.waiters.borrow_mut().push(tx);
        let _ = rx.await;
    }

    /// The range the next fill would write, if one is due: none runs, fewer than half a chunk
    /// of zeros lies ahead of the reserved end, and the range stays below `limit`.
    fn fill_range(&self, limit: u64) -> Option<(u64, u64)> {
        if self.stopped.get() || self.running.get() {
            return None;
        }
        let start = self.zeroed_end.get().max(self.reserved_end.get());
        let ahead = self
            .zeroed_end
            .get()
            .saturating_sub(self.reserved_end.get());
        let chunk = self.next_chunk.get();
        if ahead >= chunk / 2 || start >= limit {
            return None;
        }
        let end = (start + chunk).min(limit);
        assert!(
            start >= self.reserved_end.get(),
            "invariant: a fill starts at or above every issued append"
        );
        Some((start, end))
    }
}

/// Starts a background fill of `segment`'s file when one is due (see the module doc).
/// `segment_bytes` bounds the zeroed end (rounded up to the file's alignment).
pub(crate) fn maybe_fill(
    state: &Rc<Preallocation>,
    file: &Rc<DmaFile>,
    log_path: &std::path::Path,
    segment_bytes: u64,
) {
    let limit = align_up(segment_bytes, file.alignment());
    let Some((start, end)) = state.fill_range(limit) else {
        return;
    };
    state.running.set(true);
    let (state, file, log_path) = (state.clone(), file.clone(), log_path.to_path_buf());
    glommio::spawn_local(async move {
        let result = write_zeros(&file, start, end).await;
        finish_fill(&state, &log_path, start, end, result);
    })
    .detach();
}

async fn write_zeros(file: &DmaFile, start: u64, end: u64) -> std::io::Result<()> {
    let mut position = start;
    while position < end {
        let length = (end - position).min(WRITE_BYTES) as usize;
        let mut buffer = file.alloc_dma_buffer(length);
        buffer.as_bytes_mut().fill(0);
        let written = file.write_at(buffer, position).await?;
        if written != length {
            return Err(std::io::Error::other(format!(
                "short write: {written} of {length} bytes"
            )));
        }
        position += length as u64;
    }
    Ok(())
}

fn finish_fill(
    state: &Preallocation,
    log_path: &Path,
    start: u64,
    end: u64,
    result: std::io::Result<()>,
) {
    match result {
        Ok(()) => {
            state.zeroed_end.set(state.zeroed_end.get().max(end));
            state.fills.set(state.fills.get() + 1);
            let now = Instant::now();
            let grow = state
                .last_fill
                .get()
                .is_some_and(|last| now.duration_since(last) < GROWTH_WINDOW);
            state.next_chunk.set(if grow {
                (state.next_chunk.get() * 2).min(CHUNK_MAX_BYTES)
            } else {
                CHUNK_MIN_BYTES
            });
            state.last_fill.set(Some(now));
        }
        Err(error) => {
            // Not a storage failure of the log: no data was written. Appends extend the file
            // from here on as without preallocation and report a failing disk themselves.
            tracing::warn!(
                path = %log_path.display(), start, end, %error,
                "preallocating the segment failed; appends extend the file from here on"
            );
            state.stopped.set(true);
        }
    }
    state.running.set(false);
    for waiter in state.waiters.borrow_mut().drain(..) {
        let _ = waiter.send(());
    }
}
