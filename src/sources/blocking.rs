//! Runs a blocking collector on tokio's blocking pool.
//!
//! The scrape loop's timeout can only cut an `.await`, never a blocked
//! thread, so a collector that reads files or makes syscalls runs in
//! `spawn_blocking`. The collector's state moves into the blocking task and
//! back, and the task's handle is kept even when the scrape future is dropped
//! (timeout, shutdown): the next scrape takes the state back if the task has
//! finished, and fails fast with `Busy` if it is still stuck, so a hung
//! syscall costs one blocked thread, not one per scrape.

use tokio::task::JoinHandle;

use super::{BoxFuture, SampleBuf, ScrapeCtx, Source, SourceError};

/// A synchronous collector, run by [`BlockingSource`].
pub trait Collect: Send + 'static {
    /// Appends one scrape's samples to `out`, which is empty.
    fn collect(&mut self, ctx: ScrapeCtx, out: &mut SampleBuf) -> Result<(), SourceError>;
}

type Joined<C> = (C, SampleBuf, Result<(), SourceError>);

enum State<C> {
    Idle(C, SampleBuf),
    Running(JoinHandle<Joined<C>>),
    /// The collector panicked; a fresh one is made on the next scrape.
    Lost,
}

/// A [`Source`] that runs a [`Collect`] on the blocking pool.
pub struct BlockingSource<C> {
    state: State<C>,
    make: Box<dyn FnMut() -> C + Send>,
}

impl<C: Collect> BlockingSource<C> {
    /// `make` builds the collector now, and again should one ever panic.
    pub fn new(mut make: impl FnMut() -> C + Send + 'static) -> BlockingSource<C> {
        BlockingSource {
            state: State::Idle(make(), SampleBuf::new()),
            make: Box::new(make),
        }
    }
}

impl<C: Collect> Source for BlockingSource<C> {
    fn scrape<'a>(
        &'a mut self,
        ctx: ScrapeCtx,
        out: &'a mut SampleBuf,
    ) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(async move {
            if let State::Running(h) = &self.state {
                if !h.is_finished() {
                    return Err(SourceError::Busy);
                }
            }
            let (collector, buf) = match std::mem::replace(&mut self.state, State::Lost) {
                State::Idle(c, buf) => (c, buf),
                // A timed-out collection that has since finished: its result
                // is stale, but the collector and its buffer are reusable.
                State::Running(h) => match h.await {
                    Ok((c, buf, _stale)) => (c, buf),
                    Err(_) => ((self.make)(), SampleBuf::new()),
                },
                State::Lost => ((self.make)(), SampleBuf::new()),
            };
            let handle = tokio::task::spawn_blocking(move || {
                let (mut collector, mut buf) = (collector, buf);
                buf.clear();
                let res = collector.collect(ctx, &mut buf);
                (collector, buf, res)
            });
            self.state = State::Running(handle);
            // Await through `self.state` so that, if this future is dropped
            // here, the handle stays where the next scrape finds it.
            let joined = match &mut self.state {
                State::Running(h) => h.await,
                _ => return Err(SourceError::Busy),
            };
            match joined {
                Ok((collector, mut buf, res)) => {
                    // Hand the filled buffer to the loop and keep the loop's
                    // old one for the next collection: both allocations live on.
                    std::mem::swap(out, &mut buf);
                    self.state = State::Idle(collector, buf);
                    res
                }
                Err(e) => {
                    self.state = State::Lost;
                    Err(SourceError::Panicked(e.to_string()))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    /// Blocks until the test sends on `gate`, then emits one sample.
    struct Gated {
        gate: mpsc::Receiver<()>,
        n: f64,
    }

    impl Collect for Gated {
        fn collect(&mut self, _ctx: ScrapeCtx, out: &mut SampleBuf) -> Result<(), SourceError> {
            self.gate.recv().map_err(SourceError::other)?;
            self.n += 1.0;
            out.push("n", &[], self.n);
            Ok(())
        }
    }

    fn ctx() -> ScrapeCtx {
        ScrapeCtx {
            timestamp_ms: 0,
            timeout: Duration::from_millis(50),
        }
    }

    #[tokio::test]
    async fn stuck_collection_is_busy_then_recovers() {
        let (tx, rx) = mpsc::channel();
        let mut rx = Some(rx);
        let mut src = BlockingSource::new(move || Gated {
            gate: rx.take().unwrap_or_else(|| mpsc::channel().1),
            n: 0.0,
        });
        let mut out = SampleBuf::new();

        // The first collection blocks past the timeout: the scrape is cut.
        let cut =
            tokio::time::timeout(Duration::from_millis(20), src.scrape(ctx(), &mut out)).await;
        assert!(cut.is_err());
        // Still blocked: the next scrape fails fast instead of queueing.
        assert!(matches!(
            src.scrape(ctx(), &mut out).await,
            Err(SourceError::Busy)
        ));

        // Release the stuck collection and the next one; the collector state
        // (its counter) survived the abandoned scrape.
        tx.send(()).unwrap();
        tx.send(()).unwrap();
        while matches!(src.scrape(ctx(), &mut out).await, Err(SourceError::Busy)) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let vals: Vec<f64> = out.iter().map(|s| s.value).collect();
        assert_eq!(vals, vec![2.0]);
    }
}
