use std::collections::{BTreeMap, BTreeSet};

use super::bootstrap::Budgets;
use super::*;
use crate::domain::classify::{Rules, classify};

fn task(title: &str) -> TaskInput {
    TaskInput { title: title.into(), ..TaskInput::default() }
}

fn preview(
    title: &str,
    limits: SetupLimits,
    base: Option<&Topology>,
    pass: SetupPass,
) -> Result<SetupPlan, Vec<FieldViolation>> {
    let rules = Rules::default_rules();
    let task = task(title);
    let profile = classify(&task, &rules);
    let roles = rules.category(&profile.category).unwrap().roles.clone();
    let models = BTreeMap::new();
    plan_setup(&SetupInput {
        task: &task,
        profile: &profile,
        category_roles: &roles,
        pass,
        base,
        limits,
        models: &models,
    })
}

fn sends(topology: &Topology) -> BTreeSet<(String, String)> {
    topology.edges_of(EdgeKind::Send).map(|e| (e.from.clone(), e.to.clone())).collect()
}

#[test]
fn the_production_incident_gets_a_lead_an_implementer_and_an_independent_reviewer() {
    let plan = preview(
        "Production checkout is returning 500s since the last deploy, find the cause and ship a fix",
        SetupLimits::default(),
        None,
        SetupPass::Initial,
    )
    .unwrap();
    let roles: Vec<&str> = plan.agents.iter().map(|a| a.role.as_str()).collect();
    assert_eq!(roles, ["lead", "implementer", "reviewer"]);
    let initiators: BTreeSet<String> = sends(&plan.topology).into_iter().map(|(from, _)| from).collect();
    assert_eq!(initiators, BTreeSet::from(["lead".to_owned(), "reviewer".to_owned()]));
    assert!(express(&sends(&plan.topology)).is_some());
    let spawns: Vec<(&str, &str)> =
        plan.topology.edges_of(EdgeKind::Spawn).map(|e| (e.from.as_str(), e.to.as_str())).collect();
    assert_eq!(spawns, [("lead", "implementer")], "the lead cannot spawn its reviewer");
    let reviewer = plan.agents.iter().find(|a| a.role == "reviewer").unwrap();
    assert_eq!((reviewer.trust, reviewer.sandbox.as_str()), (TrustLevel::Restricted, "all"));
    let implementer = plan.agents.iter().find(|a| a.role == "implementer").unwrap();
    assert_eq!(implementer.trust, TrustLevel::Restricted, "HIGH risk sandboxes the workers");
    for agent in &plan.agents {
        let names: Vec<&str> = agent.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["AGENTS.md", "SOUL.md", "IDENTITY.md"]);
        assert!(
            agent.files.iter().all(|f| f.chars <= 6_000 && f.content.starts_with("<!-- jhf-warp:managed"))
        );
        assert!(agent.total_chars() <= 15_000);
    }
    let agents_md = &plan.agents[1].files[0].content;
    assert!(agents_md.contains("Production checkout is returning 500s"));
    assert!(agents_md.contains("signed it off"));
}

#[test]
fn lower_risk_gets_looser_defaults_and_no_reviewer() {
    let plan =
        preview("Write a blog post about our roadmap", SetupLimits::default(), None, SetupPass::Initial)
            .unwrap();
    let roles: Vec<&str> = plan.agents.iter().map(|a| a.role.as_str()).collect();
    assert_eq!(roles, ["lead", "writer"]);
    assert!(plan.agents.iter().all(|a| a.trust == TrustLevel::Standard));
    let initiators: BTreeSet<String> = sends(&plan.topology).into_iter().map(|(from, _)| from).collect();
    assert_eq!(initiators, BTreeSet::from(["lead".to_owned()]));
}

#[test]
fn a_budget_below_what_the_risk_needs_is_refused_and_a_tight_one_warns() {
    let title = "Production checkout is returning 500s since the last deploy";
    let refused =
        preview(title, SetupLimits { max_agents: 1, ..SetupLimits::default() }, None, SetupPass::Initial);
    assert_eq!(refused.unwrap_err()[0].field, "max_agents");
    let tight =
        preview(title, SetupLimits { max_agents: 2, ..SetupLimits::default() }, None, SetupPass::Initial)
            .unwrap();
    let roles: Vec<&str> = tight.agents.iter().map(|a| a.role.as_str()).collect();
    assert_eq!(roles, ["lead", "reviewer"]);
    assert!(tight.warnings[0].contains("no room"));
}

#[test]
fn stabilization_adds_reviewer_and_qa_without_widening_anyone() {
    let first = preview(
        "Implement CSV export for the reports page",
        SetupLimits::default(),
        None,
        SetupPass::Initial,
    )
    .unwrap();
    let stable = preview(
        "Implement CSV export",
        SetupLimits::default(),
        Some(&first.topology),
        SetupPass::Stabilization,
    )
    .unwrap();
    let added: Vec<&str> = stable.agents.iter().map(|a| a.role.as_str()).collect();
    assert_eq!(added, ["reviewer", "qa"]);
    assert!(stable.agents.iter().all(|a| a.new_agent && a.trust == TrustLevel::Restricted));
    for node in &first.topology.nodes {
        let after = stable.topology.nodes.iter().find(|n| n.agent_id == node.agent_id).unwrap();
        assert_eq!(after, node, "existing agents keep their settings");
    }
    let spawn = |t: &Topology| t.edges_of(EdgeKind::Spawn).cloned().collect::<Vec<_>>();
    assert_eq!(spawn(&stable.topology), spawn(&first.topology), "no new SPAWN rights");
    assert!(express(&sends(&stable.topology)).is_some());
    let none = preview("x", SetupLimits::default(), None, SetupPass::Stabilization).unwrap_err();
    assert_eq!(none[0].field, "base");
}

#[test]
fn extending_a_base_keeps_its_agents_and_edges_and_reuses_its_lead() {
    let base = preview("Research vector databases", SetupLimits::default(), None, SetupPass::Initial)
        .unwrap()
        .topology;
    let plan =
        preview("Fix the crash in the upload flow", SetupLimits::default(), Some(&base), SetupPass::Initial)
            .unwrap();
    for edge in base.edges.iter().filter(|e| e.kind == EdgeKind::Spawn) {
        assert!(plan.topology.edges.contains(edge), "{edge:?} kept");
    }
    let lead = plan.agents.iter().find(|a| a.role == "lead").unwrap();
    assert!(!lead.new_agent, "the base's lead is reused");
    assert!(plan.topology.nodes.len() > base.nodes.len());
}

/// A tiny deterministic generator, so the property test needs no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn every_preview_passes_expressibility_limits_and_budgets() {
    let rules = Rules::default_rules();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let hints = ["needs_independent_review", "parallelisable", "needs_web_access", "needs_code_execution"];
    let risks = [RiskLevel::Low, RiskLevel::Medium, RiskLevel::High, RiskLevel::Critical];
    let words = ["fix", "production", "deploy", "research", "write", "the", "customer", "data", "security"];
    let mut produced = 0;
    let mut bases: Vec<Topology> = Vec::new();
    for _ in 0..600 {
        let category = &rules.categories[rng.below(rules.categories.len())];
        let task = TaskInput {
            title: (0..rng.below(12) + 1)
                .map(|_| words[rng.below(words.len())])
                .collect::<Vec<_>>()
                .join(" "),
            description: "x".repeat(rng.below(40_000)),
            ..TaskInput::default()
        };
        let mut profile = classify(&task, &rules);
        profile.category = category.id.clone();
        profile.risk = risks[rng.below(4)];
        profile.hints = hints.iter().filter(|_| rng.below(2) == 0).map(|h| (*h).to_owned()).collect();
        let limits = SetupLimits {
            max_agents: rng.below(MAX_TEAM) + 1,
            budgets: Budgets {
                file_chars: bootstrap::MIN_FILE_BUDGET
                    + rng.below(bootstrap::OPENCLAW_FILE_LIMIT - bootstrap::MIN_FILE_BUDGET),
                total_chars: bootstrap::MIN_TOTAL_BUDGET
                    + rng.below(bootstrap::OPENCLAW_TOTAL_LIMIT - bootstrap::MIN_TOTAL_BUDGET),
            },
            ..SetupLimits::default()
        };
        let pass = if rng.below(4) == 0 { SetupPass::Stabilization } else { SetupPass::Initial };
        let base =
            if !bases.is_empty() && rng.below(2) == 0 { Some(&bases[rng.below(bases.len())]) } else { None };
        let models = BTreeMap::new();
        let input = SetupInput {
            task: &task,
            profile: &profile,
            category_roles: &category.roles,
            pass,
            base,
            limits,
            models: &models,
        };
        let Ok(plan) = plan_setup(&input) else { continue };
        produced += 1;
        assert!(express(&sends(&plan.topology)).is_some(), "inexpressible SEND set");
        assert!(spawn_depth(&plan.topology) <= limits.max_spawn_depth);
        assert!(max_children(&plan.topology) <= limits.max_children);
        assert!(plan.agents.len() <= limits.max_agents, "{} > {}", plan.agents.len(), limits.max_agents);
        for agent in &plan.agents {
            for file in &agent.files {
                assert!(
                    file.chars <= limits.budgets.file_chars,
                    "{} has {} > {}",
                    file.name,
                    file.chars,
                    limits.budgets.file_chars
                );
            }
            assert!(agent.total_chars() <= limits.budgets.total_chars);
        }
        if let Some(base) = base {
            for node in &base.nodes {
                assert!(plan.topology.nodes.contains(node), "base agent {} changed", node.agent_id);
            }
        }
        if bases.len() < 20 && plan.topology.nodes.len() <= 12 {
            bases.push(plan.topology.clone());
        }
    }
    assert!(produced > 400, "only {produced} previews were produced");
}
