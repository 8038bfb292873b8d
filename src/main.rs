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
    /// Prepare a log dir before the broker first starts (Kafka's `kafka-storage`).
    #[command(subcommand)]
    Storage(StorageCommand),
}

#[derive(Subcommand)]
enum StorageCommand {
    /// Add SCRAM credentials to the log dir's metadata, as `kafka-storage format --add-scram`:
    /// `ringtail storage add-scram --log-dirs ./data 'SCRAM-SHA-256=[name=admin,password=admin-secret]'`
    /// (also `iterations=N` 4096-16384, default 4096; `salt=<base64>`; `saltedpassword=<base64>`
    /// instead of `password`). Run it while the broker is stopped.
    AddScram {
        /// Broker config file (for `log.dirs`).
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        /// The data directory (`log.dirs`; its first entry holds the metadata).
        #[arg(long)]
        log_dirs: Option<String>,
        /// `MECHANISM=[name=USER,password=PASSWORD]`, one or more.
        #[arg(required = true)]
        credentials: Vec<String>,
    },
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
        Command::Storage(command) => run_storage(command),
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

fn run_storage(command: StorageCommand) -> anyhow::Result<()> {
    let StorageCommand::AddScram {
        config,
        log_dirs,
        credentials,
    } = command;
    let overrides: Vec<(String, String)> = log_dirs
        .map(|dirs| ("log.dirs".to_string(), dirs))
        .into_iter()
        .collect();
    let config = BrokerConfig::load(config.as_deref(), &overrides)?;
    let parsed = credentials
        .iter()
        .map(|arg| ringtail::security::scram_credentials::parse_add_scram(arg))
        .collect::<Result<Vec<_>, String>>()
        .map_err(anyhow::Error::msg)?;
    let users: Vec<String> = parsed
        .iter()
        .map(|(u, m, _)| format!("{u} ({m})"))
        .collect();
    ringtail::metadata::add_scram_credentials(config.log_dir(), parsed)?;
    println!(
        "added SCRAM credentials for {} to {}",
        users.join(", "),
        config.log_dir().display()
    );
    Ok(())
}
