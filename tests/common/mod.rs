//! What the integration tests share: the real `hourglass` binary run as an
//! agent (a temporary config on a free port, ready before the test goes on,
//! killed when dropped) or as a one-shot command, and the HTTP API read as
//! a user would. Library-level helpers for the connection sources are in
//! [`sources`].
//!
//! Each test file takes it with `mod common;` (cargo does not build
//! `tests/common/` as a test of its own). Not every file uses every helper,
//! hence `dead_code` is allowed here.

#![allow(dead_code)]

pub mod sources;

use std::fmt::Display;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_hourglass");

/// The binary with `args`, to take more arguments or run.
pub fn hourglass(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args);
    c
}

/// `hourglass check config <path>`, run to its end.
pub fn check_config(path: impl AsRef<Path>) -> Output {
    hourglass(&["check", "config"])
        .arg(path.as_ref())
        .output()
        .expect("run hourglass check config")
}

/// A loopback port nobody listens on (for an agent, or a target that is down).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A blocking HTTP client with a 10 s timeout.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

/// Polls `f` every 100 ms until it holds; panics after `limit`.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// GET `url`: the status and the JSON body.
pub fn get_json(url: &str) -> (u16, Value) {
    let r = client().get(url).send().expect("request");
    let status = r.status().as_u16();
    (status, r.json().expect("json body"))
}

/// `s` encoded for a URL's query string.
pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The value of the first series of an instant query's answer, if any.
pub fn first_value(v: &Value) -> Option<f64> {
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

/// Whether the tests run under CI (`CI=true`), where a missing server fails
/// a test instead of skipping it.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A server `test` needs is not there (`what`, e.g. "no Redis at ..."):
/// panics under CI, else prints a `SKIP` line and returns, for the caller
/// to skip the test.
pub fn skip_unless_ci(test: &str, what: &str, err: impl Display) {
    if under_ci() {
        panic!("{test}: {what} under CI: {err}");
    }
    println!("SKIP {test}: {what}: {err}");
}

/// A running agent (`hourglass run`) in a temporary directory that holds its
/// config (`hourglass.yml`), any other files it was given and its log
/// (`agent.log`). Killed when dropped.
pub struct Agent {
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    dir: tempfile::TempDir,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    /// Starts an agent with `config` (a `listen` line on a free port is put
    /// before it), logging at `info`, and waits until it is ready.
    pub fn start(config: &str) -> Agent {
        Agent::start_with(config, &[], "info")
    }

    /// [`Agent::start`] with more files (name relative to the config file,
    /// content) beside the config file, written before the agent starts.
    pub fn start_with_files(config: &str, files: &[(&str, &str)]) -> Agent {
        Agent::start_with(config, files, "info")
    }

    /// [`Agent::start_with_files`] with the log at `log_level`
    /// (`HOURGLASS_LOG`: `debug`, `info`, `warn`...).
    pub fn start_with(config: &str, files: &[(&str, &str)], log_level: &str) -> Agent {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let path: PathBuf = dir.path().join("hourglass.yml");
        std::fs::write(&path, format!("listen: 127.0.0.1:{port}\n{config}")).expect("write config");
        for (name, content) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
            std::fs::write(p, content).expect("write file");
        }
        // The log goes to a file, which cannot fill up and block the agent
        // as an unread pipe would.
        let log = std::fs::File::create(dir.path().join("agent.log")).expect("log file");
        let child = hourglass(&["run", "--config"])
            .arg(&path)
            .env("HOURGLASS_LOG", log_level)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start hourglass");
        let agent = Agent {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
        };
        wait_until(Duration::from_secs(20), || {
            client()
                .get(format!("{}/-/ready", agent.base))
                .send()
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        });
        agent
    }

    /// The agent's process id, for signals.
    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// The temporary directory of the config file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A file beside the config file (`hourglass.yml` is the config).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The agent's log so far (empty if unreadable).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("agent.log")).unwrap_or_default()
    }

    /// The agent's own `/metrics` page (empty if it cannot be read).
    pub fn metrics(&self) -> String {
        client()
            .get(format!("{}/metrics", self.base))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default()
    }

    /// The value of the unlabelled series `name` on `/metrics`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    /// An instant query that must succeed (HTTP 200, status `success`).
    pub fn query(&self, q: &str) -> Value {
        let (status, v) = get_json(&format!(
            "{}/api/v1/query?query={}",
            self.base,
            urlencode(q)
        ));
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["status"], "success", "{v}");
        v
    }

    /// An instant query's answer, or `Null` if there is none (the request
    /// failed, the body is not JSON); for polling.
    pub fn try_query(&self, q: &str) -> Value {
        client()
            .get(format!("{}/api/v1/query?query={}", self.base, urlencode(q)))
            .send()
            .and_then(|r| r.json())
            .unwrap_or(Value::Null)
    }

    /// The value of the one series `q` selects, if exactly one.
    pub fn value(&self, q: &str) -> Option<f64> {
        let v = self.try_query(q);
        let result = v["data"]["result"].as_array()?;
        if result.len() != 1 {
            return None;
        }
        result[0]["value"][1].as_str()?.parse().ok()
    }

    /// Polls [`Agent::value`] of `q` until `want` holds for it and returns
    /// it; panics after 30 s with the last value and the log.
    pub fn wait_for(&self, q: &str, want: impl Fn(f64) -> bool) -> f64 {
        let start = Instant::now();
        loop {
            if let Some(v) = self.value(q).filter(|v| want(*v)) {
                return v;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{q} never matched (last {:?}); log:\n{}",
                self.value(q),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
