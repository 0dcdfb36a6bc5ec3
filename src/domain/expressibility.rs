//! Which SEND edge sets OpenClaw can express.
//!
//! OpenClaw's agent-to-agent `allow` list is an undirected clique C; the only direction control
//! is denying `sessions_send` to some members, leaving initiators I ⊆ C. So a SEND set is
//! expressible iff it equals `I × C` minus self-loops.
//!
//! # Guarantees
//! - [`nearest_narrower`] only ever removes edges: the result is a subset of the request, so a
//!   policy is never widened to fit.
//! - Results are deterministic (ties broken by the sorted agent lists).
//! - Deciding expressibility, and narrowing a set of more than 200 agents, is O(nodes + edges)
//!   in time and memory: the granted pairs `I × C` are never materialised (a 2 000-agent chain
//!   would be four million pairs).

use std::collections::BTreeSet;

/// A directed SEND edge `(from, to)`.
pub type SendEdge = (String, String);

/// Up to this many clique candidates the search is exhaustive; above, greedy.
const EXACT_SEARCH_LIMIT: usize = 16;
/// Above this many agents even the greedy narrowing is skipped (it is O(n⁴)).
const GREEDY_LIMIT: usize = 200;

/// The clique and initiators that express a SEND set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SendPolicy {
    /// Agents in `tools.agentToAgent.allow`.
    pub clique: BTreeSet<String>,
    /// Clique members that may start conversations (the others deny `sessions_send`).
    pub initiators: BTreeSet<String>,
}

impl SendPolicy {
    /// Returns true when this policy lets `from` start a conversation with `to`.
    pub fn grants(&self, from: &str, to: &str) -> bool {
        from != to && self.initiators.contains(from) && self.clique.contains(to)
    }

    /// Returns the SEND edges this policy grants (|I| × (|C| − 1) of them: for teams, not for
    /// checking arbitrary input — use [`SendPolicy::grants`]).
    pub fn edges(&self) -> BTreeSet<SendEdge> {
        let mut edges = BTreeSet::new();
        for from in &self.initiators {
            for to in self.clique.iter().filter(|to| *to != from) {
                edges.insert((from.clone(), to.clone()));
            }
        }
        edges
    }
}

/// Returns the policy expressing `edges` exactly, or `None` when OpenClaw cannot express them.
///
/// With no self-loops every initiator reaches at most |C| − 1 members, so the set equals
/// `I × C` minus self-loops exactly when it has |I| · (|C| − 1) edges: counted, not compared.
pub fn express(edges: &BTreeSet<SendEdge>) -> Option<SendPolicy> {
    if edges.iter().any(|(from, to)| from == to) {
        return None;
    }
    let policy = SendPolicy {
        clique: edges.iter().flat_map(|(a, b)| [a.clone(), b.clone()]).collect(),
        initiators: edges.iter().map(|(a, _)| a.clone()).collect(),
    };
    (edges.len() == policy.initiators.len() * policy.clique.len().saturating_sub(1)).then_some(policy)
}

/// The best initiators when the clique is every agent of `edges`: those whose out-degree
/// covers all the others (counted in one pass).
fn best_for_all(edges: &BTreeSet<SendEdge>, clique: BTreeSet<String>) -> SendPolicy {
    let mut out_degree: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for (from, to) in edges {
        if from != to {
            *out_degree.entry(from.as_str()).or_default() += 1;
        }
    }
    let full = clique.len().saturating_sub(1);
    let initiators =
        out_degree.into_iter().filter(|(_, degree)| *degree == full).map(|(a, _)| a.to_owned()).collect();
    SendPolicy { clique, initiators }
}

/// Returns the largest expressible subset of `edges` (by edge count; ties broken by the
/// lexicographically smallest clique). The exact search covers up to 16 agents; larger sets use
/// a greedy narrowing that is still a subset but not always the largest one.
pub fn nearest_narrower(edges: &BTreeSet<SendEdge>) -> SendPolicy {
    if let Some(exact) = express(edges) {
        return exact;
    }
    let agents: Vec<String> =
        edges.iter().flat_map(|(a, b)| [a.clone(), b.clone()]).collect::<BTreeSet<_>>().into_iter().collect();
    if agents.len() <= EXACT_SEARCH_LIMIT {
        exact_search(edges, &agents)
    } else {
        greedy_search(edges, agents)
    }
}

/// For a fixed clique, the best initiators are every member whose edges reach all others.
fn best_for_clique(edges: &BTreeSet<SendEdge>, clique: &BTreeSet<String>) -> SendPolicy {
    let initiators = clique
        .iter()
        .filter(|from| {
            clique.iter().filter(|to| to != from).all(|to| edges.contains(&((*from).clone(), to.clone())))
        })
        .cloned()
        .collect();
    SendPolicy { clique: clique.clone(), initiators }
}

fn exact_search(edges: &BTreeSet<SendEdge>, agents: &[String]) -> SendPolicy {
    let mut best = SendPolicy::default();
    let mut best_count = 0usize;
    for mask in 1u32..(1u32 << agents.len()) {
        if mask.count_ones() < 2 {
            continue;
        }
        let clique: BTreeSet<String> =
            agents.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, a)| a.clone()).collect();
        let candidate = best_for_clique(edges, &clique);
        let count = candidate.initiators.len() * (clique.len() - 1);
        let better =
            count > best_count || (count == best_count && count > 0 && candidate.clique < best.clique);
        if better {
            best_count = count;
            best = candidate;
        }
    }
    if best_count == 0 { SendPolicy::default() } else { best }
}

/// Score of a candidate: granted edges first, then fewer missing pairs inside the clique (so
/// the greedy walk makes progress even while nothing is granted yet).
fn score(edges: &BTreeSet<SendEdge>, policy: &SendPolicy) -> (usize, std::cmp::Reverse<usize>) {
    let granted = policy.initiators.len() * policy.clique.len().saturating_sub(1);
    let missing = policy
        .clique
        .iter()
        .flat_map(|a| policy.clique.iter().filter(move |b| *b != a).map(move |b| (a, b)))
        .filter(|(a, b)| !edges.contains(&((*a).clone(), (*b).clone())))
        .count();
    (granted, std::cmp::Reverse(missing))
}

/// Removes, one at a time, the clique member whose removal improves the score most, until no
/// removal helps. Above [`GREEDY_LIMIT`] agents the search is skipped and the answer is what the
/// whole clique can express (possibly nothing): still a subset, never a widening.
fn greedy_search(edges: &BTreeSet<SendEdge>, agents: Vec<String>) -> SendPolicy {
    let mut clique: BTreeSet<String> = agents.into_iter().collect();
    let mut best = best_for_all(edges, clique.clone());
    if clique.len() <= GREEDY_LIMIT {
        loop {
            let mut improved: Option<SendPolicy> = None;
            for agent in &clique {
                let mut smaller = clique.clone();
                smaller.remove(agent);
                let candidate = best_for_clique(edges, &smaller);
                let bar = improved.as_ref().unwrap_or(&best);
                if score(edges, &candidate) > score(edges, bar) {
                    improved = Some(candidate);
                }
            }
            match improved {
                Some(next) => {
                    clique = next.clique.clone();
                    best = next;
                }
                None => break,
            }
        }
    }
    if best.initiators.is_empty() { SendPolicy::default() } else { best }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(edges: &[(&str, &str)]) -> BTreeSet<SendEdge> {
        edges.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
    }

    #[test]
    fn a_full_clique_is_expressible() {
        let edges = set(&[("a", "b"), ("b", "a")]);
        let policy = express(&edges).unwrap();
        assert_eq!(policy.initiators.len(), 2);
    }

    #[test]
    fn one_way_messaging_is_expressible_by_denying_send_to_the_target() {
        let policy = express(&set(&[("a", "b")])).unwrap();
        assert_eq!(policy.clique, ["a", "b"].map(String::from).into());
        assert_eq!(policy.initiators, ["a"].map(String::from).into());
    }

    #[test]
    fn the_empty_set_is_expressible() {
        assert_eq!(express(&BTreeSet::new()), Some(SendPolicy::default()));
    }

    #[test]
    fn a_chain_is_not_expressible_and_narrows_to_one_edge() {
        let edges = set(&[("a", "b"), ("b", "c")]);
        assert!(express(&edges).is_none());
        let narrowed = nearest_narrower(&edges);
        assert_eq!(narrowed.edges(), set(&[("a", "b")]));
        assert!(narrowed.edges().is_subset(&edges));
    }

    #[test]
    fn studio12_shape_is_expressible() {
        let clique = ["architect", "chief", "docs", "pm", "qa", "research"];
        let initiators = ["architect", "chief", "pm", "qa"];
        let mut edges = BTreeSet::new();
        for from in initiators {
            for to in clique.iter().filter(|to| **to != from) {
                edges.insert((from.to_owned(), (*to).to_owned()));
            }
        }
        assert_eq!(edges.len(), 20);
        let policy = express(&edges).unwrap();
        assert_eq!(policy.clique.len(), 6);
        assert_eq!(policy.initiators.len(), 4);
    }

    #[test]
    fn a_clique_missing_one_direction_narrows_by_dropping_an_initiator() {
        // a, b, c all talk to each other except c never starts a conversation with a.
        let edges = set(&[("a", "b"), ("a", "c"), ("b", "a"), ("b", "c"), ("c", "b")]);
        assert!(express(&edges).is_none());
        let narrowed = nearest_narrower(&edges);
        assert_eq!(narrowed.edges().len(), 4);
        assert!(narrowed.edges().is_subset(&edges));
    }

    #[test]
    fn greedy_narrowing_of_large_sets_stays_a_subset() {
        let mut edges = BTreeSet::new();
        for i in 0..20 {
            for j in 0..20 {
                if i != j && (i + j) % 7 != 0 {
                    edges.insert((format!("a{i:02}"), format!("a{j:02}")));
                }
            }
        }
        let narrowed = nearest_narrower(&edges);
        assert!(narrowed.edges().is_subset(&edges));
        assert!(express(&narrowed.edges()).is_some());
    }

    #[test]
    fn a_two_thousand_agent_chain_is_decided_and_narrowed_without_materialising_pairs() {
        let edges: BTreeSet<SendEdge> =
            (0..1999).map(|i| (format!("a{i:04}"), format!("a{:04}", i + 1))).collect();
        assert!(express(&edges).is_none());
        let narrowed = nearest_narrower(&edges);
        // The whole chain as one clique has no initiator reaching everyone: nothing survives,
        // which is a subset (never a widening).
        assert!(edges.iter().filter(|(a, b)| narrowed.grants(a, b)).count() <= edges.len());
        assert!(narrowed.initiators.is_empty());
    }

    #[test]
    fn counting_agrees_with_comparing_on_small_sets() {
        let agents = ["a", "b", "c", "d"];
        let pairs: Vec<(String, String)> = agents
            .iter()
            .flat_map(|a| agents.iter().filter(move |b| *b != a).map(move |b| (a.to_string(), b.to_string())))
            .collect();
        for mask in 0u32..(1 << pairs.len()) {
            let edges: BTreeSet<SendEdge> = pairs
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, e)| e.clone())
                .collect();
            let by_comparing = {
                let policy = SendPolicy {
                    clique: edges.iter().flat_map(|(a, b)| [a.clone(), b.clone()]).collect(),
                    initiators: edges.iter().map(|(a, _)| a.clone()).collect(),
                };
                policy.edges() == edges
            };
            assert_eq!(express(&edges).is_some(), by_comparing, "{edges:?}");
        }
    }
}
