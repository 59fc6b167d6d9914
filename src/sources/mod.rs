//! Sources of samples and the scrape loop they share.
//!
//! A [`Source`] knows how to collect one scrape of samples (host, PostgreSQL,
//! Redis, HTTP); everything scrapes have in common lives in the loop started
//! by [`spawn_scrape_loop`]: the interval and timeout, the `job`/`instance`
//! labels, `up` and `scrape_*` series, staleness markers, the series cache
//! that keeps steady-state appends free of label allocation, and the
//! counters the agent exposes about itself. A source that blocks (reads
//! files, makes syscalls that may hang) implements [`Collect`] instead and is
//! wrapped in a [`BlockingSource`], which runs it on tokio's blocking pool so
//! the loop's timeout really cuts the wait.
//!
//! Wiring, for `app`:
//!
//! ```no_run
//! # use std::{sync::Arc, time::Duration};
//! # use hourglass::{sources::*, store::{Store, StoreConfig}};
//! # async fn wire() {
//! let store = Arc::new(Store::new(StoreConfig::default()));
//! let (_tx, shutdown) = tokio::sync::watch::channel(false);
//! let sources: Vec<(Box<dyn Source>, ScrapeConfig)> = vec![(
//!     Box::new(host::source()),
//!     ScrapeConfig::new("host", "myhost", Duration::from_secs(1), Duration::from_millis(900)),
//! )];
//! for (source, cfg) in sources {
//!     let (_task, _stats) = spawn_scrape_loop(source, store.clone(), cfg, shutdown.clone());
//! }
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

mod backoff;
mod blocking;
mod buf;
pub mod host;
pub mod http;
pub mod postgres;
pub mod redis;
mod scrape;
mod start;

pub use blocking::{BlockingSource, Collect};
pub use buf::{SampleBuf, SampleBuilder, SampleRef};
pub use scrape::{
    spawn_scrape_loop, system_clock, Clock, ScrapeConfig, ScrapeStats, ScrapeStatsSnapshot,
};
pub use start::{hostname, start_all, write_stats, HOST_JOB};

/// A boxed future, so that sources of different types can sit in one
/// `Vec<Box<dyn Source>>`. One small allocation per scrape is nothing next
/// to the scrape itself.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a source may want to know about the scrape it is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrapeCtx {
    /// The timestamp (ms) the scrape's samples get, unless they carry their own.
    pub timestamp_ms: i64,
    /// How long the loop waits for this scrape, e.g. for an HTTP source's
    /// `X-Prometheus-Scrape-Timeout-Seconds` or a PostgreSQL statement timeout.
    pub timeout: Duration,
}

/// Something that produces the samples of one scrape.
pub trait Source: Send {
    /// Appends this scrape's samples to `out` (which the loop has cleared).
    /// An error makes the whole scrape a failure (`up` 0, the previous
    /// scrape's series marked stale); samples already in `out` are ignored,
    /// except with [`SourceError::Down`].
    /// The future may be dropped at any await point when the scrape times
    /// out or the agent shuts down, so it must leave `self` usable.
    fn scrape<'a>(
        &'a mut self,
        ctx: ScrapeCtx,
        out: &'a mut SampleBuf,
    ) -> BoxFuture<'a, Result<(), SourceError>>;
}

impl<S: Source + ?Sized> Source for Box<S> {
    fn scrape<'a>(
        &'a mut self,
        ctx: ScrapeCtx,
        out: &'a mut SampleBuf,
    ) -> BoxFuture<'a, Result<(), SourceError>> {
        (**self).scrape(ctx, out)
    }
}

/// Why a scrape failed. Timeouts are not here: the loop detects them.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A blocking collection from an earlier, timed-out scrape has not
    /// returned yet (a hung syscall); the scrape is skipped rather than
    /// piling up blocked threads.
    #[error("the previous collection is still running")]
    Busy,
    #[error("the collector panicked: {0}")]
    Panicked(String),
    /// Anything source-specific (a PostgreSQL error, a bad HTTP status).
    #[error("{0}")]
    Other(Box<dyn std::error::Error + Send + Sync>),
    /// The target is down (unreachable, refused the login), and the source
    /// said so in the samples it wrote (an exporter's `redis_up 0`). Unlike
    /// the other errors, those samples are kept; the scrape still fails
    /// (`up` 0, the series absent from it marked stale).
    #[error("{0}")]
    Down(Box<dyn std::error::Error + Send + Sync>),
}

impl SourceError {
    pub fn other(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> SourceError {
        SourceError::Other(e.into())
    }
}
