//! The diagram as data: every box, label and line with its rectangle,
//! computed from the [`Model`] before any SVG is written, so that the
//! geometry can be checked (and is, in the tests) independently of drawing.
//!
//! Bands from top to bottom: the title and the internet; the fabric (VNet
//! title, the model's route table / overlay domain / NIC configurations,
//! the NSG, and a reserved place for the load balancer); then the node
//! subnet, whose nodes wrap into rows under a width budget, beside the VM
//! subnet. Each row of nodes hangs from a bus in the gap above it, and the
//! buses from a trunk in the subnet's left gutter, so no connector runs
//! through a title. Inside a node, pods sit in two columns, each with a
//! gutter on its left in which the veths run.

use aksnet_core::spec::NetworkPlugin;
use serde::Serialize;

use super::draw::{Draw, Style, BODY, BOX_HEAD, FABRIC_HEAD, SECTION, SUBNET_HEAD, TITLE};
use super::geometry::Rect;
use super::node::NodeGrid;
use super::Model;

/// The picture's width budget: nodes wrap into rows so as to stay within it.
pub const WIDTH_BUDGET: f64 = 1800.0;
/// Width kept free in the fabric band for the load balancer.
pub const LB_SLOT_W: f64 = 200.0;

const PAD: f64 = 20.0;
const GAP: f64 = 24.0;
/// Inner padding of the fabric, subnets and nodes.
pub(super) const INSET: f64 = 12.0;
/// The node subnet's left gutter, where the trunk to the fabric runs.
const TRUNK_GUTTER: f64 = 28.0;
/// Between rows of nodes: the bus of the next row runs in the middle.
const ROW_GAP: f64 = 28.0;
const NODE_GAP: f64 = 20.0;
const ROUTE_COL_GAP: f64 = 24.0;
const MIN_ROUTE_ROWS: usize = 5;
const MAX_ROUTE_ROWS: usize = 10;
const MAX_ROUTE_W: f64 = 420.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BoxKind {
    Background,
    Internet,
    Fabric,
    NodeSubnet,
    Node,
    Bridge,
    HostRoutes,
    Pod,
    VmSubnet,
    Vm,
}

#[derive(Debug, Clone, Serialize)]
pub struct Shape {
    pub kind: BoxKind,
    pub rect: Rect,
    /// Index into [`Layout::shapes`]; `None` only for the background.
    pub parent: Option<usize>,
    /// Drawn in red: a node with `NetworkUnavailable`.
    pub alert: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Label {
    /// What is drawn (cut with an ellipsis when it did not fit).
    pub text: String,
    /// The whole text when `text` was cut (drawn as a `<title>`).
    pub full: Option<String>,
    pub x: f64,
    pub baseline: f64,
    pub size: f64,
    pub bold: bool,
    pub alert: bool,
    /// The box it belongs in (index into [`Layout::shapes`]).
    pub parent: usize,
    /// Where its ink can be: the measured advance, ascent to descent.
    pub bounds: Rect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WireKind {
    Internet,
    NodeUplink,
    VmUplink,
    Veth,
    BridgePort,
}

/// One straight segment.
#[derive(Debug, Clone, Serialize)]
pub struct Wire {
    pub kind: WireKind,
    pub from: (f64, f64),
    pub to: (f64, f64),
}

/// Room kept free and drawn empty (nothing is drawn there until it is real).
#[derive(Debug, Clone, Serialize)]
pub struct Reserved {
    pub purpose: &'static str,
    pub rect: Rect,
}

#[derive(Debug, Clone, Serialize)]
pub struct Layout {
    pub width: f64,
    pub height: f64,
    /// The document's `<title>`.
    pub title: String,
    pub shapes: Vec<Shape>,
    pub labels: Vec<Label>,
    pub wires: Vec<Wire>,
    pub reserved: Vec<Reserved>,
}

/// The model's name in titles.
pub fn model_title(m: &Model) -> &'static str {
    match m.plugin {
        NetworkPlugin::Kubenet => "kubenet",
        NetworkPlugin::Azure if m.pod_subnet.is_some() => "Azure CNI (pod subnet, dynamic)",
        NetworkPlugin::Azure => "Azure CNI (node subnet)",
        NetworkPlugin::Overlay => "Azure CNI Overlay",
    }
}

/// The top band: the title, and the internet behind the public IP.
struct TopBand {
    title: String,
    internet: [(String, Style); 3],
    inet_w: f64,
    inet_h: f64,
}

impl TopBand {
    fn new(m: &Model) -> Self {
        let internet = [
            ("Internet".to_string(), BOX_HEAD),
            (format!("host {}", m.internet_ip), BODY),
            (format!("outbound SNAT to {}", m.public_ip), BODY),
        ];
        let widest = internet
            .iter()
            .map(|(s, st)| st.width(s))
            .fold(0.0, f64::max);
        Self {
            title: format!("aksnet lab “{}” — {}", m.lab, model_title(m)),
            inet_w: widest.ceil() + 2.0 * INSET,
            inet_h: 10.0 + internet.iter().map(|(_, st)| st.line()).sum::<f64>() + 6.0,
            internet,
        }
    }

    /// A title past half the budget is cut rather than widening the picture.
    fn width(&self) -> f64 {
        TITLE.width(&self.title).min(WIDTH_BUDGET / 2.0) + GAP + self.inet_w
    }

    /// Places the band and the internet's line down to the fabric at
    /// `fabric_y`; returns `fabric_y`.
    fn place(&self, d: &mut Draw, bg: usize, width: f64) -> f64 {
        let ix = width - PAD - self.inet_w;
        d.lines(bg, PAD, PAD + 4.0, ix - GAP - PAD)
            .line(TITLE, &self.title);
        let inet = d.inside(
            bg,
            BoxKind::Internet,
            Rect::new(ix, PAD, self.inet_w, self.inet_h),
        );
        let mut text = d.lines(inet, ix + INSET, PAD + 10.0, self.inet_w - 2.0 * INSET);
        for (s, st) in &self.internet {
            text.line(*st, s);
        }
        let fabric_y = PAD + self.inet_h.max(TITLE.line() + 4.0) + 30.0;
        let cx = ix + self.inet_w / 2.0;
        d.wire(WireKind::Internet, (cx, PAD + self.inet_h), (cx, fabric_y));
        fabric_y
    }
}

/// The fabric: the VNet's title; the model's routes (route table, overlay
/// domain or NIC configurations) in columns; the NSG; and, at the right,
/// room for the load balancer.
struct FabricBand {
    title: String,
    section: String,
    detail: Option<&'static str>,
    nsg: [String; 2],
    nsg_w: f64,
    route_w: f64,
    section_w: f64,
}

impl FabricBand {
    fn new(m: &Model) -> Self {
        let (section, detail) = match m.plugin {
            NetworkPlugin::Kubenet => (
                format!(
                    "Route table (UDR) on the node subnet: {} of {} routes",
                    m.fabric_routes.len(),
                    m.route_table_limit
                ),
                None,
            ),
            NetworkPlugin::Overlay => (
                "Overlay routing domain: one /24 per node".into(),
                Some("node subnet only, not the VNet"),
            ),
            NetworkPlugin::Azure => (
                "NIC IP configurations".into(),
                Some("pod addresses are VNet addresses, routed anywhere in the VNet"),
            ),
        };
        let rules = match m.nsg_rules {
            1 => "1 rule".to_string(),
            n => format!("{n} rules"),
        };
        let nsg = [
            "NSG on the node subnet".to_string(),
            format!("{rules} + Azure's defaults"),
        ];
        let route_w = m
            .fabric_routes
            .iter()
            .map(|r| BODY.width(r))
            .fold(0.0, f64::max)
            .min(MAX_ROUTE_W)
            .ceil();
        let section_w = SECTION
            .width(&section)
            .max(detail.map_or(0.0, |d| BODY.width(d)))
            .max(route_w)
            .ceil();
        Self {
            title: format!(
                "VNet {} — fabric (Azure SDN: proxy ARP, host routes, NSG)",
                m.vnet
            ),
            nsg_w: SECTION.width(&nsg[0]).max(BODY.width(&nsg[1])).ceil(),
            nsg,
            section,
            detail,
            route_w,
            section_w,
        }
    }

    fn width(&self) -> f64 {
        let columns = 2.0 * INSET + self.section_w + 2.0 * GAP + self.nsg_w + LB_SLOT_W;
        columns.max(2.0 * INSET + FABRIC_HEAD.width(&self.title).min(WIDTH_BUDGET / 2.0))
    }

    /// Places the band at `y` across the picture; returns its bottom and
    /// the load balancer's reserved place.
    fn place(&self, d: &mut Draw, bg: usize, m: &Model, y: f64, width: f64) -> (f64, Rect) {
        let (x, w) = (PAD, width - 2.0 * PAD);
        let fabric = d.inside(bg, BoxKind::Fabric, Rect::new(x, y, w, 0.0));
        let y0 = d
            .lines(fabric, x + INSET, y + 10.0, w - 2.0 * INSET)
            .line(FABRIC_HEAD, &self.title)
            .top
            + 6.0;
        let lb_x = x + w - INSET - LB_SLOT_W;
        let nsg_x = lb_x - GAP - self.nsg_w;
        let nsg_bottom = d
            .lines(fabric, nsg_x, y0, self.nsg_w)
            .line(SECTION, &self.nsg[0])
            .line(BODY, &self.nsg[1])
            .top;
        let ax = x + INSET;
        let avail = nsg_x - GAP - ax;
        let mut text = d.lines(fabric, ax, y0, avail);
        text.line(SECTION, &self.section);
        if let Some(detail) = self.detail {
            text.line(BODY, detail);
        }
        let routes_top = text.top + 2.0;
        let routes_bottom = route_grid(
            d,
            fabric,
            &m.fabric_routes,
            ax,
            routes_top,
            self.route_w.min(avail),
            avail,
        );
        // The load balancer in its place: frontends, rules, members.
        let mut lb_bottom = y0;
        if !m.load_balancer.is_empty() {
            let mut t = d.lines(fabric, lb_x, y0, LB_SLOT_W);
            t.line(SECTION, "Load balancer (Standard)");
            for f in &m.load_balancer {
                t.line(BODY, &f.frontend);
                t.line(BODY, &f.service);
                for r in &f.rules {
                    t.line(BODY, r);
                }
            }
            lb_bottom = t.top;
        }
        let bottom = routes_bottom.max(nsg_bottom).max(lb_bottom).max(y0 + 40.0);
        let h = (bottom + 8.0 - y).ceil();
        d.shapes[fabric].rect.h = h;
        (y + h, Rect::new(lb_x, y0, LB_SLOT_W, bottom - y0))
    }
}

/// The route lines in as many columns of `col_w` as fit in `avail`, at
/// most [`MAX_ROUTE_ROWS`] deep (one column up to [`MIN_ROUTE_ROWS`]); what does not fit is counted. Returns the
/// bottom.
fn route_grid(
    d: &mut Draw,
    parent: usize,
    routes: &[String],
    x: f64,
    top: f64,
    col_w: f64,
    avail: f64,
) -> f64 {
    let n = routes.len();
    if n == 0 {
        return top;
    }
    let cols_fit = (((avail + ROUTE_COL_GAP) / (col_w + ROUTE_COL_GAP)).floor() as usize).max(1);
    // A short list reads best as one column; a long one fills the width.
    let rows = n
        .div_ceil(cols_fit)
        .max(n.min(MIN_ROUTE_ROWS))
        .min(MAX_ROUTE_ROWS);
    let cols = n.div_ceil(rows).min(cols_fit);
    let shown = if n > rows * cols { rows * cols - 1 } else { n };
    let more = (shown < n).then(|| format!("… {} more", n - shown));
    for (c, column) in routes[..shown]
        .iter()
        .chain(more.as_ref())
        .collect::<Vec<_>>()
        .chunks(rows)
        .enumerate()
    {
        let mut text = d.lines(parent, x + c as f64 * (col_w + ROUTE_COL_GAP), top, col_w);
        for e in column {
            text.line(BODY, e);
        }
    }
    top + rows as f64 * BODY.line()
}

/// The node subnet: its header, then the nodes in rows, each row on a bus
/// in the gap above it, the buses on a trunk in the left gutter up to the
/// fabric.
struct NodeSubnet {
    head: String,
    note: Option<String>,
    grid: NodeGrid,
    cols: usize,
    rows: usize,
    w: f64,
}

impl NodeSubnet {
    /// As many columns as fit beside a VM subnet `vm_w` wide within the
    /// budget, then balanced so that the last row is not nearly empty.
    fn new(m: &Model, vm_w: f64) -> Self {
        let grid = NodeGrid::new(m);
        let fixed = 2.0 * PAD + GAP + vm_w + TRUNK_GUTTER + INSET;
        let max_cols =
            (((WIDTH_BUDGET - fixed + NODE_GAP) / (grid.w + NODE_GAP)).floor() as usize).max(1);
        let n = m.nodes.len();
        let rows = n.div_ceil(max_cols);
        let cols = if rows == 0 { 0 } else { n.div_ceil(rows) };
        let head = format!("Node subnet {}", m.node_subnet);
        let note = m
            .pod_subnet
            .as_ref()
            .map(|p| format!("pod IPs from the pod subnet {p} (dynamic allocation)"));
        let head_w = SUBNET_HEAD
            .width(&head)
            .max(note.as_deref().map_or(0.0, |s| BODY.width(s)))
            .min(WIDTH_BUDGET / 2.0);
        let grid_w = (cols as f64 * (grid.w + NODE_GAP) - NODE_GAP).max(0.0);
        Self {
            w: (TRUNK_GUTTER + grid_w.max(head_w) + INSET).ceil(),
            head,
            note,
            grid,
            cols,
            rows,
        }
    }

    /// Places the subnet at (`x`, `y`) under a fabric ending at
    /// `fabric_bottom`; returns its bottom.
    fn place(&self, d: &mut Draw, bg: usize, m: &Model, x: f64, y: f64, fabric_bottom: f64) -> f64 {
        let subnet = d.inside(bg, BoxKind::NodeSubnet, Rect::new(x, y, self.w, 0.0));
        let hx = x + TRUNK_GUTTER;
        let mut text = d.lines(subnet, hx, y + 10.0, self.w - TRUNK_GUTTER - INSET);
        text.line(SUBNET_HEAD, &self.head);
        if let Some(note) = &self.note {
            text.line(BODY, note);
        }
        let header_bottom = text.top;
        let trunk_x = x + TRUNK_GUTTER / 2.0;
        let mut row_top = header_bottom + ROW_GAP / 2.0 + 6.0;
        let mut last_bus = None;
        for row in m.nodes.chunks(self.cols.max(1)).take(self.rows) {
            // A row is as tall as its tallest node (measured by a scratch layout).
            let row_h = row
                .iter()
                .map(|n| self.grid.draw(&mut Draw::default(), 0, n, 0.0, 0.0, None))
                .fold(0.0, f64::max);
            let bus_y = row_top - ROW_GAP / 2.0;
            let mut last_cx = trunk_x;
            for (c, n) in row.iter().enumerate() {
                let nx = hx + c as f64 * (self.grid.w + NODE_GAP);
                self.grid.draw(d, subnet, n, nx, row_top, Some(row_h));
                let cx = (nx + self.grid.w / 2.0).round();
                d.wire(WireKind::NodeUplink, (cx, bus_y), (cx, row_top));
                last_cx = cx;
            }
            d.wire(WireKind::NodeUplink, (trunk_x, bus_y), (last_cx, bus_y));
            last_bus = Some(bus_y);
            row_top += row_h + ROW_GAP;
        }
        if let Some(bus_y) = last_bus {
            d.wire(
                WireKind::NodeUplink,
                (trunk_x, fabric_bottom),
                (trunk_x, bus_y),
            );
        }
        let bottom = if self.rows == 0 {
            header_bottom
        } else {
            row_top - ROW_GAP
        } + INSET;
        d.shapes[subnet].rect.h = (bottom - y).ceil();
        y + (bottom - y).ceil()
    }
}

/// The VM subnet and its one VM.
struct VmSubnet {
    head: String,
    w: f64,
}

const VM_NOTE: &str = "no route table associated";

impl VmSubnet {
    fn new(m: &Model) -> Self {
        let head = format!("VM subnet {}", m.vm_subnet);
        let vm = SECTION.width("vm").max(BODY.width(&m.vm_ip)) + 20.0;
        let w = SUBNET_HEAD.width(&head).max(BODY.width(VM_NOTE)).max(vm);
        Self {
            head,
            w: w.ceil() + 2.0 * INSET,
        }
    }

    fn place(&self, d: &mut Draw, bg: usize, m: &Model, x: f64, y: f64, fabric_bottom: f64) -> f64 {
        let subnet = d.inside(bg, BoxKind::VmSubnet, Rect::new(x, y, self.w, 0.0));
        let inner = self.w - 2.0 * INSET;
        let top = d
            .lines(subnet, x + INSET, y + 10.0, inner)
            .line(SUBNET_HEAD, &self.head)
            .line(BODY, VM_NOTE)
            .top
            + 4.0;
        let vm_h = 8.0 + SECTION.line() + BODY.line() + 4.0;
        let vm = d.inside(subnet, BoxKind::Vm, Rect::new(x + INSET, top, inner, vm_h));
        d.lines(vm, x + INSET + 10.0, top + 6.0, inner - 20.0)
            .line(SECTION, "vm")
            .line(BODY, &m.vm_ip);
        let h = top + vm_h + INSET - y;
        d.shapes[subnet].rect.h = h;
        let cx = (x + self.w / 2.0).round();
        d.wire(WireKind::VmUplink, (cx, fabric_bottom), (cx, y));
        y + h
    }
}

/// Lays the diagram of `m` out: every band's width first (the widest sets
/// the picture's), then each band placed top to bottom.
pub fn layout(m: &Model) -> Layout {
    let top = TopBand::new(m);
    let fabric = FabricBand::new(m);
    let vms = VmSubnet::new(m);
    let nodes = NodeSubnet::new(m, vms.w);
    let width = (2.0 * PAD + (nodes.w + GAP + vms.w).max(fabric.width()).max(top.width())).ceil();

    let mut d = Draw::default();
    let bg = d.shape(
        BoxKind::Background,
        Rect::new(0.0, 0.0, width, 0.0),
        None,
        false,
    );
    let fabric_y = top.place(&mut d, bg, width);
    let (fabric_bottom, lb) = fabric.place(&mut d, bg, m, fabric_y, width);
    let sy = fabric_bottom + 40.0;
    let nodes_bottom = nodes.place(&mut d, bg, m, PAD, sy, fabric_bottom);
    let vms_bottom = vms.place(&mut d, bg, m, PAD + nodes.w + GAP, sy, fabric_bottom);
    let height = (nodes_bottom.max(vms_bottom) + PAD).ceil();
    d.shapes[bg].rect.h = height;
    Layout {
        width,
        height,
        title: format!("aksnet lab {} — {}", m.lab, model_title(m)),
        shapes: d.shapes,
        labels: d.labels,
        wires: d.wires,
        // The load balancer's place is reserved while it has nothing to show.
        reserved: if m.load_balancer.is_empty() {
            vec![Reserved {
                purpose: "load balancer",
                rect: lb,
            }]
        } else {
            vec![]
        },
    }
}
