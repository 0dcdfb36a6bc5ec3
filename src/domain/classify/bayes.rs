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
    /// The known words of the task, with how strongly each favours a category over the rest.
    pub evidence: Vec<(String, usize, f64)>,
}

/// The categories the model knows, in the order of [`Opinion::posterior`].
pub fn categories() -> &'static [&'static str] {
    model::NB_CATEGORIES
}

fn counts(word: &str) -> Option<&'static [u32]> {
    model::NB_TOKENS.binary_search_by(|(token, _)| (*token).cmp(word)).ok().map(|i| model::NB_TOKENS[i].1)
}

/// Scores the task's words (already normalised); `None` when no word is known.
pub fn opinion<'a>(words: impl IntoIterator<Item = &'a str>) -> Option<Opinion> {
    let k = model::NB_CATEGORIES.len();
    if k == 0 {
        return None;
    }
    let vocabulary = model::NB_TOKENS.len() as f64;
    let documents: f64 = model::NB_DOCS.iter().map(|&d| f64::from(d)).sum();
    let mut log: Vec<f64> = model::NB_DOCS.iter().map(|&d| (f64::from(d) / documents).ln()).collect();
    let mut evidence = Vec::new();
    let mut known = 0;
    for word in words {
        let Some(row) = counts(word) else { continue };
        known += 1;
        let likelihood: Vec<f64> = (0..k)
            .map(|c| ((f64::from(row[c]) + 1.0) / (f64::from(model::NB_TOTALS[c]) + vocabulary)).ln())
            .collect();
        for (total, l) in log.iter_mut().zip(&likelihood) {
            *total += l;
        }
        let (best, top) = likelihood
            .iter()
            .enumerate()
            .fold((0, f64::MIN), |acc, (c, &l)| if l > acc.1 { (c, l) } else { acc });
        let rest = (likelihood.iter().sum::<f64>() - top) / (k - 1).max(1) as f64;
        evidence.push((word.to_owned(), best, top - rest));
    }
    if known == 0 {
        return None;
    }
    let max = log.iter().copied().fold(f64::MIN, f64::max);
    let exp: Vec<f64> = log.iter().map(|l| (l - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    Some(Opinion { posterior: exp.iter().map(|e| e / sum).collect(), evidence })
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
