//! What every benchmark shares.

use std::time::{Duration, Instant};

/// Runs `work` repeatedly for at least `budget` (and at least 3 times); returns the fastest
/// run. On a shared machine other tenants only ever add time, so the fastest run is the
/// closest to the work's own cost, and a ratio of two fastest runs swings far less than a
/// ratio of means.
pub fn measure(budget: Duration, mut work: impl FnMut()) -> Duration {
    work(); // warm-up
    let start = Instant::now();
    let mut runs = 0u32;
    let mut fastest = Duration::MAX;
    while runs < 3 || start.elapsed() < budget {
        let run = Instant::now();
        work();
        fastest = fastest.min(run.elapsed());
        runs += 1;
    }
    fastest
}
