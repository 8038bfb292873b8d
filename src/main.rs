//! The `ringtail` binary. On the bench branch only `bench`; `serve` lives on main.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Ringtail: a thread-per-core Kafka-protocol broker.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load-generate against any Kafka-compatible broker.
    Bench(ringtail::bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => ringtail::bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
