//! `ringtail topic|group|cluster`: Kafka's admin operations (those of `kafka-topics.sh`,
//! `kafka-consumer-groups.sh`, `kafka-configs.sh` and `rpk cluster info`) over the Kafka
//! protocol, against any Kafka-compatible broker.
//!
//! Requests go through ringtail-protocol's `ClientCodec` on blocking sockets
//! ([`connection::Connection`]); each picks the highest version both the broker (ApiVersions)
//! and this tool speak, and a broker without the API gets [`AdminError::Unsupported`] naming
//! it. Output is aligned tables ([`table`]) or, with `--format json`, one JSON document on
//! stdout. Every failure is an [`AdminError`]: one line for a person, exit status 1.

#![deny(missing_docs)]

pub mod cluster;
pub mod connection;
pub mod error;
pub mod group;
pub mod output;
pub mod parse;
pub mod table;
pub mod topic;

pub use error::AdminError;
pub use output::{print, Format, Outcome, Output};

use cluster::{Cluster, ConnectionArgs};

/// The options every admin command takes.
#[derive(Clone, Debug, clap::Args)]
pub struct CommonArgs {
    /// Where the cluster is.
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text, global = true)]
    pub format: Format,
}

/// The admin subcommands of `ringtail`, flattened into its command list.
#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Create, list, describe and delete topics, alter their configs (like kafka-topics.sh).
    Topic(TopicArgs),
    /// List, describe (with lag), reset offsets of and delete consumer groups (like
    /// kafka-consumer-groups.sh).
    Group(GroupArgs),
    /// The cluster: id, controller, brokers (like `rpk cluster info`).
    Cluster(ClusterArgs),
}

/// `ringtail topic ...`.
#[derive(Debug, clap::Args)]
pub struct TopicArgs {
    /// Connection and output options.
    #[command(flatten)]
    pub common: CommonArgs,
    /// The operation.
    #[command(subcommand)]
    pub command: topic::TopicCommand,
}

/// `ringtail group ...`.
#[derive(Debug, clap::Args)]
pub struct GroupArgs {
    /// Connection and output options.
    #[command(flatten)]
    pub common: CommonArgs,
    /// The operation.
    #[command(subcommand)]
    pub command: group::GroupCommand,
}

/// `ringtail cluster ...`.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// Connection and output options.
    #[command(flatten)]
    pub common: CommonArgs,
    /// The operation.
    #[command(subcommand)]
    pub command: ClusterCommand,
}

/// `ringtail cluster` operations.
#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Cluster id, controller and brokers (Metadata).
    Info,
}

/// Runs one admin command and prints its result. A multi-item command (create several topics)
/// prints what it did and then fails with [`AdminError::Partial`] if any item failed.
pub fn run(command: AdminCommand) -> Result<(), AdminError> {
    let (common, result) = match command {
        AdminCommand::Topic(args) => {
            let result = Cluster::connect(&args.common.connection)
                .and_then(|mut cluster| topic::run(&mut cluster, &args.command));
            (args.common, result)
        }
        AdminCommand::Group(args) => {
            let result = Cluster::connect(&args.common.connection)
                .and_then(|mut cluster| group::run(&mut cluster, &args.command));
            (args.common, result)
        }
        AdminCommand::Cluster(args) => {
            let result =
                Cluster::connect(&args.common.connection).and_then(|mut cluster| {
                    match args.command {
                        ClusterCommand::Info => cluster_info(&mut cluster),
                    }
                });
            (args.common, result)
        }
    };
    let (output, failure) = result?;
    print(&output, common.format);
    match failure {
        Some(failure) => Err(failure),
        None => Ok(()),
    }
}

/// `ringtail cluster info`: Metadata's cluster id, controller and brokers (`*` marks the
/// controller, as rpk does).
pub fn cluster_info(cluster: &mut Cluster) -> Outcome {
    let metadata = cluster.metadata(Some(&[]))?;
    let cluster_id = metadata.cluster_id.as_ref().map(|id| id.to_string());
    let controller = metadata.controller_id.0;
    let mut brokers = table::Table::new(["ID", "HOST", "PORT", "RACK"]);
    let mut json_brokers = Vec::new();
    let mut sorted: Vec<_> = metadata.brokers.iter().collect();
    sorted.sort_by_key(|b| b.node_id.0);
    for broker in sorted {
        let id = broker.node_id.0;
        let mark = if id == controller { "*" } else { "" };
        let rack = broker.rack.as_ref().map(|r| r.to_string());
        brokers.push([
            format!("{id}{mark}"),
            broker.host.to_string(),
            broker.port.to_string(),
            table::or_dash(rack.clone()),
        ]);
        json_brokers.push(serde_json::json!({
            "node_id": id,
            "host": broker.host.to_string(),
            "port": broker.port,
            "rack": rack,
            "controller": id == controller,
        }));
    }
    let text = format!(
        "{}{}\n\n{}{}",
        table::section("CLUSTER"),
        cluster_id.as_deref().unwrap_or("-"),
        table::section("BROKERS"),
        brokers.render()
    );
    let json = serde_json::json!({
        "cluster_id": cluster_id,
        "controller_id": controller,
        "brokers": json_brokers,
    });
    Ok((Output { text, json }, None))
}
