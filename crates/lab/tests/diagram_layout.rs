//! The lab diagram's geometry at 2, 6 and 20 nodes in every model: from the
//! layout model and from the SVG drawn from it, no label overlaps another,
//! none leaves its box or runs into another box, no line crosses a label,
//! and the load balancer's place stays empty; then, with `rsvg-convert`,
//! each SVG renders to a PNG of its size, and every pixel of rendered text
//! falls inside the box its label was measured to — the proof that the
//! width table bounds the real font.
//!
//! `AKSNET_DIAGRAM_DOCS=1` also writes the 2- and 20-node PNGs to
//! `docs/img/` (how the committed ones were made).

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use aksnet_core::spec::NetworkPlugin;
use aksnet_lab::diagram::geometry::Rect;
use aksnet_lab::diagram::layout::{self, Layout, LB_SLOT_W, WIDTH_BUDGET};
use aksnet_lab::diagram::text::{self, ASCENT, DESCENT};
use aksnet_lab::diagram::{self, Model, NodeBox, PodBox};
use aksnet_linux::testing;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Kubenet,
    AzureStatic,
    AzureDynamic,
    Overlay,
}

const KINDS: [Kind; 4] = [
    Kind::Kubenet,
    Kind::AzureStatic,
    Kind::AzureDynamic,
    Kind::Overlay,
];
const SIZES: [usize; 3] = [2, 6, 20];

impl Kind {
    fn slug(self) -> &'static str {
        match self {
            Kind::Kubenet => "kubenet",
            Kind::AzureStatic => "azure",
            Kind::AzureDynamic => "azure-dynamic",
            Kind::Overlay => "overlay",
        }
    }
}

fn addr(base: [u8; 4], offset: u32) -> String {
    std::net::Ipv4Addr::from(u32::from_be_bytes(base) + offset).to_string()
}

/// A lab of `nodes` nodes as `Model::new` would read it: pods per node
/// vary (one node has none), addresses follow each model's allocation
/// (kubenet and overlay a /24 per node, Azure CNI static 30 preallocated
/// node-subnet IPs per node, dynamic batches of 16 from a pod subnet), and
/// a kubenet lab past its route-table limit has NetworkUnavailable nodes.
fn model(kind: Kind, nodes: usize) -> Model {
    let plugin = match kind {
        Kind::Kubenet => NetworkPlugin::Kubenet,
        Kind::AzureStatic | Kind::AzureDynamic => NetworkPlugin::Azure,
        Kind::Overlay => NetworkPlugin::Overlay,
    };
    let route_table_limit = match nodes {
        0..=2 => 400,
        6 => 5,
        _ => 16,
    };
    let pods_on =
        |i: usize| [2, 3, 1, 4, 0, 2][(i - 1) % 6] + usize::from(nodes > 6 && i.is_multiple_of(7));
    let mut boxes = Vec::new();
    let mut routes = Vec::new();
    for i in 1..=nodes {
        let node_ip = addr([10, 224, 0, 3], i as u32);
        let name = format!("node-{i}");
        let (pod_range, ips): (String, Vec<String>) = match kind {
            Kind::Kubenet | Kind::Overlay => {
                let block = [10, 244, (i - 1) as u8, 0];
                let first = if matches!(kind, Kind::Kubenet) { 2 } else { 4 };
                (
                    format!("{}/24", addr(block, 0)),
                    (0..pods_on(i))
                        .map(|j| addr(block, first + j as u32))
                        .collect(),
                )
            }
            Kind::AzureStatic => {
                let first = 4 + nodes as u32 + (i as u32 - 1) * 30;
                let base = [10, 224, 0, 0];
                (
                    format!("{}-{}", addr(base, first), addr(base, first + 29)),
                    (0..pods_on(i))
                        .map(|j| addr(base, first + j as u32))
                        .collect(),
                )
            }
            Kind::AzureDynamic => {
                // Every fifth node took batches out of order: a long range list.
                let batches: Vec<u32> = if i.is_multiple_of(5) {
                    vec![
                        (i as u32 - 1) * 16,
                        1024 + i as u32 * 16,
                        2048 + i as u32 * 16,
                        3072,
                    ]
                } else {
                    vec![(i as u32 - 1) * 16]
                };
                let base = [10, 226, 0, 0];
                (
                    batches
                        .iter()
                        .map(|b| format!("{}-{}", addr(base, *b), addr(base, b + 15)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    (0..pods_on(i))
                        .map(|j| addr(base, batches[0] + j as u32))
                        .collect(),
                )
            }
        };
        let in_table = i <= route_table_limit;
        routes.push(match kind {
            Kind::Kubenet | Kind::Overlay => format!("{pod_range} → {node_ip} ({name})"),
            Kind::AzureStatic => format!("30 secondary IPs → {node_ip} ({name})"),
            Kind::AzureDynamic => format!(
                "{} secondary IPs → {node_ip} ({name})",
                pod_range.split(", ").count() * 16
            ),
        });
        let mut pods: Vec<PodBox> = ips
            .into_iter()
            .enumerate()
            .map(|(j, ip)| PodBox {
                name: format!("pod-{i}-{}", j + 1),
                ip,
            })
            .collect();
        if i == 2 && !pods.is_empty() {
            pods[0].ip = "no address".into();
        }
        boxes.push(NodeBox {
            name,
            ip: node_ip,
            pod_range,
            unavailable: matches!(kind, Kind::Kubenet) && !in_table,
            pods,
        });
    }
    if matches!(kind, Kind::Kubenet) {
        routes.truncate(route_table_limit);
    }
    Model {
        lab: "demo".into(),
        plugin,
        vnet: "10.224.0.0/12".into(),
        node_subnet: "10.224.0.0/16".into(),
        pod_subnet: matches!(kind, Kind::AzureDynamic).then(|| "10.226.0.0/16".into()),
        vm_subnet: "10.225.0.0/24".into(),
        vm_ip: "10.225.0.4".into(),
        internet_ip: "203.0.113.10".into(),
        public_ip: "203.0.113.100".into(),
        fabric_routes: routes,
        route_table_limit: route_table_limit as u32,
        nsg_rules: 2,
        nodes: boxes,
        load_balancer: vec![],
    }
}

/// A line: from, to, stroke width.
type Segment = ((f64, f64), (f64, f64), f64);

/// What the checks are computed on, from either the layout or the SVG.
#[derive(Debug, Default)]
struct Geometry {
    width: f64,
    height: f64,
    /// (class, rectangle, parent box)
    boxes: Vec<(String, Rect, Option<usize>)>,
    /// (text, bounds, parent box)
    texts: Vec<(String, Rect, usize)>,
    lines: Vec<Segment>,
}

impl Geometry {
    fn of_layout(l: &Layout) -> Self {
        Geometry {
            width: l.width,
            height: l.height,
            boxes: l
                .shapes
                .iter()
                .map(|s| (diagram::svg::class(s.kind).to_string(), s.rect, s.parent))
                .collect(),
            texts: l
                .labels
                .iter()
                .map(|t| (t.text.clone(), t.bounds, t.parent))
                .collect(),
            lines: l.wires.iter().map(|w| (w.from, w.to, 2.0)).collect(),
        }
    }

    /// Parses the SVG: a box is a `<g>`'s first `<rect>`, a text's box the
    /// nearest enclosing one; text bounds are measured from the `<text>`
    /// element's own position, size, weight and characters.
    fn of_svg(svg: &str) -> Self {
        let doc = roxmltree::Document::parse(svg).expect("the SVG is well-formed XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        let f = |n: roxmltree::Node, a: &str| -> f64 {
            n.attribute(a)
                .unwrap_or_else(|| panic!("<{}> without {a}", n.tag_name().name()))
                .parse()
                .unwrap_or_else(|e| panic!("{a}: {e}"))
        };
        let mut g = Geometry {
            width: f(root, "width"),
            height: f(root, "height"),
            ..Default::default()
        };
        let mut box_of_group = std::collections::HashMap::new();
        for n in root.descendants() {
            let enclosing = || {
                n.ancestors()
                    .skip(1)
                    .find_map(|a| box_of_group.get(&a.id()).copied())
            };
            match n.tag_name().name() {
                "rect" => {
                    let parent_group = n.parent().expect("a rect has a parent");
                    assert!(
                        parent_group.has_tag_name("g")
                            && !box_of_group.contains_key(&parent_group.id()),
                        "each box is the first rect of its own <g>"
                    );
                    let parent = parent_group
                        .ancestors()
                        .skip(1)
                        .find_map(|a| box_of_group.get(&a.id()).copied());
                    box_of_group.insert(parent_group.id(), g.boxes.len());
                    g.boxes.push((
                        n.attribute("class").unwrap_or("").to_string(),
                        Rect::new(f(n, "x"), f(n, "y"), f(n, "width"), f(n, "height")),
                        parent,
                    ));
                }
                "text" => {
                    let s: String = n
                        .children()
                        .filter(|c| c.is_text())
                        .filter_map(|c| c.text())
                        .collect();
                    let (x, y, size) = (f(n, "x"), f(n, "y"), f(n, "font-size"));
                    let bold = n.attribute("font-weight") == Some("bold");
                    let bounds = Rect::new(
                        x,
                        y - ASCENT * size,
                        text::width(&s, size, bold),
                        (ASCENT + DESCENT) * size,
                    );
                    let parent = enclosing().expect("every text is inside a box");
                    g.texts.push((s, bounds, parent));
                }
                "line" => g.lines.push((
                    (f(n, "x1"), f(n, "y1")),
                    (f(n, "x2"), f(n, "y2")),
                    f(n, "stroke-width"),
                )),
                "svg" | "g" | "title" | "" => {}
                other => panic!("unexpected element <{other}>"),
            }
        }
        g
    }

    fn ancestors(&self, mut b: usize) -> Vec<usize> {
        let mut v = vec![b];
        while let Some(p) = self.boxes[b].2 {
            v.push(p);
            b = p;
        }
        v
    }

    /// Every way the picture fails to read; empty when it is right.
    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let canvas = Rect::new(0.0, 0.0, self.width, self.height);
        let name = |i: usize| format!("{} {:?}", self.boxes[i].0, self.boxes[i].1);
        for (i, (_, r, parent)) in self.boxes.iter().enumerate() {
            let outer = parent.map_or(canvas, |q| self.boxes[q].1);
            if !outer.contains(r) {
                p.push(format!("box {} leaves its parent", name(i)));
            }
            for (j, (_, s, q)) in self.boxes.iter().enumerate().skip(i + 1) {
                if q == parent && r.overlaps(s) {
                    p.push(format!("boxes {} and {} overlap", name(i), name(j)));
                }
            }
        }
        for (i, (s, r, parent)) in self.texts.iter().enumerate() {
            if !self.boxes[*parent].1.contains(r) {
                p.push(format!("text {s:?} {r:?} leaves its box {}", name(*parent)));
            }
            let mine = self.ancestors(*parent);
            for (b, (_, br, _)) in self.boxes.iter().enumerate() {
                if !mine.contains(&b) && br.overlaps(r) {
                    p.push(format!("text {s:?} runs into box {}", name(b)));
                }
            }
            for (t, tr, _) in self.texts.iter().skip(i + 1) {
                if r.overlaps(tr) {
                    p.push(format!("texts {s:?} and {t:?} overlap"));
                }
            }
            for (a, b, w) in &self.lines {
                if r.grow(w / 2.0).hit_by_segment(*a, *b) {
                    p.push(format!("line {a:?}–{b:?} crosses text {s:?}"));
                }
            }
        }
        for (a, b, _) in &self.lines {
            if !(canvas.contains(&Rect::new(a.0, a.1, 0.0, 0.0))
                && canvas.contains(&Rect::new(b.0, b.1, 0.0, 0.0)))
            {
                p.push(format!("line {a:?}–{b:?} leaves the picture"));
            }
        }
        p
    }

    fn sorted_texts(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .texts
            .iter()
            .map(|(s, r, b)| {
                format!(
                    "{s} {:.2} {:.2} {:.2} {:.2} in {}",
                    r.x, r.y, r.w, r.h, self.boxes[*b].0
                )
            })
            .collect();
        v.sort();
        v
    }
}

fn all_models() -> Vec<(String, Model)> {
    KINDS
        .iter()
        .flat_map(|k| {
            SIZES
                .iter()
                .map(move |n| (format!("{}-{n}", k.slug()), model(*k, *n)))
        })
        .collect()
}

#[test]
fn layout_and_svg_geometry_at_2_6_and_20_nodes_in_every_model() {
    for (name, m) in all_models() {
        let l = layout::layout(&m);
        let from_layout = Geometry::of_layout(&l);
        let problems = from_layout.problems();
        assert!(
            problems.is_empty(),
            "{name} (layout):\n{}",
            problems.join("\n")
        );
        let svg = diagram::render(&m);
        let from_svg = Geometry::of_svg(&svg);
        let problems = from_svg.problems();
        assert!(
            problems.is_empty(),
            "{name} (svg):\n{}",
            problems.join("\n")
        );
        // The SVG is the layout, drawn: same boxes, same text boxes.
        assert_eq!(
            (from_svg.width, from_svg.height),
            (l.width, l.height),
            "{name}"
        );
        assert_eq!(from_svg.boxes.len(), l.shapes.len(), "{name}");
        assert_eq!(from_svg.lines.len(), l.wires.len(), "{name}");
        assert_eq!(
            from_svg.sorted_texts(),
            from_layout.sorted_texts(),
            "{name}"
        );

        // The load balancer's place: inside the fabric, nothing in it.
        let lb = &l.reserved[0];
        assert_eq!((lb.purpose, lb.rect.w), ("load balancer", LB_SLOT_W));
        let fabric = l
            .shapes
            .iter()
            .position(|s| diagram::svg::class(s.kind) == "fabric")
            .unwrap();
        assert!(l.shapes[fabric].rect.contains(&lb.rect), "{name}");
        assert!(lb.rect.h >= 40.0, "{name}: {:?}", lb.rect);
        for (i, s) in l.shapes.iter().enumerate() {
            assert!(
                i == fabric || i == 0 || !s.rect.overlaps(&lb.rect),
                "{name}: {s:?} in the LB slot"
            );
        }
        assert!(
            l.labels.iter().all(|t| !t.bounds.overlaps(&lb.rect)),
            "{name}"
        );
        assert!(
            l.wires
                .iter()
                .all(|w| !lb.rect.hit_by_segment(w.from, w.to)),
            "{name}"
        );

        // Readable at any size: within the width budget, rows not columns,
        // nothing smaller than 11 px, every node and pod drawn.
        assert!(
            l.width <= WIDTH_BUDGET && WIDTH_BUDGET <= 1800.0,
            "{name}: {} px wide",
            l.width
        );
        assert!(l.labels.iter().all(|t| t.size >= 11.0), "{name}");
        let count = |class: &str| from_svg.boxes.iter().filter(|b| b.0 == class).count();
        assert_eq!(count("node"), m.nodes.len(), "{name}");
        assert_eq!(
            count("pod"),
            m.nodes.iter().map(|n| n.pods.len()).sum::<usize>(),
            "{name}"
        );
        let node_rows = {
            let mut ys: Vec<i64> = from_svg
                .boxes
                .iter()
                .filter(|b| b.0 == "node")
                .map(|b| b.1.y as i64)
                .collect();
            ys.dedup();
            ys.len()
        };
        match m.nodes.len() {
            2 => assert_eq!(node_rows, 1, "{name}"),
            20 => assert!((3..=5).contains(&node_rows), "{name}: {node_rows} rows"),
            _ => assert!(node_rows >= 1),
        }
        // What the diagram shows: the model's fabric section, NSG, VM
        // subnet, internet and public IP, every pod's name and address.
        let all: Vec<&str> = l
            .labels
            .iter()
            .map(|t| t.full.as_deref().unwrap_or(&t.text))
            .collect();
        let has = |s: &str| all.iter().any(|t| t.contains(s));
        let section = match m.plugin {
            NetworkPlugin::Kubenet => "Route table (UDR) on the node subnet",
            NetworkPlugin::Azure => "NIC IP configurations",
            NetworkPlugin::Overlay => "Overlay routing domain",
        };
        assert!(
            has(section) && has("NSG on the node subnet") && has("2 rules"),
            "{name}"
        );
        assert!(
            has("VM subnet 10.225.0.0/24") && has("10.225.0.4"),
            "{name}"
        );
        assert!(
            has("host 203.0.113.10") && has("outbound SNAT to 203.0.113.100"),
            "{name}"
        );
        for p in m.nodes.iter().flat_map(|n| &n.pods) {
            assert!(
                all.contains(&p.name.as_str()) && all.contains(&p.ip.as_str()),
                "{name}: {}",
                p.name
            );
        }
        assert_eq!(
            has("pod subnet 10.226.0.0/16"),
            m.pod_subnet.is_some(),
            "{name}"
        );
        assert_eq!(
            has("NetworkUnavailable"),
            m.nodes.iter().any(|n| n.unavailable),
            "{name}"
        );
    }
}

/// Text that does not fit is cut with an ellipsis and keeps its whole
/// text in a `<title>`; the geometry still holds.
#[test]
fn text_too_long_for_its_box_is_cut_with_the_whole_text_in_a_title() {
    let mut m = model(Kind::AzureDynamic, 6);
    m.lab = "a-lab-name-long-enough-to-crowd-the-title-band-of-any-diagram-drawn-here".repeat(2);
    m.nodes[0].name = "node-with-a-very-long-name-indeed-far-longer-than-any-box".into();
    m.nodes[1].pods[1].name = "pod-with-a-long-name-too".into();
    m.fabric_routes[0] = "x".repeat(200);
    let l = layout::layout(&m);
    let problems = Geometry::of_layout(&l).problems();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let svg = diagram::render(&m);
    let problems = Geometry::of_svg(&svg).problems();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let cut: Vec<_> = l.labels.iter().filter(|t| t.full.is_some()).collect();
    assert!(cut.len() >= 4, "{cut:?}");
    assert!(cut.iter().all(|t| t.text.ends_with('…')));
    for whole in [
        &m.nodes[0].name,
        &m.nodes[1].pods[1].name,
        &m.fabric_routes[0],
    ] {
        assert!(
            svg.contains(&format!("<title>{whole}")),
            "{whole} is kept in a <title>"
        );
    }
    assert!(svg.contains(&format!("<title>aksnet lab {} — ", m.lab)));
    assert!(l.width <= WIDTH_BUDGET);
}

fn png_size(path: &Path) -> (u32, u32) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let reader = decoder.read_info().unwrap();
    let info = reader.info();
    (info.width, info.height)
}

/// The alpha channel of a PNG, row by row.
fn png_alpha(path: &Path) -> (usize, usize, Vec<u8>) {
    let mut decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::ALPHA);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).unwrap();
    let (w, h) = (frame.width as usize, frame.height as usize);
    let channels = frame.color_type.samples();
    assert_eq!(
        frame.bit_depth,
        png::BitDepth::Eight,
        "rsvg-convert writes 8-bit PNGs"
    );
    let alpha = (0..w * h)
        .map(|i| buf[i * channels + channels - 1])
        .collect();
    (w, h, alpha)
}

fn rsvg(svg: &Path, png: &Path) {
    let out = Command::new("rsvg-convert")
        .arg("-o")
        .arg(png)
        .arg(svg)
        .output()
        .expect("rsvg-convert runs");
    assert!(
        out.status.success(),
        "rsvg-convert {}: {}",
        svg.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn docs_img() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/img")
}

#[test]
fn diagrams_render_to_png_and_text_ink_stays_in_its_measured_boxes() {
    let missing: Vec<String> = if testing::which("rsvg-convert") {
        vec![]
    } else {
        vec!["rsvg-convert (Debian package librsvg2-bin)".into()]
    };
    if !testing::ready("the diagram PNG test", &missing) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("aksnet-diagram-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write_docs = std::env::var("AKSNET_DIAGRAM_DOCS").as_deref() == Ok("1");
    for (name, m) in all_models() {
        let l = layout::layout(&m);
        let svg = diagram::render(&m);
        let (svg_path, png_path) = (
            dir.join(format!("{name}.svg")),
            dir.join(format!("{name}.png")),
        );
        std::fs::write(&svg_path, &svg).unwrap();
        rsvg(&svg_path, &png_path);
        assert!(png_path.exists(), "{name}");
        assert_eq!(
            png_size(&png_path),
            (l.width as u32, l.height as u32),
            "{name}: the PNG has the SVG's size"
        );
        if write_docs && !name.ends_with("-6") {
            std::fs::copy(&png_path, docs_img().join(format!("lab-{name}-nodes.png"))).unwrap();
        }

        // Text alone (boxes and lines dropped: one element per line), so
        // every inked pixel is a glyph's; each must lie in a label's
        // measured bounds, allowing one pixel of anti-aliasing.
        let only_text: String = svg
            .lines()
            .filter(|line| !line.starts_with("<rect") && !line.starts_with("<line"))
            .map(|line| format!("{line}\n"))
            .collect();
        let text_svg = dir.join(format!("{name}-text.svg"));
        let text_png = dir.join(format!("{name}-text.png"));
        std::fs::write(&text_svg, only_text).unwrap();
        rsvg(&text_svg, &text_png);
        let (w, h, alpha) = png_alpha(&text_png);
        let mut allowed = vec![false; w * h];
        for t in &l.labels {
            let b = t.bounds.grow(1.0);
            let (x0, x1) = (
                b.x.floor().max(0.0) as usize,
                (b.right().ceil() as usize).min(w),
            );
            let (y0, y1) = (
                b.y.floor().max(0.0) as usize,
                (b.bottom().ceil() as usize).min(h),
            );
            for y in y0..y1 {
                allowed[y * w + x0..y * w + x1].fill(true);
            }
        }
        let inked: Vec<usize> = (0..w * h).filter(|&i| alpha[i] >= 64).collect();
        assert!(
            inked.len() > 1000,
            "{name}: almost no text was drawn ({} pixels): is a font installed (fonts-dejavu-core)?",
            inked.len()
        );
        let stray: Vec<(usize, usize)> = inked
            .iter()
            .filter(|&&i| !allowed[i])
            .map(|&i| (i % w, i / w))
            .collect();
        if let Some(&(x, y)) = stray.first() {
            // The label nearest the first stray pixel is the one that ran over.
            let dist = |r: &Rect| {
                let dx = (r.x - x as f64).max(x as f64 - r.right()).max(0.0);
                let dy = (r.y - y as f64).max(y as f64 - r.bottom()).max(0.0);
                dx.hypot(dy)
            };
            let nearest = l
                .labels
                .iter()
                .min_by(|a, b| dist(&a.bounds).total_cmp(&dist(&b.bounds)))
                .map(|t| format!("{:?} measured {:?}", t.text, t.bounds));
            panic!(
                "{name}: {} inked pixels outside every measured label, the first at ({x}, {y}), nearest {nearest:?}",
                stray.len()
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// More routes than the fabric band holds: those not drawn are counted.
#[test]
fn routes_past_what_the_band_holds_are_counted() {
    let mut m = model(Kind::Kubenet, 2);
    m.fabric_routes = (0..400)
        .map(|i| {
            format!(
                "10.{}.{}.0/24 → 10.224.0.4 (node-1)",
                100 + i / 256,
                i % 256
            )
        })
        .collect();
    let l = layout::layout(&m);
    let problems = Geometry::of_layout(&l).problems();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let shown = l
        .labels
        .iter()
        .filter(|t| t.text.contains(" → 10.224.0.4 (node-1)"))
        .count();
    let more: usize = l
        .labels
        .iter()
        .find_map(|t| {
            t.text
                .strip_prefix("… ")?
                .strip_suffix(" more")?
                .parse()
                .ok()
        })
        .expect("a \"… N more\" line");
    assert!(
        shown >= 9,
        "{shown}: at least one full column less the count"
    );
    assert_eq!(shown + more, 400);
    assert!(l.height < 900.0, "{} px tall", l.height);
}
