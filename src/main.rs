//! The `hourglass` binary: parse the command line, run, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use hourglass::cli::{CheckCommand, Cli, Command, LogFormat, RulesLint, TestCommand};
use hourglass::config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            what: CheckCommand::Config { file },
        } => match Config::load(&file) {
            Ok(cfg) => check_config_rules(&cfg, &file),
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Check {
            what:
                CheckCommand::Rules {
                    files,
                    lint,
                    lint_fatal,
                },
        } => check_rules(&files, lint, lint_fatal),
        Command::Test {
            what: TestCommand::Rules { files, run },
        } => test_rules(&files, &run),
        Command::Backtest(args) => match backtest(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hourglass backtest: {e:#}");
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

/// The rest of `check config`: the rule files the configuration names must
/// load too, since the agent would start without them.
fn check_config_rules(cfg: &Config, file: &std::path::Path) -> ExitCode {
    use hourglass::rules::manager::{load, RuleSource};
    let source = RuleSource::from_config(cfg, Some(file));
    match load(&source) {
        Ok((set, _)) => {
            println!("{}: ok", file.display());
            print!("{}", cfg.summary());
            println!(
                "rules loaded: {} group(s), {} rule(s) from {}",
                set.groups.len(),
                set.rule_count(),
                source.describe()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!(
                "{}: the rule files have {} error(s)",
                file.display(),
                errors.len()
            );
            ExitCode::FAILURE
        }
    }
}

/// `hourglass check rules`: promtool's output and exit codes (0, 1, 3).
fn check_rules(files: &[std::path::PathBuf], lint: RulesLint, lint_fatal: bool) -> ExitCode {
    use hourglass::rules::unittest::{check_rule_files, CheckOptions};
    let opts = CheckOptions {
        lint_duplicates: lint == RulesLint::DuplicateRules,
        lint_fatal,
    };
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    match check_rule_files(files, &opts, &mut out, &mut err) {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(e) => {
            eprintln!("hourglass: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `hourglass test rules`: promtool's output; exit 1 when a test fails.
fn test_rules(files: &[std::path::PathBuf], run: &[String]) -> ExitCode {
    use hourglass::rules::unittest::{run_test_files_with, TestOptions};
    let run = if run.is_empty() {
        None
    } else {
        let any = run
            .iter()
            .map(|r| format!("(?:{r})"))
            .collect::<Vec<_>>()
            .join("|");
        match regex::Regex::new(&any) {
            Ok(re) => Some(re),
            Err(e) => {
                eprintln!("hourglass: invalid --run: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    let opts = TestOptions { run };
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    match run_test_files_with(files, &opts, &mut out, &mut err) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("hourglass: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `hourglass backtest`: load the rules, fill a store from the agent or the
/// files, replay, print.
fn backtest(args: hourglass::cli::BacktestArgs) -> anyhow::Result<()> {
    use hourglass::promql::{Engine, EngineOptions};
    use hourglass::rules::backtest as bt;

    let now = hourglass::api::now_ms();
    let rules = hourglass::rules::load_files(&args.rule_files).map_err(|errs| {
        let lines: Vec<String> = errs.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("invalid rule files:\n{}", lines.join("\n"))
    })?;
    let source = if args.data.is_empty() {
        bt::Source::Agent {
            url: &args.url,
            timeout: std::time::Duration::from_millis(args.timeout_ms.max(1) as u64),
        }
    } else {
        bt::Source::Files(&args.data)
    };
    let prepared = bt::prepare(
        &rules,
        source,
        args.from.as_deref(),
        args.to.as_deref(),
        now,
        args.lookback_delta_ms,
    )
    .map_err(|e| match e {
        bt::BacktestError::Unreachable { .. } => anyhow::anyhow!(
            "{e}\n(is `hourglass run` running there? Set --url or HOURGLASS_URL, or replay files with --data)"
        ),
        e => e.into(),
    })?;
    let engine = Engine::new(EngineOptions {
        lookback_ms: args.lookback_delta_ms,
        ..EngineOptions::default()
    })
    .with_default_subquery_step_ms(args.evaluation_interval_ms);
    let opts = bt::Options {
        from_ms: prepared.from_ms,
        to_ms: prepared.to_ms,
        default_interval_ms: args.evaluation_interval_ms,
        ctx: hourglass::rules::EvalContext::default(),
    };
    let mut report = bt::run(&prepared.store, &engine, &rules, &opts)?;
    report.notes = prepared.notes;
    report.warnings.splice(0..0, prepared.warnings);
    let out = match args.format {
        hourglass::cli::BacktestFormat::Text => bt::render_text(&report, now),
        hourglass::cli::BacktestFormat::Json => bt::render_json(&report),
    };
    print!("{out}");
    Ok(())
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
