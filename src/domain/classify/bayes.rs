//! A small naive Bayes scorer, trained when a rules file is compiled on the tuning part of the
//! labelled corpus `fixtures/classification/corpus.tsv` (the held-out and blind parts never
//! reach it). Its features are a task's words, their letter trigrams and the category rules
//! the task matched, so it learns from the labelled tasks how far each rule and each word can
//! be trusted, and backs the rules up where their vocabulary runs out. Its posterior adds at
//! most [`BAYES_WEIGHT`] to the categories' rule scores, and the features that spoke most for
//! its choice (words, or rule ids) are reported in `matched_rules`, so a decision stays
//! explainable.
//!
//! Training happens once per compiled rules (~14–22 ms for ~2 900 tasks) with the
//! rules' own matcher, so a custom rules file gets a model that knows its rules; the model
//! only speaks for categories that the corpus and the rules both define.

use super::{MatchField, Normalised, Rules};

/// The most the scorer adds to one category (a strong rule weighs 3–5, the title counts half
/// as much again): it decides between the categories the rules leave close.
pub const BAYES_WEIGHT: f64 = 8.0;
/// Additive smoothing: below 1 because most words occur in one or two labelled tasks.
const ALPHA: f64 = 0.5;
/// Naive Bayes counts every word as independent evidence, so its posteriors are far too sure;
/// dividing the log-odds by this tempers them (a rule the model disagrees with still counts).
const TEMPERATURE: f64 = 3.0;
/// How much one letter trigram of a word counts beside the word itself. A word's trigrams
/// ("^le", "lea", "eak", "ak$") let the model read a word through the pieces it shares with
/// other words: one it never saw ("leaking" beside "leak", typos, "autoscaler" beside
/// "autoscaling"), and a rare one whose own count says little. 0.15 is the middle of the range
/// (0.1–0.2) where trigrams helped a words-only model most under cross-validation.
pub const GRAM_WEIGHT: f64 = 0.15;
/// The labelled corpus, embedded (≈250 KB).
const CORPUS: &str = include_str!("../../../fixtures/classification/corpus.tsv");

/// One labelled task of the corpus.
#[derive(Debug, Clone, Copy)]
pub struct Labelled {
    pub category: &'static str,
    /// Read by the accuracy tests only (the model learns categories).
    #[cfg_attr(not(test), allow(dead_code))]
    pub risk: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    /// Which part of the corpus the task is in (its file's fifth column).
    pub part: Part,
}

/// The parts of the labelled corpus (see the corpus file's header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Trained on, and read to write rules.
    Tuning,
    /// Frozen: never trained on, never read, never used to choose; its figure is reported.
    HeldOut,
    /// A new batch, scored before it joins the tuning part.
    Blind,
}

impl Part {
    fn parse(column: &str) -> Option<Self> {
        match column.trim() {
            "tune" => Some(Self::Tuning),
            "held" => Some(Self::HeldOut),
            "blind" => Some(Self::Blind),
            _ => None,
        }
    }
}

/// The corpus's tasks, in file order. A line without a known part is a malformed corpus, which
/// only a change to the embedded file can cause; it is kept out of every part (a test holds
/// every line well formed).
pub fn corpus() -> impl Iterator<Item = Labelled> {
    CORPUS.lines().filter(|line| !line.starts_with('#') && !line.trim().is_empty()).filter_map(|line| {
        let mut fields = line.split('\t');
        let mut next = || fields.next().unwrap_or("");
        let (category, risk, title, description, part) = (next(), next(), next(), next(), next());
        Some(Labelled { category, risk, title, description, part: Part::parse(part)? })
    })
}

/// How many task lines the corpus holds, well formed or not.
#[cfg(test)]
pub fn corpus_lines() -> usize {
    CORPUS.lines().filter(|line| !line.starts_with('#') && !line.trim().is_empty()).count()
}

/// A feature's index in the model (a `u32` halves the per-task feature list).
pub(super) type Feature = u32;

/// A letter trigram of a word, its three bytes packed (`^` and `$` mark the word's ends).
type Gram = u32;
/// Trigram features, hashed like the word index (fixed once trained; callers only probe it).
type GramMap =
    std::collections::HashMap<Gram, Feature, std::hash::BuildHasherDefault<super::hash::WordHasher>>;

/// Calls `each` with every letter trigram of `word`, ends marked.
fn grams_of(word: &str, mut each: impl FnMut(Gram)) {
    let bytes = word.as_bytes();
    let at = |i: usize| -> u32 {
        match i.checked_sub(1) {
            None => u32::from(b'^'),
            Some(j) => bytes.get(j).map_or(u32::from(b'$'), |&b| u32::from(b)),
        }
    };
    // Positions 0..=len+1 in "^word$"; a trigram starts at each of the first len of them.
    for start in 0..bytes.len() {
        each((at(start) << 16) | (at(start + 1) << 8) | at(start + 2));
    }
}

/// What training counts: per feature and category (row-major), per category, and the
/// training tasks per category.
struct Counts {
    counts: Vec<f64>,
    totals: Vec<f64>,
    documents: Vec<u32>,
}

impl Counts {
    fn add(&mut self, feature: Feature, category: usize, amount: f64) {
        let k = self.totals.len();
        self.counts[feature as usize * k + category] += amount;
        self.totals[category] += amount;
    }
}

/// Gives every word of the training texts a model feature (in the rules' word index), each
/// followed by its trigrams not seen before; returns the features' names and the trigram map.
fn register_vocabulary(rules: &mut Rules, texts: &[(Normalised, Normalised)]) -> (Vec<String>, GramMap) {
    let mut names: Vec<String> = Vec::new();
    let mut grams = GramMap::default();
    for (title, description) in texts {
        for text in [title, description] {
            for word in text.words() {
                let entry = rules.words.entry(word.to_owned()).or_default();
                if entry.model_token.is_none() {
                    entry.model_token = Some(names.len() as Feature);
                    names.push(word.to_owned());
                    grams_of(word, |gram| {
                        grams.entry(gram).or_insert_with(|| {
                            // Never shown: a known word carries its trigrams' evidence, and an
                            // unknown one is named as itself.
                            names.push(format!("#{gram:06x}"));
                            (names.len() - 1) as Feature
                        });
                    });
                }
            }
        }
    }
    (names, grams)
}

/// The trained scorer. Feature indexes: the word index's `model_token`s for words, each word
/// followed by its trigrams not seen before (`grams`), then one per category rule
/// (`rule_features`).
#[derive(Debug, Clone, Default)]
pub struct WordModel {
    /// The corpus's categories, sorted.
    categories: Vec<&'static str>,
    /// A printable name per feature: the word, or the rule's id.
    names: Vec<String>,
    /// Feature index per rule (category rules only).
    rule_features: Vec<Option<Feature>>,
    /// Log-likelihood per feature and category, row-major (`names.len()` × `categories.len()`).
    likelihood: Vec<f64>,
    prior: Vec<f64>,
    /// Per feature: the category it favours most, and by how much its log-likelihood there
    /// exceeds its mean elsewhere (what an explanation ranks by; fixed once trained).
    favours: Vec<(usize, f64)>,
    /// Per model category: its index among the rules' categories (`None`: the rules do not
    /// define it, and the model stays silent about it).
    rule_category: Vec<Option<usize>>,
    /// Letter trigram features. A known word's row already holds its trigrams' evidence
    /// (folded in at training), so only words the model never saw are split into trigrams.
    grams: GramMap,
}

impl WordModel {
    /// Trains on the corpus's tuning part: registers its words in the rules' word index (so a
    /// task's words are looked up once for the rules and the model together), then counts the
    /// words and matched category rules of every tuning task per category.
    pub(super) fn train(rules: &mut Rules) -> Self {
        Self::train_on(rules, |_, labelled| labelled.part == Part::Tuning)
    }

    /// Trains on the corpus's tasks that `pick` accepts (by index and task): the tuning part
    /// for the shipped model, folds of it for cross-validation.
    pub(super) fn train_on(rules: &mut Rules, pick: impl Fn(usize, &Labelled) -> bool) -> Self {
        let tuning: Vec<Labelled> =
            corpus().enumerate().filter(|(i, l)| pick(*i, l)).map(|(_, l)| l).collect();
        let mut categories: Vec<&'static str> = tuning.iter().map(|l| l.category).collect();
        categories.sort_unstable();
        categories.dedup();
        // A retrained model starts from no words (the index keeps the rules' terms).
        rules.words.retain(|_, entry| !entry.terms.is_empty());
        for entry in rules.words.values_mut() {
            entry.model_token = None;
        }
        let texts: Vec<(Normalised, Normalised)> =
            tuning.iter().map(|l| (Normalised::new(l.title), Normalised::new(l.description))).collect();
        let (mut names, grams) = register_vocabulary(rules, &texts);
        rules.resolve_prefixes();
        let mut rule_features = vec![None; rules.rules.len()];
        for (r, rule) in rules.rules.iter().enumerate() {
            if matches!(rule.effect, super::RuleEffect::Category { .. }) {
                rule_features[r] = Some(names.len() as Feature);
                names.push(rule.id.clone());
            }
        }
        let k = categories.len();
        let rule_category =
            categories.iter().map(|&id| rules.categories.iter().position(|c| c.id == id)).collect();
        let mut model = Self {
            categories,
            names,
            rule_features,
            likelihood: Vec::new(),
            prior: vec![0.0; k],
            favours: Vec::new(),
            rule_category,
            grams,
        };
        let Counts { counts, totals, documents } = model.count(rules, &tuning, &texts);
        let vocabulary = model.names.len() as f64;
        model.likelihood = counts
            .chunks(k.max(1))
            .flat_map(|row| {
                row.iter()
                    .zip(&totals)
                    .map(|(&n, &total)| ((n + ALPHA) / (total + ALPHA * vocabulary)).ln())
                    .collect::<Vec<_>>()
            })
            .collect();
        // Fold each known word's trigrams into its row, so reading a known word stays one row.
        let mut folded = model.likelihood.clone();
        for (word, entry) in rules.words.iter() {
            let Some(token) = entry.model_token else { continue };
            let row = token as usize * k;
            model.add_grams(word, &mut folded[row..row + k]);
        }
        model.likelihood = folded;
        model.favours = model.likelihood.chunks(k.max(1)).map(favoured).collect();
        let all: f64 = documents.iter().map(|&d| f64::from(d)).sum();
        model.prior = documents.iter().map(|&d| (f64::from(d.max(1)) / all.max(1.0)).ln()).collect();
        model
    }

    /// Feature counts per category over the training tasks.
    fn count(&self, rules: &Rules, tuning: &[Labelled], texts: &[(Normalised, Normalised)]) -> Counts {
        let k = self.categories.len();
        let mut counts = Counts {
            counts: vec![0f64; self.names.len() * k],
            totals: vec![0f64; k],
            documents: vec![0u32; k],
        };
        for (labelled, (title, description)) in tuning.iter().zip(texts) {
            let Ok(c) = self.categories.binary_search(&labelled.category) else { continue };
            counts.documents[c] += 1;
            let fields = [(MatchField::Title, title.words()), (MatchField::Description, description.words())];
            // Every word of a tuning task is known: none is left to read through trigrams.
            for feature in self.features(rules, &fields) {
                counts.add(feature, c, 1.0);
            }
            // Each word's trigrams, as often as the word counts (title words twice).
            for (field, words) in &fields {
                let times = if *field == MatchField::Title { 2.0 } else { 1.0 };
                for word in words {
                    grams_of(word, |gram| {
                        if let Some(&feature) = self.grams.get(&gram) {
                            counts.add(feature, c, times * GRAM_WEIGHT);
                        }
                    });
                }
            }
        }
        counts
    }

    /// The features of a task: its known words (title and description) and the category rules
    /// it matched.
    pub(super) fn features(&self, rules: &Rules, fields: &[(MatchField, Vec<&str>)]) -> Vec<Feature> {
        let super::Matches { found, model_tokens: mut known, .. } = super::find_matches(rules, fields);
        self.add_rule_features(&found, &mut known);
        known
    }

    /// Adds to `row` (one log-likelihood per category) the weighted evidence of `word`'s known
    /// trigrams, read from the unfolded trigram rows.
    fn add_grams(&self, word: &str, row: &mut [f64]) {
        let k = self.categories.len();
        grams_of(word, |gram| {
            if let Some(&feature) = self.grams.get(&gram) {
                let from = feature as usize * k;
                for (total, l) in row.iter_mut().zip(&self.likelihood[from..from + k]) {
                    *total += GRAM_WEIGHT * l;
                }
            }
        });
    }

    /// Adds the features of the category rules that matched (`found` is indexed by rule).
    pub(super) fn add_rule_features(&self, found: &[Option<(MatchField, String)>], known: &mut Vec<Feature>) {
        for (r, hit) in found.iter().enumerate() {
            let (Some((field, _)), Some(Some(feature))) = (hit, self.rule_features.get(r)) else { continue };
            // A rule matched in the title counts twice, like the title's words.
            known.extend(std::iter::repeat_n(*feature, if *field == MatchField::Title { 2 } else { 1 }));
        }
    }

    /// The categories the model knows, in the order of [`WordModel::posterior`]'s result.
    pub fn categories(&self) -> &[&'static str] {
        &self.categories
    }

    /// The index among the rules' categories of model category `m`, if the rules define it.
    pub fn rule_category(&self, m: usize) -> Option<usize> {
        self.rule_category.get(m).copied().flatten()
    }

    /// The evidence of each word the model never saw, read through its known trigrams: one
    /// row of log-likelihoods per word of `unknown`, in order (all zeros: no known trigram).
    /// Computed once per task for [`WordModel::posterior`] and [`WordModel::top_features`].
    pub fn unknown_rows(&self, unknown: &[(&str, u32)]) -> Vec<f64> {
        let k = self.categories.len();
        let mut rows = vec![0.0; unknown.len() * k];
        for (row, &(word, _)) in rows.chunks_mut(k.max(1)).zip(unknown) {
            self.add_grams(word, row);
        }
        rows
    }

    /// The posterior probability per model category of a task with features `known` (in
    /// order, repeats kept) and words the model never saw, `unknown` (with how often each
    /// counts, and their [`WordModel::unknown_rows`]); `None` when there is no evidence.
    pub fn posterior(&self, known: &[Feature], unknown: &[(&str, u32)], rows: &[f64]) -> Option<Vec<f64>> {
        let k = self.categories.len();
        if k == 0 {
            return None;
        }
        let mut log = self.prior.clone();
        for &feature in known {
            let row = feature as usize * k;
            for (total, l) in log.iter_mut().zip(&self.likelihood[row..row + k]) {
                *total += l;
            }
        }
        let mut heard = !known.is_empty();
        for (row, &(_, times)) in rows.chunks(k).zip(unknown) {
            heard |= row.iter().any(|&l| l != 0.0);
            for (total, l) in log.iter_mut().zip(row) {
                *total += f64::from(times) * l;
            }
        }
        if !heard {
            return None;
        }
        let max = log.iter().copied().fold(f64::MIN, f64::max);
        for l in &mut log {
            *l = ((*l - max) / TEMPERATURE).exp();
        }
        let sum: f64 = log.iter().sum();
        for l in &mut log {
            *l /= sum;
        }
        Some(log)
    }

    /// Up to `n` distinct features among `known` and words among `unknown` (with their
    /// [`WordModel::unknown_rows`]) that favour `category` most (it is their likeliest
    /// category), strongest first: words, or rule ids.
    pub fn top_features<'a>(
        &'a self,
        known: &[Feature],
        unknown: &[(&'a str, u32)],
        rows: &[f64],
        category: usize,
        n: usize,
    ) -> Vec<&'a str> {
        let mut scored: Vec<(&str, f64)> = Vec::new();
        let mut consider = |name: &'a str, (best, margin): (usize, f64)| {
            if best == category && margin > 0.0 && !scored.iter().any(|(seen, _)| *seen == name) {
                scored.push((name, margin));
            }
        };
        for &feature in known {
            consider(self.names[feature as usize].as_str(), self.favours[feature as usize]);
        }
        for (row, &(word, _)) in rows.chunks(self.categories.len().max(1)).zip(unknown) {
            consider(word, favoured(row));
        }
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
        scored.into_iter().take(n).map(|(name, _)| name).collect()
    }
}

/// The category a feature's row favours most, and by how much its log-likelihood there
/// exceeds its mean elsewhere.
fn favoured(row: &[f64]) -> (usize, f64) {
    let Some((best, &top)) = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)) else {
        return (0, 0.0);
    };
    let rest = (row.iter().sum::<f64>() - top) / (row.len().max(2) - 1) as f64;
    (best, top - rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_is_trained_on_the_tuning_part_only() {
        let rules = Rules::default_rules();
        let model = &rules.model;
        assert_eq!(model.categories().len(), 9, "{:?}", model.categories());
        let index = |word: &str| rules.words.get(word).and_then(|e| e.model_token);
        let known: Vec<Feature> = ["memory", "leak", "worker"].into_iter().filter_map(index).collect();
        let posterior = model.posterior(&known, &[], &[]).expect("known words");
        let total: f64 = posterior.iter().sum();
        assert!((total - 1.0).abs() < 1e-9);
        let bug_fix = model.categories().iter().position(|c| *c == "bug_fix").expect("bug_fix");
        let best = (0..posterior.len()).max_by(|&a, &b| posterior[a].total_cmp(&posterior[b]));
        assert_eq!(best, Some(bug_fix));
        assert!(model.posterior(&[], &[], &[]).is_none());
        // A word that only a held-out task uses is unknown to the model.
        let part_words = |part: Part| -> std::collections::BTreeSet<String> {
            corpus()
                .filter(|l| l.part == part)
                .flat_map(|l| {
                    let text = Normalised::new(&format!("{} {}", l.title, l.description));
                    text.words().into_iter().map(str::to_owned).collect::<Vec<_>>()
                })
                .collect()
        };
        let tuning = part_words(Part::Tuning);
        let held_only = part_words(Part::HeldOut)
            .into_iter()
            .find(|w| !tuning.contains(w))
            .expect("some held-out word is new");
        assert!(rules.words.get(&held_only).and_then(|e| e.model_token).is_none(), "{held_only}");
    }

    #[test]
    fn trigrams_mark_the_ends_of_a_word() {
        let mut seen = Vec::new();
        grams_of("leak", |gram| seen.push(gram.to_be_bytes()[1..].to_vec()));
        let seen: Vec<String> = seen.into_iter().map(|g| String::from_utf8(g).expect("ascii")).collect();
        assert_eq!(seen, ["^le", "lea", "eak", "ak$"]);
        let mut one = Vec::new();
        grams_of("a", |gram| one.push(gram));
        assert_eq!(one.len(), 1);
    }

    #[test]
    fn a_word_the_model_never_saw_is_read_through_its_trigrams() {
        let rules = Rules::default_rules();
        let model = &rules.model;
        let category = |id: &str| model.categories().iter().position(|c| *c == id).expect("category");
        for (word, expected) in [("refactorizing", "software_change"), ("dashboardz", "data_analysis")] {
            assert!(rules.words.get(word).and_then(|e| e.model_token).is_none(), "{word} is known");
            let unknown = [(word, 1)];
            let rows = model.unknown_rows(&unknown);
            let posterior = model.posterior(&[], &unknown, &rows).expect("some trigram is known");
            let best = (0..posterior.len()).max_by(|&a, &b| posterior[a].total_cmp(&posterior[b]));
            assert_eq!(best, Some(category(expected)), "{word}");
            // The explanation names the word itself.
            assert_eq!(model.top_features(&[], &unknown, &rows, category(expected), 5), [word]);
        }
        // A word none of whose trigrams the corpus has is no evidence at all.
        let unknown = [("qxqzqxj", 2)];
        assert!(model.posterior(&[], &unknown, &model.unknown_rows(&unknown)).is_none());
    }
}
