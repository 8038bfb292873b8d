//! Parsing of command-line values: `key=value` settings, `topic[:p,p...]` partition lists and
//! the datetimes of `reset-offsets --to-datetime`.

use time::format_description::FormatItem;
use time::macros::format_description;
use time::{PrimitiveDateTime, UtcOffset};

use crate::error::AdminError;

/// `key=value` into its two parts (the value may contain `=`; whitespace around the key is
/// trimmed).
///
/// Errors: [`AdminError::Invalid`] without `=` or with an empty key.
pub fn key_value(text: &str) -> Result<(String, String), AdminError> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(AdminError::Invalid(format!(
            "'{text}' is not of the form key=value"
        ))),
    }
}

/// clap value parser for `key=value`.
pub fn key_value_arg(text: &str) -> Result<(String, String), String> {
    key_value(text).map_err(|e| e.to_string())
}

/// A topic and optionally some of its partitions: `topic` or `topic:0,1,2` (the
/// `--topic` syntax of `kafka-consumer-groups --reset-offsets`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicPartitions {
    /// The topic.
    pub topic: String,
    /// The partitions named, or `None` for all of them.
    pub partitions: Option<Vec<i32>>,
}

/// Parses `topic[:p,p...]`.
///
/// Errors: [`AdminError::Invalid`] for an empty topic or a partition that is not a
/// non-negative integer.
pub fn topic_partitions(text: &str) -> Result<TopicPartitions, AdminError> {
    let (topic, partitions) = match text.split_once(':') {
        None => (text, None),
        Some((topic, list)) => {
            let parsed: Result<Vec<i32>, _> = list
                .split(',')
                .map(|p| p.trim().parse::<i32>().ok().filter(|&p| p >= 0).ok_or(p))
                .collect();
            match parsed {
                Ok(partitions) => (topic, Some(partitions)),
                Err(bad) => {
                    return Err(AdminError::Invalid(format!(
                        "'{text}': partition '{bad}' is not a non-negative integer"
                    )))
                }
            }
        }
    };
    if topic.trim().is_empty() {
        return Err(AdminError::Invalid(format!("'{text}': empty topic name")));
    }
    Ok(TopicPartitions {
        topic: topic.trim().to_string(),
        partitions,
    })
}

/// clap value parser for `topic[:p,p...]`.
pub fn topic_partitions_arg(text: &str) -> Result<TopicPartitions, String> {
    topic_partitions(text).map_err(|e| e.to_string())
}

const DATETIME: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]");

/// Milliseconds since the epoch of `text` in the format of `kafka-consumer-groups
/// --to-datetime`: `YYYY-MM-DDTHH:mm:SS.sss` (the fraction optional here), followed by `Z`,
/// `+hh:mm`, `-hh:mm`, `+hhmm` or `-hhmm`, or by nothing, which means `local` (Kafka's
/// `Utils.getDateTime` uses the JVM's time zone likewise).
///
/// Errors: [`AdminError::Invalid`] naming the expected format.
pub fn datetime_ms(text: &str, local: UtcOffset) -> Result<i64, AdminError> {
    let invalid = || {
        AdminError::Invalid(format!(
            "'{text}' is not a datetime of the form YYYY-MM-DDTHH:mm:SS.sss \
             (optionally followed by Z or +hh:mm)"
        ))
    };
    let text = text.trim();
    let time_start = text.find('T').ok_or_else(invalid)?;
    let (body, offset) = if let Some(body) = text.strip_suffix('Z') {
        (body, UtcOffset::UTC)
    } else if let Some(sign_at) = text[time_start..].rfind(['+', '-']).map(|i| i + time_start) {
        let (body, zone) = text.split_at(sign_at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(invalid());
        }
        let hours: i8 = digits[..2].parse().map_err(|_| invalid())?;
        let minutes: i8 = digits[2..].parse().map_err(|_| invalid())?;
        let offset = UtcOffset::from_hms(sign * hours, sign * minutes, 0).map_err(|_| invalid())?;
        (body, offset)
    } else {
        (text, local)
    };
    let datetime = PrimitiveDateTime::parse(body, DATETIME).map_err(|_| invalid())?;
    let nanos = datetime.assume_offset(offset).unix_timestamp_nanos();
    Ok((nanos / 1_000_000) as i64)
}

/// The machine's UTC offset now (UTC when it cannot be determined).
pub fn local_offset() -> UtcOffset {
    UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values() {
        assert_eq!(
            key_value("retention.ms=1000").unwrap(),
            ("retention.ms".to_string(), "1000".to_string())
        );
        assert_eq!(key_value(" a = b=c").unwrap().1, " b=c");
        assert_eq!(key_value("a=").unwrap().1, "");
        assert!(key_value("novalue").is_err());
        assert!(key_value("=x").is_err());
    }

    #[test]
    fn topic_partition_lists() {
        assert_eq!(
            topic_partitions("t").unwrap(),
            TopicPartitions {
                topic: "t".to_string(),
                partitions: None
            }
        );
        assert_eq!(
            topic_partitions("t:0,2").unwrap().partitions,
            Some(vec![0, 2])
        );
        assert!(topic_partitions("t:x").is_err());
        assert!(topic_partitions("t:-1").is_err());
        assert!(topic_partitions(":1").is_err());
    }

    #[test]
    fn datetimes_in_kafkas_format() {
        let utc = UtcOffset::UTC;
        assert_eq!(datetime_ms("1970-01-01T00:00:00.000", utc).unwrap(), 0);
        assert_eq!(
            datetime_ms("2026-12-01T12:00:00.250Z", utc).unwrap(),
            1_796_126_400_250
        );
        assert_eq!(
            datetime_ms("2026-12-01T13:00:00.250+01:00", utc).unwrap(),
            1_796_126_400_250
        );
        assert_eq!(
            datetime_ms("2026-12-01T11:30:00-0030", utc).unwrap(),
            1_796_126_400_000
        );
        let plus_two = UtcOffset::from_hms(2, 0, 0).unwrap();
        assert_eq!(
            datetime_ms("2026-12-01T14:00:00.250", plus_two).unwrap(),
            1_796_126_400_250
        );
        for bad in [
            "2026-12-01",
            "yesterday",
            "2026-12-01T25:00:00",
            "2026-12-01T12:00:00+1",
        ] {
            assert!(datetime_ms(bad, utc).is_err(), "{bad}");
        }
    }
}
