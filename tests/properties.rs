//! Property tests over the parsers and validators that take hostile input: the config reader
//! (text → inventory → topology), the drift filter, page tokens and the desired-topology
//! validator. Fuzzing on stable Rust: proptest generates inputs (token soup close to each
//! grammar, and structured documents), and every case must end in a value or a typed error —
//! never a panic — with the bounds the code promises.
//!
//! Cases per property: `PROPTEST_CASES` (proptest's default 256; `.ci/run` sets its own).
//! Inputs are generated within sizes the code caps, so time and memory per case stay bounded
//! by those caps rather than by the generator.

use std::collections::BTreeSet;

use jhf_warp::domain::desired::{DesiredInput, NodeInput, validate_desired};
use jhf_warp::domain::drift::filter;
use jhf_warp::domain::expressibility::{SendEdge, express, nearest_narrower};
use jhf_warp::domain::inventory::{RouteMatch, StateLayout};
use jhf_warp::domain::openclaw::MAX_CONFIG_DEPTH;
use jhf_warp::domain::page_token::{MAX_TOKEN_BYTES, PageTokenCodec};
use jhf_warp::domain::topology::{PermissionPins, Route, TopologyEdge};
use jhf_warp::domain::{EdgeKind, FindingKind, RuntimeFacts, TrustLevel, build_inventory, derive_topology};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn facts() -> RuntimeFacts {
    RuntimeFacts {
        config_path: "/home/u/.openclaw/openclaw.json".to_owned(),
        layout: StateLayout {
            state_dir: "/home/u/.openclaw".to_owned(),
            home_dir: Some("/home/u".to_owned()),
        },
        ..RuntimeFacts::default()
    }
}

/// Words the config reader looks for, so generated documents reach past the first `match`.
const CONFIG_KEYS: &[&str] = &[
    "agents",
    "list",
    "defaults",
    "id",
    "default",
    "name",
    "workspace",
    "agentDir",
    "model",
    "primary",
    "tools",
    "profile",
    "allow",
    "alsoAllow",
    "deny",
    "agentToAgent",
    "enabled",
    "subagents",
    "allowAgents",
    "maxSpawnDepth",
    "maxChildrenPerAgent",
    "maxConcurrent",
    "bindings",
    "agentId",
    "match",
    "channel",
    "accountId",
    "peer",
    "kind",
    "guildId",
    "teamId",
    "roles",
    "sandbox",
    "mode",
    "session",
    "identity",
    "sessions_send",
    "sessions_spawn",
    "group:sessions",
    "*",
    "lead",
    "qa",
    "Lead",
    "../x",
    "",
];

fn config_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(CONFIG_KEYS).prop_map(str::to_owned),
        1 => "[a-zA-Z_:*./-]{0,12}",
    ]
}

/// A JSON document shaped like an OpenClaw config, with arbitrary values where the reader
/// expects specific ones.
fn config_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        config_key().prop_map(Value::String),
        ".{0,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 256, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((config_key(), inner), 0..8)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// An `agents.list` entry close to a real one: an id, spawn permissions, tools, a workspace,
/// and arbitrary extra keys.
fn agent_entry() -> impl Strategy<Value = Value> {
    let ids = || prop::collection::vec(agent_id(), 0..4);
    let tools = prop::sample::subsequence(
        vec!["sessions_send", "sessions_spawn", "group:sessions", "*", "exec"],
        0..3,
    );
    (
        agent_id(),
        any::<bool>(),
        ids(),
        tools.clone(),
        tools,
        "[a-z/~._-]{0,20}",
        prop::collection::vec((config_key(), config_value()), 0..3),
    )
        .prop_map(|(id, default, spawn, allow, deny, workspace, extra)| {
            let mut entry = serde_json::json!({
                "id": id,
                "default": default,
                "workspace": workspace,
                "subagents": { "allowAgents": spawn },
                "tools": { "allow": allow, "deny": deny },
            });
            if let Value::Object(map) = &mut entry {
                map.extend(extra);
            }
            entry
        })
}

fn binding() -> impl Strategy<Value = Value> {
    (agent_id(), prop::sample::select(vec!["telegram", "discord", "", "slack"]), prop::option::of(agent_id()))
        .prop_map(|(agent, channel, account)| {
            serde_json::json!({ "agentId": agent, "match": { "channel": channel, "accountId": account } })
        })
}

/// Text made of JSON5 pieces (brackets, quotes, comments, keys) and arbitrary characters.
fn json5_soup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            ":",
            ",",
            "\"",
            "'",
            "//",
            "/*",
            "*/",
            "\\",
            "\n",
            " ",
            "0x1F",
            "Infinity",
            "NaN",
            "-",
            "+",
            ".5",
            "1e308",
            "true",
            "null",
            "\"agents\"",
            "agents",
            "list",
            "\"id\"",
            "bindings",
        ])
        .prop_map(str::to_owned),
        config_key(),
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..400).prop_map(|pieces| pieces.concat())
}

/// Reads `raw` as the service does and checks what every observation relies on.
fn read_config(raw: &str) {
    let inventory = build_inventory(raw, &facts());
    let topology = derive_topology(&inventory);
    let ids: BTreeSet<&str> = topology.nodes.iter().map(|n| n.agent_id.as_str()).collect();
    assert_eq!(ids.len(), topology.nodes.len(), "agent ids in a topology are unique");
    for edge in &topology.edges {
        assert!(
            ids.contains(edge.from.as_str()) && ids.contains(edge.to.as_str()),
            "edge {edge:?} has both ends"
        );
    }
    for route in &topology.routes {
        assert!(ids.contains(route.agent_id.as_str()), "route {route:?} names an agent of the topology");
    }
    if !inventory.config_valid {
        assert!(topology.nodes.len() <= inventory.agents.len());
    }
}

proptest! {
    #[test]
    fn config_text_of_any_shape_reads_to_an_inventory_or_a_finding(raw in json5_soup()) {
        read_config(&raw);
    }

    #[test]
    fn config_documents_of_any_structure_read_to_a_consistent_topology(
        agents in prop::collection::vec(prop_oneof![3 => agent_entry(), 1 => config_value()], 0..12),
        rest in config_value(),
        bindings in prop::collection::vec(prop_oneof![3 => binding(), 1 => config_value()], 0..6),
        agent_to_agent in (any::<bool>(), prop::collection::vec(agent_id(), 0..4)),
    ) {
        let mut root = match rest { Value::Object(map) => map, other => Map::from_iter([("x".to_owned(), other)]) };
        root.insert("agents".to_owned(), serde_json::json!({ "list": agents }));
        root.insert("bindings".to_owned(), Value::Array(bindings));
        let (enabled, allow) = agent_to_agent;
        root.insert("tools".to_owned(), serde_json::json!({ "agentToAgent": { "enabled": enabled, "allow": allow } }));
        read_config(&Value::Object(root).to_string());
    }

    #[test]
    fn nesting_past_the_limit_is_an_unreadable_config_not_a_crash(depth in 0usize..20_000, array in any::<bool>()) {
        let (open, close) = if array { ("[", "]") } else { ("{\"a\":", "}") };
        let raw = format!("{{\"agents\":{}1{}}}", open.repeat(depth), close.repeat(depth));
        let inventory = build_inventory(&raw, &facts());
        let unreadable = inventory.findings.iter().any(|f| f.kind == FindingKind::ConfigUnreadable);
        prop_assert_eq!(unreadable, depth + 1 > MAX_CONFIG_DEPTH, "depth {}", depth);
    }

    #[test]
    fn drift_filters_of_any_text_parse_or_say_briefly_why_not(text in filter_soup()) {
        if let Err(why) = filter::parse(&text) {
            prop_assert!(why.len() <= 200, "an error echoes caller input only truncated: {} bytes", why.len());
        }
    }

    #[test]
    fn well_formed_drift_filters_parse_to_their_terms(terms in prop::collection::vec(filter_term(), 0..6)) {
        let text = terms.iter().map(|(field, value)| format!("{field} ={value}")).collect::<Vec<_>>().join("  AND ");
        let parsed = filter::parse(&text).unwrap();
        prop_assert_eq!(parsed.terms.len(), terms.len());
    }

    #[test]
    fn page_tokens_round_trip_and_any_change_is_refused(
        key in prop::collection::vec(any::<u8>(), 1..100),
        scope in ".{0,40}",
        cursor in ".{0,80}",
        at in any::<prop::sample::Index>(),
        replacement in any::<char>(),
    ) {
        let codec = PageTokenCodec::new(key);
        let token = codec.encode(&scope, &cursor);
        prop_assert_eq!(codec.decode(&scope, &token), Ok(cursor.clone()));
        let mut chars: Vec<char> = token.chars().collect();
        let i = at.index(chars.len());
        if chars[i] != replacement {
            chars[i] = replacement;
            let changed: String = chars.into_iter().collect();
            prop_assert!(codec.decode(&scope, &changed).is_err(), "changed token {changed:?} accepted");
        }
    }

    #[test]
    fn page_tokens_of_any_text_are_refused_without_a_panic(token in ".{0,200}", long in 0usize..4 * MAX_TOKEN_BYTES) {
        let codec = PageTokenCodec::new(b"key".to_vec());
        prop_assert!(codec.decode("scope", &token).is_err());
        prop_assert!(codec.decode("scope", &"A".repeat(long)).is_err());
    }

    #[test]
    fn desired_topologies_validate_to_a_canonical_fixed_point_or_field_violations(
        input in prop_oneof![plausible_desired(), desired_input()],
    ) {
        match validate_desired(&input) {
            Ok(topology) => {
                let requested: BTreeSet<&TopologyEdge> = input.edges.iter().collect();
                let stored: BTreeSet<&TopologyEdge> = topology.edges.iter().collect();
                prop_assert_eq!(requested, stored, "edges are stored as requested: never widened or dropped");
                let again = validate_desired(&DesiredInput::from(&topology)).expect("a stored topology validates");
                prop_assert_eq!(again.revision, topology.revision);
            }
            Err(violations) => {
                prop_assert!(!violations.is_empty());
                for violation in &violations {
                    prop_assert!(violation.field.starts_with("topology"), "{:?}", violation);
                    prop_assert!(violation.description.len() <= 600, "{} bytes", violation.description.len());
                }
            }
        }
    }
}

proptest! {
    /// Expressibility is decided by counting; this checks it against brute force over every
    /// clique and initiator set of up to five agents.
    #[test]
    fn send_sets_are_expressible_exactly_when_some_clique_and_initiators_grant_them(
        pairs in prop::collection::btree_set((0u8..5, 0u8..5), 0..20),
    ) {
        let name = |i: u8| format!("a{i}");
        let edges: BTreeSet<SendEdge> = pairs.iter().map(|(a, b)| (name(*a), name(*b))).collect();
        let brute = (0u32..32).any(|clique| {
            (0u32..32).filter(|initiators| initiators & !clique == 0).any(|initiators| {
                let granted: BTreeSet<SendEdge> = (0u8..5)
                    .filter(|a| initiators & (1 << a) != 0)
                    .flat_map(|a| (0u8..5).filter(move |b| *b != a && clique & (1 << b) != 0).map(move |b| (name(a), name(b))))
                    .collect();
                granted == edges
            })
        });
        match express(&edges) {
            Some(policy) => {
                prop_assert!(brute);
                prop_assert_eq!(policy.edges(), edges.clone());
            }
            None => prop_assert!(!brute, "{:?} is expressible", edges),
        }
        let narrower = nearest_narrower(&edges).edges();
        prop_assert!(narrower.is_subset(&edges), "narrowing never widens");
        prop_assert!(express(&narrower).is_some() || narrower.is_empty());
    }
}

fn filter_term() -> impl Strategy<Value = (String, String)> {
    let upper_or_lower = |s: &'static str| prop_oneof![Just(s.to_owned()), Just(s.to_ascii_lowercase())];
    prop_oneof![
        (
            Just("state".to_owned()),
            prop::sample::select(vec!["CONFIRMED", "DRIFT_STATE_PENDING", "resolved"])
        ),
        (Just("Severity".to_owned()), prop::sample::select(vec!["critical", "SEVERITY_WARNING", "Info"])),
        (Just("kind".to_owned()), prop::sample::select(vec!["EDGE_UNEXPECTED", "drift_kind_agent_missing"])),
    ]
    .prop_flat_map(move |(field, value)| (Just(field), upper_or_lower(value)))
}

fn filter_soup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        prop::sample::select(vec![
            "state",
            "severity",
            "kind",
            "=",
            "==",
            " AND ",
            "AND",
            "OR",
            "(",
            ")",
            "\"",
            "CONFIRMED",
            "DRIFT_STATE_",
            "SEVERITY_CRITICAL",
            " ",
            "\t",
            "NOT",
            "-",
        ])
        .prop_map(str::to_owned),
        ".{0,60}",
    ];
    prop::collection::vec(piece, 0..60).prop_map(|pieces| pieces.concat())
}

const IDS: &[&str] = &["lead", "qa", "research", "writer", "ops", "a", "b-1", "", "Lead", "../x", "x y", "é"];

fn agent_id() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(IDS).prop_map(str::to_owned),
        1 => ".{0,300}",
    ]
}

const VALID_IDS: &[&str] = &["lead", "qa", "research", "writer", "ops", "a", "b-1", "c_2", "d", "e"];

/// A desired topology that is valid except, often, for its SEND set: distinct valid ids, edges
/// between them, and SEND edges either as a clique with initiators (expressible) or at random.
fn plausible_desired() -> impl Strategy<Value = DesiredInput> {
    prop::sample::subsequence(VALID_IDS, 0..VALID_IDS.len())
        .prop_flat_map(|ids| {
            let n = ids.len().max(1);
            let pick = prop::collection::vec((0..n, 0..n, any::<bool>()), 0..30);
            let clique = prop::collection::vec((any::<bool>(), any::<bool>()), ids.len());
            (Just(ids), pick, clique, any::<bool>())
        })
        .prop_map(|(ids, picks, membership, structured_sends)| {
            let ids: Vec<String> = ids.into_iter().map(str::to_owned).collect();
            let nodes = ids
                .iter()
                .map(|id| NodeInput {
                    agent_id: id.clone(),
                    role: "worker".to_owned(),
                    ..NodeInput::default()
                })
                .collect();
            let mut edges = BTreeSet::new();
            for (a, b, send) in picks {
                if a < ids.len() && b < ids.len() && a != b && !(structured_sends && send) {
                    let kind = if send { EdgeKind::Send } else { EdgeKind::Spawn };
                    edges.insert(TopologyEdge { from: ids[a].clone(), to: ids[b].clone(), kind });
                }
            }
            if structured_sends {
                let clique: Vec<usize> = (0..ids.len()).filter(|i| membership[*i].0).collect();
                for &from in clique.iter().filter(|i| membership[**i].1) {
                    for &to in clique.iter().filter(|to| **to != from) {
                        edges.insert(TopologyEdge {
                            from: ids[from].clone(),
                            to: ids[to].clone(),
                            kind: EdgeKind::Send,
                        });
                    }
                }
            }
            DesiredInput { nodes, edges: edges.into_iter().collect(), ..DesiredInput::default() }
        })
}

fn desired_input() -> impl Strategy<Value = DesiredInput> {
    let trust = prop::option::of(prop::sample::select(vec![
        TrustLevel::Restricted,
        TrustLevel::Standard,
        TrustLevel::Elevated,
    ]));
    let text = prop_oneof![4 => "[a-z/~._-]{0,20}", 1 => ".{0,300}"];
    let choice = |values: &[&'static str]| {
        prop::option::of(prop::sample::select(values.to_vec()).prop_map(str::to_owned))
    };
    let pins = (
        prop::option::of(prop::collection::vec(text.clone(), 0..4)),
        prop::option::of(prop::collection::vec(text.clone(), 0..4)),
        choice(&["off", "non-main", "all", "sometimes"]),
        choice(&["none", "ro", "rw", "write"]),
    )
        .prop_map(|(tools_allow, tools_deny, sandbox_mode, workspace_access)| PermissionPins {
            tools_allow,
            tools_deny,
            sandbox_mode,
            workspace_access,
            elevated: None,
        });
    let node = (agent_id(), text.clone(), trust, text.clone(), text.clone(), text.clone(), pins).prop_map(
        |(agent_id, role, trust, model, tools_profile, workspace, pins)| NodeInput {
            agent_id,
            role,
            trust,
            model,
            tools_profile,
            workspace,
            pins,
        },
    );
    let kind = prop::sample::select(vec![EdgeKind::Send, EdgeKind::Spawn]);
    let edge = (agent_id(), agent_id(), kind).prop_map(|(from, to, kind)| TopologyEdge { from, to, kind });
    let route = (
        prop::sample::select(vec!["telegram", "discord", "slack", "", "x"]),
        prop::option::of(text.clone()),
        prop::option::of(prop::sample::select(vec!["direct", "group", "channel", "nope"])),
        prop::option::of(text.clone()),
        agent_id(),
    )
        .prop_map(|(channel, account_id, peer_kind, peer_id, agent_id)| Route {
            route: RouteMatch {
                channel: channel.to_owned(),
                account_id,
                peer_kind: peer_kind.map(str::to_owned),
                peer_id,
                guild_id: None,
                team_id: None,
                roles: Vec::new(),
            },
            agent_id,
        });
    (
        prop::collection::vec(node, 0..12),
        prop::collection::vec(edge, 0..40),
        prop::collection::vec(route, 0..6),
    )
        .prop_map(|(nodes, edges, routes)| DesiredInput {
            nodes,
            edges,
            routes,
            ..DesiredInput::default()
        })
}
