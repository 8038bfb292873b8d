//! Log output of the `ringtail` binary (tracing-subscriber): text lines or JSON objects, one
//! per line, on stderr; the level from `RUST_LOG` when set, else from the `log.level`
//! property (default `info`).
//!
//! Start-up order: [`init`] runs before the configuration is read (so that configuration
//! warnings are logged in the chosen format); once it is, [`Logging::apply_log_level`] swaps
//! in `log.level` through a reloadable filter unless `RUST_LOG` decided.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

/// The level used when neither `RUST_LOG` nor `log.level` says otherwise.
pub const DEFAULT_LEVEL: &str = "info";

/// Log line format (`ringtail serve --log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines: time, level, target, message, fields.
    #[default]
    Text,
    /// One JSON object per line (tracing-subscriber's json formatter: `timestamp`, `level`,
    /// `target`, `fields.message` and the event's other fields).
    Json,
}

/// Parses a `log.level` value: one of Kafka's log4j level names (`TRACE`, `DEBUG`, `INFO`,
/// `WARN`, `ERROR`, `OFF`, any case), or `RUST_LOG`-style directives with a `=` or `,`
/// (`info,ringtail::network=debug`). A bare word that is not a level is refused rather than
/// read as a target name.
///
/// Errors: the reason, for the configuration error message.
pub fn parse_filter(value: &str) -> Result<EnvFilter, String> {
    let value = value.trim();
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    if !value.contains(['=', ',']) && !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(value)) {
        return Err(format!(
            "expected one of {} or RUST_LOG-style directives",
            LEVELS.join(", ")
        ));
    }
    EnvFilter::builder()
        .parse(value.to_ascii_lowercase())
        .map_err(|e| e.to_string())
}

/// The installed subscriber's filter, for [`Logging::apply_log_level`].
pub struct Logging {
    filter: reload::Handle<EnvFilter, Registry>,
    from_env: bool,
}

/// Installs the global subscriber writing `format` to stderr, filtered by `RUST_LOG` if it
/// is set and valid, else [`DEFAULT_LEVEL`]. A second call leaves the first subscriber.
pub fn init(format: LogFormat) -> Logging {
    let from_env = EnvFilter::try_from_default_env();
    let is_from_env = from_env.is_ok();
    let (filter, handle) =
        reload::Layer::new(from_env.unwrap_or_else(|_| EnvFilter::new(DEFAULT_LEVEL)));
    let registry = tracing_subscriber::registry().with(filter);
    let _already_set = match format {
        LogFormat::Text => registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init(),
    };
    Logging {
        filter: handle,
        from_env: is_from_env,
    }
}

impl Logging {
    /// Filters by `log_level` (the `log.level` property, already validated by
    /// [`parse_filter`]) unless `RUST_LOG` set the filter.
    pub fn apply_log_level(&self, log_level: &str) {
        if self.from_env {
            return;
        }
        match parse_filter(log_level) {
            Ok(filter) => {
                if let Err(error) = self.filter.reload(filter) {
                    tracing::warn!("log.level={log_level} not applied: {error}");
                }
            }
            Err(reason) => tracing::warn!("log.level={log_level} not applied: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels_are_kafkas_names_or_directives() {
        for ok in [
            "INFO",
            "warn",
            "Debug",
            "off",
            "info,ringtail::network=debug",
            "ringtail=trace",
        ] {
            assert!(parse_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["verbose", "", "loud"] {
            assert!(parse_filter(bad).is_err(), "{bad:?}");
        }
    }
}
