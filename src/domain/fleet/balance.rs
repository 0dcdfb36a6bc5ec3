//! Which replica owns which runtime. Every replica computes the same *target* from what the
//! store shows (the live replicas and runtimes): runtimes in name order each go to the replica
//! that ranks highest for it (rendezvous hashing: a stable, spread-out preference per runtime)
//! among those still under the fair share `ceil(runtimes / replicas)`. A replica then takes the
//! free runtimes targeted at it and gives up the ones it owns that are targeted elsewhere; the
//! owner lease (one holder at a time, by the database clock) is what makes ownership exclusive,
//! the target only decides who tries.
//!
//! When a replica joins, leaves or dies, the target moves only the runtimes it has to (about a
//! fair share's worth); a dead replica's runtimes are free once their leases expire, and the
//! replicas they now target take them on their next pass.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

/// `ceil(runtimes / replicas)`: the most runtimes the target gives one replica.
pub fn fair_share(runtimes: usize, replicas: usize) -> usize {
    if replicas == 0 { runtimes } else { runtimes.div_ceil(replicas) }
}

/// How much `replica` wants `runtime` (higher wins), the same on every replica.
fn preference(runtime: &str, replica: &str) -> u64 {
    let digest = Sha256::new().chain_update(runtime).chain_update([0u8]).chain_update(replica).finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The owner every runtime should have, given the live replicas (none: an empty map).
pub fn target(runtimes: &BTreeSet<String>, replicas: &BTreeSet<String>) -> BTreeMap<String, String> {
    let share = fair_share(runtimes.len(), replicas.len());
    let mut load: BTreeMap<&str, usize> = replicas.iter().map(|r| (r.as_str(), 0)).collect();
    let mut out = BTreeMap::new();
    for runtime in runtimes {
        let chosen = replicas
            .iter()
            .filter(|replica| load[replica.as_str()] < share)
            .max_by_key(|replica| (preference(runtime, replica), std::cmp::Reverse(replica.as_str())));
        if let Some(replica) = chosen {
            *load.entry(replica.as_str()).or_default() += 1;
            out.insert(runtime.clone(), replica.clone());
        }
    }
    out
}

/// What one replica should do now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnershipPlan {
    /// Free runtimes targeted at this replica: take their owner leases.
    pub take: Vec<String>,
    /// Runtimes this replica owns that are targeted elsewhere (or no longer exist): stop their
    /// work, then release.
    pub release: Vec<String>,
}

/// The plan of replica `me`, given the live replicas (`me` among them), the runtimes, and the
/// live owner of each owned runtime.
pub fn plan(
    me: &str,
    replicas: &BTreeSet<String>,
    runtimes: &BTreeSet<String>,
    owners: &BTreeMap<String, String>,
) -> OwnershipPlan {
    let target = target(runtimes, replicas);
    let mut plan = OwnershipPlan::default();
    for (runtime, wanted) in &target {
        if wanted == me && !owners.contains_key(runtime) {
            plan.take.push(runtime.clone());
        }
    }
    for (runtime, owner) in owners {
        if owner == me && target.get(runtime).is_none_or(|wanted| wanted != me) {
            plan.release.push(runtime.clone());
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: impl IntoIterator<Item = String>) -> BTreeSet<String> {
        names.into_iter().collect()
    }

    fn runtimes(n: usize) -> BTreeSet<String> {
        set((0..n).map(|i| format!("rt-{i:03}")))
    }

    fn replicas(n: usize) -> BTreeSet<String> {
        set((0..n).map(|i| format!("replica-{i}")))
    }

    fn loads(target: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for owner in target.values() {
            *out.entry(owner.clone()).or_default() += 1;
        }
        out
    }

    #[test]
    fn every_runtime_gets_one_owner_and_no_replica_more_than_its_fair_share() {
        for (r, m) in [(200, 3), (7, 3), (3, 3), (2, 3), (1, 1), (10, 4)] {
            let target = target(&runtimes(r), &replicas(m));
            assert_eq!(target.len(), r, "{r} runtimes over {m} replicas");
            let share = fair_share(r, m);
            assert!(loads(&target).values().all(|&n| n <= share), "{r}/{m}: {:?}", loads(&target));
        }
        assert!(target(&runtimes(5), &BTreeSet::new()).is_empty());
    }

    #[test]
    fn a_replica_joining_moves_about_a_fair_share_and_no_more() {
        let all = runtimes(200);
        let before = target(&all, &replicas(3));
        let after = target(&all, &replicas(4));
        let moved = before.iter().filter(|(runtime, owner)| after[*runtime] != **owner).count();
        // The newcomer gets its 50; capacity shifts may move a few more, never a reshuffle.
        assert!((50..=100).contains(&moved), "{moved} runtimes moved");
        assert_eq!(loads(&after).get("replica-3"), Some(&50));
    }

    #[test]
    fn a_dead_replicas_runtimes_go_to_the_others_and_the_rest_stay() {
        let all = runtimes(60);
        let before = target(&all, &replicas(3));
        let survivors = set(["replica-0".to_owned(), "replica-1".to_owned()]);
        let after = target(&all, &survivors);
        assert!(loads(&after).values().all(|&n| n <= 30));
        let kept = before
            .iter()
            .filter(|(_, owner)| owner.as_str() != "replica-2")
            .filter(|(runtime, owner)| after[*runtime] == **owner)
            .count();
        assert!(kept >= 35, "survivors keep most of what they had ({kept} of 40)");
    }

    #[test]
    fn a_replica_takes_free_targets_and_releases_what_is_targeted_elsewhere() {
        let all = runtimes(6);
        let members = replicas(2);
        let target = target(&all, &members);
        let mine: Vec<String> =
            target.iter().filter(|(_, o)| o.as_str() == "replica-0").map(|(r, _)| r.clone()).collect();
        let theirs: Vec<String> =
            target.iter().filter(|(_, o)| o.as_str() == "replica-1").map(|(r, _)| r.clone()).collect();
        // replica-0 owns everything (it was alone); replica-1 just joined.
        let owners: BTreeMap<String, String> =
            all.iter().map(|r| (r.clone(), "replica-0".to_owned())).collect();
        let first = plan("replica-0", &members, &all, &owners);
        assert!(first.take.is_empty());
        assert_eq!(first.release, theirs);
        let newcomer = plan("replica-1", &members, &all, &owners);
        assert!(newcomer.take.is_empty(), "never takes what another replica still owns");
        // Once released, the newcomer takes them; the first replica keeps its own.
        let owners: BTreeMap<String, String> =
            mine.iter().map(|r| (r.clone(), "replica-0".to_owned())).collect();
        assert_eq!(plan("replica-1", &members, &all, &owners).take, theirs);
        assert_eq!(plan("replica-0", &members, &all, &owners), OwnershipPlan::default());
        // A deregistered runtime is released by its owner.
        let fewer: BTreeSet<String> = all.iter().filter(|r| **r != mine[0]).cloned().collect();
        assert!(plan("replica-0", &members, &fewer, &owners).release.contains(&mine[0]));
    }
}
