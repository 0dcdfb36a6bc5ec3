//! A small naive Bayes scorer over words, trained at build time on the tuning part of
//! `fixtures/classification/corpus.tsv` (see `build.rs`; the held-out part never reaches it).
//! It backs the rules up where their vocabulary runs out: its posterior adds at most
//! [`BAYES_WEIGHT`] to the categories' rule scores, and the words that spoke most for the
//! winner are reported in `matched_rules`, so a decision stays explainable.

mod model {
    include!(concat!(env!("OUT_DIR"), "/nb_model.rs"));
}

/// The most the scorer adds to one category (a strong rule weighs 3–5).
pub const BAYES_WEIGHT: f64 = 2.5;

/// The scorer's opinion of one task.
#[derive(Debug, Clone, PartialEq)]
pub struct Opinion {
    /// Posterior probability per model category, in [`categories`] order.
    pub posterior: Vec<f64>,
    /// The task's words the model knows, as token indexes (in order, repeats kept).
    known: Vec<usize>,
}

impl Opinion {
    /// Up to `n` distinct words that favour `category` most (it is their likeliest category),
    /// strongest first.
    pub fn top_words(&self, category: usize, n: usize) -> Vec<&'static str> {
        let tables = tables();
        let k = model::NB_CATEGORIES.len();
        let mut scored: Vec<(usize, f64)> = Vec::new();
        for &index in &self.known {
            let row = &tables.likelihood[index];
            let best = (0..k).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap_or(0);
            if best != category || scored.iter().any(|(i, _)| *i == index) {
                continue;
            }
            let rest = (row.iter().sum::<f64>() - row[category]) / (k - 1).max(1) as f64;
            scored.push((index, row[category] - rest));
        }
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.into_iter().take(n).map(|(i, _)| model::NB_TOKENS[i].0).collect()
    }
}

/// The categories the model knows, in the order of [`Opinion::posterior`].
pub fn categories() -> &'static [&'static str] {
    model::NB_CATEGORIES
}

/// Log-likelihoods per token and category and log-priors, computed once (no logarithm on the
/// classification path).
struct Tables {
    likelihood: Vec<Vec<f64>>,
    prior: Vec<f64>,
}

fn tables() -> &'static Tables {
    static TABLES: std::sync::OnceLock<Tables> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        let vocabulary = model::NB_TOKENS.len() as f64;
        let documents: f64 = model::NB_DOCS.iter().map(|&d| f64::from(d)).sum();
        let likelihood = model::NB_TOKENS
            .iter()
            .map(|(_, row)| {
                row.iter()
                    .zip(model::NB_TOTALS)
                    .map(|(&count, &total)| ((f64::from(count) + 1.0) / (f64::from(total) + vocabulary)).ln())
                    .collect()
            })
            .collect();
        let prior = model::NB_DOCS.iter().map(|&d| (f64::from(d) / documents).ln()).collect();
        Tables { likelihood, prior }
    })
}

/// The model's words, in token-index order (the classifier indexes them with its rules).
pub fn tokens() -> impl Iterator<Item = &'static str> {
    model::NB_TOKENS.iter().map(|(token, _)| *token)
}

#[cfg(test)]
fn token_index(word: &str) -> Option<usize> {
    model::NB_TOKENS.binary_search_by(|(token, _)| (*token).cmp(word)).ok()
}

/// Scores the task's words (already normalised); `None` when no word is known.
#[cfg(test)]
pub fn opinion<'a>(words: impl IntoIterator<Item = &'a str>) -> Option<Opinion> {
    opinion_of(&words.into_iter().filter_map(token_index).collect::<Vec<_>>())
}

/// Scores a task by the token indexes of its known words (in order, repeats kept); `None`
/// when there are none.
pub fn opinion_of(known: &[usize]) -> Option<Opinion> {
    let k = model::NB_CATEGORIES.len();
    if k == 0 || known.is_empty() {
        return None;
    }
    let tables = tables();
    let mut log = tables.prior.clone();
    for &index in known {
        for (total, l) in log.iter_mut().zip(&tables.likelihood[index]) {
            *total += l;
        }
    }
    let max = log.iter().copied().fold(f64::MIN, f64::max);
    let exp: Vec<f64> = log.iter().map(|l| (l - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    Some(Opinion { posterior: exp.iter().map(|e| e / sum).collect(), known: known.to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_is_trained_and_sorted_for_lookup() {
        assert!(categories().len() >= 9, "{:?}", categories());
        assert!(model::NB_TOKENS.windows(2).all(|w| w[0].0 < w[1].0));
        let scored = opinion(["memory", "leak", "worker"]).unwrap();
        let total: f64 = scored.posterior.iter().sum();
        assert!((total - 1.0).abs() < 1e-9);
        assert!(opinion(["zzzz-unknown"]).is_none());
    }
}
