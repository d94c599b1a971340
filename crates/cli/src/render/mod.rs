//! Human-readable output. JSON output is the serde form of the same data.

pub mod cluster;
pub mod plan;

use comfy_table::{ContentArrangement, Table};
use comfy_table::{ContentLineStyle, LineStyle, TableStyle};

/// Columns divided by a thin line, the header underlined, no boxes: compact
/// enough for a terminal, plain enough to paste into a ticket.
const COMPACT: TableStyle = TableStyle::new()
    .header_lines(ContentLineStyle::none().junction('│'))
    .header_separator(LineStyle::none().fill('─').junction('┼'))
    .content_lines(ContentLineStyle::none().junction('│'));

/// "1 node", "3 nodes": a count with its noun in the right number.
pub fn count(n: usize, singular: &str) -> String {
    if n == 1 {
        format!("1 {singular}")
    } else if singular.ends_with('s') {
        format!("{n} {singular}es")
    } else {
        format!("{n} {singular}s")
    }
}

/// A table that does not wrap when piped.
pub fn table() -> Table {
    let mut t = Table::new();
    t.load_style(COMPACT)
        .set_content_arrangement(ContentArrangement::Disabled);
    t
}
