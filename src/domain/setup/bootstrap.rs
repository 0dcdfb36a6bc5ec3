//! Bootstrap bundles: `AGENTS.md`, `SOUL.md` and `IDENTITY.md` per agent, rendered from role
//! templates with the task's context, each within its budget, each carrying jhf-warp's
//! managed-file marker.
//!
//! # Guarantees
//! - Every file, and each agent's total, stays within the budgets (the task excerpt is what
//!   shrinks); budgets are checked against minimums the templates always fit.
//! - The marker records the SHA-256 of the body it heads, so a file a person edited is
//!   recognised and never overwritten ([`decide`]).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ProposedAgent;
use crate::domain::classify::{TaskInput, TaskProfile};
use crate::domain::desired::FieldViolation;

/// OpenClaw's own per-file limit (`bootstrapMaxChars`).
pub const OPENCLAW_FILE_LIMIT: usize = 20_000;
/// OpenClaw's own total limit (`bootstrapTotalMaxChars`).
pub const OPENCLAW_TOTAL_LIMIT: usize = 60_000;
/// Smallest per-file budget a caller may ask for (the templates without task text fit).
pub const MIN_FILE_BUDGET: usize = 2_500;
/// Smallest total budget a caller may ask for.
pub const MIN_TOTAL_BUDGET: usize = 6_000;
/// The files of a bundle.
pub const FILE_NAMES: [&str; 3] = ["AGENTS.md", "SOUL.md", "IDENTITY.md"];

const MARKER_PREFIX: &str = "<!-- jhf-warp:managed v1 sha256=";
const MARKER_SUFFIX: &str = " -->";

/// Character budgets of a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budgets {
    pub file_chars: usize,
    pub total_chars: usize,
}

impl Default for Budgets {
    /// Far below OpenClaw's 20 000 / 60 000: bootstrap text is paid on every turn.
    fn default() -> Self {
        Self { file_chars: 6_000, total_chars: 15_000 }
    }
}

impl Budgets {
    /// Checks the budgets against the templates' minimums and OpenClaw's limits.
    pub fn validate(&self) -> Vec<FieldViolation> {
        let mut violations = Vec::new();
        if !(MIN_FILE_BUDGET..=OPENCLAW_FILE_LIMIT).contains(&self.file_chars) {
            violations.push(FieldViolation::new(
                "budgets.file_chars",
                format!("must be {MIN_FILE_BUDGET}..{OPENCLAW_FILE_LIMIT} (0 means the default)"),
            ));
        }
        if !(MIN_TOTAL_BUDGET..=OPENCLAW_TOTAL_LIMIT).contains(&self.total_chars) {
            violations.push(FieldViolation::new(
                "budgets.total_chars",
                format!("must be {MIN_TOTAL_BUDGET}..{OPENCLAW_TOTAL_LIMIT} (0 means the default)"),
            ));
        }
        violations
    }
}

/// One rendered file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapFile {
    pub name: String,
    /// The whole file, marker line included.
    pub content: String,
    pub chars: usize,
    pub budget: usize,
}

/// Adds the managed marker to a body.
pub fn with_marker(body: &str) -> String {
    format!("{MARKER_PREFIX}{}{MARKER_SUFFIX}\n{body}", hex::encode(Sha256::digest(body.as_bytes())))
}

/// What to do with one bootstrap file in a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileAction {
    Create,
    /// jhf-warp's own, unedited file with other content: replace it.
    Update,
    Unchanged,
    /// A file jhf-warp must not touch; the reason says why.
    Conflict(String),
}

/// Decides how to write `rendered` over what the workspace holds.
pub fn decide(existing: Option<&str>, rendered: &str) -> FileAction {
    let Some(existing) = existing else { return FileAction::Create };
    if existing == rendered {
        return FileAction::Unchanged;
    }
    let (first, body) = existing.split_once('\n').unwrap_or((existing, ""));
    let Some(hash) = first.strip_prefix(MARKER_PREFIX).and_then(|rest| rest.strip_suffix(MARKER_SUFFIX))
    else {
        return FileAction::Conflict(
            "exists without jhf-warp's managed-file marker (a person or another tool wrote it)".to_owned(),
        );
    };
    if hex::encode(Sha256::digest(body.as_bytes())) != hash {
        return FileAction::Conflict(
            "carries jhf-warp's marker but was edited since jhf-warp wrote it".to_owned(),
        );
    }
    FileAction::Update
}

fn excerpt(text: &str, max_chars: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn agents_md(
    task: &TaskInput,
    profile: &TaskProfile,
    agent: &ProposedAgent,
    roster: &[(String, String, bool)],
    spawns: &[String],
    learned: &[String],
    context_chars: usize,
) -> String {
    let mut out = String::new();
    out.push_str(&format!("# {} — operating rules\n\n", agent.agent_id));
    out.push_str(&format!(
        "You are `{}`, the **{}** of a team of {} agents that jhf-warp set up for one task.\n\n",
        agent.agent_id,
        agent.role,
        roster.len()
    ));
    out.push_str("## Task\n\n");
    let title = excerpt(&task.title, context_chars.min(300));
    if !title.is_empty() {
        out.push_str(&format!("**{title}**\n\n"));
    }
    let description = excerpt(&task.description, context_chars.saturating_sub(title.chars().count()));
    if !description.is_empty() {
        out.push_str(&format!("{description}\n\n"));
    }
    out.push_str(&format!(
        "Category: {} · risk: {} · hints: {}\n\n",
        profile.category_name,
        profile.risk.as_str(),
        if profile.hints.is_empty() { "none".to_owned() } else { profile.hints.join(", ") }
    ));
    out.push_str(&format!("## Your job\n\n{}\n\n", super::role_purpose(&agent.role)));
    out.push_str("## Team\n\n");
    for (id, role, initiates) in roster {
        let you = if *id == agent.agent_id { " (you)" } else { "" };
        let starts = if *initiates { "may start conversations" } else { "answers when asked" };
        out.push_str(&format!("- `{id}` — {role}{you}; {starts}\n"));
    }
    out.push_str("\n## Communication and limits\n\n");
    if agent.may_initiate {
        out.push_str("- You may start conversations with team members (`sessions_send`).\n");
    } else {
        out.push_str("- You do not start conversations; answer the lead or reviewer when they ask.\n");
    }
    if spawns.is_empty() {
        out.push_str("- You spawn no sub-agents.\n");
    } else {
        out.push_str(&format!(
            "- You may spawn: {} (one level deep; keep children few).\n",
            spawns.join(", ")
        ));
    }
    out.push_str(&format!(
        "- Trust {}: sandbox `{}`. Stay inside your workspace; never handle credentials in plain text.\n",
        agent.trust.as_str(),
        agent.sandbox
    ));
    if profile.hints.iter().any(|h| h == crate::domain::classify::HINT_REVIEW) {
        out.push_str("- Nothing counts as done before the reviewer has signed it off.\n");
    }
    if profile.hints.iter().any(|h| h == crate::domain::classify::HINT_APPROVAL) {
        out.push_str("- Irreversible steps need a human's explicit approval first.\n");
    }
    if !learned.is_empty() {
        out.push_str("\n## Learned (reviewed and approved)\n\n");
        for lesson in learned {
            out.push_str(&format!("- {}\n", lesson.trim().replace('\n', "\n  ")));
        }
    }
    out
}

fn soul_md(agent: &ProposedAgent) -> String {
    let temperament = match agent.role.as_str() {
        "lead" => "calm, decisive and transparent about trade-offs",
        "reviewer" | "auditor" => "sceptical, precise and fair; you look for what others missed",
        "qa" => "curious and thorough; you try to break things before users do",
        "writer" | "support" => "clear, warm and accurate",
        _ => "careful, focused and honest about uncertainty",
    };
    format!(
        "# Soul\n\nYou are {temperament}.\n\n- Prefer small, verifiable steps over big leaps.\n- Say what you do not know.\n- Leave the workspace tidier than you found it.\n- Escalate to the lead instead of guessing when the task is unclear.\n"
    )
}

fn identity_md(agent: &ProposedAgent) -> String {
    let emoji = match agent.role.as_str() {
        "lead" => "🧭",
        "reviewer" | "auditor" => "🔍",
        "qa" => "🧪",
        "writer" => "✍️",
        "researcher" | "research" => "📚",
        "analyst" => "📊",
        "operator" => "🛠️",
        "support" => "💬",
        _ => "🤖",
    };
    format!(
        "# Identity\n\n- name: {}\n- role: {}\n- emoji: {emoji}\n- model tier: {}\n",
        agent.agent_id, agent.role, agent.model_tier
    )
}

/// Renders an agent's bundle within the budgets, shortening the task excerpt as needed.
/// `learned` are approved learning changes, listed last in AGENTS.md.
pub fn render_bundle(
    task: &TaskInput,
    profile: &TaskProfile,
    agent: &ProposedAgent,
    roster: &[(String, String, bool)],
    spawns: &[String],
    learned: &[String],
    budgets: &Budgets,
) -> Vec<BootstrapFile> {
    let soul = with_marker(&soul_md(agent));
    let identity = with_marker(&identity_md(agent));
    let fixed = soul.chars().count() + identity.chars().count();
    let agents_budget = budgets.file_chars.min(budgets.total_chars.saturating_sub(fixed));
    // Start from the whole task text and shrink the excerpt until AGENTS.md fits.
    let mut context = task.title.chars().count() + task.description.chars().count();
    let agents = loop {
        let text = with_marker(&agents_md(task, profile, agent, roster, spawns, learned, context));
        if text.chars().count() <= agents_budget || context == 0 {
            break text;
        }
        let over = text.chars().count() - agents_budget;
        context = context.saturating_sub(over.max(16));
    };
    [("AGENTS.md", agents), ("SOUL.md", soul), ("IDENTITY.md", identity)]
        .into_iter()
        .map(|(name, content)| BootstrapFile {
            name: name.to_owned(),
            chars: content.chars().count(),
            content,
            budget: budgets.file_chars,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absent_or_unedited_managed_files_are_written() {
        let ours = with_marker("# Soul\nv1\n");
        assert_eq!(decide(None, &ours), FileAction::Create);
        assert_eq!(decide(Some(&ours), &ours), FileAction::Unchanged);
        assert_eq!(decide(Some(&with_marker("# Soul\nv0\n")), &ours), FileAction::Update);
        let edited = ours.replace("# Soul", "# Soul, with a person's note");
        assert!(matches!(decide(Some(&edited), &ours), FileAction::Conflict(m) if m.contains("edited")));
        assert!(
            matches!(decide(Some("# my own notes\n"), &ours), FileAction::Conflict(m) if m.contains("without"))
        );
    }

    #[test]
    fn budgets_outside_the_bounds_are_refused() {
        assert!(Budgets::default().validate().is_empty());
        let tiny = Budgets { file_chars: 100, total_chars: 70_000 };
        let fields: Vec<String> = tiny.validate().into_iter().map(|v| v.field).collect();
        assert_eq!(fields, ["budgets.file_chars", "budgets.total_chars"]);
    }
}
