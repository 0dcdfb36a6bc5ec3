//! Task classification: a deterministic, explainable rule engine.
//!
//! # Guarantees
//! - Pure and deterministic: the same task and rules give the same profile, byte for byte;
//!   case, punctuation and whitespace do not change the outcome.
//! - Explainable: every rule that contributed is returned with the field and words it matched.
//! - Safe by default: de-escalating words ("draft", "sandbox") lower the risk only when no
//!   escalating word matched, and HIGH risk always asks for an independent review.

mod bayes;
mod hash;
mod rules;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

pub use rules::{Category, DEFAULT_RULES, Rule, RuleEffect, Rules, RulesError};

use super::desired::FieldViolation;

/// Longest title, in bytes.
pub const MAX_TITLE: usize = 1_000;
/// Longest description, in bytes.
pub const MAX_DESCRIPTION: usize = 20_000;
/// Most labels.
pub const MAX_LABELS: usize = 50;
/// Longest label, in bytes.
pub const MAX_LABEL: usize = 100;

/// How risky a piece of work is. Ordered from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RiskLevel {
    Low = 0,
    Medium = 1,
    High = 2,
    Critical = 3,
}

impl RiskLevel {
    const ALL: [Self; 4] = [Self::Low, Self::Medium, Self::High, Self::Critical];

    /// Parses the upper-case name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|level| level.as_str() == text)
    }

    /// Returns the upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "LOW",
            Self::Medium => "MEDIUM",
            Self::High => "HIGH",
            Self::Critical => "CRITICAL",
        }
    }

    fn shifted(self, steps: i32) -> Self {
        Self::ALL[(self as i32 + steps).clamp(0, 3) as usize]
    }
}

/// A task as a caller describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskInput {
    pub title: String,
    pub description: String,
    pub labels: Vec<String>,
    /// A category id or domain the caller believes fits; it adds weight, it does not decide.
    pub domain_hint: String,
}

/// Where a term matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MatchField {
    Title,
    Labels,
    Description,
    DomainHint,
}

impl MatchField {
    /// Returns the request field name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Title => "title",
            Self::Labels => "labels",
            Self::Description => "description",
            Self::DomainHint => "domain_hint",
        }
    }
}

/// One rule that matched, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleMatch {
    pub rule_id: String,
    /// `category`, `escalate`, `deescalate`, `hint` or `domain_hint`.
    pub kind: Cow<'static, str>,
    /// What it pointed at: a category id, a number of risk steps, or a hint.
    pub target: Cow<'static, str>,
    pub field: MatchField,
    /// The words that matched, as normalised text.
    pub evidence: String,
    /// Score added (categories only; 0 otherwise).
    pub score: f64,
}

/// A runner-up category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alternative {
    pub category: String,
    pub score: f64,
    pub confidence: f64,
}

/// What a task is, how risky, and what its team needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskProfile {
    pub category: String,
    pub category_name: String,
    pub domain: String,
    pub risk: RiskLevel,
    /// Setup hints, sorted.
    pub hints: Vec<String>,
    /// In [0, 1]: the winner's share of all evidence.
    pub confidence: f64,
    /// Other categories with evidence, best first (at most three).
    pub alternatives: Vec<Alternative>,
    pub matched: Vec<RuleMatch>,
    pub rules_version: String,
}

/// A risk rule's target, by its steps (1..3; rules are validated to that).
const RAISE: [&str; 4] = ["+0", "+1", "+2", "+3"];
const LOWER: [&str; 4] = ["-0", "-1", "-2", "-3"];
/// Bonus for a category named by the caller's domain hint.
const DOMAIN_HINT_WEIGHT: f64 = 2.0;
/// Most words of one task the word model reads through their letter trigrams when it does not
/// know them: each costs a row of log-likelihoods, and 20 KB of made-up words would otherwise
/// cost ~36 times their size (real tasks have a handful).
const MAX_UNKNOWN_WORDS: usize = 256;
/// Hints every HIGH or CRITICAL task gets.
pub const HINT_REVIEW: &str = "needs_independent_review";
/// Hint every CRITICAL task gets.
pub const HINT_APPROVAL: &str = "needs_human_approval";

/// Lower-cases and replaces every run of characters that are not letters or digits with one
/// space, so "Stack-Trace!!" and "stack trace" read the same.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    normalise_into(text, &mut out, |_| {});
    out
}

/// Normalised text and the byte range of each of its words, from one pass over the text.
struct Normalised {
    text: String,
    bounds: Vec<std::ops::Range<usize>>,
}

impl Normalised {
    fn new(text: &str) -> Self {
        let mut out = String::with_capacity(text.len());
        // Words of ~5 letters and a space: a guess that rarely regrows and never overshoots far.
        let mut bounds = Vec::with_capacity(text.len() / 5 + 1);
        normalise_into(text, &mut out, |word| bounds.push(word));
        Self { text: out, bounds }
    }

    fn words(&self) -> Vec<&str> {
        self.bounds.iter().map(|range| &self.text[range.clone()]).collect()
    }
}

/// What [`normalise`] does, appending to `out` and handing each finished word's byte range in
/// `out` to `word` (a no-op closure costs nothing, so plain normalisation pays for no ranges).
fn normalise_into(text: &str, out: &mut String, mut word: impl FnMut(std::ops::Range<usize>)) {
    let mut start: Option<usize> = None;
    for c in text.chars() {
        if c.is_alphanumeric() {
            if start.is_none() {
                if !out.is_empty() {
                    out.push(' ');
                }
                start = Some(out.len());
            }
            out.extend(c.to_lowercase());
        } else if let Some(from) = start.take() {
            word(from..out.len());
        }
    }
    if let Some(from) = start {
        word(from..out.len());
    }
}

/// Checks a task's bounds; every problem is reported at once.
pub fn validate_task(task: &TaskInput, rules: &Rules) -> Result<(), Vec<FieldViolation>> {
    let mut violations = Vec::new();
    if normalise(&task.title).is_empty() && normalise(&task.description).is_empty() {
        violations.push(FieldViolation::new("task.title", "a title or a description with words is required"));
    }
    if task.title.len() > MAX_TITLE {
        violations.push(FieldViolation::new("task.title", format!("longer than {MAX_TITLE} bytes")));
    }
    if task.description.len() > MAX_DESCRIPTION {
        violations
            .push(FieldViolation::new("task.description", format!("longer than {MAX_DESCRIPTION} bytes")));
    }
    if task.labels.len() > MAX_LABELS {
        violations.push(FieldViolation::new("task.labels", format!("at most {MAX_LABELS} labels")));
    }
    for (i, label) in task.labels.iter().enumerate() {
        if label.len() > MAX_LABEL {
            violations.push(FieldViolation::new(
                format!("task.labels[{i}]"),
                format!("longer than {MAX_LABEL} bytes"),
            ));
        }
    }
    let hint = normalise(&task.domain_hint).replace(' ', "_");
    if !hint.is_empty() && !rules.categories.iter().any(|c| c.id == hint || c.domain == hint) {
        let known: BTreeSet<&str> =
            rules.categories.iter().flat_map(|c| [c.id.as_str(), c.domain.as_str()]).collect();
        violations.push(FieldViolation::new(
            "task.domain_hint",
            format!(
                "\"{}\" is neither a category nor a domain; known: {}",
                task.domain_hint.chars().take(64).collect::<String>(),
                known.into_iter().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    if violations.is_empty() { Ok(()) } else { Err(violations) }
}

/// What one pass over a task's words found.
struct Matches<'t> {
    /// The first place each rule matched, by rule: the field and the matched words.
    found: Vec<Option<(MatchField, String)>>,
    /// The word model's tokens among the words of the title and the description (repeats
    /// kept: title words count twice).
    model_tokens: Vec<bayes::Feature>,
    /// The words of the title and the description the model never saw, with how often each
    /// counts (the model reads them through their letter trigrams).
    unknown: Vec<(&'t str, u32)>,
}

/// Matches a task's fields against the rules and the word model (one index lookup per word
/// serves both).
fn find_matches<'t>(rules: &Rules, fields: &[(MatchField, Vec<&'t str>)]) -> Matches<'t> {
    let mut found: Vec<Option<(MatchField, String)>> = vec![None; rules.rules.len()];
    let mut unknown = Vec::new();
    // Room for every word twice (title words count twice) and every rule: no regrowth.
    let mut model_tokens =
        Vec::with_capacity(2 * fields.iter().map(|(_, w)| w.len()).sum::<usize>() + 2 * rules.rules.len());
    for (field, words) in fields {
        for start in 0..words.len() {
            let word = words[start];
            let entry = rules.words.get(word);
            if *field != MatchField::Labels {
                // The title says what the work is: its words count twice.
                let times = if *field == MatchField::Title { 2 } else { 1 };
                match entry.and_then(|e| e.model_token) {
                    Some(token) => model_tokens.extend(std::iter::repeat_n(token, times)),
                    None if unknown.len() < MAX_UNKNOWN_WORDS => unknown.push((word, times as u32)),
                    None => {}
                }
            }
            let mut consider = |(r, t): (usize, usize)| {
                if found[r].is_some() {
                    return;
                }
                let term = &rules.rules[r].terms[t];
                let n = term.words.len();
                if term_at(term, words, start) && !(rules.rules[r].is_risk() && negated(words, start)) {
                    found[r] = Some((*field, words[start..start + n].join(" ")));
                }
            };
            // A known word's prefix terms were resolved with the index; others are checked
            // against the prefixes that start with the same byte.
            match entry {
                Some(entry) => entry.terms.iter().chain(&entry.prefix_terms).copied().for_each(&mut consider),
                None => rules.prefixes[rules::prefix_slot(word)]
                    .iter()
                    .filter(|(p, _, _)| word.starts_with(p.as_str()))
                    .for_each(|&(_, r, t)| consider((r, t))),
            }
        }
    }
    // A compound risk rule fires when all the rules it names matched (its own terms aside).
    for (r, rule) in rules.rules.iter().enumerate() {
        if found[r].is_some() || rule.all_of.is_empty() {
            continue;
        }
        if rule.all_of.iter().all(|&i| found[i].is_some()) {
            let parts = rule.all_of.iter().filter_map(|&i| found[i].as_ref());
            let field = parts.clone().next().map_or(MatchField::Description, |(field, _)| *field);
            let evidence = parts.map(|(_, e)| e.as_str()).collect::<Vec<_>>().join(" + ");
            found[r] = Some((field, evidence));
        }
    }
    Matches { found, model_tokens, unknown }
}

/// True when `term` matches `words` from `start` on.
fn term_at(term: &rules::Term, words: &[&str], start: usize) -> bool {
    let n = term.words.len();
    start + n <= words.len()
        && term.words.iter().enumerate().all(|(k, w)| {
            let actual = words[start + k];
            if term.prefix && k == n - 1 { actual.starts_with(w.as_str()) } else { actual == w }
        })
}

/// Words that cancel the risk term after them ("not for prod", "no production data").
const NEGATIONS: &[&str] = &["not", "no", "non", "never", "without"];
/// Words that may stand between a negation and the term it cancels.
const NEGATION_LINKS: &[&str] = &["for", "in", "on", "to", "touching", "affecting", "yet", "a", "the", "any"];

/// True when the words just before `start` negate what starts there: a negation, possibly
/// followed by up to two linking words ("not for prod", "not in the sandbox").
fn negated(words: &[&str], start: usize) -> bool {
    for word in words[..start].iter().rev().take(3) {
        if NEGATIONS.contains(word) {
            return true;
        }
        if !NEGATION_LINKS.contains(word) {
            return false;
        }
    }
    false
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// Classifies a validated task.
pub fn classify(task: &TaskInput, rules: &Rules) -> TaskProfile {
    let title = Normalised::new(&task.title);
    let description = Normalised::new(&task.description);
    let labels: Vec<Normalised> = task.labels.iter().map(|l| Normalised::new(l)).collect();
    // Labels are matched one by one, so a phrase never spans two labels.
    let mut fields: Vec<(MatchField, Vec<&str>)> = Vec::with_capacity(labels.len() + 2);
    fields.push((MatchField::Title, title.words()));
    fields.extend(labels.iter().map(|l| (MatchField::Labels, l.words())));
    fields.push((MatchField::Description, description.words()));
    let Matches { found, mut model_tokens, unknown } = find_matches(rules, &fields);
    rules.model.add_rule_features(&found, &mut model_tokens);

    let mut scores = vec![0.0f64; rules.categories.len()];
    let mut matched = Vec::with_capacity(found.iter().flatten().count() + 3);
    let (mut escalation, mut deescalation, mut uncapped_escalation) = (0i32, 0i32, 0i32);
    let mut hints = BTreeSet::new();
    for (rule, hit) in rules.rules.iter().zip(found) {
        let Some((field, evidence)) = hit else { continue };
        let (kind, target, score) = match &rule.effect {
            RuleEffect::Category { category, weight } => {
                let bonus = if field == MatchField::Title { weight * rules.title_bonus } else { 0.0 };
                scores[*category] += weight + bonus;
                ("category", Cow::Owned(rules.categories[*category].id.clone()), weight + bonus)
            }
            RuleEffect::Escalate { steps, uncapped } => {
                // The strongest escalator decides; several reasons do not stack.
                escalation = escalation.max(i32::from(*steps));
                if *uncapped {
                    uncapped_escalation = uncapped_escalation.max(i32::from(*steps));
                }
                ("escalate", Cow::Borrowed(RAISE[usize::from(*steps).min(3)]), 0.0)
            }
            RuleEffect::Deescalate { steps } => {
                deescalation = deescalation.max(i32::from(*steps));
                ("deescalate", Cow::Borrowed(LOWER[usize::from(*steps).min(3)]), 0.0)
            }
            RuleEffect::Hint { hint } => {
                hints.insert(hint.as_str());
                ("hint", Cow::Owned(hint.clone()), 0.0)
            }
        };
        matched.push(RuleMatch {
            rule_id: rule.id.clone(),
            kind: Cow::Borrowed(kind),
            target,
            field,
            evidence,
            score: round3(score),
        });
    }
    let hint = normalise(&task.domain_hint).replace(' ', "_");
    if !hint.is_empty() {
        for (i, category) in rules.categories.iter().enumerate() {
            if category.id == hint || category.domain == hint {
                scores[i] += DOMAIN_HINT_WEIGHT;
                matched.push(RuleMatch {
                    rule_id: "domain_hint".to_owned(),
                    kind: Cow::Borrowed("domain_hint"),
                    target: Cow::Owned(category.id.clone()),
                    field: MatchField::DomainHint,
                    evidence: hint.clone(),
                    score: DOMAIN_HINT_WEIGHT,
                });
            }
        }
    }

    // The word model backs the rules up (only for categories these rules define, so custom
    // rule files with other categories are untouched).
    let unknown_rows = rules.model.unknown_rows(&unknown);
    if let Some(posterior) = rules.model.posterior(&model_tokens, &unknown, &unknown_rows) {
        let model = rules.model.categories();
        let mut best: Option<(usize, f64)> = None;
        for (m, probability) in posterior.iter().enumerate() {
            let Some(i) = rules.model.rule_category(m) else { continue };
            let added = bayes::BAYES_WEIGHT * probability;
            scores[i] += added;
            if best.is_none_or(|(_, b)| added > b) {
                best = Some((m, added));
            }
        }
        if let Some((m, added)) = best {
            let evidence = rules.model.top_features(&model_tokens, &unknown, &unknown_rows, m, 5);
            matched.push(RuleMatch {
                rule_id: "bayes.words".to_owned(),
                kind: Cow::Borrowed("category"),
                target: Cow::Borrowed(model[m]),
                field: MatchField::Description,
                evidence: evidence.join(" "),
                score: round3(added),
            });
        }
    }

    let total: f64 = scores.iter().sum();
    // Highest score wins; ties go to the category listed first (stable, so deterministic).
    let mut order: Vec<usize> = (0..scores.len()).filter(|&i| scores[i] > 0.0).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let winner = order.first().copied().unwrap_or(rules.fallback);
    let confidence = if total > 0.0 { round3(scores[winner] / (total + 1.0)) } else { 0.0 };
    let alternatives = order
        .iter()
        .skip(1)
        .take(3)
        .map(|&i| Alternative {
            category: rules.categories[i].id.clone(),
            score: round3(scores[i]),
            confidence: round3(scores[i] / (total + 1.0)),
        })
        .collect();

    // A title written in capitals is someone shouting about something urgent.
    if shouted(&task.title) {
        escalation = escalation.max(1);
        matched.push(RuleMatch {
            rule_id: "risk.shouted".to_owned(),
            kind: Cow::Borrowed("escalate"),
            target: Cow::Borrowed(RAISE[1]),
            field: MatchField::Title,
            evidence: task.title.chars().take(40).collect(),
            score: 0.0,
        });
    }
    let category = &rules.categories[winner];
    let risk = if escalation > 0 {
        category
            .base_risk
            .shifted(escalation)
            .min(category.max_risk)
            .max(category.base_risk.shifted(uncapped_escalation))
    } else if category.base_risk >= RiskLevel::High {
        // A sandbox or a draft does not make a review of something risky less risky.
        category.base_risk
    } else {
        category.base_risk.shifted(-deescalation)
    };
    hints.extend(category.hints.iter().map(String::as_str));
    if risk >= RiskLevel::High {
        hints.insert(HINT_REVIEW);
    }
    if risk == RiskLevel::Critical {
        hints.insert(HINT_APPROVAL);
    }
    TaskProfile {
        category: category.id.clone(),
        category_name: category.name.clone(),
        domain: category.domain.clone(),
        risk,
        hints: hints.into_iter().map(str::to_owned).collect(),
        confidence,
        alternatives,
        matched,
        rules_version: rules.version.clone(),
    }
}

/// True when a title has at least four letters and none of them is lower case.
fn shouted(title: &str) -> bool {
    let letters = title.chars().filter(|c| c.is_alphabetic()).count();
    letters >= 4 && !title.chars().any(char::is_lowercase)
}

/// The words of normalised text (tests split stored text; classifying uses [`Normalised`]).
#[cfg(test)]
fn words(text: &str) -> Vec<&str> {
    text.split(' ').filter(|w| !w.is_empty()).collect()
}
