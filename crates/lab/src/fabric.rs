//! The fabric namespace: Azure's SDN for the lab's VNet.
//!
//! - one veth per VM NIC (`n<i>` for node i, `vm` for the VM), proxy ARP on
//!   every port with no delay (Azure answers every ARP itself), the subnet
//!   gateways (.1) and the public IP on its loopback;
//! - a /32 host route per NIC primary IP in the main table, and the three
//!   tables of [`crate::routes`] (NIC secondary IPs, kubenet route table,
//!   overlay routing domain) kept equal to the store by [`sync_routes`];
//! - Azure's system routes: private ranges and the VNet are `unreachable`
//!   unless something more specific exists, the rest goes to the internet;
//! - an nftables table (`ip aksnet_lab`, [`desired_nft`]) marking
//!   node-subnet traffic, the NSG chains, and outbound SNAT of everything to
//!   the public IP, and the API server's authorized IP ranges
//!   ([`crate::apiserver`]), applied through the one nftables driver
//!   ([`aksnet_linux::nft::Nft`] in the fabric namespace);
//! - the API server's public endpoint: its own namespace behind the `api`
//!   port, reached from the internet as it is, and from the VNet through
//!   the outbound SNAT to the public IP (as AKS nodes reach their control
//!   plane through the load balancer's outbound IP).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use aksnet_linux::nft::Nft;
use aksnet_nft::build::{accept, ct_state, iifname, jump, mark, oifname, snat};
use aksnet_nft::{
    priority, BaseChain, Chain, ChainType, CtState, Family, Hook, Owner, Rule, Stmt, Table,
};
use ipnet::Ipv4Net;

use crate::error::{LabError, Result};
use crate::ip;
use crate::netns;
use crate::nsg;
use crate::routes::{
    self, Desired, Port, NODE_SUBNET_MARK, TABLES, TABLE_NIC, TABLE_OVERLAY, TABLE_UDR,
};
use crate::snapshot::Snapshot;
use crate::state::{LabDir, LabState, Lock};
use crate::topology::{netns_path, node_port, APISERVER_PORT, INTERNET_PORT, VM_PORT};

/// Azure's system routes with next hop "None" (dropped unless a more
/// specific route exists).
const PRIVATE_RANGES: [&str; 4] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
];

/// Creates the fabric, VM and internet namespaces' plumbing (the namespaces
/// exist already).
pub fn build(state: &LabState) -> Result<()> {
    let names = state.names();
    let a = &state.addressing;
    let fabric = names.fabric();
    // Before any port exists, so every port inherits them.
    netns::sysctls(
        &netns_path(&fabric),
        &[
            ("net/ipv4/ip_forward", "1"),
            ("net/ipv4/conf/all/rp_filter", "0"),
            ("net/ipv4/conf/default/rp_filter", "0"),
            ("net/ipv4/conf/default/proxy_arp", "1"),
        ],
    )?;
    let mut f = vec![
        "link set dev lo up".to_string(),
        format!("addr add {}/32 dev lo", a.node_gateway),
        format!("addr add {}/32 dev lo", a.vm_gateway),
        format!("addr add {}/32 dev lo", a.public_ip),
        format!(
            "link add name {INTERNET_PORT} type veth peer name eth0 netns {}",
            names.internet()
        ),
        format!(
            "addr add {}/{} dev {INTERNET_PORT}",
            a.fabric_internet_ip,
            a.internet_net.prefix_len()
        ),
        format!("link set dev {INTERNET_PORT} up"),
        format!(
            "link add name {VM_PORT} type veth peer name eth0 netns {}",
            names.vm()
        ),
        format!("link set dev {VM_PORT} up"),
        format!("route add {}/32 dev {VM_PORT}", a.vm_ip),
        format!(
            "link add name {APISERVER_PORT} type veth peer name eth0 netns {}",
            names.apiserver()
        ),
        format!("link set dev {APISERVER_PORT} up"),
        format!("route add {}/32 dev {APISERVER_PORT}", a.apiserver_ip),
        format!(
            "route add default via {} dev {INTERNET_PORT}",
            a.internet_ip
        ),
        format!("rule add pref {TABLE_NIC} lookup {TABLE_NIC}"),
        format!("rule add pref {TABLE_UDR} fwmark {NODE_SUBNET_MARK:#x} lookup {TABLE_UDR}"),
        format!(
            "rule add pref {TABLE_OVERLAY} fwmark {NODE_SUBNET_MARK:#x} lookup {TABLE_OVERLAY}"
        ),
    ];
    for r in unreachable_ranges(state) {
        f.push(format!("route add unreachable {r}"));
    }
    ip::batch(&fabric, &f)?;
    port_sysctls(
        state,
        &[
            VM_PORT.to_string(),
            INTERNET_PORT.to_string(),
            APISERVER_PORT.to_string(),
        ],
    )?;
    ip::batch(
        &names.vm(),
        &[
            "link set dev lo up".into(),
            format!("addr add {}/{} dev eth0", a.vm_ip, a.vm_subnet.prefix_len()),
            "link set dev eth0 up".into(),
            format!("route add default via {}", a.vm_gateway),
        ],
    )?;
    ip::batch(
        &names.apiserver(),
        &[
            "link set dev lo up".into(),
            format!("addr add {}/32 dev eth0", a.apiserver_ip),
            "link set dev eth0 up".into(),
            format!(
                "route add default via {} dev eth0 onlink",
                a.fabric_internet_ip
            ),
        ],
    )?;
    ip::batch(
        &names.internet(),
        &[
            "link set dev lo up".into(),
            format!(
                "addr add {}/{} dev eth0",
                a.internet_ip,
                a.internet_net.prefix_len()
            ),
            "link set dev eth0 up".into(),
        ],
    )?;
    apply_nft(state)
}

/// Private ranges and the VNet's own prefixes, without duplicates.
fn unreachable_ranges(state: &LabState) -> BTreeSet<Ipv4Net> {
    let mut out: BTreeSet<Ipv4Net> = PRIVATE_RANGES
        .iter()
        .filter_map(|r| r.parse().ok())
        .collect();
    out.extend(state.network.vnet_cidrs.iter().map(|n| n.trunc()));
    if let Some(p) = state.network.effective_pod_cidr() {
        out.insert(p.trunc());
    }
    out
}

/// What the VirtualNetwork service tag covers in the lab: the VNet, and the
/// pod CIDR the route table or the overlay domain routes inside it.
pub fn virtual_network(state: &LabState) -> Vec<Ipv4Net> {
    let mut v: Vec<Ipv4Net> = state.network.vnet_cidrs.iter().map(|n| n.trunc()).collect();
    if let Some(p) = state.network.effective_pod_cidr() {
        v.push(p.trunc());
    }
    v.sort();
    v.dedup();
    v
}

/// The fabric's nftables table.
pub const NFT_TABLE: &str = "aksnet_lab";

/// The fabric's nftables table, whole, as data:
///
/// ```text
/// table ip aksnet_lab {
///     chain forward         { type filter hook forward priority filter; policy accept;
///                             ct state established,related accept
///                             meta mark 0x1 jump nsg_out
///                             oifname "n*" jump nsg_in }
///     chain nsg_in, nsg_out { the NSG's rules, see crate::nsg }
///     chain postrouting     { type nat hook postrouting priority srcnat; policy accept;
///                             oifname "inet" snat to PUBLIC-IP
///                             oifname "api" iifname != "inet" snat to PUBLIC-IP }
///     set apiserver_authorized, chain apiserver_access
///                           { see crate::apiserver: after the SNAT, so the
///                             source is what the API server sees }
///     chain tag_node_subnet { type filter hook prerouting priority mangle; policy accept;
///                             iifname "n*" meta mark set 0x1 }
/// }
/// ```
pub fn desired_nft(state: &LabState) -> Table {
    desired_nft_with(state, &crate::lb::LbStatus::default())
}

/// [`desired_nft`] with the load balancer's frontends, rules and healthy
/// members ([`crate::lb::nft`]).
pub fn desired_nft_with(state: &LabState, lb: &crate::lb::LbStatus) -> Table {
    let vnet = virtual_network(state);
    let (nsg_in, nsg_out) = nsg::chains(&state.nsg, &vnet);
    let mut t = Table::new(Family::Ip, NFT_TABLE);
    t.chain(
        "tag_node_subnet",
        Chain::base(
            BaseChain::new(ChainType::Filter, Hook::Prerouting, priority::MANGLE),
            vec![Rule::new([iifname("n*"), Stmt::SetMark(NODE_SUBNET_MARK)])
                .comment("from the node subnet: its route table applies")],
        ),
    );
    t.chain(nsg::IN_CHAIN, nsg_in);
    t.chain(nsg::OUT_CHAIN, nsg_out);
    t.chain(
        "forward",
        Chain::base(
            BaseChain::filter(Hook::Forward),
            vec![
                Rule::new([
                    ct_state(&[CtState::Established, CtState::Related]),
                    accept(),
                ]),
                Rule::new([mark(NODE_SUBNET_MARK), jump(nsg::OUT_CHAIN)]),
                Rule::new([oifname("n*"), jump(nsg::IN_CHAIN)]),
            ],
        ),
    );
    t.chain(
        "postrouting",
        Chain::base(
            BaseChain::nat(Hook::Postrouting),
            vec![
                Rule::new([
                    oifname(INTERNET_PORT),
                    snat(IpAddr::V4(state.addressing.public_ip)),
                ])
                .comment("outbound SNAT to the public IP"),
                Rule::new([
                    oifname(APISERVER_PORT),
                    aksnet_nft::build::ne(
                        aksnet_nft::Expr::Meta(aksnet_nft::MetaKey::IifName),
                        aksnet_nft::Value::IfName(INTERNET_PORT.into()),
                    ),
                    snat(IpAddr::V4(state.addressing.public_ip)),
                ])
                .comment("the VNet reaches the API server from the public IP"),
            ],
        ),
    );
    crate::apiserver::add_to_table(state, &mut t);
    crate::lb::nft::extend(&mut t, &lb.frontends);
    t
}

/// Makes the fabric's nftables table equal to [`desired_nft`]: read back,
/// left alone when it matches (a repeated `lab up` step, a restart),
/// replaced in one transaction when it does not.
pub fn apply_nft(state: &LabState) -> Result<()> {
    // With the load balancer's last status, under the lock its controller
    // programs the same table with.
    let dir = LabDir::new(&state.name)?;
    let _lock = Lock::take(&dir.path.join("fabric.lock"))?;
    let lb = crate::lb::LbStatus::load(&dir).unwrap_or_default();
    apply_nft_locked(state, &lb)
}

/// [`apply_nft`] for a caller holding the fabric's lock, with `lb`.
pub fn apply_nft_locked(state: &LabState, lb: &crate::lb::LbStatus) -> Result<()> {
    let ns = state.names().fabric();
    let nerr = |source| LabError::Nft {
        ns: ns.clone(),
        source,
    };
    let mut driver = Nft::at(netns_path(&ns)).map_err(|source| LabError::Netns {
        path: netns_path(&ns),
        source,
    })?;
    let want = desired_nft_with(state, lb);
    let outcome = Owner::new(want.id())
        .sync(&mut driver, &want)
        .map_err(nerr)?;
    tracing::debug!(lab = %state.name, ?outcome, "fabric nftables");
    Ok(())
}

/// The `ip -batch` lines that plug node `index` into the fabric (fabric
/// side) and address its `eth0` (node side).
pub fn plug_node_lines(state: &LabState, index: u32, ip: Ipv4Addr) -> (Vec<String>, Vec<String>) {
    let names = state.names();
    let a = &state.addressing;
    let port = node_port(index);
    (
        vec![
            format!(
                "link add name {port} type veth peer name eth0 netns {}",
                names.node(index)
            ),
            format!("link set dev {port} up"),
            format!("route add {ip}/32 dev {port}"),
        ],
        vec![
            "link set dev lo up".into(),
            format!("addr add {ip}/{} dev eth0", a.node_subnet.prefix_len()),
            "link set dev eth0 up".into(),
            format!("route add default via {}", a.node_gateway),
        ],
    )
}

/// Proxy ARP on fabric ports, answered at once: a namespace other than the
/// first has no `neigh/default` to inherit `proxy_delay` from, and the
/// kernel's default delays proxied replies by up to 0.8 s.
pub fn port_sysctls(state: &LabState, ports: &[String]) -> Result<()> {
    let settings: Vec<(String, String)> = ports
        .iter()
        .flat_map(|p| {
            [
                (format!("net/ipv4/conf/{p}/proxy_arp"), "1".to_string()),
                (format!("net/ipv4/neigh/{p}/proxy_delay"), "0".to_string()),
            ]
        })
        .collect();
    let refs: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    netns::sysctls(&netns_path(&state.names().fabric()), &refs)
}

/// Removes node `index`'s NIC from the fabric (its /32 goes with the link).
pub fn unplug_node(state: &LabState, index: u32) -> Result<()> {
    let fabric = state.names().fabric();
    if !ip::netns_exists(&fabric) {
        return Ok(());
    }
    let port = node_port(index);
    let links = ip::json(&fabric, &["link", "show"])?;
    let present = links
        .as_array()
        .into_iter()
        .flatten()
        .any(|l| l.get("ifname").and_then(|n| n.as_str()) == Some(port.as_str()));
    if present {
        ip::batch(&fabric, &[format!("link del dev {port}")])?;
    }
    Ok(())
}

/// The node NICs the fabric knows, from the state.
pub fn ports(state: &LabState) -> Vec<Port> {
    state
        .nodes
        .iter()
        .map(|n| Port {
            node: n.name.clone(),
            ip: n.ip,
            dev: node_port(n.index),
        })
        .collect()
}

/// Makes the fabric's route tables equal to what the store says (see
/// [`crate::routes`]); serialised with any other sync of the same lab.
pub fn sync_routes(dir: &LabDir, state: &LabState, snap: &Snapshot) -> Result<Desired> {
    let _lock = Lock::take(&dir.path.join("fabric.lock"))?;
    let fabric = state.names().fabric();
    let desired = routes::desired(&state.network, snap, &ports(state));
    let mut current = BTreeSet::new();
    for t in TABLES {
        let v = ip::routes_json(&fabric, t)?;
        current.extend(routes::parse_ip_json(t, &v));
    }
    let lines = routes::diff(&current, &desired.routes);
    if !lines.is_empty() {
        tracing::debug!(lab = %state.name, changes = lines.len(), "fabric routes");
        ip::batch(&fabric, &lines)?;
    }
    Ok(desired)
}

/// Entries of the kubenet route table as the fabric holds them now.
pub fn udr_entries(state: &LabState) -> usize {
    ip::routes_json(&state.names().fabric(), TABLE_UDR)
        .map(|v| routes::parse_ip_json(TABLE_UDR, &v).len())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::sample_state;

    fn traced(st: &LabState, p: aksnet_nft::Packet) -> aksnet_nft::Trace {
        use aksnet_nft::Hook::*;
        aksnet_nft::trace(
            &[desired_nft(st)],
            &aksnet_nft::Host::default(),
            &p,
            &[Prerouting, Forward, Postrouting],
        )
    }

    #[test]
    fn the_fabric_table_marks_applies_nsgs_and_snats() {
        use aksnet_nft::{Driver, Fake, Final, Packet};
        let mut st = sample_state("kubenet", None, 2, 1);
        let mut fake = Fake::new();
        fake.apply(&aksnet_nft::diff::create(&desired_nft(&st)))
            .unwrap();
        let dump = fake.dump();
        assert!(
            dump.contains("iifname \"n*\" meta mark set 0x1 comment"),
            "{dump}"
        );
        assert!(
            dump.contains("oifname \"inet\" snat to 203.0.113.100"),
            "{dump}"
        );
        assert!(dump.contains("ip saddr { 10.224.0.0/12, 10.244.0.0/16 } return comment \"65000 AllowVnetInBound\""), "{dump}");
        // Node to the internet: marked, allowed out, SNAT to the public IP.
        let out = traced(
            &st,
            Packet::tcp("10.224.0.4", 40000, "203.0.113.7", 80)
                .iif("n0")
                .oif("inet"),
        );
        assert_eq!(out.verdict, Final::Accept);
        assert_eq!(out.nat, vec!["snat to 203.0.113.100"]);
        assert_eq!(out.after.mark, NODE_SUBNET_MARK);
        assert!(
            out.rules()
                .iter()
                .any(|r| r.contains("AllowInternetOutBound")),
            "{out}"
        );
        // The internet to a node: DenyAllInBound.
        let inb = traced(
            &st,
            Packet::tcp("203.0.113.7", 40000, "10.224.0.5", 7777)
                .iif("inet")
                .oif("n1"),
        );
        assert_eq!(inb.verdict, Final::Drop);
        assert!(
            inb.rules().last().unwrap().contains("DenyAllInBound"),
            "{inb}"
        );
        // An NSG deny from the VM subnet to port 7777 wins over AllowVnetInBound.
        nsg::add(
            &mut st.nsg,
            nsg::NsgRule {
                priority: 200,
                direction: nsg::Direction::Inbound,
                access: nsg::Access::Deny,
                source: Some("10.225.0.0/24".parse().unwrap()),
                destination: None,
                port: Some(7777),
                protocol: Some(nsg::Protocol::Tcp),
            },
        )
        .unwrap();
        let vm = Packet::tcp("10.225.0.4", 40000, "10.224.0.5", 7777)
            .iif("vm")
            .oif("n1");
        let t = traced(&st, vm.clone());
        assert_eq!(t.verdict, Final::Drop);
        assert!(
            t.rules().last().unwrap().contains("deny-inbound-200"),
            "{t}"
        );
        let other_port = traced(
            &st,
            Packet::tcp("10.225.0.4", 40000, "10.224.0.5", 80)
                .iif("vm")
                .oif("n1"),
        );
        assert_eq!(other_port.verdict, Final::Accept);
        // Replies of an allowed flow pass whatever the NSG says.
        let reply = traced(&st, vm.state(aksnet_nft::CtState::Established));
        assert_eq!(reply.verdict, Final::Accept);
        // The NSG change is a rewrite of nsg_in alone.
        let before = desired_nft(&sample_state("kubenet", None, 2, 1));
        let batch = aksnet_nft::diff::diff(&before, &desired_nft(&st));
        assert!(
            batch
                .to_string()
                .starts_with("flush chain ip aksnet_lab nsg_in\n"),
            "{batch}"
        );
        fake.apply(&batch).unwrap();
        assert_eq!(fake.table(&before.id()).unwrap(), desired_nft(&st));
        let (fab, node) = plug_node_lines(&st, 3, "10.224.0.6".parse().unwrap());
        assert_eq!(
            fab[0],
            "link add name n3 type veth peer name eth0 netns aksnet-lab-t-node-3"
        );
        assert_eq!(node[1], "addr add 10.224.0.6/16 dev eth0");
        assert_eq!(node[3], "route add default via 10.224.0.1");
        let u: Vec<String> = unreachable_ranges(&st)
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert!(u.contains(&"10.224.0.0/12".to_string()) && u.contains(&"10.0.0.0/8".to_string()));
    }
}
