//! Task classification throughput: 10 000 varied tasks (override with
//! `JHF_WARP_BENCH_TASKS`) through the embedded rules. Reports tasks per second and the ratio
//! of classification's cost to a baseline measured in the same run: normalising the same text
//! (lower-casing and stripping punctuation), the least work any text matcher must do.
//!
//! Run with `cargo bench --bench classify`. Nothing here asserts on time.
//!
//! For counts that do not move with the machine's load, run the bench binary under
//! `valgrind --tool=callgrind` with `JHF_WARP_BENCH_TASKS=2000 JHF_WARP_BENCH_BUDGET_MS=0` (each
//! side then runs four times) and compare the inclusive instructions of `normalise_all` and
//! `classify_all` in `callgrind_annotate --inclusive=yes`.

mod support;

use std::hint::black_box;
use std::time::Duration;

use jhf_warp::domain::classify::{Rules, TaskInput, classify, normalise};
use support::measure;

const SUBJECTS: [&str; 10] = [
    "Production checkout is returning 500s since the last deploy",
    "Write a blog post about the new release",
    "Research vector databases for semantic search",
    "Analyse churn by signup cohort in the events dataset",
    "Rotate the TLS certificates on the load balancer",
    "Security review of the file upload flow",
    "Reply to a customer asking for a refund",
    "Implement CSV export for the reports page",
    "Plan the team offsite agenda",
    "Delete stale user data from the staging database",
];
const DETAILS: [&str; 5] = [
    "Customers are affected; please find the root cause and ship a fix with tests.",
    "Keep it short, friendly and accurate. Draft first, we review before publishing.",
    "Compare at least three options and summarise the findings with sources.",
    "Use the read-only replica; nothing in production may change without approval.",
    "Several teams depend on this, so coordinate and document every step in the ticket.",
];

fn tasks(count: usize) -> Vec<TaskInput> {
    (0..count)
        .map(|i| TaskInput {
            title: format!("{} (#{i})", SUBJECTS[i % SUBJECTS.len()]),
            description: format!("{} {}", DETAILS[i % DETAILS.len()], DETAILS[(i / 7) % DETAILS.len()]),
            labels: vec![["bug", "docs", "infra", "support", "research"][i % 5].to_owned()],
            domain_hint: String::new(),
        })
        .collect()
}

/// The baseline: normalising every task's title and description.
#[inline(never)]
fn normalise_all(tasks: &[TaskInput]) {
    for task in tasks {
        black_box(normalise(black_box(&task.title)));
        black_box(normalise(black_box(&task.description)));
    }
}

/// Classifying every task.
#[inline(never)]
fn classify_all(tasks: &[TaskInput], rules: &Rules) {
    for task in tasks {
        black_box(classify(black_box(task), rules));
    }
}

fn main() {
    let count: usize =
        std::env::var("JHF_WARP_BENCH_TASKS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    // Compiling the rules trains their word model on the corpus's tuning part: a start-up cost.
    let started = std::time::Instant::now();
    let rules = Rules::default_rules();
    let compiled = started.elapsed();
    let tasks = tasks(count);
    let budget = Duration::from_millis(
        std::env::var("JHF_WARP_BENCH_BUDGET_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000),
    );
    let baseline = measure(budget, || normalise_all(&tasks));
    let classified = measure(budget, || classify_all(&tasks, &rules));
    let per_second = |d: Duration| count as f64 / d.as_secs_f64();
    println!("classify bench: {count} tasks, {} rules, rules {}", rules.rules.len(), rules.version);
    println!(
        "  compiling the rules (with the word model's training): {:.1} ms",
        compiled.as_secs_f64() * 1e3
    );
    println!(
        "  baseline (normalise text):  {:>10.3} ms  {:>12.0} tasks/s",
        baseline.as_secs_f64() * 1e3,
        per_second(baseline)
    );
    println!(
        "  classify:                   {:>10.3} ms  {:>12.0} tasks/s",
        classified.as_secs_f64() * 1e3,
        per_second(classified)
    );
    println!("  ratio classify / baseline: {:.2}", classified.as_secs_f64() / baseline.as_secs_f64());
}
