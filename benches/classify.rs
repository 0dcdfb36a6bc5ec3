//! Task classification throughput: 10 000 tasks (override with `JHF_WARP_BENCH_TASKS`) through
//! the embedded rules, each a title of one labelled task paired with the description of
//! another and one of five labels (3 824 titles × 3 824 descriptions: no text repeats the way
//! a handful of templates would, and the branch predictor cannot learn the inputs).
//!
//! Reports tasks per second and the ratio of classification's time to a yardstick measured in
//! the same run over the same bytes: a plain byte scan written here (counting the words of
//! title and description), so the yardstick does not move when the library's code or its
//! inlining does, and the printed ratio stays comparable across builds.
//!
//! Run with `cargo bench --bench classify`. Nothing here asserts on time.
//!
//! For counts that do not move with the machine's load, run the bench binary under
//! `valgrind --tool=callgrind` with `JHF_WARP_BENCH_TASKS=2000 JHF_WARP_BENCH_BUDGET_MS=0` (each
//! side then runs four times) and compare the inclusive instructions of `scan_all` and
//! `classify_all` in `callgrind_annotate --inclusive=yes`.

mod support;

use std::hint::black_box;
use std::time::Duration;

use jhf_warp::domain::classify::{Rules, TaskInput, classify};
use support::measure;

/// The labelled corpus, read as text only (its labels play no part here).
const CORPUS: &str = include_str!("../fixtures/classification/corpus.tsv");
const LABELS: [&str; 5] = ["bug", "docs", "infra", "support", "research"];

/// `count` tasks: title `i` paired with a description from elsewhere in the corpus (a stride
/// coprime with its length walks every description before repeating a pair).
fn tasks(count: usize) -> Vec<TaskInput> {
    let texts: Vec<(&str, &str)> = CORPUS
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let mut fields = line.split('\t').skip(2);
            (fields.next().unwrap_or(""), fields.next().unwrap_or(""))
        })
        .collect();
    let n = texts.len();
    let stride = (n / 3..n).find(|s| gcd(*s, n) == 1).unwrap_or(1);
    (0..count)
        .map(|i| TaskInput {
            title: texts[i % n].0.to_owned(),
            description: texts[(i * stride + i / n) % n].1.to_owned(),
            labels: vec![LABELS[(i / 3) % LABELS.len()].to_owned()],
            domain_hint: String::new(),
        })
        .collect()
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Words in `text`: an alphanumeric byte (or any byte of a multi-byte character) that follows
/// anything else starts one. The least work any word matcher does over the same bytes.
#[inline(never)]
fn count_words(text: &[u8]) -> usize {
    let mut words = 0;
    let mut inside = false;
    for &byte in text {
        let word_byte = byte.is_ascii_alphanumeric() || byte >= 0x80;
        words += usize::from(word_byte && !inside);
        inside = word_byte;
    }
    words
}

/// The yardstick: scanning every task's title and description once.
#[inline(never)]
fn scan_all(tasks: &[TaskInput]) -> usize {
    let mut words = 0;
    for task in tasks {
        words += count_words(black_box(task.title.as_bytes()));
        words += count_words(black_box(task.description.as_bytes()));
    }
    words
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
    let bytes: usize = tasks.iter().map(|t| t.title.len() + t.description.len()).sum();
    let words = scan_all(&tasks);
    let yardstick = measure(budget, || {
        black_box(scan_all(&tasks));
    });
    let classified = measure(budget, || classify_all(&tasks, &rules));
    let per_second = |d: Duration| count as f64 / d.as_secs_f64();
    println!(
        "classify bench: {count} tasks ({bytes} bytes, {words} words), {} rules, rules {}",
        rules.rules.len(),
        rules.version
    );
    println!(
        "  compiling the rules (with the word model's training): {:.1} ms",
        compiled.as_secs_f64() * 1e3
    );
    println!(
        "  yardstick (byte scan):      {:>10.3} ms  {:>12.0} tasks/s",
        yardstick.as_secs_f64() * 1e3,
        per_second(yardstick)
    );
    println!(
        "  classify:                   {:>10.3} ms  {:>12.0} tasks/s",
        classified.as_secs_f64() * 1e3,
        per_second(classified)
    );
    println!("  ratio classify / yardstick: {:.1}", classified.as_secs_f64() / yardstick.as_secs_f64());
}
