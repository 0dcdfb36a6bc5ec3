//! The classification rules file (TOML, format version 1): parsing, validation and compiling
//! into a term index.
//!
//! # Guarantees
//! - A rules file is either accepted whole or refused with every problem named by its place
//!   in the file (`rule[3] "bug_fix.defect": unknown category "bugs"`).
//! - Compiled rules are immutable; classification never allocates an index at request time.

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::hash::WordHasher;
use super::{Normalised, RiskLevel};
use crate::domain::model::TrustLevel;

/// The rules embedded in the binary, used unless `--rules` names a file.
pub const DEFAULT_RULES: &str = include_str!("default_rules.toml");

/// Most terms one rule may list.
const MAX_TERMS_PER_RULE: usize = 200;
/// Most words a term may have.
const MAX_TERM_WORDS: usize = 8;

/// Why a rules file was refused; the text lists every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid classification rules: {}", .problems.join("; "))]
pub struct RulesError {
    pub problems: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    version: u32,
    fallback_category: String,
    #[serde(default)]
    title_bonus: f64,
    #[serde(default)]
    category: Vec<CategoryFile>,
    #[serde(default)]
    rule: Vec<CategoryRuleFile>,
    #[serde(default)]
    risk: Vec<RiskRuleFile>,
    #[serde(default)]
    hint: Vec<HintRuleFile>,
    dispatch: Option<HashMap<String, String>>,
    models: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoryFile {
    id: String,
    name: String,
    domain: String,
    base_risk: String,
    /// The highest risk escalators may raise this category to (default CRITICAL).
    #[serde(default)]
    max_risk: Option<String>,
    #[serde(default)]
    hints: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoryRuleFile {
    id: String,
    category: String,
    weight: f64,
    terms: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RiskRuleFile {
    id: String,
    effect: String,
    #[serde(default = "one")]
    steps: u8,
    /// An escalator that also raises categories past their `max_risk` (credentials: a secret
    /// in a blog post is a risk whatever the post is).
    #[serde(default)]
    uncapped: bool,
    #[serde(default)]
    terms: Vec<String>,
    /// Ids of risk rules listed before this one: the rule also fires when all of them matched
    /// (deleting something and production, anywhere in the task, is destroying production).
    #[serde(default)]
    all_of: Vec<String>,
}

fn one() -> u8 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HintRuleFile {
    id: String,
    hint: String,
    terms: Vec<String>,
}

/// A work category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    pub id: String,
    pub name: String,
    pub domain: String,
    pub base_risk: RiskLevel,
    /// Escalators raise the risk at most to this: work that only reads, writes text or
    /// answers people carries its own risk, not the risk of what it talks about.
    pub max_risk: RiskLevel,
    pub hints: Vec<String>,
    /// Roles that take this work, most preferred first (dispatch looks for them).
    pub roles: Vec<String>,
}

/// What a matched rule contributes.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleEffect {
    /// Adds `weight` to the category at this index.
    Category { category: usize, weight: f64 },
    /// Raises the risk by `steps` (past the category's `max_risk` when `uncapped`).
    Escalate { steps: u8, uncapped: bool },
    /// Lowers the risk by `steps` when nothing escalated it.
    Deescalate { steps: u8 },
    /// Adds a setup hint.
    Hint { hint: String },
}

/// A map keyed by words, hashed with [`WordHasher`].
pub(super) type WordMap<V> = HashMap<String, V, std::hash::BuildHasherDefault<WordHasher>>;

/// What the classifier knows about one word.
#[derive(Debug, Clone, Default)]
pub(super) struct WordEntry {
    /// Terms that start with this word: (rule, term).
    pub terms: Vec<(usize, usize)>,
    /// One-word prefix terms this word starts with, in [`Rules::prefixes`] order: resolved
    /// once per known word, so only words the index lacks are checked against prefixes.
    pub prefix_terms: Vec<(usize, usize)>,
    /// The word's index in the word model, if it has one.
    pub model_token: Option<super::bayes::Feature>,
}

/// A term: words matched in sequence; the last one as a prefix when `prefix` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Term {
    pub words: Vec<String>,
    pub prefix: bool,
}

/// One compiled rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: String,
    pub effect: RuleEffect,
    pub(super) terms: Vec<Term>,
    /// Indexes of earlier rules that together also make this one fire (risk rules only).
    pub(super) all_of: Vec<usize>,
}

impl Rule {
    /// True for escalators and de-escalators (their terms do not count when negated).
    pub(super) fn is_risk(&self) -> bool {
        matches!(self.effect, RuleEffect::Escalate { .. } | RuleEffect::Deescalate { .. })
    }
}

/// Validated, compiled classification rules.
#[derive(Debug, Clone)]
pub struct Rules {
    pub categories: Vec<Category>,
    pub rules: Vec<Rule>,
    pub fallback: usize,
    pub title_bonus: f64,
    /// The least trust an agent needs per risk level (indexed by `RiskLevel as usize`).
    pub dispatch_trust: [TrustLevel; 4],
    /// Model id per tier (`premium`, `standard`, `economy`) for setup previews; a tier without
    /// one inherits the runtime's default model.
    pub models: std::collections::BTreeMap<String, String>,
    /// `v1-` and the first 12 hex digits of the file's SHA-256: names the rules that decided.
    pub version: String,
    /// Every word the classifier knows, looked up once per word of a task: the terms that
    /// start with it and its index in the word model.
    pub(super) words: WordMap<WordEntry>,
    /// One-word prefix terms by the prefix's first byte: (prefix, rule, term). A word is
    /// checked against the few prefixes that start like it, not against all of them.
    pub(super) prefixes: Vec<Vec<(String, usize, usize)>>,
    /// The word model, trained for these rules on the corpus's tuning part.
    pub(super) model: super::bayes::WordModel,
}

fn is_slug(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

/// The slot of [`Rules::prefixes`] a word's prefix terms are filed under: its first byte.
pub(super) fn prefix_slot(word: &str) -> usize {
    usize::from(word.as_bytes().first().copied().unwrap_or_default())
}

fn parse_term(raw: &str) -> Result<Term, String> {
    let (body, prefix) = match raw.strip_suffix('*') {
        Some(body) => (body, true),
        None => (raw, false),
    };
    if body.contains('*') {
        return Err(format!("term \"{raw}\": `*` is allowed only at the end"));
    }
    let words: Vec<String> = Normalised::new(body).words().into_iter().map(str::to_owned).collect();
    if words.is_empty() {
        return Err(format!("term \"{raw}\" has no letters or digits"));
    }
    if words.len() > MAX_TERM_WORDS {
        return Err(format!("term \"{raw}\" has more than {MAX_TERM_WORDS} words"));
    }
    Ok(Term { words, prefix })
}

fn parse_terms(place: &str, raw: &[String], problems: &mut Vec<String>) -> Vec<Term> {
    if raw.is_empty() {
        problems.push(format!("{place}: `terms` is empty"));
    }
    if raw.len() > MAX_TERMS_PER_RULE {
        problems.push(format!("{place}: more than {MAX_TERMS_PER_RULE} terms"));
    }
    raw.iter()
        .filter_map(|term| parse_term(term).map_err(|e| problems.push(format!("{place}: {e}"))).ok())
        .collect()
}

fn parse_categories(file: &[CategoryFile], problems: &mut Vec<String>) -> Vec<Category> {
    let mut categories = Vec::new();
    let mut ids = BTreeSet::new();
    for (i, c) in file.iter().enumerate() {
        let place = format!("category[{i}] \"{}\"", c.id);
        if !is_slug(&c.id) {
            problems.push(format!("{place}: id must be 1..64 of [a-z0-9_.-]"));
        }
        if !ids.insert(c.id.clone()) {
            problems.push(format!("{place}: duplicate id"));
        }
        if c.name.trim().is_empty() || !is_slug(&c.domain) {
            problems.push(format!("{place}: needs a name and a domain of [a-z0-9_.-]"));
        }
        let base_risk = RiskLevel::parse(&c.base_risk).unwrap_or_else(|| {
            problems.push(format!("{place}: base_risk \"{}\" is not LOW|MEDIUM|HIGH|CRITICAL", c.base_risk));
            RiskLevel::Low
        });
        let max_risk = match c.max_risk.as_deref().map(RiskLevel::parse) {
            None => RiskLevel::Critical,
            Some(Some(level)) if level >= base_risk => level,
            Some(_) => {
                problems.push(format!("{place}: max_risk must be a risk level not below base_risk"));
                RiskLevel::Critical
            }
        };
        for hint in &c.hints {
            if !is_slug(hint) {
                problems.push(format!("{place}: hint \"{hint}\" must be of [a-z0-9_.-]"));
            }
        }
        categories.push(Category {
            id: c.id.clone(),
            name: c.name.clone(),
            domain: c.domain.clone(),
            base_risk,
            max_risk,
            hints: c.hints.clone(),
            roles: c.roles.clone(),
        });
    }
    if categories.is_empty() {
        problems.push("at least one [[category]] is needed".to_owned());
    }
    categories
}

/// Builds the rule list in file order (category rules, then risk rules, then hint rules; a
/// risk rule's `all_of` names risk rules listed before it), checking ids across all three.
struct RuleBuilder<'a> {
    categories: &'a [Category],
    problems: &'a mut Vec<String>,
    ids: BTreeSet<String>,
    rules: Vec<Rule>,
}

impl<'a> RuleBuilder<'a> {
    fn new(categories: &'a [Category], problems: &'a mut Vec<String>) -> Self {
        Self { categories, problems, ids: BTreeSet::new(), rules: Vec::new() }
    }

    fn build(mut self, file: &RulesFile) -> Vec<Rule> {
        for (i, r) in file.rule.iter().enumerate() {
            self.category_rule(&format!("rule[{i}] \"{}\"", r.id), r);
        }
        for (i, r) in file.risk.iter().enumerate() {
            self.risk_rule(&format!("risk[{i}] \"{}\"", r.id), r);
        }
        for (i, r) in file.hint.iter().enumerate() {
            self.hint_rule(&format!("hint[{i}] \"{}\"", r.id), r);
        }
        self.rules
    }

    fn check_id(&mut self, place: &str, id: &str) {
        if !is_slug(id) {
            self.problems.push(format!("{place}: id must be 1..64 of [a-z0-9_.-]"));
        }
        if !self.ids.insert(id.to_owned()) {
            self.problems.push(format!("{place}: duplicate rule id"));
        }
    }

    fn category_rule(&mut self, place: &str, r: &CategoryRuleFile) {
        self.check_id(place, &r.id);
        let category = self.categories.iter().position(|c| c.id == r.category).unwrap_or_else(|| {
            self.problems.push(format!("{place}: unknown category \"{}\"", r.category));
            0
        });
        if !(r.weight.is_finite() && r.weight > 0.0 && r.weight <= 100.0) {
            self.problems.push(format!("{place}: weight must be in (0, 100]"));
        }
        let terms = parse_terms(place, &r.terms, self.problems);
        self.rules.push(Rule {
            id: r.id.clone(),
            effect: RuleEffect::Category { category, weight: r.weight },
            terms,
            all_of: Vec::new(),
        });
    }

    fn risk_rule(&mut self, place: &str, r: &RiskRuleFile) {
        self.check_id(place, &r.id);
        if !(1..=3).contains(&r.steps) {
            self.problems.push(format!("{place}: steps must be 1..3"));
        }
        let effect = match r.effect.as_str() {
            "escalate" => RuleEffect::Escalate { steps: r.steps, uncapped: r.uncapped },
            "deescalate" => RuleEffect::Deescalate { steps: r.steps },
            other => {
                self.problems.push(format!("{place}: effect \"{other}\" is not escalate|deescalate"));
                RuleEffect::Escalate { steps: 0, uncapped: false }
            }
        };
        let mut all_of = Vec::new();
        for id in &r.all_of {
            match self.rules.iter().position(|rule| &rule.id == id && rule.is_risk()) {
                Some(index) => all_of.push(index),
                None => self
                    .problems
                    .push(format!("{place}: all_of names \"{id}\", not a risk rule listed before")),
            }
        }
        let terms = if r.terms.is_empty() && !all_of.is_empty() {
            Vec::new()
        } else {
            parse_terms(place, &r.terms, self.problems)
        };
        self.rules.push(Rule { id: r.id.clone(), effect, terms, all_of });
    }

    fn hint_rule(&mut self, place: &str, r: &HintRuleFile) {
        self.check_id(place, &r.id);
        if !is_slug(&r.hint) {
            self.problems.push(format!("{place}: hint \"{}\" must be of [a-z0-9_.-]", r.hint));
        }
        let terms = parse_terms(place, &r.terms, self.problems);
        self.rules.push(Rule {
            id: r.id.clone(),
            effect: RuleEffect::Hint { hint: r.hint.clone() },
            terms,
            all_of: Vec::new(),
        });
    }
}

/// The lowest trust a dispatch at each risk level needs (defaults, then the file's overrides).
fn parse_dispatch(file: Option<&HashMap<String, String>>, problems: &mut Vec<String>) -> [TrustLevel; 4] {
    let mut dispatch_trust =
        [TrustLevel::Restricted, TrustLevel::Restricted, TrustLevel::Standard, TrustLevel::Elevated];
    for (level, trust) in file.into_iter().flatten() {
        let Some(level) = RiskLevel::parse(level) else {
            problems.push(format!("dispatch: \"{level}\" is not LOW|MEDIUM|HIGH|CRITICAL"));
            continue;
        };
        match trust.as_str() {
            "RESTRICTED" => dispatch_trust[level as usize] = TrustLevel::Restricted,
            "STANDARD" => dispatch_trust[level as usize] = TrustLevel::Standard,
            "ELEVATED" => dispatch_trust[level as usize] = TrustLevel::Elevated,
            other => problems.push(format!(
                "dispatch.{}: \"{other}\" is not RESTRICTED|STANDARD|ELEVATED",
                level.as_str()
            )),
        }
    }
    dispatch_trust
}

fn check_models(models: &std::collections::BTreeMap<String, String>, problems: &mut Vec<String>) {
    for (tier, model) in models {
        if !["premium", "standard", "economy"].contains(&tier.as_str()) {
            problems.push(format!("models: tier \"{tier}\" is not premium|standard|economy"));
        }
        if model.trim().is_empty() || model.len() > 256 {
            problems.push(format!("models.{tier}: needs a model id of at most 256 bytes"));
        }
    }
}

/// The index from a term's first word to the terms starting with it, and the one-word prefix
/// terms filed by their first byte.
type TermIndex = (WordMap<WordEntry>, Vec<Vec<(String, usize, usize)>>);

fn term_index(rules: &[Rule]) -> TermIndex {
    let mut words: WordMap<WordEntry> = WordMap::default();
    let mut prefixes: Vec<Vec<(String, usize, usize)>> = vec![Vec::new(); 256];
    for (r, rule) in rules.iter().enumerate() {
        for (t, term) in rule.terms.iter().enumerate() {
            if term.prefix && term.words.len() == 1 {
                prefixes[prefix_slot(&term.words[0])].push((term.words[0].clone(), r, t));
            } else {
                words.entry(term.words[0].clone()).or_default().terms.push((r, t));
            }
        }
    }
    (words, prefixes)
}

impl Rules {
    /// Returns the embedded default rules.
    pub fn default_rules() -> Self {
        // The embedded file is checked by a unit test; failing here means a broken build.
        Self::parse(DEFAULT_RULES).unwrap_or_else(|error| panic!("embedded rules are invalid: {error}"))
    }

    /// Parses and validates a rules file: every problem is reported, not just the first.
    pub fn parse(text: &str) -> Result<Self, RulesError> {
        let file: RulesFile =
            toml::from_str(text).map_err(|e| RulesError { problems: vec![e.message().to_owned()] })?;
        let mut problems = Vec::new();
        if file.version != 1 {
            problems.push(format!("version {} is not supported (expected 1)", file.version));
        }
        if !(0.0..=10.0).contains(&file.title_bonus) {
            problems.push("title_bonus must be between 0 and 10".to_owned());
        }
        let categories = parse_categories(&file.category, &mut problems);
        let fallback = categories.iter().position(|c| c.id == file.fallback_category).unwrap_or_else(|| {
            problems.push(format!("fallback_category \"{}\" is not a category", file.fallback_category));
            0
        });
        let rules = RuleBuilder::new(&categories, &mut problems).build(&file);
        let dispatch_trust = parse_dispatch(file.dispatch.as_ref(), &mut problems);
        let models = file.models.unwrap_or_default();
        check_models(&models, &mut problems);
        if !problems.is_empty() {
            return Err(RulesError { problems });
        }
        let (words, prefixes) = term_index(&rules);
        let digest = Sha256::digest(text.as_bytes());
        let mut rules = Self {
            categories,
            rules,
            fallback,
            title_bonus: file.title_bonus,
            dispatch_trust,
            models,
            version: format!("v1-{}", &hex::encode(digest)[..12]),
            words,
            prefixes,
            model: super::bayes::WordModel::default(),
        };
        rules.model = super::bayes::WordModel::train(&mut rules);
        Ok(rules)
    }

    /// Resolves, for every word in the index, the prefix terms it starts with (after the word
    /// model has registered its vocabulary).
    pub(super) fn resolve_prefixes(&mut self) {
        for (word, entry) in &mut self.words {
            entry.prefix_terms = self.prefixes[prefix_slot(word)]
                .iter()
                .filter(|(prefix, _, _)| word.starts_with(prefix.as_str()))
                .map(|&(_, r, t)| (r, t))
                .collect();
        }
    }

    /// Returns the category with this id.
    pub fn category(&self, id: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.id == id)
    }

    /// Returns the least trust an agent needs for work of this risk.
    pub fn required_trust(&self, risk: RiskLevel) -> TrustLevel {
        self.dispatch_trust[risk as usize]
    }
}
