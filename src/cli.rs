//! The command line: `hourglass run`, `hourglass check config`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "hourglass",
    version,
    about = "An observability agent and alerting daemon: scrapes the host, keeps one hour of \
             compressed history in memory, and answers PromQL over the Prometheus HTTP API.",
    after_help = "Examples:\n  hourglass run                         # no config: host metrics every second, API on 127.0.0.1:9977\n  hourglass run --config hourglass.yml\n  hourglass check config hourglass.yml  # validate; prints what would run\n  curl '127.0.0.1:9977/api/v1/query?query=node_memory_MemAvailable_bytes'"
)]
pub struct Cli {
    /// Log format: `text` for a terminal, `json` for containers and log shippers.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter (tracing's env-filter syntax, e.g. `info`, `hourglass=debug`).
    #[arg(long, global = true, env = "HOURGLASS_LOG", default_value = "info")]
    pub log_level: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent: scrape sources, keep history, serve the HTTP API.
    Run {
        /// Configuration file (YAML). Without it the embedded default runs:
        /// host metrics every second, HTTP on 127.0.0.1:9977, one hour kept.
        #[arg(short, long, env = "HOURGLASS_CONFIG")]
        config: Option<PathBuf>,
        /// Override the configuration's `listen` address.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Validate files without running anything; exit 1 with `file:line: message` on error.
    Check {
        #[command(subcommand)]
        what: CheckCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// Validate a configuration file and print what would run.
    Config {
        /// The configuration file.
        file: PathBuf,
    },
}
