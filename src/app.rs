//! The one module that knows all the others: builds the store, engine,
//! sources and HTTP server, handles signals, and stops everything in time.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{self, ApiState};
use crate::config::Config;
use crate::model::Labels;
use crate::promql::{Engine, EngineOptions};
use crate::rules::manager::{self, ManagerOptions, ReloadHandle, RuleManager, RuleSource};
use crate::rules::EvalContext;
use crate::store::{Store, StoreConfig};
use crate::telemetry::{MetricsWriter, Registry};

/// How long a graceful stop may take before the process exits anyway.
const STOP_DEADLINE: Duration = Duration::from_millis(4500);
/// How often expired chunks are dropped from the store.
const PRUNE_EVERY: Duration = Duration::from_secs(15);

/// Runs the agent until SIGTERM or SIGINT.
pub fn run(cfg: Config, config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        // The agent's own cost is a feature: two workers are plenty for
        // scraping and serving; queries run on the blocking pool.
        .worker_threads(2)
        .max_blocking_threads(8)
        .enable_all()
        .thread_name("hourglass")
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(run_async(cfg, config_path))
}

async fn run_async(cfg: Config, config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let store = Arc::new(Store::new(StoreConfig {
        retention_ms: cfg.global.retention.as_millis() as i64,
        max_series: cfg.global.max_series,
    }));
    let engine = Arc::new(Engine::new(EngineOptions {
        lookback_ms: cfg.global.lookback_delta.as_millis() as i64,
        ..EngineOptions::default()
    }));
    let registry = Arc::new(Registry::new());
    register_agent_metrics(&registry, &store);

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();

    tasks.extend(crate::sources::start_all(
        &cfg,
        &store,
        &registry,
        &shutdown_rx,
    ));
    tasks.push(spawn_pruner(store.clone(), shutdown_rx.clone()));

    let (rules, mut alert_events) = RuleManager::new(
        store.clone(),
        engine.clone(),
        ManagerOptions {
            default_interval_ms: cfg.global.evaluation_interval.as_millis() as i64,
            eval_ctx: EvalContext {
                external_labels: Labels::from_pairs(
                    &cfg.global
                        .external_labels
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect::<Vec<_>>(),
                ),
                external_url: format!("http://{}", cfg.listen),
                default_query_offset_ms: 0,
            },
        },
        RuleSource::from_config(&cfg, config_path.as_deref()),
        shutdown_rx.clone(),
    );
    rules.register_metrics(&registry);
    // A broken rule file at start leaves the agent running without rules:
    // the error is logged with file:line and
    // hourglass_rules_last_reload_successful is 0 until a reload succeeds.
    let _ = rules.reload(false, false);
    let (reload, reload_task) = rules.start();
    tasks.push(reload_task);
    if let Some(t) =
        manager::spawn_watcher(rules.watched_dirs(), reload.clone(), shutdown_rx.clone())
    {
        tasks.push(t);
    }
    // The notifiers attach here (alerts are logged by the manager); until
    // then the queue is drained so that it never reports drops.
    let mut events_shutdown = shutdown_rx.clone();
    tasks.push(tokio::spawn(async move {
        loop {
            tokio::select! {
                ev = alert_events.recv() => if ev.is_none() { return },
                _ = events_shutdown.wait_for(|s| *s) => return,
            }
        }
    }));

    let mut state = ApiState::new(store.clone(), engine, registry.clone());
    state.rules = Some(rules.clone());
    state.reload = Some(reload.clone());
    let ready = state.ready.clone();
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let mut http_shutdown = shutdown_rx.clone();
    let server = tokio::spawn(async move {
        let serve = axum::serve(listener, api::router(state)).with_graceful_shutdown(async move {
            let _ = http_shutdown.wait_for(|stop| *stop).await;
        });
        if let Err(e) = serve.await {
            tracing::error!("http server failed: {e}");
        }
    });
    tasks.push(server);

    ready.store(true, Ordering::Relaxed);
    tracing::info!(
        listen = %cfg.listen,
        config = %config_path.as_deref().map(|p| p.display().to_string()).unwrap_or_else(|| "<embedded default>".into()),
        retention = %humantime::format_duration(cfg.global.retention),
        version = env!("CARGO_PKG_VERSION"),
        "hourglass started"
    );
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    if let Some(every) = sd_notify::watchdog_enabled() {
        tasks.push(spawn_watchdog(every / 2, shutdown_rx.clone()));
    }

    wait_for_stop_signal(|| on_sighup(&rules, &reload, config_path.as_deref())).await?;
    tracing::info!("stopping");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    ready.store(false, Ordering::Relaxed);
    let _ = shutdown_tx.send(true);
    let all = futures_join_all(tasks);
    if tokio::time::timeout(STOP_DEADLINE, all).await.is_err() {
        tracing::warn!("some tasks did not stop within {STOP_DEADLINE:?}; exiting anyway");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Waits for every handle, ignoring panics (already reported by tokio).
async fn futures_join_all(tasks: Vec<JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

/// SIGHUP: re-read the configuration's `rule_files` and reload the rules.
/// Other settings need a restart (systemd's `restart` takes well under 5 s).
fn on_sighup(rules: &RuleManager, reload: &ReloadHandle, config_path: Option<&std::path::Path>) {
    tracing::info!("SIGHUP received: reloading rules");
    if let Some(path) = config_path {
        match Config::load(path) {
            Ok(cfg) => rules.set_source(RuleSource::from_config(&cfg, Some(path))),
            Err(e) => {
                tracing::error!("configuration not reloaded: {e}; reloading the same rule files");
            }
        }
    }
    reload.request();
}

#[cfg(unix)]
async fn wait_for_stop_signal(mut on_hup: impl FnMut()) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot install SIGHUP handler")?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = hup.recv() => on_hup(),
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_stop_signal(_on_hup: impl FnMut()) -> anyhow::Result<()> {
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for ctrl-c")
}

fn spawn_pruner(store: Arc<Store>, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PRUNE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = tick.tick() => store.prune(api::now_ms()),
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    })
}

fn spawn_watchdog(every: Duration, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => { let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]); }
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    })
}

fn register_agent_metrics(registry: &Registry, store: &Arc<Store>) {
    let store = store.clone();
    registry.register(move |w: &mut MetricsWriter| {
        w.family("hourglass_build_info", "gauge", "Build information.");
        w.sample(
            "hourglass_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
        let st = store.stats();
        w.single(
            "hourglass_store_series",
            "gauge",
            "Series held in the store.",
            st.series as f64,
        );
        w.single(
            "hourglass_store_chunks",
            "gauge",
            "Compressed chunks held in the store.",
            st.chunks as f64,
        );
        w.single(
            "hourglass_store_bytes",
            "gauge",
            "Bytes held by the store: chunks, head buffers, index and labels.",
            st.bytes as f64,
        );
        w.single(
            "hourglass_store_samples_appended_total",
            "counter",
            "Samples appended to the store.",
            st.samples_appended as f64,
        );
        w.single(
            "hourglass_store_series_refused_total",
            "counter",
            "New series refused because the series limit was reached.",
            st.series_refused as f64,
        );
        w.single(
            "hourglass_store_out_of_order_samples_total",
            "counter",
            "Samples refused because they were not newer than the series' last sample.",
            st.out_of_order as f64,
        );
        w.single(
            "hourglass_store_samples_pruned_total",
            "counter",
            "Samples dropped because they fell out of retention.",
            st.samples_pruned as f64,
        );
    });
}
