//! `lab diagram`: an SVG of the lab as it stands, drawn like the seed
//! articles' figures: the VNet (the fabric) with its route table on top, the
//! node subnet with each node and its pods (behind the `cbr0` bridge for
//! kubenet, on their own veths for Azure CNI and Overlay), the VM subnet,
//! and the internet behind the outbound public IP. Pure: model in, text out.
//!
//! In three steps, each its own module: the [`Model`] (what the lab holds,
//! read from its state and store), the [`layout::Layout`] (every box,
//! label and line as rectangles, with measured text — [`text`]), and the
//! SVG drawn from that layout ([`svg`]).

mod draw;
pub mod geometry;
pub mod layout;
mod node;
pub mod svg;
pub mod text;

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
    /// Azure CNI with dynamic allocation: the pod subnet pod IPs come from.
    pub pod_subnet: Option<String>,
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
    /// The load balancer's frontends (none: its place stays empty).
    pub load_balancer: Vec<LbBox>,
}

/// One load-balancer frontend as the diagram shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LbBox {
    /// `203.0.113.150 public` / `10.224.255.254 internal`.
    pub frontend: String,
    /// `default/web (Local)`.
    pub service: String,
    /// Per rule: `TCP 80 → node-1 ✓ node-2 ✗`.
    pub rules: Vec<String>,
}

impl LbBox {
    pub fn of(lb: &crate::lb::LbStatus) -> Vec<LbBox> {
        lb.frontends
            .iter()
            .map(|f| LbBox {
                frontend: format!(
                    "{} {}",
                    f.ip,
                    if f.internal { "internal" } else { "public" }
                ),
                service: format!("{} ({})", f.service, f.external_traffic_policy),
                rules: f
                    .rules
                    .iter()
                    .map(|r| {
                        let healthy = r.healthy();
                        let members: Vec<String> = r
                            .pool
                            .iter()
                            .map(|m| {
                                let up = healthy.iter().any(|h| h.node == m.node);
                                format!("{} {}", m.node, if up { "✓" } else { "✗" })
                            })
                            .collect();
                        format!(
                            "{} {} → {}",
                            r.protocol.as_str().to_uppercase(),
                            r.port,
                            members.join(" ")
                        )
                    })
                    .collect(),
            })
            .collect()
    }
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
            pod_subnet: state
                .network
                .is_dynamic()
                .then(|| state.network.pod_subnet_cidr.map(|p| p.to_string()))
                .flatten(),
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
            load_balancer: vec![],
        }
    }

    /// The same model with the load balancer's frontends drawn.
    pub fn with_load_balancer(mut self, lb: &crate::lb::LbStatus) -> Self {
        self.load_balancer = LbBox::of(lb);
        self
    }
}

/// The SVG document of the lab: [`layout::layout`], then [`svg::render`].
pub fn render(m: &Model) -> String {
    svg::render(&layout::layout(m))
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
        assert_eq!(svg.matches("class=\"veth\"").count(), 2 * (3 + 2));
        let m = Model::new(&st, &Snapshot::default());
        assert_eq!(m.pod_subnet, None);
        assert!(t.contains("Azure CNI (node subnet)"));
    }

    #[test]
    fn dynamic_azure_names_its_pod_subnet_and_other_models_do_not() {
        let mut st = sample_state("azure", None, 2, 1);
        st.network.pod_subnet_cidr = Some("10.226.0.0/16".parse().unwrap());
        let m = Model::new(&st, &Snapshot::default());
        assert_eq!(m.pod_subnet.as_deref(), Some("10.226.0.0/16"));
        let t = texts(&render(&m)).join("\n");
        assert!(t.contains("Azure CNI (pod subnet, dynamic)"), "{t}");
        assert!(
            t.contains("pod IPs from the pod subnet 10.226.0.0/16"),
            "{t}"
        );
        let mut st = sample_state("overlay", None, 1, 1);
        st.network.pod_subnet_cidr = Some("10.226.0.0/16".parse().unwrap());
        assert_eq!(Model::new(&st, &Snapshot::default()).pod_subnet, None);
    }

    #[test]
    fn the_load_balancer_is_drawn_in_its_place_with_members_and_probes() {
        use crate::lb::tests::{k8s, lb_svc};
        let st = sample_state("kubenet", None, 2, 1);
        let k = k8s(&[lb_svc("web", "Local", serde_json::json!({}))]);
        let ips = std::collections::BTreeMap::from([(
            "shop/web".to_string(),
            "203.0.113.150".parse().unwrap(),
        )]);
        let mut lb = crate::lb::LbStatus {
            frontends: crate::lb::plan(&st, &k, &ips, &Default::default()),
            pending: vec![],
        };
        for r in &mut lb.frontends[0].rules {
            r.pool[0].probe.record(true, "200".into(), 2, 1);
        }
        let empty = crate::diagram::layout::layout(&Model::new(&st, &Snapshot::default()));
        assert_eq!(
            empty.reserved.len(),
            1,
            "an empty place while there is no frontend"
        );
        let m = Model::new(&st, &Snapshot::default()).with_load_balancer(&lb);
        let l = crate::diagram::layout::layout(&m);
        assert!(l.reserved.is_empty());
        let t = texts(&render(&m)).join("\n");
        assert!(t.contains("Load balancer (Standard)"), "{t}");
        assert!(t.contains("203.0.113.150 public"), "{t}");
        assert!(t.contains("shop/web (Local)"), "{t}");
        assert!(t.contains("TCP 80 → node-1 ✓ node-2 ✗"), "{t}");
    }
}
