//! The rule manager: loads rule files, runs each group on its aligned
//! slots, reloads on request (SIGHUP, `POST /-/reload`, a file change), and
//! forwards alert events on a bounded channel.
//!
//! A reload is all or nothing: a rule set with any error is rejected whole,
//! the error is logged with `file:line`, and the running rules go on. Groups
//! that survive a reload (same file and name) keep their state, so pending
//! `for` timers are not restarted and firing alerts stay firing.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::alert::{AlertEvent, AlertEventKind};
use super::file::{parse_rule_file, read_rule_file, RuleFileError};
use super::group::{
    eval_group, eval_timestamp, group_offset_ms, missed_iterations, EvalContext, GroupState,
};
use super::rule::{Group, RuleSet};
use crate::model::stale_nan;
use crate::promql::Engine;
use crate::store::Store;
use crate::telemetry::{MetricsWriter, Registry};

/// Alert events waiting for the notifiers; beyond this they are dropped and
/// counted (the API and the next evaluation still have the state).
pub const EVENT_QUEUE: usize = 4096;
/// A burst of file events (an editor's write, rename and chmod) settles
/// into one reload after this quiet time.
const WATCH_DEBOUNCE: Duration = Duration::from_millis(500);

/// Where rule files come from.
#[derive(Debug, Clone)]
pub enum RuleSource {
    /// Glob patterns, relative ones resolved from `base`.
    Files {
        patterns: Vec<String>,
        base: PathBuf,
    },
    /// Rule files compiled into the binary: (name, text).
    Embedded(&'static [(&'static str, &'static str)]),
}

impl RuleSource {
    /// The configuration's `rule_files` (relative to the configuration
    /// file's directory), or the bundled rules when it names none.
    pub fn from_config(cfg: &crate::config::Config, config_path: Option<&Path>) -> RuleSource {
        match &cfg.rule_files {
            None => RuleSource::Embedded(super::bundled::BUNDLED),
            Some(patterns) => RuleSource::Files {
                patterns: patterns.clone(),
                base: config_path
                    .and_then(Path::parent)
                    .map(Path::to_path_buf)
                    .unwrap_or_default(),
            },
        }
    }

    /// A short description for logs and `check config`.
    pub fn describe(&self) -> String {
        match self {
            RuleSource::Embedded(files) => format!("{} bundled rule file(s)", files.len()),
            RuleSource::Files { patterns, .. } if patterns.is_empty() => "no rule files".into(),
            RuleSource::Files { patterns, .. } => patterns.join(", "),
        }
    }
}

/// What the manager needs besides the store and the engine.
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    /// Interval of groups that set none (`global.evaluation_interval`).
    pub default_interval_ms: i64,
    pub eval_ctx: EvalContext,
}

/// A group as it runs: its definition, its state between evaluations and
/// its counters.
pub struct GroupRuntime {
    pub group: Group,
    pub interval_ms: i64,
    pub state: Mutex<GroupState>,
    pub iterations: AtomicU64,
    pub missed: AtomicU64,
    pub failures: AtomicU64,
    /// Set (under the state lock) when a reload replaced this group: its
    /// task must not evaluate again, since its state moved on.
    retired: AtomicBool,
    stop: watch::Sender<bool>,
}

/// The outcome of the last reload, for the log, the API and /metrics.
#[derive(Debug, Clone, Default)]
pub struct ReloadStatus {
    pub successful: bool,
    pub last_success_ms: i64,
    pub last_error: Option<String>,
    pub reloads: u64,
    pub failures: u64,
}

/// A reload that was asked for.
enum ReloadRequest {
    /// SIGHUP: reload, and log the outcome.
    Signal,
    /// A rule file changed on disk: reload unless the files read the same.
    FileChange,
    /// `POST /-/reload`: reload and send the outcome back.
    Api(oneshot::Sender<Result<String, String>>),
}

/// Asks the manager to reload; cheap to clone, for the API and signals.
#[derive(Clone)]
pub struct ReloadHandle(mpsc::Sender<ReloadRequest>);

impl ReloadHandle {
    /// Requests a reload and waits for its outcome: a summary, or the
    /// errors that made it rejected.
    pub async fn reload(&self) -> Result<String, String> {
        let (tx, rx) = oneshot::channel();
        self.0
            .send(ReloadRequest::Api(tx))
            .await
            .map_err(|_| "the rule manager has stopped".to_string())?;
        rx.await
            .map_err(|_| "the rule manager has stopped".to_string())?
    }

    /// Requests a reload without waiting (signals, file changes). A reload
    /// already queued covers this one.
    pub fn request(&self) {
        let _ = self.0.try_send(ReloadRequest::Signal);
    }

    /// A reload for a file change: skipped when the files read the same.
    fn request_if_changed(&self) {
        let _ = self.0.try_send(ReloadRequest::FileChange);
    }
}

pub struct RuleManager {
    store: Arc<Store>,
    engine: Arc<Engine>,
    opts: ManagerOptions,
    source: Mutex<RuleSource>,
    groups: RwLock<Vec<Arc<GroupRuntime>>>,
    status: Mutex<ReloadStatus>,
    /// Hash of the texts of the running rule files, so that a file event
    /// that changed nothing does not reload.
    loaded_hash: Mutex<Option<u64>>,
    events: mpsc::Sender<AlertEvent>,
    events_dropped: AtomicU64,
    shutdown: watch::Receiver<bool>,
}

impl RuleManager {
    /// A manager with no rules yet, and the receiving end of its alert
    /// events. Call `reload` to load the rules and `start` to run them.
    pub fn new(
        store: Arc<Store>,
        engine: Arc<Engine>,
        opts: ManagerOptions,
        source: RuleSource,
        shutdown: watch::Receiver<bool>,
    ) -> (Arc<RuleManager>, mpsc::Receiver<AlertEvent>) {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let m = RuleManager {
            store,
            engine,
            opts,
            source: Mutex::new(source),
            groups: RwLock::new(Vec::new()),
            status: Mutex::new(ReloadStatus::default()),
            loaded_hash: Mutex::new(None),
            events: tx,
            events_dropped: AtomicU64::new(0),
            shutdown,
        };
        (Arc::new(m), rx)
    }

    /// The running groups, in file order.
    pub fn groups(&self) -> Vec<Arc<GroupRuntime>> {
        self.groups.read().clone()
    }

    pub fn status(&self) -> ReloadStatus {
        self.status.lock().clone()
    }

    /// Replaces where rules come from (a reloaded configuration's
    /// `rule_files`); takes effect at the next reload.
    pub fn set_source(&self, source: RuleSource) {
        *self.source.lock() = source;
    }

    /// The directories holding the rule files, for the file watcher.
    pub fn watched_dirs(&self) -> Vec<PathBuf> {
        let RuleSource::Files { patterns, base } = &*self.source.lock() else {
            return Vec::new();
        };
        let mut dirs: Vec<PathBuf> = patterns
            .iter()
            .map(|p| {
                let full = base.join(p);
                // The deepest directory without glob characters.
                let mut dir = PathBuf::new();
                for c in full.parent().unwrap_or(Path::new(".")).components() {
                    let s = c.as_os_str().to_string_lossy();
                    if s.contains(['*', '?', '[']) {
                        break;
                    }
                    dir.push(c);
                }
                dir
            })
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// Loads the rules and, if they are valid, replaces the running groups
    /// (started when `running`). With `only_if_changed`, an unchanged set
    /// of files is not reloaded. Returns a summary, or every error.
    pub fn reload(
        self: &Arc<Self>,
        running: bool,
        only_if_changed: bool,
    ) -> Result<String, String> {
        let loaded = load(&self.source.lock().clone());
        let result = match loaded {
            Err(errors) => Err(errors),
            Ok((set, hash)) => {
                if only_if_changed && *self.loaded_hash.lock() == Some(hash) {
                    return Ok("rule files unchanged".into());
                }
                *self.loaded_hash.lock() = Some(hash);
                Ok(self.replace(set, running))
            }
        };
        let mut st = self.status.lock();
        st.reloads += 1;
        match result {
            Ok(summary) => {
                st.successful = true;
                st.last_success_ms = crate::api::now_ms();
                st.last_error = None;
                tracing::info!("{summary}");
                Ok(summary)
            }
            Err(errors) => {
                st.successful = false;
                st.failures += 1;
                for e in &errors {
                    tracing::error!("{e}");
                }
                let text = errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n");
                tracing::error!(
                    "rule reload rejected ({} error(s)); the previous rules keep running",
                    errors.len()
                );
                st.last_error = Some(text.clone());
                Err(text)
            }
        }
    }

    /// Swaps in a validated rule set: surviving groups take their old
    /// state, removed groups' series are marked stale, old tasks stop.
    fn replace(self: &Arc<Self>, set: RuleSet, running: bool) -> String {
        let old: Vec<Arc<GroupRuntime>> = std::mem::take(&mut *self.groups.write());
        let mut old_by_key: std::collections::HashMap<String, Arc<GroupRuntime>> =
            old.into_iter().map(|g| (g.group.key(), g)).collect();
        let now = crate::api::now_ms();
        let mut new = Vec::with_capacity(set.groups.len());
        let rules = set.rule_count();
        for group in set.groups {
            let state = match old_by_key.remove(&group.key()) {
                Some(prev) => {
                    let mut st = prev.state.lock();
                    prev.retired.store(true, Ordering::Release);
                    let _ = prev.stop.send(true);
                    GroupState::carry_over(&group, std::mem::take(&mut *st))
                }
                None => GroupState::new(&group),
            };
            let interval_ms = group.interval_ms.unwrap_or(self.opts.default_interval_ms);
            let (stop, _) = watch::channel(false);
            new.push(Arc::new(GroupRuntime {
                group,
                interval_ms,
                state: Mutex::new(state),
                iterations: AtomicU64::new(0),
                missed: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                retired: AtomicBool::new(false),
                stop,
            }));
        }
        // Groups that are gone: stop them, and end their series now rather
        // than after the lookback, as Prometheus does.
        for (_, gone) in old_by_key {
            let st = gone.state.lock();
            gone.retired.store(true, Ordering::Release);
            let _ = gone.stop.send(true);
            for rs in &st.rules {
                for labels in rs.written.values() {
                    let _ = self.store.append_labels(labels, now, stale_nan());
                }
            }
        }
        let groups = new.len();
        *self.groups.write() = new.clone();
        if running {
            for g in new {
                self.spawn_group(g);
            }
        }
        format!("rules loaded: {groups} group(s), {rules} rule(s)")
    }

    /// Runs every group, and the reload loop, until shutdown. Returns the
    /// handle to request reloads and the reload task.
    pub fn start(self: &Arc<Self>) -> (ReloadHandle, JoinHandle<()>) {
        for g in self.groups() {
            self.spawn_group(g);
        }
        let (tx, mut rx) = mpsc::channel::<ReloadRequest>(1);
        let me = self.clone();
        let mut shutdown = self.shutdown.clone();
        let task = tokio::spawn(async move {
            loop {
                let req = tokio::select! {
                    r = rx.recv() => match r { Some(r) => r, None => return },
                    _ = shutdown.wait_for(|s| *s) => return,
                };
                let m = me.clone();
                let only_if_changed = matches!(req, ReloadRequest::FileChange);
                // Loading parses files and takes group locks: off the
                // async workers.
                let res = tokio::task::spawn_blocking(move || m.reload(true, only_if_changed))
                    .await
                    .unwrap_or_else(|e| Err(format!("reload failed: {e}")));
                if let ReloadRequest::Api(reply) = req {
                    let _ = reply.send(res);
                }
            }
        });
        (ReloadHandle(tx), task)
    }

    fn spawn_group(self: &Arc<Self>, g: Arc<GroupRuntime>) {
        let me = self.clone();
        let mut stop = g.stop.subscribe();
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let interval = g.interval_ms.max(1);
            let offset = group_offset_ms(&g.group.key(), interval);
            let mut last: Option<i64> = None;
            loop {
                // Sleep to the next slot after the last one (or after now).
                let now = crate::api::now_ms();
                let next = eval_timestamp(now, interval, offset) + interval;
                let wait = Duration::from_millis((next - now).max(0) as u64);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.wait_for(|s| *s) => return,
                    _ = shutdown.wait_for(|s| *s) => return,
                }
                let slot = eval_timestamp(crate::api::now_ms(), interval, offset);
                if last.is_some_and(|l| slot <= l) {
                    continue;
                }
                if let Some(l) = last {
                    let missed = missed_iterations(l, slot, interval);
                    if missed > 0 {
                        g.missed.fetch_add(missed as u64, Ordering::Relaxed);
                    }
                }
                last = Some(slot);
                let (m, gr) = (me.clone(), g.clone());
                let done = tokio::task::spawn_blocking(move || m.eval_once(&gr, slot)).await;
                if done.is_err() {
                    tracing::error!(group = %g.group.name, "rule evaluation panicked");
                }
            }
        });
    }

    /// One evaluation of a group at `t_ms`, with its events sent on.
    pub fn eval_once(&self, g: &GroupRuntime, t_ms: i64) {
        let mut st = g.state.lock();
        if g.retired.load(Ordering::Acquire) {
            return;
        }
        let res = eval_group(
            &g.group,
            &mut st,
            &self.engine,
            &self.store,
            t_ms,
            &self.opts.eval_ctx,
        );
        drop(st);
        g.iterations.fetch_add(1, Ordering::Relaxed);
        if !res.rule_errors.is_empty() {
            g.failures
                .fetch_add(res.rule_errors.len() as u64, Ordering::Relaxed);
            for (i, e) in &res.rule_errors {
                let rule = g.group.rules.get(*i).map_or("?", |r| r.name());
                tracing::warn!(group = %g.group.name, rule, "rule evaluation failed: {e}");
            }
        }
        for (i, e) in &res.template_errors {
            let rule = g.group.rules.get(*i).map_or("?", |r| r.name());
            tracing::warn!(group = %g.group.name, rule, "template error: {e}");
        }
        for e in res.append_errors.iter().take(3) {
            tracing::debug!(group = %g.group.name, "rule output refused by the store: {e}");
        }
        for ev in res.events {
            log_event(&ev);
            if self.events.try_send(ev).is_err() {
                self.events_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The manager's own metrics, in the Prometheus rule manager's terms.
    pub fn register_metrics(self: &Arc<Self>, registry: &Registry) {
        let me = Arc::downgrade(self);
        registry.register(move |w: &mut MetricsWriter| {
            let Some(m) = me.upgrade() else { return };
            let st = m.status();
            w.single(
                "hourglass_rules_last_reload_successful",
                "gauge",
                "Whether the last rule reload succeeded (0: the previous rules are still running).",
                if st.successful { 1.0 } else { 0.0 },
            );
            w.single(
                "hourglass_rules_last_reload_success_timestamp_seconds",
                "gauge",
                "When the rules were last loaded successfully.",
                st.last_success_ms as f64 / 1000.0,
            );
            w.single(
                "hourglass_rules_reloads_total",
                "counter",
                "Rule reloads attempted.",
                st.reloads as f64,
            );
            w.single(
                "hourglass_rules_reload_failures_total",
                "counter",
                "Rule reloads rejected because the new rule set had errors.",
                st.failures as f64,
            );
            w.single(
                "hourglass_alert_events_dropped_total",
                "counter",
                "Alert events dropped because the notifier queue was full.",
                m.events_dropped.load(Ordering::Relaxed) as f64,
            );
            let groups = m.groups();
            let per_group = |w: &mut MetricsWriter,
                             name: &str,
                             kind: &str,
                             help: &str,
                             f: &dyn Fn(&GroupRuntime) -> f64| {
                w.family(name, kind, help);
                for g in &groups {
                    let key = g.group.key();
                    w.sample(name, &[("rule_group", key.as_str())], f(g));
                }
            };
            per_group(
                w,
                "hourglass_rule_group_iterations_total",
                "counter",
                "Evaluations of the group.",
                &|g| g.iterations.load(Ordering::Relaxed) as f64,
            );
            per_group(
                w,
                "hourglass_rule_group_iterations_missed_total",
                "counter",
                "Evaluation slots skipped because an evaluation ran late or too long.",
                &|g| g.missed.load(Ordering::Relaxed) as f64,
            );
            per_group(
                w,
                "hourglass_rule_evaluation_failures_total",
                "counter",
                "Rule evaluations that failed.",
                &|g| g.failures.load(Ordering::Relaxed) as f64,
            );
            per_group(
                w,
                "hourglass_rule_group_last_duration_seconds",
                "gauge",
                "How long the last evaluation of the group took.",
                &|g| g.state.lock().last_duration.as_secs_f64(),
            );
            per_group(
                w,
                "hourglass_rule_group_last_evaluation_timestamp_seconds",
                "gauge",
                "The evaluation time of the group's last evaluation.",
                &|g| g.state.lock().last_eval_ms.unwrap_or(0) as f64 / 1000.0,
            );
            per_group(
                w,
                "hourglass_rule_group_interval_seconds",
                "gauge",
                "The interval of the group.",
                &|g| g.interval_ms as f64 / 1000.0,
            );
            per_group(
                w,
                "hourglass_rule_group_rules",
                "gauge",
                "Rules in the group.",
                &|g| g.group.rules.len() as f64,
            );
        });
    }
}

/// Logs an alert transition: the agent's notifier of last resort.
fn log_event(ev: &AlertEvent) {
    let a = &ev.alert;
    let name = a.labels.get(super::alert::ALERTNAME).unwrap_or("");
    match ev.kind {
        AlertEventKind::Firing => {
            tracing::warn!(alert = name, labels = %a.labels, value = a.value, "alert firing")
        }
        AlertEventKind::Resolved => {
            tracing::info!(alert = name, labels = %a.labels, "alert resolved")
        }
        AlertEventKind::Pending => {
            tracing::info!(alert = name, labels = %a.labels, value = a.value, "alert pending")
        }
        AlertEventKind::PendingCleared => {
            tracing::info!(alert = name, labels = %a.labels, "pending alert cleared")
        }
        AlertEventKind::Updated => {}
    }
}

/// Reads and validates every rule file of `source`: the set and a hash of
/// the texts, or every error.
pub fn load(source: &RuleSource) -> Result<(RuleSet, u64), Vec<RuleFileError>> {
    let files: Vec<(String, String)> = match source {
        RuleSource::Embedded(files) => files
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect(),
        RuleSource::Files { patterns, base } => {
            let mut out = Vec::new();
            let mut errors = Vec::new();
            for path in expand_globs(patterns, base, &mut errors) {
                match read_rule_file(&path) {
                    Ok(file) => out.push(file),
                    Err(e) => errors.push(e),
                }
            }
            if !errors.is_empty() {
                return Err(errors);
            }
            out
        }
    };
    let mut set = RuleSet::default();
    let mut errors = Vec::new();
    let mut hash = 0u64;
    for (name, text) in &files {
        hash = hash.rotate_left(5) ^ xxhash_rust::xxh3::xxh3_64(name.as_bytes());
        hash = hash.rotate_left(5) ^ xxhash_rust::xxh3::xxh3_64(text.as_bytes());
        match parse_rule_file(text, name) {
            Ok(groups) => set.groups.extend(groups),
            Err(e) => errors.extend(e),
        }
    }
    // Group names must be unique within a file (checked per file); across
    // files the file name tells them apart, as in Prometheus.
    if errors.is_empty() {
        Ok((set, hash))
    } else {
        Err(errors)
    }
}

/// The files the patterns name, sorted and without duplicates. A pattern
/// without glob characters must name an existing file; a glob may match
/// nothing (as in Prometheus). Files a glob matches that are named like
/// promtool unit tests (`*_test.yml`) are left out.
pub fn expand_globs(
    patterns: &[String],
    base: &Path,
    errors: &mut Vec<RuleFileError>,
) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in patterns {
        let full = base.join(p);
        let text = full.to_string_lossy().into_owned();
        if !p.contains(['*', '?', '[']) {
            out.push(full);
            continue;
        }
        match glob::glob(&text) {
            Ok(paths) => {
                // promtool's unit tests conventionally sit beside the rules
                // as `*_test.yml`; a glob like `rules/*.yml` means the rules.
                let mut found: Vec<PathBuf> = paths
                    .filter_map(Result::ok)
                    .filter(|p| !is_rule_test_file(p))
                    .collect();
                found.sort();
                out.extend(found);
            }
            Err(e) => errors.push(RuleFileError {
                file: text,
                line: 0,
                message: format!("bad rule_files pattern: {e}"),
            }),
        }
    }
    out.dedup();
    out
}

/// A promtool unit-test file by its name (`*_test.yml`, `*_test.yaml`).
pub fn is_rule_test_file(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with("_test.yml") || n.ends_with("_test.yaml"))
}

/// Watches the rule files' directories and requests a reload when a file
/// there changes, after `WATCH_DEBOUNCE` of quiet. The watcher lives as
/// long as the returned task.
pub fn spawn_watcher(
    dirs: Vec<PathBuf>,
    handle: ReloadHandle,
    mut shutdown: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    use notify::{RecursiveMode, Watcher};
    if dirs.is_empty() {
        return None;
    }
    let (tx, mut rx) = mpsc::channel::<()>(16);
    let mut watcher =
        match notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res {
                if !ev.kind.is_access() {
                    let _ = tx.try_send(());
                }
            }
        }) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(
                    "cannot watch rule files ({e}); reload with SIGHUP or POST /-/reload"
                );
                return None;
            }
        };
    for d in &dirs {
        // Directories, not files: editors replace a file by renaming a new
        // one over it, which a watch on the old file would miss.
        if let Err(e) = watcher.watch(d, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %d.display(), "cannot watch rule directory: {e}");
        }
    }
    Some(tokio::spawn(async move {
        let _watcher = watcher;
        loop {
            tokio::select! {
                r = rx.recv() => if r.is_none() { return },
                _ = shutdown.wait_for(|s| *s) => return,
            }
            // Debounce: wait until the events stop for a while.
            loop {
                tokio::select! {
                    r = rx.recv() => if r.is_none() { return },
                    _ = tokio::time::sleep(WATCH_DEBOUNCE) => break,
                }
            }
            handle.request_if_changed();
        }
    }))
}
