//! The three drawings of a [`Picture`]: Mermaid and DOT for tools that lay out themselves, SVG
//! laid out here.

use std::fmt::Write;

use super::layout::{MARGIN, NODE_HEIGHT, Placed, lay_out};
use super::{Picture, PictureEdge, PictureNode, Presence, trust_name};
use crate::domain::topology::EdgeKind;

const MISSING: &str = "#dc2626";
const UNEXPECTED: &str = "#ea580c";
const SEND: &str = "#2563eb";
const SPAWN: &str = "#374151";

fn kind_name(kind: EdgeKind) -> &'static str {
    match kind {
        EdgeKind::Send => "send",
        EdgeKind::Spawn => "spawn",
    }
}

fn subtitle(role: &str, trust: &str) -> String {
    if role.is_empty() { trust.to_owned() } else { format!("{role} · {trust}") }
}

/// Mermaid `flowchart` text.
pub fn mermaid(picture: &Picture) -> String {
    let escape = |text: &str| text.replace('"', "#quot;").replace('<', "#lt;").replace('>', "#gt;");
    let mut out = String::from("flowchart TD\n");
    let ids: std::collections::BTreeMap<&str, String> =
        picture.nodes.iter().enumerate().map(|(i, n)| (n.id.as_str(), format!("a{i}"))).collect();
    for node in &picture.nodes {
        let mut label =
            format!("{}<br/>{}", escape(&node.id), escape(&subtitle(&node.role, trust_name(node.trust))));
        if node.widened {
            label.push_str("<br/>⚠ trust widened");
        }
        let reach = node.reach.summary();
        if !reach.is_empty() {
            label.push_str(&format!("<br/>{}", escape(&reach)));
        }
        let _ = writeln!(out, "  {}[\"{label}\"]", ids[node.id.as_str()]);
    }
    let mut styles = Vec::new();
    for (index, edge) in picture.edges.iter().enumerate() {
        let (Some(from), Some(to)) = (ids.get(edge.from.as_str()), ids.get(edge.to.as_str())) else {
            continue;
        };
        let arrow = match edge.kind {
            EdgeKind::Send => "-.->",
            EdgeKind::Spawn => "==>",
        };
        let _ = writeln!(out, "  {from} {arrow}|{}| {to}", kind_name(edge.kind));
        let color = match (edge.presence, edge.kind) {
            (Presence::Missing, _) => format!("stroke:{MISSING},stroke-dasharray:6 4"),
            (Presence::Unexpected, _) => format!("stroke:{UNEXPECTED}"),
            (Presence::Both, EdgeKind::Send) => format!("stroke:{SEND}"),
            (Presence::Both, EdgeKind::Spawn) => format!("stroke:{SPAWN}"),
        };
        styles.push(format!("  linkStyle {index} {color}"));
    }
    out.push_str(&styles.join("\n"));
    if !styles.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(out, "  classDef missing stroke:{MISSING},stroke-dasharray:6 4,color:{MISSING}");
    let _ = writeln!(out, "  classDef unexpected stroke:{UNEXPECTED},color:{UNEXPECTED}");
    let _ = writeln!(out, "  classDef widened stroke:{UNEXPECTED},stroke-width:3px");
    for node in &picture.nodes {
        let id = &ids[node.id.as_str()];
        if node.presence != Presence::Both {
            let _ = writeln!(out, "  class {id} {}", node.presence.class());
        } else if node.widened {
            let _ = writeln!(out, "  class {id} widened");
        }
    }
    out
}

/// Graphviz DOT text.
pub fn dot(picture: &Picture) -> String {
    let quote = |text: &str| format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""));
    let mut out = String::from(
        "digraph team {\n  rankdir=TB;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n",
    );
    for node in &picture.nodes {
        let mut label = format!("{}\\n{}", node.id, subtitle(&node.role, trust_name(node.trust)));
        if node.widened {
            label.push_str("\\n⚠ trust widened");
        }
        let reach = node.reach.summary();
        if !reach.is_empty() {
            label.push_str(&format!("\\n{reach}"));
        }
        let style = match node.presence {
            Presence::Missing => format!(", color=\"{MISSING}\", style=\"rounded,dashed\""),
            Presence::Unexpected => format!(", color=\"{UNEXPECTED}\""),
            Presence::Both if node.widened => format!(", color=\"{UNEXPECTED}\", penwidth=3"),
            Presence::Both => String::new(),
        };
        let escaped = label.replace('"', "\\\"");
        let _ = writeln!(
            out,
            "  {} [label=\"{escaped}\", class=\"{}\"{style}];",
            quote(&node.id),
            node.presence.class()
        );
    }
    for edge in &picture.edges {
        let color = match (edge.presence, edge.kind) {
            (Presence::Missing, _) => format!("color=\"{MISSING}\", style=dashed"),
            (Presence::Unexpected, _) => format!("color=\"{UNEXPECTED}\""),
            (Presence::Both, EdgeKind::Send) => format!("color=\"{SEND}\", style=dotted"),
            (Presence::Both, EdgeKind::Spawn) => format!("color=\"{SPAWN}\", penwidth=2"),
        };
        let _ = writeln!(
            out,
            "  {} -> {} [label=\"{}\", {color}];",
            quote(&edge.from),
            quote(&edge.to),
            kind_name(edge.kind)
        );
    }
    out.push_str("}\n");
    out
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Where the segment from the center of `from` towards `to` leaves the box `from`.
fn border_point(from: &Placed, toward: (f64, f64)) -> (f64, f64) {
    let (cx, cy) = from.center();
    let (dx, dy) = (toward.0 - cx, toward.1 - cy);
    if dx == 0.0 && dy == 0.0 {
        return (cx, cy);
    }
    let (hw, hh) = (from.width / 2.0, NODE_HEIGHT / 2.0);
    let scale = if dx.abs() * hh > dy.abs() * hw { hw / dx.abs() } else { hh / dy.abs() };
    (cx + dx * scale, cy + dy * scale)
}

fn edge_path(edge: &PictureEdge, from: &Placed, to: &Placed) -> String {
    let (start, end) = (border_point(from, to.center()), border_point(to, from.center()));
    match edge.kind {
        EdgeKind::Spawn => format!("M{:.1},{:.1} L{:.1},{:.1}", start.0, start.1, end.0, end.1),
        EdgeKind::Send => {
            // Bend SEND edges to one side by direction, so a pair A→B, B→A shows two arcs and
            // a SEND never hides under a SPAWN between the same agents.
            let (mx, my) = ((start.0 + end.0) / 2.0, (start.1 + end.1) / 2.0);
            let (dx, dy) = (end.0 - start.0, end.1 - start.1);
            let length = (dx * dx + dy * dy).sqrt().max(1.0);
            let sign = if edge.from < edge.to { 1.0 } else { -1.0 };
            let bend = 28.0 * sign;
            let (qx, qy) = (mx - dy / length * bend, my + dx / length * bend);
            format!("M{:.1},{:.1} Q{qx:.1},{qy:.1} {:.1},{:.1}", start.0, start.1, end.0, end.1)
        }
    }
}

const LEGEND_HEIGHT: f64 = 40.0;
/// The legend: label, color, stroke width, dash pattern.
const LEGEND: [(&str, &str, u8, &str); 5] = [
    ("send", SEND, 2, "none"),
    ("spawn", SPAWN, 2, "none"),
    ("missing (desired, not in the runtime)", MISSING, 2, "6 4"),
    ("unexpected (in the runtime, not desired)", UNEXPECTED, 2, "none"),
    ("thick orange box: trust widened", UNEXPECTED, 4, "none"),
];

fn legend_step(label: &str) -> f64 {
    40.0 + label.chars().count() as f64 * 6.2
}

/// A self-contained SVG (inline style, no external fonts or scripts).
pub fn svg(picture: &Picture) -> String {
    let labels: Vec<(String, String)> =
        picture.nodes.iter().map(|n| (n.id.clone(), subtitle(&n.role, trust_name(n.trust)))).collect();
    let layout = lay_out(picture, &labels);
    let legend_width: f64 = LEGEND.iter().map(|(label, ..)| legend_step(label)).sum::<f64>() + 2.0 * MARGIN;
    let (width, height) = (layout.width.max(legend_width), layout.height + LEGEND_HEIGHT);
    let mut out = String::new();
    svg_head(&mut out, picture, width, height);
    svg_edges(&mut out, picture, &layout.placed);
    out.push_str("<g class=\"agents\">");
    for ((node, at), (_, sub)) in picture.nodes.iter().zip(&layout.placed).zip(&labels) {
        svg_node(&mut out, node, at, sub);
    }
    out.push_str("</g>");
    svg_legend(&mut out, layout.height + 14.0);
    out.push_str("</svg>\n");
    out
}

/// The root element, title, style sheet and arrow markers.
fn svg_head(out: &mut String, picture: &Picture, width: f64, height: f64) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" role="img" aria-label="agent team">"#
    );
    let _ = write!(
        out,
        r#"<title>agent team: {} agents, {} permissions</title><style>
.node rect{{fill:#fff;stroke:#4b5563;stroke-width:1.5}}
.node text{{font:600 13px sans-serif;fill:#111827}}
.node text.sub{{font:11px sans-serif;fill:#4b5563}}
.node.missing rect{{stroke:{MISSING};stroke-dasharray:6 4;fill:#fef2f2}}
.node.unexpected rect{{stroke:{UNEXPECTED};fill:#fff7ed}}
.node.widened rect{{stroke:{UNEXPECTED};stroke-width:3}}
.node text.badge{{font:600 10px sans-serif;fill:{UNEXPECTED}}}
.node text.reach{{font:10px sans-serif;fill:#4b5563}}
.node text.reach.open{{fill:{MISSING};font-weight:600}}
.edge{{fill:none;stroke-width:1.6}}
.edge.send{{stroke:{SEND}}}
.edge.spawn{{stroke:{SPAWN};stroke-width:2.2}}
.edge.missing{{stroke:{MISSING};stroke-dasharray:6 4}}
.edge.unexpected{{stroke:{UNEXPECTED}}}
.legend text{{font:11px sans-serif;fill:#374151}}
</style><defs>"#,
        picture.nodes.len(),
        picture.edges.len()
    );
    for (id, color) in [("send", SEND), ("spawn", SPAWN), ("missing", MISSING), ("unexpected", UNEXPECTED)] {
        let _ = write!(
            out,
            r#"<marker id="arrow-{id}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{color}"/></marker>"#
        );
    }
    out.push_str("</defs>");
}

fn svg_edges(out: &mut String, picture: &Picture, placed: &[Placed]) {
    let index: std::collections::BTreeMap<&str, usize> =
        picture.nodes.iter().enumerate().map(|(i, n)| (n.id.as_str(), i)).collect();
    out.push_str(r#"<g class="permissions">"#);
    for edge in &picture.edges {
        let (Some(&from), Some(&to)) = (index.get(edge.from.as_str()), index.get(edge.to.as_str())) else {
            continue;
        };
        let marker = match edge.presence {
            Presence::Both => kind_name(edge.kind),
            other => other.class(),
        };
        let _ = write!(
            out,
            r#"<path class="edge {} {}" data-from="{}" data-to="{}" d="{}" marker-end="url(#arrow-{marker})"><title>{} {} {}</title></path>"#,
            kind_name(edge.kind),
            edge.presence.class(),
            xml(&edge.from),
            xml(&edge.to),
            edge_path(edge, &placed[from], &placed[to]),
            xml(&edge.from),
            kind_name(edge.kind),
            xml(&edge.to),
        );
    }
    out.push_str("</g>");
}

/// One agent's box: id, subtitle (role · trust), the widened badge and what reaches it.
fn svg_node(out: &mut String, node: &PictureNode, at: &Placed, sub: &str) {
    let classes = format!("node {}{}", node.presence.class(), if node.widened { " widened" } else { "" });
    let (cx, _) = at.center();
    let _ = write!(
        out,
        r#"<g class="{classes}" data-agent="{id}"><rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" rx="8"/><text x="{cx:.1}" y="{t1:.1}" text-anchor="middle">{id}</text><text class="sub" x="{cx:.1}" y="{t2:.1}" text-anchor="middle">{sub}</text>"#,
        id = xml(&node.id),
        x = at.x,
        y = at.y,
        w = at.width,
        h = NODE_HEIGHT,
        t1 = at.y + 19.0,
        t2 = at.y + 36.0,
        sub = xml(sub),
    );
    if node.widened {
        let _ = write!(
            out,
            r#"<text class="badge" x="{:.1}" y="{:.1}" text-anchor="end">⚠ trust widened</text>"#,
            at.x + at.width,
            at.y - 4.0
        );
    }
    let reach = node.reach.summary();
    if !reach.is_empty() {
        let sources: Vec<String> = node.reach.woken_by.iter().chain(&node.reach.inbound).cloned().collect();
        let _ = write!(
            out,
            r#"<text class="reach{}" x="{:.1}" y="{:.1}"><title>{}</title>{}</text>"#,
            if node.reach.open_dm { " open" } else { "" },
            at.x,
            at.y + NODE_HEIGHT + 13.0,
            xml(&sources.join("; ")),
            xml(&reach),
        );
    }
    out.push_str("</g>");
}

fn svg_legend(out: &mut String, y: f64) {
    let mut x = MARGIN;
    out.push_str(r#"<g class="legend">"#);
    for (label, color, stroke, dash) in LEGEND {
        let _ = write!(
            out,
            r#"<line x1="{x:.1}" y1="{y:.1}" x2="{x2:.1}" y2="{y:.1}" stroke="{color}" stroke-width="{stroke}" stroke-dasharray="{dash}"/><text x="{tx:.1}" y="{ty:.1}">{label}</text>"#,
            x2 = x + 24.0,
            tx = x + 30.0,
            ty = y + 4.0,
        );
        x += legend_step(label);
    }
    out.push_str("</g>");
}
