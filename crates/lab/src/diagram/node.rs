//! One node box: its header, pod range, NetworkUnavailable mark, the
//! pods' attachment (the `cbr0` bridge for kubenet, the node's own routes
//! for Azure CNI and Overlay) and its pods in two columns, each column with
//! a gutter on its left where the veths run, so that a veth meets its pod
//! at the left edge between the name and the address and never crosses a
//! label. Every node shares one width so that rows form a grid.

use aksnet_core::spec::NetworkPlugin;

use super::draw::{Draw, BODY, BODY_BOLD, NODE_HEAD, SMALL};
use super::geometry::Rect;
use super::layout::{BoxKind, WireKind, INSET};
use super::{Model, NodeBox};

const MIN_NODE_W: f64 = 200.0;
const MAX_NODE_W: f64 = 340.0;
/// Left of each pod column: where its veths run.
const VETH_GUTTER: f64 = 14.0;
const POD_COL_GAP: f64 = 8.0;
const POD_GAP: f64 = 8.0;
const POD_PAD: f64 = 7.0;
/// Lines a node's pod ranges may take before they are cut.
const RANGE_LINES: usize = 3;

/// The two lines in each Azure CNI / Overlay node's host box.
const HOST_LINES: [&str; 2] = ["veth per pod · /32 route", "proxy ARP · gw 169.254.1.1"];
const UNAVAILABLE_LINES: [&str; 2] = ["NetworkUnavailable:", "no route in the route table"];
/// Sizes shared by every node box, so that the rows form a grid.
pub(super) struct NodeGrid {
    pub w: f64,
    pod_w: f64,
    pod_h: f64,
    bridge: bool,
}

impl NodeGrid {
    pub fn new(m: &Model) -> Self {
        let bridge = m.plugin == NetworkPlugin::Kubenet;
        let max_pod_w = (MAX_NODE_W - 2.0 * INSET - 2.0 * VETH_GUTTER - POD_COL_GAP) / 2.0;
        let pod_w = m
            .nodes
            .iter()
            .flat_map(|n| &n.pods)
            .map(|p| BODY_BOLD.width(&p.name).max(BODY.width(&p.ip)))
            .fold(0.0, f64::max);
        let pod_w = (pod_w + 2.0 * POD_PAD)
            .ceil()
            .clamp(84.0, max_pod_w.floor());
        let mut need = 2.0 * (VETH_GUTTER + pod_w) + POD_COL_GAP;
        for n in &m.nodes {
            need = need.max(NODE_HEAD.width(&node_header(n)));
            if n.unavailable {
                need = need.max(BODY_BOLD.width(UNAVAILABLE_LINES[0]));
                need = need.max(BODY.width(UNAVAILABLE_LINES[1]));
            }
            let attach = if bridge {
                BODY.width(&bridge_label(n))
            } else {
                HOST_LINES
                    .iter()
                    .map(|l| SMALL.width(l))
                    .fold(0.0, f64::max)
            };
            need = need.max(attach + 16.0);
        }
        let w = (need + 2.0 * INSET).ceil().clamp(MIN_NODE_W, MAX_NODE_W);
        Self {
            w,
            // The pods share out what the widest label left.
            pod_w: ((w - 2.0 * INSET - 2.0 * VETH_GUTTER - POD_COL_GAP) / 2.0)
                .floor()
                .max(pod_w),
            pod_h: (5.0 + 2.0 * BODY.line() + 1.0).ceil(),
            bridge,
        }
    }

    fn inner(&self) -> f64 {
        self.w - 2.0 * INSET
    }

    /// Lays one node out at (`x`, `y`) and returns its height; with
    /// `height` given, the box is drawn that tall (its row's height).
    pub fn draw(
        &self,
        d: &mut Draw,
        parent: usize,
        n: &NodeBox,
        x: f64,
        y: f64,
        height: Option<f64>,
    ) -> f64 {
        let id = d.shape(
            BoxKind::Node,
            Rect::new(x, y, self.w, 0.0),
            Some(parent),
            n.unavailable,
        );
        let (x0, inner) = (x + INSET, self.inner());
        let range = if n.pod_range.is_empty() {
            "—"
        } else {
            &n.pod_range
        };
        let mut text = d.lines(id, x0, y + 10.0, inner);
        text.line(NODE_HEAD, &node_header(n)).paragraph(
            BODY,
            &format!("pods: {range}"),
            RANGE_LINES,
        );
        if n.unavailable {
            text.alert(BODY_BOLD, UNAVAILABLE_LINES[0])
                .alert(BODY, UNAVAILABLE_LINES[1]);
        }
        // The pods' attachment: the bridge (kubenet) or the node's own
        // routes (Azure CNI, Overlay); the veths hang from its bottom edge.
        let mut top = text.top + 4.0;
        let (kind, lines, st) = if self.bridge {
            (BoxKind::Bridge, vec![bridge_label(n)], BODY)
        } else {
            (
                BoxKind::HostRoutes,
                HOST_LINES.map(String::from).to_vec(),
                SMALL,
            )
        };
        let attach_h = 10.0 + lines.len() as f64 * st.line();
        let attach = d.inside(id, kind, Rect::new(x0, top, inner, attach_h));
        let mut text = d.lines(attach, x0 + 8.0, top + 5.0, inner - 16.0);
        for l in &lines {
            text.line(st, l);
        }
        let attach_bottom = top + attach_h;
        top = attach_bottom;
        let wire = if self.bridge {
            WireKind::BridgePort
        } else {
            WireKind::Veth
        };
        if !n.pods.is_empty() {
            top += 12.0;
        }
        let mut last_mid = [None, None];
        for (k, p) in n.pods.iter().enumerate() {
            let (col, row) = (k % 2, k / 2);
            let gx = x0 + col as f64 * (VETH_GUTTER + self.pod_w + POD_COL_GAP);
            let px = gx + VETH_GUTTER;
            let py = top + row as f64 * (self.pod_h + POD_GAP);
            let pod = d.inside(id, BoxKind::Pod, Rect::new(px, py, self.pod_w, self.pod_h));
            d.lines(pod, px + POD_PAD, py + 5.0, self.pod_w - 2.0 * POD_PAD)
                .line(BODY_BOLD, &p.name)
                .line(BODY, &p.ip);
            // The veth: along the gutter, then into the pod's left edge at
            // mid-height, below its name and beside its address.
            let mid = py + (self.pod_h / 2.0).round();
            let vx = gx + VETH_GUTTER / 2.0;
            d.wire(wire, (vx, mid), (px, mid));
            last_mid[col] = Some((vx, mid));
        }
        for (vx, mid) in last_mid.into_iter().flatten() {
            d.wire(wire, (vx, attach_bottom), (vx, mid));
        }
        let rows = n.pods.len().div_ceil(2) as f64;
        let bottom = top + rows * self.pod_h + (rows - 1.0).max(0.0) * POD_GAP + INSET;
        let h = height.unwrap_or((bottom - y).ceil());
        d.shapes[id].rect.h = h;
        h
    }
}

fn node_header(n: &NodeBox) -> String {
    format!("{} — eth0 {}", n.name, n.ip)
}

/// "bridge cbr0 <first address of the node's block>".
fn bridge_label(n: &NodeBox) -> String {
    let gw = n
        .pod_range
        .split('/')
        .next()
        .unwrap_or("")
        .rsplit_once('.')
        .map(|(a, _)| format!("{a}.1"))
        .unwrap_or_default();
    format!("bridge cbr0 {gw}").trim_end().to_string()
}
