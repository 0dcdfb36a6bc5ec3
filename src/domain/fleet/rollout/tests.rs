use chrono::TimeZone;

use super::*;
use crate::domain::topology::Topology;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap()
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn fleet(waves: Vec<Vec<String>>) -> FleetRollout {
    let topology = Topology::new(Vec::new(), Vec::new(), Vec::new());
    FleetRollout::new("fr-1".into(), "env=prod".into(), topology, waves, Vec::new(), "op".into(), now())
}

/// Runs the driver's decisions against a fake fleet in which `fails` fail.
fn drive(rollout: &mut FleetRollout, fails: &[&str]) -> Vec<FleetAction> {
    let mut seen = Vec::new();
    for _ in 0..100 {
        let action = decide(rollout);
        seen.push(action.clone());
        match &action {
            FleetAction::Start(runtimes) => {
                for target in rollout.targets.iter_mut().filter(|t| runtimes.contains(&t.runtime)) {
                    target.state = TargetState::Applying;
                    target.rollout_id = Some(format!("ro-{}", target.runtime));
                }
            }
            FleetAction::Restore(runtime) => {
                rollout.targets.iter_mut().find(|t| &t.runtime == runtime).unwrap().restored = true;
            }
            FleetAction::Wait => {
                let in_flight = rollout.targets.iter().any(|t| t.state == TargetState::Applying);
                if !in_flight {
                    return seen;
                }
                for target in rollout.targets.iter_mut() {
                    let outcome = if fails.contains(&target.runtime.as_str()) {
                        RolloutState::RolledBack
                    } else {
                        RolloutState::Succeeded
                    };
                    target.observe(outcome, Some("verification failed"), now());
                }
            }
            other => rollout.apply(other, now()),
        }
    }
    panic!("the driver did not settle: {seen:?}");
}

#[test]
fn cumulative_steps_split_runtimes_into_waves() {
    let all: Vec<String> = (0..8).map(|i| format!("rt-{i}")).collect();
    let steps = parse_wave_steps("1, 25%, 100%").unwrap();
    let waves = plan_waves(&all, &steps);
    assert_eq!(waves.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1, 6]);
    assert_eq!(plan_waves(&all, &parse_wave_steps("1").unwrap()).len(), 2, "the rest is one more wave");
    assert_eq!(plan_waves(&all, &parse_wave_steps("50%,50%,100%").unwrap()).len(), 2, "empty steps dropped");
    assert!(plan_waves(&[], &steps).is_empty());
    for bad in ["0", "x", "101%", "0%", ""] {
        assert!(parse_wave_steps(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn waves_run_in_order_and_a_clean_run_succeeds() {
    let mut rollout = fleet(vec![names(&["a"]), names(&["b", "c"])]);
    let actions = drive(&mut rollout, &[]);
    assert_eq!(actions[0], FleetAction::Start(names(&["a"])));
    assert!(actions.contains(&FleetAction::Start(names(&["b", "c"]))));
    assert_eq!(rollout.state, FleetRolloutState::Succeeded);
    assert!(rollout.targets.iter().all(|t| t.state == TargetState::Succeeded));
}

#[test]
fn a_failure_restores_that_runtime_and_halts_before_the_next_wave() {
    let mut rollout = fleet(vec![names(&["a"]), names(&["b", "c"]), names(&["d"])]);
    let actions = drive(&mut rollout, &["c"]);
    assert_eq!(rollout.state, FleetRolloutState::Failed);
    assert!(actions.contains(&FleetAction::Restore("c".into())));
    let state = |name: &str| rollout.targets.iter().find(|t| t.runtime == name).unwrap().state;
    assert_eq!(state("b"), TargetState::Succeeded, "the rest of the wave finished");
    assert_eq!(state("c"), TargetState::Failed);
    assert_eq!(state("d"), TargetState::Skipped, "the third wave never started");
    assert!(!actions.contains(&FleetAction::Start(names(&["d"]))));
    assert!(halt_reason(&rollout).unwrap().contains("wave 2 of 3: runtime c failed"));
}

#[test]
fn a_paused_rollout_starts_no_wave_until_resumed() {
    let mut rollout = fleet(vec![names(&["a"]), names(&["b"])]);
    assert_eq!(decide(&rollout), FleetAction::Start(names(&["a"])));
    rollout.targets[0].state = TargetState::Applying;
    rollout.pause(now()).unwrap();
    rollout.targets[0].observe(RolloutState::Succeeded, None, now());
    assert_eq!(decide(&rollout), FleetAction::Wait, "in-flight work finished, nothing new starts");
    rollout.resume(now()).unwrap();
    assert_eq!(decide(&rollout), FleetAction::Advance);
}

#[test]
fn cancelling_skips_what_has_not_started_and_ends_once_nothing_runs() {
    let mut rollout = fleet(vec![names(&["a"]), names(&["b"])]);
    rollout.targets[0].state = TargetState::Applying;
    rollout.cancel(now()).unwrap();
    assert_eq!(rollout.targets[1].state, TargetState::Skipped);
    assert_eq!(decide(&rollout), FleetAction::Wait, "a waits for its rollout");
    rollout.targets[0].observe(RolloutState::Succeeded, None, now());
    assert_eq!(decide(&rollout), FleetAction::Finish(FleetRolloutState::Cancelled));
    rollout.apply(&FleetAction::Finish(FleetRolloutState::Cancelled), now());
    assert!(rollout.cancel(now()).is_err(), "an ended rollout cannot be cancelled");
    assert!(rollout.pause(now()).is_err());
}

#[test]
fn an_empty_selection_is_done_at_once_and_paused_runtimes_are_skipped() {
    let topology = Topology::new(Vec::new(), Vec::new(), Vec::new());
    let skipped = vec![("p".to_owned(), "paused".to_owned())];
    let rollout =
        FleetRollout::new("fr".into(), String::new(), topology, Vec::new(), skipped, "op".into(), now());
    assert_eq!(rollout.state, FleetRolloutState::Succeeded);
    assert_eq!(rollout.targets[0].state, TargetState::Skipped);
}
