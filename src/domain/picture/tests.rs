use super::*;
use crate::domain::topology::{TopologyEdge, TopologyNode};

fn node(id: &str, trust: TrustLevel) -> TopologyNode {
    TopologyNode {
        agent_id: id.to_owned(),
        role: format!("{id} role"),
        trust,
        model: None,
        tools_profile: None,
        workspace: String::new(),
        pins: Default::default(),
    }
}

fn edge(from: &str, to: &str, kind: EdgeKind) -> TopologyEdge {
    TopologyEdge { from: from.to_owned(), to: to.to_owned(), kind }
}

fn trio() -> (Topology, Topology) {
    let desired = Topology::new(
        vec![
            node("lead", TrustLevel::Standard),
            node("research", TrustLevel::Restricted),
            node("qa", TrustLevel::Restricted),
        ],
        vec![
            edge("lead", "research", EdgeKind::Spawn),
            edge("lead", "qa", EdgeKind::Spawn),
            edge("lead", "research", EdgeKind::Send),
        ],
        Vec::new(),
    );
    let observed = Topology::new(
        vec![
            node("lead", TrustLevel::Standard),
            node("research", TrustLevel::Elevated),
            node("writer", TrustLevel::Restricted),
        ],
        vec![
            edge("lead", "research", EdgeKind::Spawn),
            edge("lead", "writer", EdgeKind::Spawn),
            edge("lead", "research", EdgeKind::Send),
        ],
        Vec::new(),
    );
    (desired, observed)
}

#[test]
fn an_overlay_marks_missing_unexpected_and_widened() {
    let (desired, observed) = trio();
    let picture = build(Some(&desired), Some(&observed), Source::Overlay);
    let presence = |id: &str| picture.nodes.iter().find(|n| n.id == id).map(|n| (n.presence, n.widened));
    assert_eq!(presence("lead"), Some((Presence::Both, false)));
    assert_eq!(presence("qa"), Some((Presence::Missing, false)));
    assert_eq!(presence("writer"), Some((Presence::Unexpected, false)));
    assert_eq!(presence("research"), Some((Presence::Both, true)), "runtime trust above desired");
    let edge_presence =
        |to: &str| picture.edges.iter().find(|e| e.to == to && e.kind == EdgeKind::Spawn).map(|e| e.presence);
    assert_eq!(edge_presence("qa"), Some(Presence::Missing));
    assert_eq!(edge_presence("writer"), Some(Presence::Unexpected));
    let observed_only = build(Some(&desired), Some(&observed), Source::Observed);
    assert!(observed_only.nodes.iter().all(|n| n.presence == Presence::Both && !n.widened));
    assert_eq!(observed_only.nodes.len(), 3);
}

/// Golden structure of the SVG: nodes, edges and their classes (never pixels).
#[test]
fn the_svg_names_every_agent_and_classes_every_edge() {
    let (desired, observed) = trio();
    let svg = svg(&build(Some(&desired), Some(&observed), Source::Overlay));
    let mut structure: Vec<String> = Vec::new();
    for part in
        svg.split('<').filter(|p| p.starts_with("g class=\"node") || p.starts_with("path class=\"edge"))
    {
        let attr = |name: &str| {
            part.split(&format!("{name}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("")
                .to_owned()
        };
        if part.starts_with("g ") {
            structure.push(format!("node {} [{}]", attr("data-agent"), attr("class")));
        } else {
            structure.push(format!("edge {}->{} [{}]", attr("data-from"), attr("data-to"), attr("class")));
        }
    }
    assert_eq!(
        structure,
        [
            "edge lead->qa [edge spawn missing]",
            "edge lead->research [edge send present]",
            "edge lead->research [edge spawn present]",
            "edge lead->writer [edge spawn unexpected]",
            "node lead [node present]",
            "node qa [node missing]",
            "node research [node present widened]",
            "node writer [node unexpected]",
        ]
    );
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(!svg.contains("href=\"http"), "self-contained");
}

#[test]
fn labels_are_escaped_in_every_format() {
    let hostile = Topology::new(
        vec![TopologyNode { role: "<script>\"x\" & y".into(), ..node("a", TrustLevel::Standard) }],
        Vec::new(),
        Vec::new(),
    );
    let picture = build(None, Some(&hostile), Source::Observed);
    assert!(!svg(&picture).contains("<script>"));
    assert!(svg(&picture).contains("&lt;script&gt;"));
    assert!(!mermaid(&picture).contains("\"x\""));
    assert!(dot(&picture).contains("\\\"x\\\""));
}

#[test]
fn fifty_agents_lay_out_in_wrapped_rows_without_overlap() {
    let nodes: Vec<TopologyNode> =
        (0..50).map(|i| node(&format!("agent-{i:02}"), TrustLevel::Standard)).collect();
    let edges: Vec<TopologyEdge> =
        (1..50).map(|i| edge("agent-00", &format!("agent-{i:02}"), EdgeKind::Spawn)).collect();
    let team = Topology::new(nodes, edges, Vec::new());
    let picture = build(None, Some(&team), Source::Observed);
    let labels: Vec<(String, String)> =
        picture.nodes.iter().map(|n| (n.id.clone(), n.role.clone())).collect();
    let layout = layout::lay_out(&picture, &labels);
    for (i, a) in layout.placed.iter().enumerate() {
        for b in &layout.placed[i + 1..] {
            let apart = a.x + a.width <= b.x
                || b.x + b.width <= a.x
                || a.y + layout::NODE_HEIGHT <= b.y
                || b.y + layout::NODE_HEIGHT <= a.y;
            assert!(apart, "{a:?} overlaps {b:?}");
        }
    }
    assert!(layout.width < 2000.0, "rows wrap: {}", layout.width);
    let svg = svg(&picture);
    assert_eq!(svg.matches("<g class=\"node").count(), 50);
}

#[test]
fn mermaid_and_dot_distinguish_send_from_spawn() {
    let (desired, observed) = trio();
    let picture = build(Some(&desired), Some(&observed), Source::Overlay);
    let mermaid = mermaid(&picture);
    assert!(mermaid.starts_with("flowchart TD"));
    assert!(mermaid.contains("-.->|send|") && mermaid.contains("==>|spawn|"));
    assert!(mermaid.contains("class a0 missing") || mermaid.contains("missing"));
    let dot = dot(&picture);
    assert!(dot.contains("\"lead\" -> \"qa\" [label=\"spawn\", color=\"#dc2626\", style=dashed]"), "{dot}");
    assert!(dot.contains("\"lead\" -> \"research\" [label=\"send\""));
}

#[test]
fn the_svg_is_well_formed_xml() {
    // No XML parser in the tree: check what breaks documents — balanced tags, no duplicate
    // attribute in any start tag.
    let (desired, observed) = trio();
    let svg = svg(&build(Some(&desired), Some(&observed), Source::Overlay));
    let mut depth = 0i32;
    for tag in svg.split('<').skip(1) {
        let tag = tag.split('>').next().unwrap();
        if tag.starts_with('/') {
            depth -= 1;
        } else if !tag.ends_with('/') {
            depth += 1;
        }
        let names: Vec<&str> =
            tag.split_whitespace().skip(1).filter_map(|a| a.split_once('=').map(|(n, _)| n)).collect();
        let unique: std::collections::BTreeSet<&&str> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "duplicate attribute in <{tag}>");
        assert!(depth >= 0);
    }
    assert_eq!(depth, 0, "balanced tags");
}
