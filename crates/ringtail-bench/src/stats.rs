//! Counters shared between the worker executors and the reporting thread, and the reporter
//! that prints kafka-producer-perf-test's window lines and drives the progress bar.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Highest latency the histograms record, in microseconds (one hour).
pub const LATENCY_MAX_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds with 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("valid histogram bounds")
}

/// Progress counters, updated once per completed batch.
#[derive(Debug, Default)]
pub struct SharedStats {
    /// Records completed (acknowledged, or consumed).
    pub records: AtomicU64,
    /// Value bytes completed.
    pub bytes: AtomicU64,
    window_records: AtomicU64,
    window_bytes: AtomicU64,
    window_latency_sum_us: AtomicU64,
    window_latency_max_us: AtomicU64,
    /// Set to make every worker stop early (an error, or the duration ran out).
    pub stop: AtomicBool,
    /// Workers that have finished.
    pub workers_done: AtomicUsize,
    /// The first error a worker met.
    pub first_error: Mutex<Option<String>>,
}

impl SharedStats {
    /// Adds a completed batch of `records` records, `bytes` value bytes, the sum and the
    /// maximum of their latencies.
    pub fn complete(&self, records: u64, bytes: u64, latency_sum_us: u64, latency_max_us: u64) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.window_records.fetch_add(records, Ordering::Relaxed);
        self.window_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.window_latency_sum_us
            .fetch_add(latency_sum_us, Ordering::Relaxed);
        self.window_latency_max_us
            .fetch_max(latency_max_us, Ordering::Relaxed);
    }

    /// Records an error and asks every worker to stop.
    pub fn fail(&self, error: String) {
        let mut first = self.first_error.lock().expect("stats lock");
        first.get_or_insert(error);
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Whether workers should stop.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn take_window(&self) -> (u64, u64, u64, u64) {
        (
            self.window_records.swap(0, Ordering::Relaxed),
            self.window_bytes.swap(0, Ordering::Relaxed),
            self.window_latency_sum_us.swap(0, Ordering::Relaxed),
            self.window_latency_max_us.swap(0, Ordering::Relaxed),
        )
    }
}

/// Prints window lines every `interval` and shows a progress bar on a terminal.
pub struct Reporter {
    interval: Duration,
    print_windows: bool,
    bar: Option<indicatif::ProgressBar>,
    last: Instant,
    last_records: u64,
}

impl Reporter {
    /// A reporter for a run of `total_records` (or `duration`) records; the bar only when
    /// stderr is a terminal and `progress` is on.
    pub fn new(
        interval: Duration,
        print_windows: bool,
        progress: bool,
        total_records: Option<u64>,
        duration: Option<Duration>,
    ) -> Reporter {
        let bar = (progress && std::io::stderr().is_terminal()).then(|| {
            let (length, template) = match (total_records, duration) {
                (_, Some(d)) => (d.as_secs(), "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} s  {msg}"),
                (Some(n), None) => (n, "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} records  {msg}"),
                (None, None) => (0, "{spinner} [{elapsed_precise}] {human_pos} records  {msg}"),
            };
            let bar = indicatif::ProgressBar::new(length);
            bar.set_style(indicatif::ProgressStyle::with_template(template).unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()));
            bar
        });
        Reporter {
            interval,
            print_windows,
            bar,
            last: Instant::now(),
            last_records: 0,
        }
    }

    /// Polls the counters until `workers` workers are done, printing windows; `record_size` is
    /// used for MB/s as the perf tool does. Returns when all are done.
    /// A run whose completed-record count stays unchanged for `stall_limit` while workers are
    /// still running is abandoned with `BenchError::Stalled` (the caller then returns without
    /// joining the workers), so a wedged broker or executor never hangs the tool.
    pub fn run(
        &mut self,
        stats: &SharedStats,
        workers: usize,
        started: Instant,
        duration_bar: bool,
        stall_limit: Duration,
    ) -> Result<(), super::BenchError> {
        let mut last_change = Instant::now();
        let mut last_seen = 0;
        let mut bar_last = Instant::now();
        let mut bar_last_records = 0;
        let mut bar_drawn = Instant::now();
        while stats.workers_done.load(Ordering::Acquire) < workers {
            // Poll often so the end of the run is seen within ~2 ms; redraw at most every 100 ms.
            std::thread::sleep(Duration::from_millis(2));
            let now = Instant::now();
            if let Some(bar) = self
                .bar
                .as_ref()
                .filter(|_| now.duration_since(bar_drawn) >= Duration::from_millis(100))
            {
                bar_drawn = now;
                let records = stats.records.load(Ordering::Relaxed);
                let elapsed = now.duration_since(bar_last).as_secs_f64();
                if elapsed >= 0.5 {
                    let rate = (records - bar_last_records) as f64 / elapsed;
                    bar.set_message(format!("{rate:.0} records/sec"));
                    bar_last = now;
                    bar_last_records = records;
                }
                if duration_bar {
                    bar.set_position(now.duration_since(started).as_secs());
                } else {
                    bar.set_position(records);
                }
            }
            if now.duration_since(self.last) >= self.interval {
                self.print_window(stats, now);
            }
            let records = stats.records.load(Ordering::Relaxed);
            if records != last_seen {
                last_seen = records;
                last_change = now;
            } else if now.duration_since(last_change) >= stall_limit {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                stats.fail("stalled".to_string());
                return Err(super::BenchError::Stalled {
                    stalled_ms: stall_limit.as_millis() as u64,
                    records,
                });
            }
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        Ok(())
    }

    fn print_window(&mut self, stats: &SharedStats, now: Instant) {
        let (records, bytes, latency_sum_us, latency_max_us) = stats.take_window();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.last_records += records;
        if !self.print_windows || records == 0 {
            return;
        }
        let line = format!(
            "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.1} ms avg latency, {:.1} ms max latency.",
            records,
            records as f64 / elapsed,
            bytes as f64 / elapsed / (1024.0 * 1024.0),
            latency_sum_us as f64 / records as f64 / 1000.0,
            latency_max_us as f64 / 1000.0
        );
        match &self.bar {
            Some(bar) => bar.println(line),
            None => println!("{line}"),
        }
    }
}
