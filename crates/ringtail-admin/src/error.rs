//! Why an admin command failed. Every variant renders as one line a person can act on (the
//! broker's address, the API, Kafka's error name and message); `ringtail` prints it and exits 1.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;

/// Kafka's `UNSUPPORTED_VERSION` error code (Errors.java).
pub const UNSUPPORTED_VERSION: i16 = 35;

/// An admin command's failure.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No address of `--bootstrap-server` (or of a broker named by Metadata) accepted a
    /// connection.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The `host:port` tried.
        addr: String,
        /// The socket error.
        reason: String,
    },
    /// The connection broke, timed out, or carried something that is not a Kafka response.
    #[error("{api:?} to {addr}: {reason}")]
    Transport {
        /// The broker's `host:port`.
        addr: String,
        /// The request's API.
        api: ApiKey,
        /// What went wrong (I/O error, timeout, undecodable frame).
        reason: String,
    },
    /// The broker does not offer the API, or no version this tool speaks (ApiVersions), or
    /// answered UNSUPPORTED_VERSION.
    #[error("the broker at {addr} does not support {api:?} (API key {}): {detail}", *api as i16)]
    Unsupported {
        /// The broker's `host:port`.
        addr: String,
        /// The API it lacks.
        api: ApiKey,
        /// Which versions each side has.
        detail: String,
    },
    /// The broker answered with a Kafka error code.
    #[error("{context}: {}", describe_error(*code, message.as_deref()))]
    Kafka {
        /// What was being done (`creating topic t`).
        context: String,
        /// Kafka's error code.
        code: i16,
        /// The response's error message, when it has one.
        message: Option<String>,
    },
    /// The command line asked for something impossible (a malformed `--set`, a bad datetime, a
    /// group that is not empty for `reset-offsets`).
    #[error("{0}")]
    Invalid(String),
    /// Some items of a multi-item command failed; each was reported in the output already.
    #[error("{0}")]
    Partial(String),
}

/// Kafka's name of an error code, as Errors.java spells it (`UNKNOWN_TOPIC_OR_PARTITION`).
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(code)) => format!("UNKNOWN_ERROR_CODE_{code}"),
        Some(error) => screaming_snake(&format!("{error}")),
    }
}

/// `NAME (code)`, then `: message` when the broker sent one.
pub fn describe_error(code: i16, message: Option<&str>) -> String {
    match message.filter(|m| !m.is_empty()) {
        Some(message) => format!("{} ({code}): {message}", error_name(code)),
        None => format!("{} ({code})", error_name(code)),
    }
}

/// `UnknownTopicOrPartition` -> `UNKNOWN_TOPIC_OR_PARTITION`.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// One item's outcome for a status table: `Ok` for code 0, else [`describe_error`]'s text.
pub fn item_outcome(code: i16, message: Option<&str>) -> Result<(), String> {
    if code == 0 {
        Ok(())
    } else {
        Err(describe_error(code, message))
    }
}

/// `Err(AdminError::Kafka)` unless `code` is 0.
pub fn check(
    code: i16,
    message: Option<&str>,
    context: impl FnOnce() -> String,
) -> Result<(), AdminError> {
    if code == 0 {
        return Ok(());
    }
    Err(AdminError::Kafka {
        context: context(),
        code,
        message: message.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(68), "NON_EMPTY_GROUP");
        assert_eq!(error_name(35), "UNSUPPORTED_VERSION");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(9999), "UNKNOWN_ERROR_CODE_9999");
        assert_eq!(
            describe_error(40, Some("bad value")),
            "INVALID_CONFIG (40): bad value"
        );
        assert_eq!(describe_error(40, Some("")), "INVALID_CONFIG (40)");
    }
}
