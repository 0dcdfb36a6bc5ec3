use std::collections::BTreeMap;

use chrono::{TimeDelta, TimeZone, Utc};

use super::*;

#[test]
fn runtime_names_follow_openclaws_tenant_rule() {
    for good in ["a", "default", "editorial-staging", "a1", "0", &"x".repeat(40)] {
        assert!(is_valid_runtime_name(good), "{good:?}");
    }
    for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"x".repeat(41), "ä", "a b"] {
        assert!(!is_valid_runtime_name(bad), "{bad:?}");
    }
}

fn gateway(name: &str) -> RuntimeSpec {
    let mut spec = RuntimeSpec::new(name, "gateway:ws://127.0.0.1:19125");
    spec.credential = Credential::File("/etc/jhf-warp/tokens/x".into());
    spec
}

#[test]
fn a_spec_names_every_field_it_breaks() {
    assert!(validate_spec(&gateway("ok"), "runtime").is_empty());
    assert!(validate_spec(&RuntimeSpec::new("f", "fixture:trio"), "runtime").is_empty());
    let fields = |spec: &RuntimeSpec| -> Vec<String> {
        validate_spec(spec, "runtime").into_iter().map(|v| v.field).collect()
    };
    assert_eq!(fields(&RuntimeSpec::new("Bad", "fixture:trio")), ["runtime.name"]);
    assert_eq!(fields(&RuntimeSpec::new("x", "ftp://host")), ["runtime.address"]);
    assert_eq!(
        fields(&RuntimeSpec::new("x", "gateway:ws://h:1")),
        ["runtime.token_file"],
        "a gateway needs a token"
    );
    let mut relative = gateway("x");
    relative.credential = Credential::File("tokens/x".into());
    assert_eq!(fields(&relative), ["runtime.token_file"]);
    let mut env = gateway("x");
    env.credential = Credential::Env("lower".into());
    assert_eq!(fields(&env), ["runtime.token_env"]);
    let mut fixture_with_token = RuntimeSpec::new("x", "fixture:trio");
    fixture_with_token.credential = Credential::Env("TOKEN".into());
    assert_eq!(fields(&fixture_with_token), ["runtime.token_file"]);
    let mut labels = RuntimeSpec::new("x", "fixture:trio");
    labels.labels = BTreeMap::from([("Env".into(), "prod".into()), ("team".into(), "a b".into())]);
    labels.observe_interval_secs = Some(1);
    assert_eq!(
        fields(&labels),
        ["runtime.labels", "runtime.labels[team]", "runtime.observe_interval_seconds"]
    );
}

#[test]
fn the_runtimes_file_parses_the_documented_shape() {
    let text = r#"
runtimes:
  - name: editorial-staging
    address: "gateway:ws://10.0.0.7:19125"
    token_file: /etc/jhf-warp/tokens/editorial-staging
    labels: { env: staging, team: editorial }
    observe_interval_seconds: 30
  - name: local-one
    address: fixture:trio
    paused: true
"#;
    let specs = parse_runtimes_file(text).unwrap();
    assert_eq!(specs.len(), 2);
    assert_eq!(specs[0].labels["team"], "editorial");
    assert_eq!(specs[0].observe_interval_secs, Some(30));
    assert_eq!(specs[0].credential, Credential::File("/etc/jhf-warp/tokens/editorial-staging".into()));
    assert!(specs[1].paused);
    assert!(parse_runtimes_file("runtimes: []").unwrap().is_empty());
    assert!(parse_runtimes_file("").unwrap().is_empty());
}

#[test]
fn a_bad_runtimes_file_is_refused_with_the_line_of_each_problem() {
    let text = "runtimes:\n  - name: a\n    address: fixture:trio\n  - name: a\n    address: fixture:trio\n  - name: B\n    address: nowhere\n";
    let error = parse_runtimes_file(text).unwrap_err();
    let all = error.problems.join("\n");
    assert!(all.contains("line 4 (runtimes[1]): duplicate runtime name \"a\""), "{all}");
    assert!(all.contains("line 6 (runtimes[2]): runtime.name"), "{all}");
    assert!(all.contains("line 6 (runtimes[2]): runtime.address"), "{all}");
    let typo = parse_runtimes_file("runtimes:\n  - name: a\n    address: fixture:trio\n    toke_file: /x\n")
        .unwrap_err();
    assert!(typo.problems[0].starts_with("line 4:"), "{typo:?}");
    assert!(typo.problems[0].contains("toke_file"), "{typo:?}");
    let both = "runtimes:\n- name: g\n  address: gateway:ws://h:1\n  token_file: /t\n  token_env: T\n";
    assert!(
        parse_runtimes_file(both).unwrap_err().problems[0]
            .contains("line 2 (runtimes[0]): token_file and token_env")
    );
    assert!(parse_runtimes_file("runtimes: {").is_err());
}

#[test]
fn selectors_match_like_kubernetes() {
    let labels = BTreeMap::from([("env".to_owned(), "prod".to_owned()), ("team".to_owned(), "a".to_owned())]);
    let matches = |text: &str| Selector::parse(text).unwrap().matches(&labels);
    assert!(matches(""));
    assert!(matches("env=prod"));
    assert!(matches("env==prod,team"));
    assert!(!matches("env=staging"));
    assert!(matches("env!=staging"));
    assert!(matches("region!=eu"), "a missing label is not equal");
    assert!(!matches("!team"));
    assert!(matches("!region"));
    for bad in ["env=prod,", "Env=prod", "env=a b", "=x"] {
        assert!(Selector::parse(bad).is_err(), "{bad:?}");
    }
    assert_eq!(Selector::parse(" env = prod , !x ").unwrap().to_string(), "env=prod,!x");
}

#[test]
fn health_is_paused_then_unreachable_then_what_the_observation_says() {
    let now = Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap();
    let facts = HealthFacts {
        paused: false,
        read_failed: false,
        last_seen: Some(now - TimeDelta::seconds(10)),
        config_valid: true,
        interval: TimeDelta::seconds(30),
        now,
    };
    assert_eq!(health(facts), RuntimeHealth::Healthy);
    assert_eq!(health(HealthFacts { paused: true, read_failed: true, ..facts }), RuntimeHealth::Paused);
    assert_eq!(health(HealthFacts { read_failed: true, ..facts }), RuntimeHealth::Unreachable);
    assert_eq!(health(HealthFacts { last_seen: None, ..facts }), RuntimeHealth::Unknown);
    assert_eq!(health(HealthFacts { config_valid: false, ..facts }), RuntimeHealth::Degraded);
    let stale = HealthFacts { last_seen: Some(now - TimeDelta::seconds(70)), ..facts };
    assert_eq!(health(stale), RuntimeHealth::Degraded);
}
