//! The `hourglass` binary: parse the command line, run, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use hourglass::cli::{CheckCommand, Cli, Command, LogFormat};
use hourglass::config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            what: CheckCommand::Config { file },
        } => match Config::load(&file) {
            Ok(cfg) => {
                println!("{}: ok", file.display());
                print!("{}", cfg.summary());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Run { config, listen } => {
            if let Err(e) = init_logging(cli.log_format, &cli.log_level) {
                eprintln!("hourglass: {e}");
                return ExitCode::FAILURE;
            }
            let loaded = match &config {
                Some(path) => Config::load(path),
                None => Config::embedded_default(),
            };
            let mut cfg = match loaded {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("hourglass: {e}");
                    return ExitCode::FAILURE;
                }
            };
            if let Some(addr) = listen {
                cfg.listen = addr;
            }
            match hourglass::app::run(cfg, config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("hourglass: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_logging(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("invalid --log-level {filter:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}
