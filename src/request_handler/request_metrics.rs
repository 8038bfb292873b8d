//! Request metrics: latency per API and the error codes of each response, as Kafka's
//! `RequestMetrics` (TotalTimeMs) and `ErrorsPerSec` (from `AbstractResponse.errorCounts()`:
//! one count per error code field -- per partition, per topic or per group -- NONE included).
//!
//! [`record!`] works for every response type: one with an [`ErrorCodes`] impl has its codes
//! counted; one without (an API added later) still gets its latency counted (autoref
//! specialisation on concrete types, so a handler added in another branch compiles unchanged).

use std::time::Instant;

use kafka_protocol::messages::*;

/// The error code fields of a response, as Kafka's `errorCounts()` walks them.
pub trait ErrorCodes {
    /// Calls `f` once per error code field.
    fn error_codes(&self, f: &mut dyn FnMut(i16));
}

/// Wraps a response for [`record!`]'s choice between [`ViaErrorCodes`] and [`WithoutErrorCodes`].
pub struct Wrap<'a, T>(pub &'a T);

/// Chosen for responses with an [`ErrorCodes`] impl.
pub trait ViaErrorCodes {
    fn count_errors(&self, api_key: i16);
}

impl<T: ErrorCodes> ViaErrorCodes for Wrap<'_, T> {
    fn count_errors(&self, api_key: i16) {
        crate::metrics::with(|m| {
            self.0
                .error_codes(&mut |code| m.request_errors(api_key, code, 1))
        });
    }
}

/// Chosen for the others: nothing is counted. (Unused while every routed response has
/// [`ErrorCodes`]; kept so an API added without one still compiles.)
#[allow(dead_code)]
pub trait WithoutErrorCodes {
    fn count_errors(&self, api_key: i16);
}

impl<T> WithoutErrorCodes for &Wrap<'_, T> {
    fn count_errors(&self, _api_key: i16) {}
}

/// Counts one answered request of `$api` (an `ApiKey`) started at `$started` with response
/// `$response`: its latency, and its error codes when its type has [`ErrorCodes`].
macro_rules! record {
    ($api:expr, $started:expr, $response:expr) => {{
        #[allow(unused_imports)]
        use $crate::request_handler::request_metrics::{ViaErrorCodes, WithoutErrorCodes};
        let api_key = $api as i16;
        (&$crate::request_handler::request_metrics::Wrap($response)).count_errors(api_key);
        $crate::request_handler::request_metrics::latency(api_key, $started);
    }};
}
pub(crate) use record;

/// Counts the latency of one request of `api_key` started at `started`.
pub fn latency(api_key: i16, started: Instant) {
    crate::metrics::with(|m| m.request_done(api_key, started.elapsed()));
}

/// Implements [`ErrorCodes`] for responses with only a top-level `error_code`.
macro_rules! top_level {
    ($($type:ty),* $(,)?) => {$(
        impl ErrorCodes for $type {
            fn error_codes(&self, f: &mut dyn FnMut(i16)) {
                f(self.error_code);
            }
        }
    )*};
}

top_level!(
    ApiVersionsResponse,
    InitProducerIdResponse,
    DescribeClusterResponse,
    JoinGroupResponse,
    ConsumerGroupHeartbeatResponse,
    SyncGroupResponse,
    HeartbeatResponse,
    ListGroupsResponse,
);

impl ErrorCodes for ProduceResponse {
    fn error_codes(&self, f: &mut dyn FnMut(i16)) {
        for topic in &self.responses {
            topic
                .partition_responses
                .iter()
                .for_each(|p| f(p.error_code));
        }
    }
}

impl ErrorCodes for FetchResponse {
    // Kafka: the top-level error alone when it is set, else one per partition.
    fn error_codes(&self, f: &mut dyn FnMut(i16)) {
        if self.error_code != 0 {
            return f(self.error_code);
        }
        for topic in &self.responses {
            topic.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
}

impl ErrorCodes for MetadataResponse {
    fn error_codes(&self, f: &mut dyn FnMut(i16)) {
        for topic in &self.topics {
            f(topic.error_code);
            topic.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
}

impl ErrorCodes for ListOffsetsResponse {
    fn error_codes(&self, f: &mut dyn FnMut(i16)) {
        for topic in &self.topics {
            topic.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
}

impl ErrorCodes for CreateTopicsResponse {
    fn error_codes(&self, f: &mut dyn FnMut(i16)) {
        self.topics.iter().for_each(|t| f(t.error_code));
    }
}

impl ErrorCodes for DeleteTopicsResponse {
    fn error_codes(&self, f: &mut dyn FnMut(i16)) {
        self.responses.iter().for_each(|t| f(t.error_code));
    }
}

impl ErrorCodes for DescribeConfigsResponse {
    fn error_codes(&self, f: &mut dyn FnMut(i16)) {
        self.results.iter().for_each(|r| f(r.error_code));
    }
}

impl ErrorCodes for FindCoordinatorResponse {
    // v4+ answers per coordinator key; older versions at the top level.
    fn error_codes(&self, f: &mut dyn FnMut(i16)) {
        if self.coordinators.is_empty() {
            return f(self.error_code);
        }
        self.coordinators.iter().for_each(|c| f(c.error_code));
    }
}

impl ErrorCodes for LeaveGroupResponse {
    fn error_codes(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code);
        self.members.iter().for_each(|m| f(m.error_code));
    }
}

impl ErrorCodes for OffsetCommitResponse {
    fn error_codes(&self, f: &mut dyn FnMut(i16)) {
        for topic in &self.topics {
            topic.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
}

impl ErrorCodes for OffsetFetchResponse {
    // v8+ per group (its error and its partitions'); older versions top level and partitions.
    fn error_codes(&self, f: &mut dyn FnMut(i16)) {
        if !self.groups.is_empty() {
            for group in &self.groups {
                f(group.error_code);
                for topic in &group.topics {
                    topic.partitions.iter().for_each(|p| f(p.error_code));
                }
            }
            return;
        }
        f(self.error_code);
        for topic in &self.topics {
            topic.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
}

impl ErrorCodes for DescribeGroupsResponse {
    fn error_codes(&self, f: &mut dyn FnMut(i16)) {
        self.groups.iter().for_each(|g| f(g.error_code));
    }
}

impl ErrorCodes for DeleteGroupsResponse {
    fn error_codes(&self, f: &mut dyn FnMut(i16)) {
        self.results.iter().for_each(|g| f(g.error_code));
    }
}

impl ErrorCodes for OffsetDeleteResponse {
    fn error_codes(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code);
        for topic in &self.topics {
            topic.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
}
