//! A layered layout of our own: layers by who spawns whom (agents nothing spawns on top),
//! nodes ordered in each layer by where their spawners sit, long layers wrapped into rows.
//! Linear in agents plus edges; deterministic (ties broken by id).

use std::collections::{BTreeMap, VecDeque};

use super::Picture;
use crate::domain::topology::EdgeKind;

/// Agents per row before a layer wraps (keeps 50-agent teams readable).
const ROW_CAPACITY: usize = 8;
pub const NODE_HEIGHT: f64 = 46.0;
const GAP_X: f64 = 36.0;
const GAP_Y: f64 = 64.0;
pub const MARGIN: f64 = 24.0;
/// Approximate advance of one character at the label's font size.
const CHAR_WIDTH: f64 = 7.0;

/// Where one agent's box is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placed {
    pub x: f64,
    pub y: f64,
    pub width: f64,
}

impl Placed {
    pub fn center(&self) -> (f64, f64) {
        (self.x + self.width / 2.0, self.y + NODE_HEIGHT / 2.0)
    }
}

/// The box positions by node index, and the drawing's size.
pub struct Layout {
    pub placed: Vec<Placed>,
    pub width: f64,
    pub height: f64,
}

pub fn label_width(texts: &[&str]) -> f64 {
    let longest = texts.iter().map(|t| t.chars().count()).max().unwrap_or(0) as f64;
    (longest * CHAR_WIDTH + 24.0).max(96.0)
}

pub fn lay_out(picture: &Picture, labels: &[(String, String)]) -> Layout {
    let n = picture.nodes.len();
    let index: BTreeMap<&str, usize> =
        picture.nodes.iter().enumerate().map(|(i, node)| (node.id.as_str(), i)).collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut parents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for edge in picture.edges.iter().filter(|e| e.kind == EdgeKind::Spawn) {
        if let (Some(&from), Some(&to)) = (index.get(edge.from.as_str()), index.get(edge.to.as_str()))
            && from != to
        {
            children[from].push(to);
            parents[to].push(from);
        }
    }
    // Longest path from the roots over the spawn graph (Kahn's order); agents in a spawn
    // cycle land one below their deepest placed spawner.
    let mut layer = vec![0usize; n];
    let mut pending: Vec<usize> = parents.iter().map(Vec::len).collect();
    let mut queue: VecDeque<usize> = (0..n).filter(|&i| pending[i] == 0).collect();
    let mut done = vec![false; n];
    while let Some(node) = queue.pop_front() {
        done[node] = true;
        for &child in &children[node] {
            layer[child] = layer[child].max(layer[node] + 1);
            pending[child] -= 1;
            if pending[child] == 0 {
                queue.push_back(child);
            }
        }
    }
    for node in (0..n).filter(|&i| !done[i]) {
        layer[node] = parents[node].iter().filter(|&&p| done[p]).map(|&p| layer[p] + 1).max().unwrap_or(0);
    }
    let depth = layer.iter().copied().max().map_or(0, |d| d + 1);
    let mut layers: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for node in 0..n {
        layers[layer[node]].push(node);
    }
    // Order: by the mean position of spawners already placed, then by id.
    let mut position = vec![0.0f64; n];
    let widths: Vec<f64> = labels.iter().map(|(a, b)| label_width(&[a, b])).collect();
    let mut rows: Vec<Vec<usize>> = Vec::new();
    for members in &mut layers {
        members.sort_by(|&a, &b| {
            let key = |i: usize| {
                let placed: Vec<f64> =
                    parents[i].iter().filter(|&&p| layer[p] < layer[i]).map(|&p| position[p]).collect();
                if placed.is_empty() { f64::MAX } else { placed.iter().sum::<f64>() / placed.len() as f64 }
            };
            key(a).total_cmp(&key(b)).then_with(|| picture.nodes[a].id.cmp(&picture.nodes[b].id))
        });
        for (slot, &node) in members.iter().enumerate() {
            position[node] = slot as f64;
        }
        rows.extend(members.chunks(ROW_CAPACITY).map(<[usize]>::to_vec));
    }
    let row_width = |row: &[usize]| {
        row.iter().map(|&i| widths[i]).sum::<f64>() + GAP_X * row.len().saturating_sub(1) as f64
    };
    let width = rows.iter().map(|r| row_width(r)).fold(0.0, f64::max) + 2.0 * MARGIN;
    let mut placed = vec![Placed { x: 0.0, y: 0.0, width: 0.0 }; n];
    for (r, row) in rows.iter().enumerate() {
        let mut x = (width - row_width(row)) / 2.0;
        let y = MARGIN + r as f64 * (NODE_HEIGHT + GAP_Y);
        for &node in row {
            placed[node] = Placed { x, y, width: widths[node] };
            x += widths[node] + GAP_X;
        }
    }
    let height = 2.0 * MARGIN + rows.len() as f64 * NODE_HEIGHT + rows.len().saturating_sub(1) as f64 * GAP_Y;
    Layout { placed, width: width.max(2.0 * MARGIN + 96.0), height }
}
