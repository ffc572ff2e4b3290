//! `strata graph`: the dependency graph of a migrations directory as Mermaid or
//! Graphviz DOT. Nodes are migrations in plan order; edges are declared dependencies
//! (`Depends:`, JSON `dependencies`, manifest, `parents`), drawn from the dependency
//! to the migration that needs it. Another database's migration (`docs:1.1.0`) is a
//! dashed node of its own.

use crate::migration::Migration;
use crate::plan::Catalog;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Mermaid,
    Dot,
}

struct Graph {
    /// (id, label, external)
    nodes: Vec<(String, String, bool)>,
    edges: Vec<(String, String)>,
}

fn build(migrations: &[Migration]) -> Graph {
    let cat = Catalog::new(migrations);
    let id = |i: usize| format!("m{i}");
    let mut g = Graph {
        nodes: migrations
            .iter()
            .enumerate()
            .map(|(i, m)| (id(i), format!("{} {}", m.version.as_str(), m.name), false))
            .collect(),
        edges: Vec::new(),
    };
    for (i, m) in migrations.iter().enumerate() {
        for d in &m.dependencies {
            let from = if d.external().is_some() {
                let ext = format!("x{}", g.nodes.len());
                match g.nodes.iter().find(|(_, l, x)| *x && *l == d.target) {
                    Some((n, _, _)) => n.clone(),
                    None => {
                        g.nodes.push((ext.clone(), d.target.clone(), true));
                        ext
                    }
                }
            } else if let Some(j) = cat.resolve(&d.target) {
                id(j)
            } else {
                continue; // `validate` reports unknown dependencies
            };
            g.edges.push((from, id(i)));
        }
    }
    g
}

/// The graph in `format`.
pub fn render(migrations: &[Migration], format: Format) -> String {
    let g = build(migrations);
    let esc = |s: &str| s.replace('"', "'");
    let mut out = String::new();
    match format {
        Format::Mermaid => {
            out.push_str("flowchart LR\n");
            for (id, label, external) in &g.nodes {
                out.push_str(&format!("  {id}[\"{}\"]\n", esc(label)));
                if *external {
                    out.push_str(&format!("  style {id} stroke-dasharray: 4 4\n"));
                }
            }
            for (a, b) in &g.edges {
                out.push_str(&format!("  {a} --> {b}\n"));
            }
        }
        Format::Dot => {
            out.push_str("digraph migrations {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n");
            for (id, label, external) in &g.nodes {
                let style = if *external { ", style=dashed" } else { "" };
                out.push_str(&format!("  {id} [label=\"{}\"{style}];\n", esc(label)));
            }
            for (a, b) in &g.edges {
                out.push_str(&format!("  {a} -> {b};\n"));
            }
            out.push_str("}\n");
        }
    }
    out
}
