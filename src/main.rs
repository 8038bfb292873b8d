//! The `ringtail` binary: `ringtail serve` runs the broker, `ringtail bench` load-generates
//! against any Kafka-compatible broker, `ringtail topic|group|cluster` administer one
//! (crate `ringtail-admin`).

use clap::{Parser, Subcommand};
use ringtail::config::{BrokerConfig, ServeArgs};
use ringtail::logging::LogFormat;

/// Forged array counts in requests must not abort the process; see `ringtail::alloc`.
#[global_allocator]
static ALLOCATOR: ringtail::alloc::LazyHugeAllocator = ringtail::alloc::LazyHugeAllocator;

#[derive(Parser)]
#[command(
    name = "ringtail",
    version,
    about = "A thread-per-core Kafka-protocol broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker (defaults: PLAINTEXT://127.0.0.1:9092, data in ./data).
    Serve(ServeCommand),
    /// Load-generate against any Kafka-compatible broker (produce, consume, e2e, summary).
    Bench(Box<ringtail_bench::BenchArgs>),
    #[command(flatten)]
    Admin(ringtail_admin::AdminCommand),
}

#[derive(clap::Args)]
struct ServeCommand {
    #[command(flatten)]
    args: ServeArgs,
    /// Log lines on stderr as text or as JSON objects, one per line (level: RUST_LOG if set,
    /// else the `log.level` property).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

fn main() {
    let cli = Cli::parse();
    let format = match &cli.command {
        Command::Serve(serve) => serve.log_format,
        _ => LogFormat::Text,
    };
    let logging = ringtail::logging::init(format);
    let result = match cli.command {
        Command::Serve(serve) => run_serve(&serve.args, &logging),
        Command::Bench(args) => ringtail_bench::run(*args),
        Command::Admin(command) => ringtail_admin::run(command).map_err(anyhow::Error::from),
    };
    if let Err(e) = result {
        eprintln!("ringtail: {e:#}");
        std::process::exit(1);
    }
}

fn run_serve(args: &ServeArgs, logging: &ringtail::logging::Logging) -> anyhow::Result<()> {
    let config = BrokerConfig::from_args(args)?;
    logging.apply_log_level(&config.log_level);
    ringtail::alloc::tune_system_allocator();
    ringtail::server::run(config)?;
    Ok(())
}
