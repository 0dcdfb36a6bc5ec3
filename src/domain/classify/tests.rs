use super::*;
use bayes::Part;

fn task(title: &str, description: &str) -> TaskInput {
    TaskInput { title: title.into(), description: description.into(), ..TaskInput::default() }
}

fn rules() -> Rules {
    Rules::default_rules()
}

#[test]
fn the_embedded_rules_are_valid() {
    let rules = rules();
    assert_eq!(rules.categories.len(), 9);
    assert!(rules.version.starts_with("v1-"));
}

#[test]
fn realistic_tasks_land_in_their_category() {
    let table: &[(&str, &str, &str)] = &[
        (
            "software_change",
            "Implement CSV export for the reports page",
            "Add a new endpoint and a button in the UI.",
        ),
        ("software_change", "Refactor the billing module into smaller components", ""),
        (
            "software_change",
            "Add support for OAuth login in the backend",
            "New feature for enterprise customers",
        ),
        ("software_change", "Upgrade the frontend to React 19", "Migrate the components and ship it"),
        (
            "bug_fix",
            "Production checkout is returning 500s since the last deploy, find the cause and ship a fix",
            "",
        ),
        ("bug_fix", "App crashes when uploading a photo", "Stack trace attached; regression since 2.3"),
        ("bug_fix", "Login page broken on Safari", "Users see an error after submitting the form"),
        ("bug_fix", "Incident: API outage in eu-west", "Find the root cause and write the postmortem"),
        (
            "research",
            "Research vector databases for our search feature",
            "Compare options and summarise the findings",
        ),
        ("research", "Look into competitor pricing", "Find out what are the common tiers in the market"),
        ("research", "Literature survey on retrieval augmented generation", "Collect papers and sources"),
        ("research", "Explore the state of the art in speech recognition", ""),
        ("writing", "Write a blog post about our new release", "Friendly tone, about 800 words"),
        ("writing", "Draft the newsletter for March", ""),
        ("writing", "Proofread the press release", "and rewrite the intro"),
        ("writing", "Update the README documentation for the CLI", ""),
        ("data_analysis", "Analyse churn by signup cohort", "Use the events dataset and chart the trend"),
        ("data_analysis", "Build a dashboard of weekly KPIs", "SQL queries against the warehouse"),
        ("data_analysis", "Forecast Q3 revenue from the CSV exports", ""),
        ("data_analysis", "Compute retention statistics for the mobile app", ""),
        ("operations", "Rotate the TLS certificates on the load balancer", ""),
        ("operations", "Provision a new Kubernetes cluster with Terraform", ""),
        ("operations", "Set up nightly backups for the database servers", "and monitoring alerts"),
        ("operations", "Scale the worker pool before Black Friday", "capacity planning for the servers"),
        ("security_review", "Security review of the new file upload flow", "Look for XSS and injection"),
        ("security_review", "Threat model the payments service", ""),
        ("security_review", "Triage CVE-2026-1234 in our dependencies", "Is it exploitable?"),
        ("security_review", "Pentest the public API before launch", "OWASP top 10"),
        ("customer_support", "Reply to a customer asking for a refund", "Ticket #4411"),
        ("customer_support", "Answer the support tickets in the Zendesk queue", ""),
        ("customer_support", "Customer complains the invoice total is wrong", "respond to them politely"),
        ("customer_support", "Update the FAQ with the questions from the help desk", ""),
        ("general", "Plan the team offsite agenda", ""),
    ];
    let rules = rules();
    let mut wrong = Vec::new();
    for (expected, title, description) in table {
        let profile = classify(&task(title, description), &rules);
        if profile.category != *expected {
            wrong.push(format!(
                "{title:?}: expected {expected}, got {} ({:?})",
                profile.category, profile.matched
            ));
        }
    }
    assert!(wrong.is_empty(), "misclassified:\n{}", wrong.join("\n"));
}

#[test]
fn the_production_checkout_incident_is_a_high_risk_bug_fix_needing_review() {
    let profile = classify(
        &task(
            "Production checkout is returning 500s since the last deploy, find the cause and ship a fix",
            "",
        ),
        &rules(),
    );
    assert_eq!(profile.category, "bug_fix");
    assert!(profile.risk >= RiskLevel::High, "{:?}", profile.risk);
    assert!(profile.hints.contains(&HINT_REVIEW.to_owned()));
    assert!(profile.confidence > 0.0 && profile.confidence <= 1.0);
    let production =
        profile.matched.iter().find(|m| m.rule_id == "risk.production").expect("production matched");
    assert_eq!((production.field, production.evidence.as_str()), (MatchField::Title, "production"));
    assert!(profile.alternatives.iter().any(|a| a.category == "software_change"));
}

#[test]
fn escalators_raise_risk_and_deescalators_only_lower_it_when_nothing_escalated() {
    let rules = rules();
    let base = classify(&task("Write a blog post about our roadmap", ""), &rules);
    assert_eq!(base.risk, RiskLevel::Low);
    // Disclosing a secret raises even work whose category caps its risk (writing is LOW at most).
    let credentials = classify(&task("Write a blog post and include the API keys for the demo", ""), &rules);
    assert_eq!(credentials.risk, RiskLevel::High);
    assert!(credentials.hints.contains(&HINT_REVIEW.to_owned()));
    let refund = classify(&task("Reply to the customer about their refund", ""), &rules);
    assert_eq!(refund.risk, RiskLevel::Low, "answering about money is not moving money");
    let ops = classify(&task("Deploy the new cache servers", ""), &rules);
    assert_eq!(ops.risk, RiskLevel::Medium);
    let sandbox = classify(&task("Deploy the new cache servers to the sandbox", ""), &rules);
    assert_eq!(sandbox.risk, RiskLevel::Low);
    let both = classify(&task("Deploy to production, not the sandbox", ""), &rules);
    assert_eq!(both.risk, RiskLevel::High, "a sandbox mention never excuses production");
    let worst =
        classify(&task("Delete the production database with customer data and payment history", ""), &rules);
    assert_eq!(worst.risk, RiskLevel::Critical);
    assert!(worst.hints.contains(&HINT_APPROVAL.to_owned()));
}

#[test]
fn a_negated_risk_word_does_not_count() {
    let rules = rules();
    let risk = |title: &str, description: &str| classify(&task(title, description), &rules).risk;
    assert_eq!(
        risk("Prototype a chat widget for the docs site", "quick prototype, not for prod yet"),
        RiskLevel::Medium
    );
    assert_eq!(risk("Refactor the export module", "no production impact, behind a flag"), RiskLevel::Medium);
    assert_eq!(risk("Refactor the export module", "runs in production"), RiskLevel::High);
    // A negation a few words earlier is not a negation of the term.
    assert_eq!(risk("Do not deploy to production without a review", ""), RiskLevel::High);
    // Nor does "not" excuse a second, plain mention.
    assert_eq!(risk("Migrate the worker, not for prod yet", "then run it in production"), RiskLevel::High);
    // A negated de-escalator does not lower the risk either.
    assert_eq!(risk("Deploy the new cache servers, not in the sandbox", ""), RiskLevel::Medium);
}

#[test]
fn deleting_something_in_production_is_critical_wherever_the_two_are_said() {
    let rules = rules();
    for (title, description) in [
        ("Wipe and reinstall the production database server", ""),
        ("Drop the legacy prod database now that we migrated", ""),
        ("Clean up after the migration", "purge the old tables on production"),
    ] {
        let profile = classify(&task(title, description), &rules);
        assert_eq!(profile.risk, RiskLevel::Critical, "{title:?} {description:?}: {:?}", profile.matched);
        let rule =
            profile.matched.iter().find(|m| m.rule_id == "risk.destroy_production").expect("compound rule");
        assert!(rule.evidence.contains(" + "), "names both parts: {:?}", rule.evidence);
    }
    // Deleting as a feature of the product is not destroying anything.
    let feature = classify(&task("Add an undo button after deleting a comment", ""), &rules);
    assert_eq!(feature.risk, RiskLevel::Medium, "{:?}", feature.matched);
}

#[test]
fn a_compound_risk_rule_names_earlier_risk_rules_only() {
    let compound = |all_of: &str| {
        DEFAULT_RULES.replacen(
            "[[risk]]\nid = \"risk.draft\"",
            &format!("[[risk]]\nid = \"risk.both\"\neffect = \"escalate\"\nall_of = {all_of}\n\n[[risk]]\nid = \"risk.draft\""),
            1,
        )
    };
    assert!(Rules::parse(&compound(r#"["risk.deletion", "risk.production"]"#)).is_ok());
    for bad in [r#"["risk.nope"]"#, r#"["bug_fix.defect"]"#] {
        let error = Rules::parse(&compound(bad)).expect_err(bad);
        assert!(error.to_string().contains("all_of names"), "{error}");
    }
    // A rule listed after it cannot be named (no cycles).
    let later = DEFAULT_RULES.replacen(
        "all_of = [\"risk.deletion\", \"risk.production\"]",
        "all_of = [\"risk.draft\"]",
        1,
    );
    assert!(Rules::parse(&later).expect_err("later rule").to_string().contains("all_of names"));
}

#[test]
fn case_punctuation_and_noise_do_not_change_the_outcome() {
    let rules = rules();
    let clean = classify(
        &task("production checkout is returning 500s since the last deploy", "find the cause"),
        &rules,
    );
    for noisy in [
        task("  Production   checkout is returning 500s... since the last deploy!!!  ", "find the cause :("),
        task("[production] checkout -- is returning \"500s\" since the last-deploy", "find the cause?!"),
        task("Production\tcheckout\nis returning 500s, since the last deploy 🔥", "** find the cause **"),
    ] {
        let profile = classify(&noisy, &rules);
        assert_eq!(profile, clean, "{noisy:?}");
    }
}

#[test]
fn a_shouted_title_is_urgent() {
    let rules = rules();
    let calm = classify(&task("checkout down", ""), &rules);
    let shouted = classify(&task("CHECKOUT DOWN", ""), &rules);
    assert_eq!(calm.category, shouted.category);
    assert!(shouted.risk >= calm.risk);
    assert_eq!(shouted.risk, RiskLevel::High);
    assert!(shouted.matched.iter().any(|m| m.rule_id == "risk.shouted"));
    assert!(
        !classify(&task("API", ""), &rules).matched.iter().any(|m| m.rule_id == "risk.shouted"),
        "an acronym is not shouting"
    );
}

#[test]
fn engineering_jargon_lands_in_bug_fix() {
    let rules = rules();
    for title in [
        "memory leak in the worker",
        "OOM in the indexer",
        "crash loop in payments-worker pod",
        "regression in search",
    ] {
        assert_eq!(classify(&task(title, ""), &rules).category, "bug_fix", "{title}");
    }
    assert_eq!(classify(&task("prototype a recommendation widget", ""), &rules).category, "software_change");
    assert_eq!(
        classify(&task("add CSV export button to the reports page", ""), &rules).category,
        "software_change"
    );
}

#[test]
fn classification_is_deterministic() {
    let rules = rules();
    let input = TaskInput {
        title: "Analyse the security incident data".into(),
        description: "compare logs from several servers".into(),
        labels: vec!["Incident".into(), "SEV2".into()],
        domain_hint: "security".into(),
    };
    let first = classify(&input, &rules);
    for _ in 0..20 {
        assert_eq!(classify(&input, &rules), first);
        assert_eq!(classify(&input, &Rules::default_rules()), first);
    }
}

#[test]
fn labels_and_domain_hints_add_evidence() {
    let rules = rules();
    let labelled = classify(
        &TaskInput { title: "Checkout page".into(), labels: vec!["bug".into()], ..TaskInput::default() },
        &rules,
    );
    assert_eq!(labelled.category, "bug_fix");
    assert!(labelled.matched.iter().any(|m| m.field == MatchField::Labels && m.evidence == "bug"));
    let hinted = classify(
        &TaskInput {
            title: "Look at the login flow".into(),
            domain_hint: "Security".into(),
            ..TaskInput::default()
        },
        &rules,
    );
    assert_eq!(hinted.category, "security_review");
    assert!(hinted.matched.iter().any(|m| m.kind == "domain_hint"));
}

#[test]
fn nothing_matched_falls_back_with_zero_confidence() {
    let profile = classify(&task("Qwzx vbnm", ""), &rules());
    assert_eq!((profile.category.as_str(), profile.confidence), ("general", 0.0));
    assert!(profile.alternatives.is_empty());
}

#[test]
fn prefix_terms_match_word_starts_only() {
    let rules = rules();
    let prefixed = classify(&task("Deployment of the new release", ""), &rules);
    assert!(prefixed.matched.iter().any(|m| m.evidence == "deployment"), "{:?}", prefixed.matched);
    let unrelated = classify(&task("Redeploy nothing", ""), &rules);
    assert!(unrelated.matched.iter().all(|m| m.evidence != "redeploy"), "{:?}", unrelated.matched);
}

#[test]
fn made_up_words_cost_a_bounded_amount_of_model_work() {
    // The longest description, every word one the model never saw.
    let description: String =
        (0..MAX_DESCRIPTION / 8).map(|i| format!("zq{i:05x}")).collect::<Vec<_>>().join(" ");
    assert!(description.len() <= MAX_DESCRIPTION);
    let rules = rules();
    let text = Normalised::new(&description);
    let matches = find_matches(&rules, &[(MatchField::Description, text.words())]);
    assert_eq!(matches.unknown.len(), MAX_UNKNOWN_WORDS);
    // It still classifies, deterministically.
    let first = classify(&task("fix the login page", &description), &rules);
    assert_eq!(first, classify(&task("fix the login page", &description), &rules));
    assert_eq!(first.category, "bug_fix");
}

#[test]
fn bad_tasks_are_refused_with_field_violations() {
    let rules = rules();
    let empty = validate_task(&task("  ...  ", ""), &rules).unwrap_err();
    assert_eq!(empty[0].field, "task.title");
    let long = validate_task(&task(&"x".repeat(MAX_TITLE + 1), ""), &rules).unwrap_err();
    assert!(long[0].description.contains("longer than"));
    let hint = validate_task(
        &TaskInput { title: "t".into(), domain_hint: "astrology".into(), ..TaskInput::default() },
        &rules,
    )
    .unwrap_err();
    assert_eq!(hint[0].field, "task.domain_hint");
    assert!(hint[0].description.contains("engineering"));
}

#[test]
fn bad_rules_files_are_refused_naming_every_problem() {
    let text = r#"
version = 2
fallback_category = "nope"
[[category]]
id = "a"
name = "A"
domain = "d"
base_risk = "SEVERE"
[[rule]]
id = "r"
category = "b"
weight = -1.0
terms = ["ok", "mid*dle", "!!!"]
"#;
    let error = Rules::parse(text).unwrap_err();
    let all = error.problems.join("\n");
    for needle in [
        "version 2",
        "fallback_category \"nope\"",
        "SEVERE",
        "unknown category \"b\"",
        "weight",
        "mid*dle",
        "!!!",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    let syntax = Rules::parse("version = ").unwrap_err();
    assert_eq!(syntax.problems.len(), 1);
    let unknown = Rules::parse("version = 1\nfallback_category = \"a\"\ncolour = 1").unwrap_err();
    assert!(unknown.problems[0].contains("colour"), "{unknown}");
}

#[test]
fn the_rules_version_names_the_file() {
    let other = DEFAULT_RULES.replace("title_bonus = 0.5", "title_bonus = 0.6");
    assert_ne!(Rules::parse(&other).unwrap().version, rules().version);
}

#[test]
fn normalise_keeps_letters_and_digits_only() {
    assert_eq!(normalise("  Stack-Trace!! 500s\t(ÄÖ) "), "stack trace 500s äö");
    assert_eq!(normalise("doesn't"), "doesn t");
}

/// The labelled corpus (`fixtures/classification/corpus.tsv`), each task in its part.
fn corpus() -> Vec<bayes::Labelled> {
    bayes::corpus().collect()
}

/// (right categories, right risks, misses with the rules that matched) of `part` under `rules`.
fn score<'a>(
    rules: &Rules,
    part: impl IntoIterator<Item = &'a bayes::Labelled>,
) -> (usize, usize, Vec<String>) {
    let mut misses = Vec::new();
    let (mut categories, mut risks) = (0, 0);
    for labelled in part {
        let profile = classify(&task(labelled.title, labelled.description), rules);
        let category_ok = profile.category == labelled.category;
        let risk_ok = profile.risk.as_str() == labelled.risk;
        categories += usize::from(category_ok);
        risks += usize::from(risk_ok);
        if !category_ok || !risk_ok {
            let matched: Vec<String> =
                profile.matched.iter().map(|m| format!("{}:{}", m.rule_id, m.evidence)).collect();
            misses.push(format!(
                "{:?} {:?}: want {}/{}, got {}/{} [{}]",
                labelled.title,
                labelled.description,
                labelled.category,
                labelled.risk,
                profile.category,
                profile.risk.as_str(),
                matched.join(", ")
            ));
        }
    }
    (categories, risks, misses)
}

/// (category accuracy, risk accuracy, misses, tasks) of one part of the corpus.
fn accuracy(part: Part) -> (f64, f64, Vec<String>, usize) {
    let tasks: Vec<bayes::Labelled> = corpus().into_iter().filter(|l| l.part == part).collect();
    let (categories, risks, misses) = score(&rules(), &tasks);
    let n = tasks.len().max(1) as f64;
    (categories as f64 / n, risks as f64 / n, misses, tasks.len())
}

#[test]
fn the_corpus_is_large_enough_and_well_formed() {
    let corpus = corpus();
    assert!(corpus.len() >= 300, "{} tasks", corpus.len());
    let rules = rules();
    for labelled in &corpus {
        assert!(rules.categories.iter().any(|c| c.id == labelled.category), "{}", labelled.category);
        assert!(RiskLevel::parse(labelled.risk).is_some(), "{}", labelled.risk);
    }
    assert_eq!(corpus.len(), bayes::corpus_lines(), "every task line names its part");
    assert!(corpus.iter().filter(|l| l.part == Part::HeldOut).count() >= 75);
}

/// The held-out part stays frozen: it is the 950 tasks it was when frozen, and none of them
/// repeats a tuning task's title (seven that did were removed when it was frozen; a repeat
/// would score what the model memorised).
#[test]
fn the_held_out_part_is_frozen_and_repeats_no_tuning_title() {
    let corpus = corpus();
    let held: Vec<&bayes::Labelled> = corpus.iter().filter(|l| l.part == Part::HeldOut).collect();
    assert_eq!(held.len(), 950, "the held-out part changed");
    let tuning: std::collections::HashSet<String> =
        corpus.iter().filter(|l| l.part == Part::Tuning).map(|l| l.title.trim().to_lowercase()).collect();
    let repeats: Vec<&str> =
        held.iter().filter(|l| tuning.contains(&l.title.trim().to_lowercase())).map(|l| l.title).collect();
    assert!(repeats.is_empty(), "held-out tasks repeating a tuning title: {repeats:?}");
}

/// Whether `term` matches anywhere in one normalised text.
fn term_in(term: &rules::Term, text: &str) -> bool {
    let words = words(text);
    (0..words.len()).any(|start| term_at(term, &words, start))
}

/// The normalised titles and descriptions of one part of the corpus, per task.
fn part_texts(part: Part) -> Vec<(bayes::Labelled, [String; 2])> {
    corpus()
        .into_iter()
        .filter(|l| l.part == part)
        .map(|l| (l, [normalise(l.title), normalise(l.description)]))
        .collect()
}

/// "No rule is written against the held-out part", as far as a test can tell: every term that
/// matches a held-out task also matches a tuning task (a term only the held-out part uses could
/// only have come from reading it). Safety policy is the exception: the vocabulary of the
/// uncapped escalators (destroying production, disclosing a secret) and of the rules they
/// combine is written from the policy, and must stay whether or not a tuning task happens to
/// use a word of it ("truncate" entered the corpus first in a held-out task).
#[test]
fn no_rule_term_is_evidenced_by_the_held_out_part_alone() {
    let rules = rules();
    let (tuning, held_out) = (part_texts(Part::Tuning), part_texts(Part::HeldOut));
    let used = |term: &rules::Term, part: &[(bayes::Labelled, [String; 2])]| {
        part.iter().any(|(_, texts)| texts.iter().any(|t| term_in(term, t)))
    };
    let mut policy = vec![false; rules.rules.len()];
    for (r, rule) in rules.rules.iter().enumerate() {
        if matches!(rule.effect, RuleEffect::Escalate { uncapped: true, .. }) {
            policy[r] = true;
            for &part in &rule.all_of {
                policy[part] = true;
            }
        }
    }
    let mut unevidenced = Vec::new();
    for (rule, _) in rules.rules.iter().zip(&policy).filter(|(_, policy)| !**policy) {
        for term in &rule.terms {
            if used(term, &held_out) && !used(term, &tuning) {
                unevidenced.push(format!("{}: {:?}", rule.id, term.words.join(" ")));
            }
        }
    }
    assert!(unevidenced.is_empty(), "terms only held-out tasks use:\n{}", unevidenced.join("\n"));
}

/// A category term the labelled tasks contradict does not stay: every term that matches at
/// least 4 tuning tasks points to its rule's category in at least a quarter of them (the
/// corpus has nine categories, so a quarter is twice chance). Terms below it ("users",
/// "clients", "csv", "report", "failed", ...) added weight to the wrong category more often
/// than not; removing them raised the cross-validated category accuracy.
#[test]
fn no_category_term_points_elsewhere_in_most_tuning_tasks() {
    let rules = rules();
    let tuning = part_texts(Part::Tuning);
    let mut contradicted = Vec::new();
    for rule in &rules.rules {
        let RuleEffect::Category { category, .. } = rule.effect else { continue };
        let id = rules.categories[category].id.as_str();
        for term in &rule.terms {
            let hits: Vec<&str> = tuning
                .iter()
                .filter(|(_, texts)| texts.iter().any(|t| term_in(term, t)))
                .map(|(l, _)| l.category)
                .collect();
            let agree = hits.iter().filter(|c| **c == id).count();
            if hits.len() >= 4 && agree * 4 < hits.len() {
                contradicted.push(format!(
                    "{}: {:?} ({agree} of {})",
                    rule.id,
                    term.words.join(" "),
                    hits.len()
                ));
            }
        }
    }
    assert!(contradicted.is_empty(), "terms the tuning part contradicts:\n{}", contradicted.join("\n"));
}

/// The bar: at least 90 % of the held-out tasks get their category and their risk right. The
/// floor is the bar, not the figure reached, and the held-out part is not used to choose
/// between rules or models: its misses are counted, never listed. A blind batch (none at the
/// moment) is scored here before it joins the tuning part, so its figure is on record first.
#[test]
fn held_out_accuracy_is_at_least_ninety_percent() {
    let (tune_category, tune_risk, tune_misses, _) = accuracy(Part::Tuning);
    let (category, risk, misses, held) = accuracy(Part::HeldOut);
    let (blind_category, blind_risk, _, blind) = accuracy(Part::Blind);
    println!("tuning part:   category {:.1} %, risk {:.1} %", tune_category * 100.0, tune_risk * 100.0);
    println!("held-out part: category {:.1} %, risk {:.1} % of {held}", category * 100.0, risk * 100.0);
    if blind > 0 {
        println!(
            "blind batch:   category {:.1} %, risk {:.1} % of {blind}",
            blind_category * 100.0,
            blind_risk * 100.0
        );
    }
    for miss in &tune_misses {
        println!("  tuning miss {miss}");
    }
    println!("  held-out misses: {}", misses.len());
    assert!(risk >= 0.9, "held-out risk accuracy below 90 % ({} misses)", misses.len());
    assert!(category >= 0.9, "held-out category accuracy below 90 % ({} misses)", misses.len());
}

/// Five-fold cross-validation on the tuning part (the model retrained without each fold): the
/// figure to tune rules and the model against, since the tuning part's own figure is what the
/// model memorised. Run with `cargo test --lib cross_validation -- --ignored --nocapture`.
#[test]
#[ignore = "a tuning aid: prints figures and misses, asserts nothing"]
fn cross_validation_on_the_tuning_part() {
    // The fold of each tuning task, by corpus index (None: another part).
    let mut fold = Vec::new();
    let mut tuning_seen = 0;
    for labelled in corpus() {
        let tuning = labelled.part == Part::Tuning;
        fold.push(tuning.then_some(tuning_seen % 5));
        tuning_seen += usize::from(tuning);
    }
    let (mut categories, mut risks) = (0, 0);
    for k in 0..5 {
        let mut rules = rules();
        rules.model = bayes::WordModel::train_on(&mut rules, |i, _| fold[i].is_some_and(|f| f != k));
        let part: Vec<bayes::Labelled> =
            corpus().into_iter().zip(&fold).filter(|(_, f)| **f == Some(k)).map(|(l, _)| l).collect();
        let (c, r, misses) = score(&rules, &part);
        categories += c;
        risks += r;
        for miss in misses {
            println!("  cv miss {miss}");
        }
    }
    let n = tuning_seen as f64;
    println!(
        "cross-validation: category {:.1} %, risk {:.1} %",
        categories as f64 / n * 100.0,
        risks as f64 / n * 100.0
    );
}
