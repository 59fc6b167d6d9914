//! The command line: `hourglass run`, `hourglass check config|rules`,
//! `hourglass test rules`, `hourglass backtest`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "hourglass",
    version,
    about = "An observability agent and alerting daemon: scrapes the host, PostgreSQL, Redis and \
             applications, keeps one hour of compressed history in memory, answers PromQL over the Prometheus HTTP API, and \
             evaluates Prometheus rule files.",
    after_help = "Examples:\n  hourglass run                         # no config: host metrics every second, bundled rules, API on 127.0.0.1:9977\n  hourglass run --config hourglass.yml\n  hourglass check config hourglass.yml  # validate config and rule files; prints what would run\n  hourglass test rules rules/*_test.yml # promtool-format rule unit tests\n  hourglass backtest my-rules.yml --from -1h\n  curl '127.0.0.1:9977/api/v1/query?query=node_memory_MemAvailable_bytes'\n  curl '127.0.0.1:9977/api/v1/alerts'\n  kill -HUP $(pidof hourglass)          # reload rule files (or: curl -XPOST 127.0.0.1:9977/-/reload)"
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
        /// host metrics every second, the bundled rules, HTTP on 127.0.0.1:9977,
        /// one hour kept. SIGHUP reloads the rule files.
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
    /// Run unit tests, like promtool's `test rules`.
    Test {
        #[command(subcommand)]
        what: TestCommand,
    },
    /// Replay rule files over a running agent's history: when each alert
    /// would have gone pending, fired and resolved.
    #[command(after_help = BACKTEST_HELP)]
    Backtest(BacktestArgs),
}

#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// Validate a configuration file and print what would run.
    Config {
        /// The configuration file.
        file: PathBuf,
    },
    /// Validate Prometheus rule files, like `promtool check rules`: prints
    /// `SUCCESS: N rules found` per file, or `FAILED:` and `file:line: message`
    /// for each problem (exit 1).
    #[command(after_help = CHECK_RULES_HELP)]
    Rules {
        /// Rule files in the Prometheus format.
        #[arg(required = true, value_name = "RULES.yml")]
        files: Vec<PathBuf>,
        /// Lint checks besides validity: `duplicate-rules` reports rules with the
        /// same name and labels (reported, exit 0 unless --lint-fatal); `none`.
        #[arg(long, value_enum, default_value_t = RulesLint::DuplicateRules)]
        lint: RulesLint,
        /// Make lint findings fatal: exit 3.
        #[arg(long)]
        lint_fatal: bool,
    },
}

const CHECK_RULES_HELP: &str = "\
Examples:
  hourglass check rules rules/*.yml
  hourglass check rules --lint none --lint-fatal my.yml";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RulesLint {
    None,
    DuplicateRules,
}

#[derive(Debug, Subcommand)]
pub enum TestCommand {
    /// Run unit tests for rule files, in promtool's `test rules` format: input
    /// series, expected alerts at given times, expected PromQL results.
    #[command(after_help = TEST_RULES_HELP)]
    Rules {
        /// Test files (YAML); their `rule_files` are relative to them.
        #[arg(required = true, value_name = "TEST.yml")]
        files: Vec<PathBuf>,
        /// Only run test groups whose `name` matches this regular expression;
        /// repeat to match any of several.
        #[arg(long, value_name = "REGEX")]
        run: Vec<String>,
    },
}

const TEST_RULES_HELP: &str = "\
A test file (the same format promtool reads):

  rule_files: [alerts.yml]          # relative to this file; globs allowed
  evaluation_interval: 1m           # default 1m
  tests:
    - name: api down
      interval: 1m                  # spacing of the values; default evaluation_interval
      input_series:
        - series: 'up{job=\"api\"}'
          values: '1 1 0x10'        # 1, 1, then 0 eleven times; also _ (none), stale, 1+2x5
      alert_rule_test:
        - eval_time: 5m
          alertname: ApiDown
          exp_alerts:               # the firing alerts; [] or none: nothing fires
            - exp_labels: {severity: page, job: api}
              exp_annotations: {summary: api is down}
      promql_expr_test:
        - expr: sum(up)
          eval_time: 1m
          exp_samples: [{labels: '{}', value: 1}]

Rules are evaluated every evaluation_interval from 0 to the last eval_time. Prints
`SUCCESS` per file, or `FAILED:` with the expected and actual alerts or samples; exits 1
if any test failed.

Examples:
  hourglass test rules tests/*_test.yml
  hourglass test rules --run 'api' alerts_test.yml";

const BACKTEST_HELP: &str = "\
Each group runs at its interval (else --evaluation-interval) over the range, as the agent
would have run it: recording rules feed later rules, `for` and `keep_firing_for` hold. The
samples come from the agent at --url, one query per selector of the rules. For an alert
that never fired and whose expression is `EXPR > number` (or <, >=, <=), the report gives
the highest (lowest) value EXPR reached, to compare with the threshold.

Examples:
  hourglass backtest rules/host.yml                      # the last hour, agent on 127.0.0.1:9977
  hourglass backtest rules/*.yml --from -6h --to -2h
  hourglass backtest my.yml --from 02:50 --to 03:20      # UTC times of today
  hourglass backtest my.yml --url http://db1:9977 --format json | jq '.groups[].rules[]'

Offline: save what a query returns, then replay it:
  curl -s 'http://127.0.0.1:9977/api/v1/query' --data-urlencode 'query=node_load1[1h]' > load.json
  hourglass backtest my.yml --data load.json";

/// Arguments of `hourglass backtest`.
#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// Rule files in the Prometheus format.
    #[arg(required = true, value_name = "RULES.yml")]
    pub rule_files: Vec<PathBuf>,

    /// Start: -1h, -30m, now-2h, 03:10 (UTC, today), RFC 3339 or Unix seconds.
    /// [default: -1h; with --data, its first sample]
    #[arg(long, allow_hyphen_values = true, value_name = "TIME")]
    pub from: Option<String>,

    /// End, in the same forms. [default: now; with --data, its last sample]
    #[arg(long, allow_hyphen_values = true, value_name = "TIME")]
    pub to: Option<String>,

    /// The running agent whose history is replayed.
    #[arg(
        long,
        env = "HOURGLASS_URL",
        default_value = "http://127.0.0.1:9977",
        value_name = "URL"
    )]
    pub url: String,

    /// Read samples from FILE instead of an agent: the JSON an /api/v1/query of
    /// `SELECTOR[RANGE]` returns (a matrix), its `data` or `result`, or an array of
    /// those. Repeat for several files.
    #[arg(long, value_name = "FILE")]
    pub data: Vec<PathBuf>,

    /// Interval of groups that set none (the config's `global.evaluation_interval`).
    #[arg(long = "evaluation-interval", value_name = "DURATION", default_value = "5s",
          value_parser = crate::rules::rule::parse_duration)]
    pub evaluation_interval_ms: i64,

    /// How far back an instant selector looks (the config's `global.lookback_delta`).
    #[arg(long = "lookback-delta", value_name = "DURATION", default_value = "5m",
          value_parser = crate::rules::rule::parse_duration)]
    pub lookback_delta_ms: i64,

    /// Timeout of each request to the agent.
    #[arg(long = "timeout", value_name = "DURATION", default_value = "30s",
          value_parser = crate::rules::rule::parse_duration)]
    pub timeout_ms: i64,

    /// `text` for people, `json` for tools.
    #[arg(long, value_enum, default_value_t = BacktestFormat::Text)]
    pub format: BacktestFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BacktestFormat {
    Text,
    Json,
}
