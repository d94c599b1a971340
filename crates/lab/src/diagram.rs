//! `lab diagram`: an SVG of the lab as it stands, drawn like the seed
//! articles' figures: the VNet (the fabric) with its route table on top, the
//! node subnet with each node and its pods (behind the `cbr0` bridge for
//! kubenet, on their own veths for Azure CNI and Overlay), the VM subnet,
//! and the internet behind the outbound public IP. Pure: model in, text out.

use std::fmt::Write as _;

use aksnet_core::spec::NetworkPlugin;
use serde::Serialize;

use crate::snapshot::Snapshot;
use crate::state::LabState;

#[derive(Debug, Clone, Serialize)]
pub struct PodBox {
    pub name: String,
    pub ip: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeBox {
    pub name: String,
    pub ip: String,
    pub pod_range: String,
    pub unavailable: bool,
    pub pods: Vec<PodBox>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Model {
    pub lab: String,
    pub plugin: NetworkPlugin,
    pub vnet: String,
    pub node_subnet: String,
    pub vm_subnet: String,
    pub vm_ip: String,
    pub internet_ip: String,
    pub public_ip: String,
    /// "destination → next hop" lines of the route table / overlay domain /
    /// NIC secondary IPs, whichever the model has.
    pub fabric_routes: Vec<String>,
    pub route_table_limit: u32,
    pub nsg_rules: usize,
    pub nodes: Vec<NodeBox>,
}

impl Model {
    pub fn new(state: &LabState, snap: &Snapshot) -> Self {
        let a = &state.addressing;
        let ranges = crate::check::pod_ranges(state, snap);
        let fabric_routes = match state.network.network_plugin {
            NetworkPlugin::Kubenet => snap
                .routes
                .values()
                .filter_map(|r| r.value.as_ref())
                .take(state.network.route_table_limit as usize)
                .map(|r| format!("{} → {} ({})", r.destination, r.next_hop, r.node))
                .collect(),
            NetworkPlugin::Overlay => state
                .nodes
                .iter()
                .filter_map(|n| {
                    snap.block_of(&n.name)
                        .map(|b| format!("{b} → {} ({})", n.ip, n.name))
                })
                .collect(),
            NetworkPlugin::Azure => state
                .nodes
                .iter()
                .map(|n| {
                    format!(
                        "{} secondary IPs → {} ({})",
                        snap.pod_ips_of(&n.name).len(),
                        n.ip,
                        n.name
                    )
                })
                .collect(),
        };
        Model {
            lab: state.name.clone(),
            plugin: state.network.network_plugin,
            vnet: state
                .network
                .vnet_cidrs
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            node_subnet: a.node_subnet.to_string(),
            vm_subnet: a.vm_subnet.to_string(),
            vm_ip: a.vm_ip.to_string(),
            internet_ip: a.internet_ip.to_string(),
            public_ip: a.public_ip.to_string(),
            fabric_routes,
            route_table_limit: state.network.route_table_limit,
            nsg_rules: state.nsg.len(),
            nodes: state
                .nodes
                .iter()
                .map(|n| NodeBox {
                    name: n.name.clone(),
                    ip: n.ip.to_string(),
                    pod_range: ranges
                        .iter()
                        .find_map(|r| r.strip_prefix(&format!("{}: ", n.name)))
                        .unwrap_or("")
                        .to_string(),
                    unavailable: snap.node(&n.name).is_some_and(|r| r.network_unavailable()),
                    pods: state
                        .pods_on(&n.name)
                        .map(|p| PodBox {
                            name: p.name.clone(),
                            ip: p
                                .ip
                                .map(|i| i.to_string())
                                .unwrap_or_else(|| "no address".into()),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

struct Svg(String);

impl Svg {
    // A drawing primitive: position, size and style read best side by side.
    #[allow(clippy::too_many_arguments)]
    fn rect(&mut self, x: i64, y: i64, w: i64, h: i64, fill: &str, stroke: &str, class: &str) {
        let _ = writeln!(
            self.0,
            r#"<rect class="{class}" x="{x}" y="{y}" width="{w}" height="{h}" rx="8" fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>"#
        );
    }
    fn text(&mut self, x: i64, y: i64, size: u32, weight: &str, s: &str) {
        let _ = writeln!(
            self.0,
            r#"<text x="{x}" y="{y}" font-size="{size}" font-weight="{weight}">{}</text>"#,
            esc(s)
        );
    }
    fn line(&mut self, x1: i64, y1: i64, x2: i64, y2: i64, stroke: &str, dash: bool) {
        let d = if dash {
            r#" stroke-dasharray="5,4""#
        } else {
            ""
        };
        let _ = writeln!(
            self.0,
            r#"<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{stroke}" stroke-width="2"{d}/>"#
        );
    }
}

const NODE_W: i64 = 250;
const POD_H: i64 = 40;
const GAP: i64 = 20;

/// The SVG document.
pub fn render(m: &Model) -> String {
    let bridge = m.plugin == NetworkPlugin::Kubenet;
    let pods_max = m.nodes.iter().map(|n| n.pods.len()).max().unwrap_or(0) as i64;
    let pod_rows = ((pods_max + 1) / 2).max(1);
    let node_h = 110 + pod_rows * (POD_H + 8) + if bridge { 30 } else { 0 };
    let nodes_w = (m.nodes.len() as i64).max(1) * (NODE_W + GAP) + GAP;
    let vm_w = 220;
    let width = (nodes_w + vm_w + 3 * GAP).max(900);
    let routes_shown = m.fabric_routes.len().min(12) as i64;
    let fabric_h = 90 + routes_shown * 16 + if m.fabric_routes.len() > 12 { 16 } else { 0 };
    let fabric_y = 130;
    let subnet_y = fabric_y + fabric_h + 40;
    let height = subnet_y + node_h + 90;
    let mut s = Svg(String::new());
    let _ = writeln!(
        s.0,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="Segoe UI, Helvetica, Arial, sans-serif">"#
    );
    let title = match m.plugin {
        NetworkPlugin::Kubenet => "kubenet",
        NetworkPlugin::Azure => "Azure CNI (node subnet)",
        NetworkPlugin::Overlay => "Azure CNI Overlay",
    };
    let _ = writeln!(s.0, "<title>aksnet lab {} — {}</title>", esc(&m.lab), title);
    s.rect(0, 0, width, height, "#ffffff", "none", "background");
    s.text(
        GAP,
        32,
        20,
        "bold",
        &format!("aksnet lab “{}” — {title}", m.lab),
    );
    // Internet and the public IP.
    let ix = width - 300;
    s.rect(ix, 20, 280, 80, "#eef6ff", "#4a90d9", "internet");
    s.text(ix + 12, 44, 15, "bold", "Internet");
    s.text(
        ix + 12,
        64,
        13,
        "normal",
        &format!("host {}", m.internet_ip),
    );
    s.text(
        ix + 12,
        84,
        13,
        "normal",
        &format!("outbound SNAT to {}", m.public_ip),
    );
    s.line(ix + 140, 100, ix + 140, fabric_y, "#4a90d9", false);
    // The fabric.
    s.rect(
        GAP,
        fabric_y,
        width - 2 * GAP,
        fabric_h,
        "#f3f0fa",
        "#6b4fbb",
        "fabric",
    );
    s.text(
        GAP + 12,
        fabric_y + 24,
        16,
        "bold",
        &format!(
            "VNet {} — fabric (Azure SDN: proxy ARP, host routes, NSG)",
            m.vnet
        ),
    );
    let heading = match m.plugin {
        NetworkPlugin::Kubenet => format!(
            "Route table (UDR) on the node subnet: {} of {} routes",
            m.fabric_routes.len(),
            m.route_table_limit
        ),
        NetworkPlugin::Overlay => {
            "Overlay routing domain (node subnet only, not the VNet): one /24 per node".into()
        }
        NetworkPlugin::Azure => {
            "NIC IP configurations: pod addresses are VNet addresses, routed anywhere in the VNet"
                .into()
        }
    };
    s.text(GAP + 12, fabric_y + 48, 13, "bold", &heading);
    for (i, r) in m.fabric_routes.iter().take(12).enumerate() {
        s.text(GAP + 24, fabric_y + 68 + i as i64 * 16, 12, "normal", r);
    }
    if m.fabric_routes.len() > 12 {
        s.text(
            GAP + 24,
            fabric_y + 68 + 12 * 16,
            12,
            "normal",
            &format!("… {} more", m.fabric_routes.len() - 12),
        );
    }
    s.text(
        width - 340,
        fabric_y + 48,
        12,
        "normal",
        &format!(
            "NSG on the node subnet: {} rule(s) + Azure's defaults",
            m.nsg_rules
        ),
    );
    // Node subnet.
    s.rect(
        GAP,
        subnet_y,
        nodes_w,
        node_h + 50,
        "#f7fbf2",
        "#5a9e3a",
        "node-subnet",
    );
    s.text(
        GAP + 12,
        subnet_y + 22,
        14,
        "bold",
        &format!("Node subnet {}", m.node_subnet),
    );
    for (i, n) in m.nodes.iter().enumerate() {
        let x = GAP * 2 + i as i64 * (NODE_W + GAP);
        let y = subnet_y + 36;
        let stroke = if n.unavailable { "#d0021b" } else { "#333333" };
        s.rect(x, y, NODE_W, node_h, "#ffffff", stroke, "node");
        s.line(
            x + NODE_W / 2,
            y,
            x + NODE_W / 2,
            fabric_y + fabric_h,
            "#5a9e3a",
            false,
        );
        s.text(
            x + 10,
            y + 20,
            14,
            "bold",
            &format!("{} — eth0 {}", n.name, n.ip),
        );
        s.text(
            x + 10,
            y + 38,
            12,
            "normal",
            &format!("pods: {}", n.pod_range),
        );
        if n.unavailable {
            s.text(
                x + 10,
                y + 56,
                12,
                "bold",
                "NetworkUnavailable: no route in the route table",
            );
        }
        let mut py = y + 66;
        if bridge {
            s.rect(x + 10, py, NODE_W - 20, 22, "#fff4d6", "#c98a00", "bridge");
            let gw = n
                .pod_range
                .split('/')
                .next()
                .unwrap_or("")
                .rsplit_once('.')
                .map(|(a, _)| format!("{a}.1"))
                .unwrap_or_default();
            s.text(x + 18, py + 16, 12, "normal", &format!("bridge cbr0 {gw}"));
            py += 32;
        }
        for (k, p) in n.pods.iter().enumerate() {
            let px = x + 10 + (k as i64 % 2) * ((NODE_W - 30) / 2 + 10);
            let pyy = py + (k as i64 / 2) * (POD_H + 8);
            s.rect(
                px,
                pyy,
                (NODE_W - 30) / 2,
                POD_H,
                "#e8f1fb",
                "#4a90d9",
                "pod",
            );
            s.text(px + 6, pyy + 16, 12, "bold", &p.name);
            s.text(px + 6, pyy + 32, 12, "normal", &p.ip);
            if !bridge {
                s.line(
                    px + (NODE_W - 30) / 4,
                    pyy,
                    px + (NODE_W - 30) / 4,
                    y + 44,
                    "#4a90d9",
                    true,
                );
            }
        }
        if !bridge && !n.pods.is_empty() {
            s.text(
                x + 10,
                y + node_h - 8,
                11,
                "normal",
                "veth per pod · /32 route · proxy ARP · gw 169.254.1.1",
            );
        }
    }
    // VM subnet.
    let vx = GAP + nodes_w + GAP;
    s.rect(vx, subnet_y, vm_w, 120, "#fdf2f2", "#b94a48", "vm-subnet");
    s.text(
        vx + 12,
        subnet_y + 22,
        14,
        "bold",
        &format!("VM subnet {}", m.vm_subnet),
    );
    s.text(
        vx + 12,
        subnet_y + 42,
        12,
        "normal",
        "no route table associated",
    );
    s.rect(
        vx + 12,
        subnet_y + 56,
        vm_w - 24,
        44,
        "#ffffff",
        "#333333",
        "vm",
    );
    s.text(vx + 22, subnet_y + 76, 13, "bold", "vm");
    s.text(vx + 22, subnet_y + 92, 12, "normal", &m.vm_ip);
    s.line(
        vx + vm_w / 2,
        subnet_y,
        vx + vm_w / 2,
        fabric_y + fabric_h,
        "#b94a48",
        false,
    );
    let _ = writeln!(s.0, "</svg>");
    s.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::tests::record;
    use crate::state::tests::sample_state;
    use aksnet_core::cluster::{Condition, RouteEntry, NETWORK_UNAVAILABLE};

    fn texts(svg: &str) -> Vec<String> {
        let doc = roxmltree::Document::parse(svg).expect("the SVG is well-formed XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        doc.descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| n.text().unwrap_or("").to_string())
            .collect()
    }

    #[test]
    fn kubenet_diagram_shows_route_table_bridge_pods_and_unavailable_node() {
        let st = sample_state("kubenet", None, 3, 2);
        let mut n3 = record("node-3", "10.224.0.6", Some("10.244.2.0/24"));
        n3.set_condition(Condition {
            kind: NETWORK_UNAVAILABLE.into(),
            status: true,
            reason: "RouteTableFull".into(),
            message: String::new(),
        });
        let snap = (0..2).fold(
            Snapshot::default()
                .with_node(record("node-1", "10.224.0.4", Some("10.244.0.0/24")))
                .with_node(record("node-2", "10.224.0.5", Some("10.244.1.0/24")))
                .with_node(n3),
            |s, i| {
                s.with_route(
                    i,
                    RouteEntry {
                        node: format!("node-{}", i + 1),
                        destination: format!("10.244.{i}.0/24").parse().unwrap(),
                        next_hop: format!("10.224.0.{}", 4 + i).parse().unwrap(),
                    },
                )
            },
        );
        let svg = render(&Model::new(&st, &snap));
        let t = texts(&svg).join("\n");
        assert!(
            t.contains("Route table (UDR) on the node subnet: 2 of 400 routes"),
            "{t}"
        );
        assert!(t.contains("10.244.1.0/24 → 10.224.0.5 (node-2)"));
        assert!(t.contains("bridge cbr0 10.244.0.1"));
        assert!(t.contains("node-3 — eth0 10.224.0.6"));
        assert!(t.contains("NetworkUnavailable"));
        assert!(t.contains("pod-2-2") && t.contains("10.244.1.3"));
        assert!(t.contains("VM subnet 10.225.0.0/24") && t.contains("10.225.0.4"));
        assert!(t.contains("outbound SNAT to 203.0.113.100"));
        assert_eq!(svg.matches("class=\"pod\"").count(), 6);
    }

    #[test]
    fn azure_diagram_has_veths_not_a_bridge_and_escapes_text() {
        let mut st = sample_state("azure", None, 2, 3);
        st.name = "a<b&c".into();
        let svg = render(&Model::new(&st, &Snapshot::default()));
        let t = texts(&svg).join("\n");
        assert!(!t.contains("cbr0"));
        assert!(t.contains("veth per pod"));
        assert!(t.contains("NIC IP configurations"));
        assert!(t.contains("a<b&c"));
        assert_eq!(svg.matches("class=\"node\"").count(), 2);
    }
}
