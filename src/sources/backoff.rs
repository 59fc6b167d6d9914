//! What the sources that hold a connection (PostgreSQL, Redis) share:
//! spacing reconnection attempts after failures, and keeping every form of
//! a password out of the messages they log and return.

use std::time::Duration;

use tokio::time::Instant;

/// The longest wait between connection attempts.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Spacing of connection attempts after failures: 1 s, 2 s, 4 s... 30 s.
/// Scrapes in between repeat the last error without touching the network.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    pub(crate) failures: u32,
    pub(crate) retry_at: Option<Instant>,
    last: String,
}

impl Backoff {
    /// The last error while no attempt should be made yet.
    pub(crate) fn waiting(&self, now: Instant) -> Option<String> {
        match self.retry_at {
            Some(at) if now < at => Some(self.last.clone()),
            _ => None,
        }
    }

    /// Records a failed attempt at `now`.
    pub(crate) fn failed(&mut self, now: Instant, error: String) {
        let delay = Duration::from_secs(1u64 << self.failures.min(5)).min(MAX_BACKOFF);
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(now + delay);
        self.last = error;
    }
}

/// Every form of a target's password that could appear in a message (as
/// given, percent-encoded, decoded), replaced by `xxxxx` in any message.
#[derive(Debug, Default)]
pub(crate) struct Secrets(Vec<String>);

impl Secrets {
    pub(crate) fn add(&mut self, s: String) {
        if !s.is_empty() && !self.0.contains(&s) {
            self.0.push(s);
        }
    }

    pub(crate) fn redact(&self, mut message: String) -> String {
        for s in &self.0 {
            if message.contains(s.as_str()) {
                message = message.replace(s.as_str(), "xxxxx");
            }
        }
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let t0 = Instant::now();
        let mut b = Backoff::default();
        assert_eq!(b.waiting(t0), None);
        let mut at = t0;
        for (i, secs) in [1, 2, 4, 8, 16, 30, 30].into_iter().enumerate() {
            b.failed(at, format!("e{i}"));
            assert_eq!(b.retry_at, Some(at + Duration::from_secs(secs)));
            assert_eq!(b.waiting(at).as_deref(), Some(format!("e{i}").as_str()));
            at += Duration::from_secs(secs);
            assert_eq!(b.waiting(at), None);
        }
    }

    #[test]
    fn secrets_are_replaced_in_every_form() {
        let mut s = Secrets::default();
        s.add("p@ss".into());
        s.add("p%40ss".into());
        s.add(String::new());
        assert_eq!(
            s.redact("auth p@ss failed for postgres://u:p%40ss@h".into()),
            "auth xxxxx failed for postgres://u:xxxxx@h"
        );
    }
}
