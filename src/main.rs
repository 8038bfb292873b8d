//! The `ringtail` binary: `ringtail serve` runs the broker, `ringtail bench` load-generates
//! against any Kafka-compatible broker.

use clap::{Parser, Subcommand};
use ringtail::config::{BrokerConfig, ServeArgs};

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
    Serve(ServeArgs),
    /// Load-generate against any Kafka-compatible broker (produce, consume, e2e, summary).
    Bench(Box<ringtail_bench::BenchArgs>),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Bench(args) => ringtail_bench::run(*args),
    };
    if let Err(e) = result {
        eprintln!("ringtail: {e:#}");
        std::process::exit(1);
    }
}

fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let config = BrokerConfig::from_args(args)?;
    ringtail::alloc::tune_system_allocator();
    ringtail::server::run(config)?;
    Ok(())
}
