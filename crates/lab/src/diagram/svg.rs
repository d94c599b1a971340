//! The SVG of a [`Layout`]: each box a `<g>` holding its `<rect>`, its
//! labels and its child boxes, so that the document's nesting is the
//! layout's; the lines after all boxes, so no box's fill hides them.
//! One element per line, which keeps the output diffable.

use std::fmt::Write as _;

use super::layout::{BoxKind, Label, Layout, Shape, WireKind};
use super::text::FONT_FAMILY;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Coordinates as integers where they are (the layout keeps most so),
/// otherwise to a hundredth.
fn num(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// (fill, stroke) of each kind of box.
fn colours(kind: BoxKind, alert: bool) -> (&'static str, &'static str) {
    match kind {
        BoxKind::Background => ("#ffffff", "none"),
        BoxKind::Internet => ("#eef6ff", "#4a90d9"),
        BoxKind::Fabric => ("#f3f0fa", "#6b4fbb"),
        BoxKind::NodeSubnet => ("#f7fbf2", "#5a9e3a"),
        BoxKind::Node if alert => ("#ffffff", "#d0021b"),
        BoxKind::Node | BoxKind::Vm => ("#ffffff", "#333333"),
        BoxKind::Bridge => ("#fff4d6", "#c98a00"),
        BoxKind::HostRoutes => ("#f4f7fb", "#8aa4c0"),
        BoxKind::Pod => ("#e8f1fb", "#4a90d9"),
        BoxKind::VmSubnet => ("#fdf2f2", "#b94a48"),
    }
}

pub fn class(kind: BoxKind) -> &'static str {
    match kind {
        BoxKind::Background => "background",
        BoxKind::Internet => "internet",
        BoxKind::Fabric => "fabric",
        BoxKind::NodeSubnet => "node-subnet",
        BoxKind::Node => "node",
        BoxKind::Bridge => "bridge",
        BoxKind::HostRoutes => "host-routes",
        BoxKind::Pod => "pod",
        BoxKind::VmSubnet => "vm-subnet",
        BoxKind::Vm => "vm",
    }
}

fn wire_style(kind: WireKind) -> (&'static str, &'static str, bool) {
    match kind {
        WireKind::Internet => ("internet-link", "#4a90d9", false),
        WireKind::NodeUplink => ("node-uplink", "#5a9e3a", false),
        WireKind::VmUplink => ("vm-uplink", "#b94a48", false),
        WireKind::Veth => ("veth", "#4a90d9", true),
        WireKind::BridgePort => ("bridge-port", "#c98a00", false),
    }
}

fn label(out: &mut String, l: &Label) {
    let weight = if l.bold { "bold" } else { "normal" };
    let fill = if l.alert { r##" fill="#d0021b""## } else { "" };
    let title = l
        .full
        .as_ref()
        .map(|f| format!("<title>{}</title>", esc(f)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" font-size="{}" font-weight="{weight}"{fill}>{}{title}</text>"#,
        num(l.x),
        num(l.baseline),
        num(l.size),
        esc(&l.text)
    );
}

fn shape(out: &mut String, layout: &Layout, id: usize) {
    let s: &Shape = &layout.shapes[id];
    let (fill, stroke) = colours(s.kind, s.alert);
    let rx = if s.kind == BoxKind::Background { 0 } else { 6 };
    let _ = writeln!(out, "<g>");
    let _ = writeln!(
        out,
        r#"<rect class="{}" x="{}" y="{}" width="{}" height="{}" rx="{rx}" fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>"#,
        class(s.kind),
        num(s.rect.x),
        num(s.rect.y),
        num(s.rect.w),
        num(s.rect.h)
    );
    for l in layout.labels.iter().filter(|l| l.parent == id) {
        label(out, l);
    }
    for child in (0..layout.shapes.len()).filter(|&c| layout.shapes[c].parent == Some(id)) {
        shape(out, layout, child);
    }
    let _ = writeln!(out, "</g>");
}

/// The SVG document of `layout`.
pub fn render(layout: &Layout) -> String {
    let mut out = String::new();
    let (w, h) = (num(layout.width), num(layout.height));
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="{FONT_FAMILY}">"#
    );
    let _ = writeln!(out, "<title>{}</title>", esc(&layout.title));
    for root in (0..layout.shapes.len()).filter(|&i| layout.shapes[i].parent.is_none()) {
        shape(&mut out, layout, root);
    }
    for wire in &layout.wires {
        let (class, stroke, dashed) = wire_style(wire.kind);
        let dash = if dashed {
            r#" stroke-dasharray="5,4""#
        } else {
            ""
        };
        let _ = writeln!(
            out,
            r#"<line class="{class}" x1="{}" y1="{}" x2="{}" y2="{}" stroke="{stroke}" stroke-width="2"{dash}/>"#,
            num(wire.from.0),
            num(wire.from.1),
            num(wire.to.0),
            num(wire.to.1)
        );
    }
    let _ = writeln!(out, "</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short() {
        assert_eq!(num(12.0), "12");
        assert_eq!(num(12.5), "12.5");
        assert_eq!(num(1.0 / 3.0), "0.33");
        assert_eq!(num(12.001), "12");
        assert_eq!(esc(r#"a<b&"c">"#), "a&lt;b&amp;&quot;c&quot;&gt;");
    }
}
