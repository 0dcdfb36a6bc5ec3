//! What every benchmark shares.

use std::time::{Duration, Instant};

/// Runs `work` repeatedly for at least `budget` (and at least 3 times); returns the mean.
pub fn measure(budget: Duration, mut work: impl FnMut()) -> Duration {
    work(); // warm-up
    let start = Instant::now();
    let mut runs = 0u32;
    while runs < 3 || start.elapsed() < budget {
        work();
        runs += 1;
    }
    start.elapsed() / runs
}
