//! What the benchmarks share: a deterministic random generator, so that
//! every run builds the same data without another dependency, and the
//! thread CPU clock.

use std::time::Duration;

/// CPU time of this thread. Benchmarks that state a cost "on one core"
/// report it, so that other work on the machine does not inflate the figure
/// the way it inflates wall time (it still costs through shared caches).
#[allow(dead_code)]
pub fn cpu_now() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Runs `f` `iters` times and returns the thread CPU time it took, for
/// criterion's `iter_custom`.
#[allow(dead_code)]
pub fn cpu_time<T>(iters: u64, mut f: impl FnMut() -> T) -> Duration {
    let start = cpu_now();
    for _ in 0..iters {
        std::hint::black_box(f());
    }
    cpu_now().saturating_sub(start)
}

/// xorshift64.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}
