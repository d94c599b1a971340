//! One test per rule: each builds the smallest design that breaks the rule
//! and checks the code appears, while the AKS default design stays clean.

use proptest::prelude::*;

use super::*;
use crate::cidr::{parse_cidr, Ipv4Net};
use crate::spec::{MaxSurge, NodePool, Sourced};

fn net(s: &str) -> Ipv4Net {
    parse_cidr(s).unwrap()
}

fn base(plugin: NetworkPlugin) -> ClusterNetwork {
    SpecInput::default().resolve(plugin, false).unwrap().network
}

fn with(plugin: NetworkPlugin, edit: impl FnOnce(&mut ClusterNetwork)) -> Plan {
    let mut n = base(plugin);
    edit(&mut n);
    plan(&n)
}

fn error_codes(p: &Plan) -> Vec<&str> {
    p.errors.iter().map(|f| f.code.as_str()).collect()
}

fn warning_codes(p: &Plan) -> Vec<&str> {
    p.warnings.iter().map(|f| f.code.as_str()).collect()
}

#[track_caller]
fn assert_error(p: &Plan, code: &str) -> String {
    let found = p.errors.iter().find(|f| f.code == code);
    assert!(found.is_some(), "expected {code}, got {:?}", p.errors);
    assert!(!p.valid);
    found.unwrap().message.clone()
}

#[test]
fn aks_defaults_are_valid_for_every_model() {
    for m in NetworkPlugin::ALL {
        let p = plan(&base(m));
        assert!(p.valid, "{m}: {:?}", p.errors);
    }
}

#[test]
fn azure_worked_example_from_the_aks_docs() {
    let input = SpecInput {
        network_plugin: Some(Sourced::new("azure".into(), "--network-plugin")),
        subnet_cidr: Some(Sourced::new("10.240.0.0/16".into(), "--subnet-cidr")),
        vnet_cidrs: vec![Sourced::new("10.240.0.0/12".into(), "--vnet-cidr")],
        node_count: Some(Sourced::new(50, "--node-count")),
        max_pods: Some(Sourced::new(30, "--max-pods")),
        ..SpecInput::default()
    };
    let p = plan_input(&input).unwrap();
    assert!(p.valid, "{:?}", p.errors);
    assert_eq!(p.capacity.required_subnet_ips, 1581);
    assert_eq!(p.capacity.min_subnet_prefix, 21);
    assert_eq!(p.capacity.subnet_usable_ips, Some(65531));

    let small = SpecInput {
        subnet_cidr: Some(Sourced::new("10.240.0.0/22".into(), "--subnet-cidr")),
        ..input
    };
    let p = plan_input(&small).unwrap();
    let msg = assert_error(&p, "subnet-too-small");
    for part in [
        "1,581",
        "1,019",
        "/21",
        "10.240.0.0/22",
        "(50 nodes + 1 surge) × (1 + 30 max pods)",
    ] {
        assert!(msg.contains(part), "{part} missing from: {msg}");
    }
}

#[test]
fn rule_cidr_host_bits_set() {
    let p = with(NetworkPlugin::Overlay, |n| {
        n.pod_cidr = Some(net("10.244.0.1/16"))
    });
    let m = assert_error(&p, "cidr-host-bits-set");
    assert!(m.contains("10.244.0.0/16"), "{m}");
    let p = with(NetworkPlugin::Azure, |n| {
        n.service_cidr = net("10.0.0.7/16")
    });
    assert_error(&p, "cidr-host-bits-set");
}

#[test]
fn rule_reserved_range() {
    for (what, edit) in [
        (
            "pod",
            Box::new(|n: &mut ClusterNetwork| n.pod_cidr = Some(net("172.30.0.0/16")))
                as Box<dyn Fn(&mut ClusterNetwork)>,
        ),
        (
            "svc",
            Box::new(|n: &mut ClusterNetwork| {
                n.service_cidr = net("169.254.0.0/16");
                n.dns_service_ip = "169.254.0.10".parse().unwrap();
            }),
        ),
        (
            "vnet",
            Box::new(|n: &mut ClusterNetwork| {
                n.vnet_cidrs = vec![net("192.0.0.0/16")];
                n.subnet_cidr = net("192.0.2.0/24");
            }),
        ),
        (
            "wide pod",
            Box::new(|n: &mut ClusterNetwork| n.pod_cidr = Some(net("172.16.0.0/12"))),
        ),
    ] {
        let p = with(NetworkPlugin::Kubenet, edit);
        assert!(
            error_codes(&p).contains(&"reserved-range"),
            "{what}: {:?}",
            p.errors
        );
    }
}

#[test]
fn rule_vnet_too_large_and_overlapping_prefixes() {
    let p = with(NetworkPlugin::Overlay, |n| {
        n.vnet_cidrs = vec![net("10.0.0.0/7")]
    });
    assert_error(&p, "vnet-too-large");
    let p = with(NetworkPlugin::Overlay, |n| {
        n.vnet_cidrs.push(net("10.224.0.0/16"))
    });
    assert_error(&p, "vnet-cidrs-overlap");
}

#[test]
fn rule_subnet_outside_vnet_and_too_narrow() {
    let p = with(NetworkPlugin::Overlay, |n| {
        n.subnet_cidr = net("192.168.0.0/24")
    });
    assert_error(&p, "subnet-outside-vnet");
    let p = with(NetworkPlugin::Overlay, |n| {
        n.subnet_cidr = net("10.224.0.0/30");
        n.node_pools[0].count = 1;
        n.node_pools[0].max_surge = MaxSurge::Count(0);
    });
    assert_error(&p, "subnet-prefix-too-long");
}

#[test]
fn rule_pod_subnet_placement() {
    let p = with(NetworkPlugin::Azure, |n| {
        n.pod_subnet_cidr = Some(net("192.168.0.0/16"))
    });
    assert_error(&p, "pod-subnet-outside-vnet");
    let p = with(NetworkPlugin::Azure, |n| {
        n.pod_subnet_cidr = Some(net("10.224.128.0/17"))
    });
    assert_error(&p, "pod-subnet-overlaps-subnet");
    let p = with(NetworkPlugin::Overlay, |n| {
        n.pod_subnet_cidr = Some(net("10.225.0.0/16"))
    });
    assert_error(&p, "pod-subnet-requires-azure");
    let p = with(NetworkPlugin::Azure, |n| {
        n.pod_subnet_cidr = Some(net("10.225.0.0/16"))
    });
    assert!(p.valid, "{:?}", p.errors);
}

#[test]
fn rule_pod_cidr_overlaps_vnet() {
    let p = with(NetworkPlugin::Overlay, |n| {
        n.pod_cidr = Some(net("10.224.0.0/16"))
    });
    assert_error(&p, "pod-cidr-overlaps-vnet");
    // Azure CNI has no pod CIDR: the same value is only ignored.
    let p = with(NetworkPlugin::Azure, |n| {
        n.pod_cidr = Some(net("10.224.0.0/16"))
    });
    assert!(p.valid);
    assert!(warning_codes(&p).contains(&"pod-cidr-ignored"));
}

#[test]
fn rule_service_cidr_overlaps() {
    let p = with(NetworkPlugin::Kubenet, |n| {
        n.service_cidr = net("10.244.0.0/16");
        n.dns_service_ip = "10.244.0.10".parse().unwrap();
    });
    assert_error(&p, "service-cidr-overlaps-pod-cidr");
    let p = with(NetworkPlugin::Azure, |n| {
        n.service_cidr = net("10.224.0.0/16");
        n.dns_service_ip = "10.224.0.10".parse().unwrap();
    });
    assert_error(&p, "service-cidr-overlaps-vnet");
}

#[test]
fn rule_service_cidr_too_large() {
    let p = with(NetworkPlugin::Overlay, |n| {
        n.service_cidr = net("10.0.0.0/11")
    });
    let m = assert_error(&p, "service-cidr-too-large");
    assert!(m.contains("10.0.0.0/11"));
    let p = with(NetworkPlugin::Overlay, |n| {
        n.service_cidr = net("10.0.0.0/12")
    });
    assert!(!error_codes(&p).contains(&"service-cidr-too-large"));
}

#[test]
fn rule_dns_service_ip() {
    let p = with(NetworkPlugin::Overlay, |n| {
        n.dns_service_ip = "10.1.0.10".parse().unwrap()
    });
    let m = assert_error(&p, "dns-service-ip-outside-service-cidr");
    assert!(m.contains("10.1.0.10") && m.contains("10.0.0.0/16"), "{m}");
    for bad in ["10.0.0.0", "10.0.0.1", "10.0.255.255"] {
        let p = with(NetworkPlugin::Overlay, |n| {
            n.dns_service_ip = bad.parse().unwrap()
        });
        let m = assert_error(&p, "dns-service-ip-reserved");
        assert!(m.contains(bad), "{m}");
    }
    let p = with(NetworkPlugin::Overlay, |n| {
        n.dns_service_ip = "10.0.0.2".parse().unwrap()
    });
    assert!(p.valid);
}

#[test]
fn rule_max_pods_range_and_pool_capacity() {
    for bad in [9, 251, 0] {
        let p = with(NetworkPlugin::Azure, |n| n.node_pools[0].max_pods = bad);
        assert_error(&p, "max-pods-out-of-range");
    }
    let p = with(NetworkPlugin::Azure, |n| n.node_pools[0].max_pods = 10);
    assert!(p.valid, "3 nodes × 10 pods = 30 is allowed: {:?}", p.errors);
    let p = with(NetworkPlugin::Azure, |n| {
        n.node_pools[0].max_pods = 10;
        n.node_pools[0].count = 2;
    });
    let m = assert_error(&p, "pool-pod-capacity-too-small");
    assert!(m.contains("use 3 nodes"), "{m}");
}

#[test]
fn rule_node_limits() {
    let p = with(NetworkPlugin::Kubenet, |n| n.node_pools[0].count = 400);
    let m = assert_error(&p, "route-table-limit-exceeded");
    assert!(m.contains("401 routes") && m.contains("holds 400"), "{m}");
    let p = with(NetworkPlugin::Kubenet, |n| n.node_pools[0].count = 399);
    assert!(!error_codes(&p).contains(&"route-table-limit-exceeded"));
    let p = with(NetworkPlugin::Overlay, |n| n.node_pools[0].count = 400);
    assert!(!error_codes(&p).contains(&"route-table-limit-exceeded"));

    let big = |n: &mut ClusterNetwork, pools: u32, count: u32| {
        n.vnet_cidrs = vec![net("10.0.0.0/8")];
        n.subnet_cidr = net("10.128.0.0/12");
        n.pod_cidr = Some(net("100.64.0.0/10"));
        n.service_cidr = net("192.168.0.0/16");
        n.dns_service_ip = "192.168.0.10".parse().unwrap();
        n.node_pools = (0..pools)
            .map(|i| NodePool {
                name: format!("p{i}"),
                count,
                max_pods: 30,
                max_surge: MaxSurge::Count(1),
                ..NodePool::default()
            })
            .collect();
    };
    let p = with(NetworkPlugin::Overlay, |n| big(n, 1, 1001));
    assert_error(&p, "pool-node-limit-exceeded");
    let p = with(NetworkPlugin::Overlay, |n| big(n, 6, 1000));
    assert_error(&p, "cluster-node-limit-exceeded");
    assert!(!error_codes(&p).contains(&"pool-node-limit-exceeded"));
    let p = with(NetworkPlugin::Overlay, |n| big(n, 5, 1000));
    assert!(p.valid, "{:?}", p.errors);
    let p = with(NetworkPlugin::Overlay, |n| n.node_pools[0].count = 0);
    assert_error(&p, "no-nodes");
}

#[test]
fn rule_subnet_too_small_counts_nodes_and_surge() {
    // A /29 keeps 3 of its 8 addresses; 3 nodes + 1 surge need 4.
    let p = with(NetworkPlugin::Kubenet, |n| {
        n.subnet_cidr = net("10.224.0.0/29")
    });
    let m = assert_error(&p, "subnet-too-small");
    assert!(
        m.contains("3 usable") && m.contains("needs 4") && m.contains("/29"),
        "{m}"
    );
    let p = with(NetworkPlugin::Kubenet, |n| {
        n.subnet_cidr = net("10.224.0.0/29");
        n.node_pools[0].max_surge = MaxSurge::Count(0);
    });
    assert!(p.valid, "{:?}", p.errors);
    assert_eq!(p.capacity.min_subnet_prefix, 29);
}

#[test]
fn rule_pod_cidr_too_small() {
    let p = with(NetworkPlugin::Overlay, |n| {
        n.pod_cidr = Some(net("10.244.0.0/25"))
    });
    assert_error(&p, "pod-cidr-too-small");
    // A /23 holds 2 blocks; 3 nodes + 1 surge need 4.
    let p = with(NetworkPlugin::Kubenet, |n| {
        n.pod_cidr = Some(net("10.244.0.0/23"))
    });
    let m = assert_error(&p, "pod-cidr-too-small");
    assert!(
        m.contains("holds 2") && m.contains("need 4") && m.contains("/22"),
        "{m}"
    );
    let p = with(NetworkPlugin::Kubenet, |n| {
        n.pod_cidr = Some(net("10.244.0.0/22"))
    });
    assert!(p.valid, "{:?}", p.errors);
}

#[test]
fn rule_pod_subnet_too_small() {
    // 4 nodes × 48 addresses (max pods 30 at full load) = 192 > 251? no; use a /26.
    let p = with(NetworkPlugin::Azure, |n| {
        n.pod_subnet_cidr = Some(net("10.225.0.0/26"));
    });
    let m = assert_error(&p, "pod-subnet-too-small");
    assert!(
        m.contains("59 usable") && m.contains("need 192") && m.contains("/24"),
        "{m}"
    );
    assert_eq!(p.capacity.pod_subnet_required_ips, Some(192));
    assert_eq!(p.capacity.min_pod_subnet_prefix, Some(24));
    // With a pod subnet the node subnet holds only nodes.
    assert_eq!(p.capacity.required_subnet_ips, 4);
}

#[test]
fn warnings_kubenet_retirement_and_overlay_public_pod_cidr() {
    let p = plan(&base(NetworkPlugin::Kubenet));
    assert!(p.valid);
    assert!(warning_codes(&p).contains(&"kubenet-retirement"));
    assert!(!warning_codes(&plan(&base(NetworkPlugin::Overlay))).contains(&"kubenet-retirement"));
    let p = with(NetworkPlugin::Overlay, |n| {
        n.pod_cidr = Some(net("11.0.0.0/16"))
    });
    assert!(p.valid);
    assert!(warning_codes(&p).contains(&"overlay-pod-cidr-not-private"));
    let p = with(NetworkPlugin::Overlay, |n| {
        n.pod_cidr = Some(net("100.64.0.0/16"))
    });
    assert!(!warning_codes(&p).contains(&"overlay-pod-cidr-not-private"));
}

#[test]
fn warning_cluster_pod_limit() {
    let p = with(NetworkPlugin::Overlay, |n| {
        n.vnet_cidrs = vec![net("10.0.0.0/8")];
        n.subnet_cidr = net("10.128.0.0/16");
        n.pod_cidr = Some(net("100.64.0.0/10"));
        n.node_pools[0].count = 1000;
    });
    assert!(
        warning_codes(&p).contains(&"cluster-pod-limit"),
        "{:?}",
        p.warnings
    );
}

#[test]
fn capacity_of_the_defaults() {
    let k = plan(&base(NetworkPlugin::Kubenet)).capacity;
    // The default /16 pod CIDR has 256 blocks: it binds before the 400 routes.
    assert_eq!((k.max_nodes, k.max_nodes_limited_by), (255, Limit::PodCidr));
    assert_eq!(k.route_table_entries, 4);
    assert_eq!(k.required_subnet_ips, 4);
    assert_eq!(k.service_ips, 65534);
    assert_eq!(k.max_pods, 255 * 110);
    let wide = with(NetworkPlugin::Kubenet, |n| {
        n.pod_cidr = Some(net("10.244.0.0/14"))
    })
    .capacity;
    assert_eq!(
        (wide.max_nodes, wide.max_nodes_limited_by),
        (399, Limit::RouteTable)
    );
    let o = plan(&base(NetworkPlugin::Overlay)).capacity;
    assert_eq!((o.max_nodes, o.max_nodes_limited_by), (255, Limit::PodCidr));
    assert_eq!(o.route_table_entries, 0);
    let a = plan(&base(NetworkPlugin::Azure)).capacity;
    assert_eq!(a.required_subnet_ips, 4 * 31);
    assert_eq!(
        (a.max_nodes, a.max_nodes_limited_by),
        (65531 / 31 - 1, Limit::Subnet)
    );
    assert_eq!(a.pod_ips_from_subnet, 4 * 30);
}

#[test]
fn compare_gives_each_model_its_defaults() {
    let plans = compare(&SpecInput::default()).unwrap();
    let got: Vec<_> = plans
        .iter()
        .map(|p| (p.network_plugin, p.capacity.max_pods_per_node))
        .collect();
    assert_eq!(
        got,
        vec![
            (NetworkPlugin::Kubenet, 110),
            (NetworkPlugin::Azure, 30),
            (NetworkPlugin::Overlay, 250)
        ]
    );
    let input = SpecInput {
        max_pods: Some(Sourced::new(50, "--max-pods")),
        ..SpecInput::default()
    };
    assert!(compare(&input)
        .unwrap()
        .iter()
        .all(|p| p.capacity.max_pods_per_node == 50));
}

#[test]
fn json_contract_field_names() {
    let v = serde_json::to_value(plan(&base(NetworkPlugin::Azure))).unwrap();
    for k in ["valid", "network_plugin", "errors", "warnings", "capacity"] {
        assert!(v.get(k).is_some(), "{k}");
    }
    for k in [
        "required_subnet_ips",
        "subnet_usable_ips",
        "max_nodes",
        "max_pods",
        "route_table_entries",
        "min_subnet_prefix",
    ] {
        assert!(v["capacity"][k].is_u64(), "{k}");
    }
    assert_eq!(v["network_plugin"], "azure");
}

fn any_net() -> impl Strategy<Value = Ipv4Net> {
    (any::<u32>(), 0u8..=32).prop_map(|(a, p)| Ipv4Net::new(a.into(), p).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn planner_is_total_and_consistent(
        plugin in prop::sample::select(NetworkPlugin::ALL.to_vec()),
        vnet in any_net(), subnet in any_net(), pod in any_net(), svc in any_net(),
        pod_subnet in prop::option::of(any_net()),
        dns in any::<u32>(), count in 0u32..3000, max_pods in 0u32..300, surge in 0u32..50,
        limit in 0u32..1000,
    ) {
        let n = ClusterNetwork {
            ..base(plugin)
        };
        let n = ClusterNetwork {
            network_plugin: plugin,
            vnet_cidrs: vec![vnet],
            subnet_cidr: subnet,
            pod_subnet_cidr: pod_subnet,
            pod_cidr: Some(pod),
            service_cidr: svc,
            dns_service_ip: dns.into(),
            node_pools: vec![NodePool { name: "p".into(), count, max_pods, max_surge: MaxSurge::Count(surge), ..NodePool::default() }],
            route_table_limit: limit,
            ..n
        };
        let p = plan(&n);
        let c = &p.capacity;
        prop_assert_eq!(p.valid, p.errors.is_empty());
        if p.valid {
            prop_assert!(Some(c.required_subnet_ips) <= c.subnet_usable_ips);
            prop_assert!(c.max_nodes >= c.node_count, "{:?}", c);
            prop_assert!(crate::cidr::contains_addr(&svc, n.dns_service_ip));
            if plugin == NetworkPlugin::Kubenet {
                prop_assert!(c.route_table_entries <= u64::from(limit));
            }
        }
        // The smallest fitting subnet really fits.
        prop_assert!(capacity::usable_ips(&Ipv4Net::new(0.into(), c.min_subnet_prefix).unwrap()) >= c.required_subnet_ips
            || c.min_subnet_prefix == 0);
        for f in p.errors.iter().chain(&p.warnings) {
            prop_assert!(f.code.chars().all(|ch| ch.is_ascii_lowercase() || ch == '-'), "{}", f.code);
        }
    }
}

mod aks_rules {
    use super::*;
    use crate::spec::PoolSubnet;

    fn flags(plugin: NetworkPlugin, edit: impl FnOnce(&mut ClusterNetwork)) -> Plan {
        with(plugin, edit)
    }

    #[test]
    fn network_policy_engines() {
        let p = flags(NetworkPlugin::Kubenet, |n| {
            n.network_policy = Some("azure".into())
        });
        let m = assert_error(&p, "network-policy-unsupported");
        assert!(m.contains("Calico"), "{m}");
        assert!(
            flags(NetworkPlugin::Kubenet, |n| n.network_policy =
                Some("calico".into()))
            .valid
        );
        let p = flags(NetworkPlugin::Overlay, |n| {
            n.network_dataplane = Some("cilium".into());
            n.network_policy = Some("calico".into());
        });
        assert_error(&p, "cilium-dataplane-policy");
        let p = flags(NetworkPlugin::Overlay, |n| {
            n.network_policy = Some("cilium".into())
        });
        assert_error(&p, "cilium-dataplane-policy");
        let p = flags(NetworkPlugin::Kubenet, |n| {
            n.network_dataplane = Some("cilium".into())
        });
        assert_error(&p, "cilium-requires-azure-cni");
        let ok = flags(NetworkPlugin::Overlay, |n| {
            n.network_dataplane = Some("cilium".into());
            n.network_policy = Some("cilium".into());
        });
        assert!(ok.valid, "{:?}", ok.errors);
        assert_error(
            &flags(NetworkPlugin::Azure, |n| {
                n.network_policy = Some("weave".into())
            }),
            "network-policy-unknown",
        );
        assert_error(
            &flags(NetworkPlugin::Azure, |n| {
                n.network_dataplane = Some("ebpf".into())
            }),
            "network-dataplane-unknown",
        );
    }

    #[test]
    fn outbound_rules() {
        let p = flags(NetworkPlugin::Overlay, |n| {
            n.outbound.outbound_type = Some("userDefinedRouting".into())
        });
        assert_error(&p, "udr-needs-own-subnet");
        let p = flags(NetworkPlugin::Overlay, |n| {
            n.outbound.outbound_type = Some("userDefinedRouting".into());
            n.byo_subnet = true;
            n.node_pools[0].subnet = Some(PoolSubnet {
                id: "s".into(),
                cidr: Some(net("10.224.0.0/16")),
                route_table: false,
            });
        });
        assert!(p.valid);
        assert!(warning_codes(&p).contains(&"udr-route-table-not-seen"));
        assert_error(
            &flags(NetworkPlugin::Overlay, |n| {
                n.outbound.outbound_type = Some("userAssignedNATGateway".into())
            }),
            "nat-gateway-needs-own-subnet",
        );
        let p = flags(NetworkPlugin::Overlay, |n| {
            n.outbound.outbound_type = Some("managedNATGateway".into());
            n.outbound.nat_managed_ips = Some(17);
        });
        assert_error(&p, "nat-gateway-out-of-range");
        assert_error(
            &flags(NetworkPlugin::Overlay, |n| {
                n.outbound.outbound_type = Some("vpn".into())
            }),
            "outbound-type-unknown",
        );
        assert_error(
            &flags(NetworkPlugin::Overlay, |n| {
                n.outbound.lb_managed_ips = Some(101)
            }),
            "outbound-ip-count-out-of-range",
        );
    }

    #[test]
    fn snat_ports() {
        // 21 nodes (20 + 1 surge) × 8,000 ports = 168,000 > 64,000 on one IP.
        let p = flags(NetworkPlugin::Overlay, |n| {
            n.node_pools[0].count = 20;
            n.outbound.lb_allocated_ports = Some(8000);
        });
        let m = assert_error(&p, "snat-ports-exhausted");
        assert!(
            m.contains("168,000")
                && m.contains("use 3 outbound IPs")
                && m.contains("at most 8 nodes"),
            "{m}"
        );
        let p = flags(NetworkPlugin::Overlay, |n| {
            n.node_pools[0].count = 20;
            n.outbound.lb_allocated_ports = Some(8000);
            n.outbound.lb_managed_ips = Some(3);
        });
        assert!(p.valid, "{:?}", p.errors);
        assert_error(
            &flags(NetworkPlugin::Overlay, |n| {
                n.outbound.lb_allocated_ports = Some(1001)
            }),
            "snat-ports-invalid",
        );
        let p = flags(NetworkPlugin::Overlay, |n| {
            n.pod_cidr = Some(net("100.64.0.0/10"));
            n.node_pools = (0..2)
                .map(|i| NodePool {
                    name: format!("p{i}"),
                    count: 1000,
                    max_pods: 30,
                    ..NodePool::default()
                })
                .collect();
        });
        assert!(warning_codes(&p).contains(&"snat-ports-automatic"));
        assert_eq!(aks::auto_ports_per_node(50), Some(1024));
        assert_eq!(aks::auto_ports_per_node(52), Some(512));
    }

    #[test]
    fn pools_vnet_and_route_table() {
        let p = flags(NetworkPlugin::Overlay, |n| {
            n.node_pools[0].count = 0;
            n.node_pools[0].mode = Some("System".into());
            n.node_pools.push(NodePool {
                name: "user".into(),
                count: 3,
                max_pods: 30,
                ..NodePool::default()
            });
        });
        assert_error(&p, "system-pool-empty");
        assert_error(
            &flags(NetworkPlugin::Kubenet, |n| n.route_table_limit = 1000),
            "route-table-limit-too-high",
        );
        // Azure CNI node subnet: 300 nodes × 250 pods take far more than 65,536.
        let p = flags(NetworkPlugin::Azure, |n| {
            n.vnet_cidrs = vec![net("10.0.0.0/8")];
            n.subnet_cidr = net("10.128.0.0/9");
            n.service_cidr = net("192.168.0.0/16");
            n.dns_service_ip = "192.168.0.10".parse().unwrap();
            n.node_pools[0].count = 300;
            n.node_pools[0].max_pods = 250;
        });
        assert_error(&p, "vnet-ip-limit-exceeded");
        let p = flags(NetworkPlugin::Azure, |n| {
            n.pod_subnet_cidr = Some(net("10.225.0.0/16"));
            n.vnet_cidrs = vec![net("10.224.0.0/12")];
            n.node_pools.push(NodePool {
                name: "own".into(),
                count: 1,
                max_pods: 30,
                pod_subnet: None,
                ..NodePool::default()
            });
            n.node_pools[0].pod_subnet = Some(PoolSubnet {
                id: "pods".into(),
                cidr: Some(net("10.226.0.0/16")),
                route_table: false,
            });
            n.pod_subnet_cidr = None;
        });
        assert_error(&p, "mixed-pod-subnet");
    }

    #[test]
    fn static_block_takes_whole_blocks() {
        let p = flags(NetworkPlugin::Azure, |n| {
            n.pod_subnet_cidr = Some(net("10.225.0.0/24"));
            n.node_pools[0].max_pods = 250;
            n.node_pools[0].count = 1;
            n.node_pools[0].pod_ip_allocation_mode = Some("StaticBlock".into());
        });
        let pod = p.capacity.subnets.iter().find(|u| u.role == "pod").unwrap();
        // 250 pods + 1 reserved → 16 blocks of 16 = 256 per node, 2 nodes (surge).
        assert_eq!(pod.required_ips, 512);
        assert_error(&p, "pod-subnet-too-small");
    }

    #[test]
    fn subnets_and_service_cidr() {
        // The AKS docs' pod-subnet example: VNet 10.0.0.0/8, default
        // service CIDR 10.0.0.0/16 outside every subnet: a warning only.
        let p = flags(NetworkPlugin::Azure, |n| {
            n.vnet_cidrs = vec![net("10.0.0.0/8")];
            n.subnet_cidr = net("10.240.0.0/16");
            n.pod_subnet_cidr = Some(net("10.241.0.0/16"));
        });
        assert!(p.valid, "{:?}", p.errors);
        assert!(warning_codes(&p).contains(&"service-cidr-in-vnet"));
        let p = flags(NetworkPlugin::Overlay, |n| {
            n.node_pools.push(NodePool {
                name: "b".into(),
                count: 1,
                max_pods: 30,
                ..NodePool::default()
            });
            n.node_pools[1].subnet = Some(PoolSubnet {
                id: "b".into(),
                cidr: Some(net("10.224.0.0/24")),
                route_table: false,
            });
        });
        assert_error(&p, "subnets-overlap");
        // A subnet known only by ID: capacity unknown, no subnet findings.
        let p = flags(NetworkPlugin::Azure, |n| {
            n.node_pools[0].subnet = Some(PoolSubnet {
                id: "/x/subnets/s".into(),
                cidr: None,
                route_table: false,
            });
        });
        assert_eq!(p.capacity.subnet_usable_ips, None);
        assert_eq!(p.capacity.unknown.len(), 1);
    }

    #[test]
    fn authorized_ranges_and_ip_families() {
        let p = flags(NetworkPlugin::Overlay, |n| {
            n.authorized_ip_ranges = (0..201).map(|i| format!("20.0.{}.0/24", i % 250)).collect()
        });
        assert_error(&p, "authorized-ip-ranges-too-many");
        assert_error(
            &flags(NetworkPlugin::Overlay, |n| {
                n.authorized_ip_ranges = vec!["20.0.0.0/33".into()]
            }),
            "authorized-ip-range-invalid",
        );
        assert_error(
            &flags(NetworkPlugin::Overlay, |n| {
                n.ip_families = vec!["IPv6".into()]
            }),
            "ipv6-only-unsupported",
        );
        // The documented conflicts.
        let ranged = |edit: fn(&mut ClusterNetwork)| {
            flags(NetworkPlugin::Overlay, |n| {
                n.authorized_ip_ranges = vec!["20.0.0.0/24".into()];
                edit(n);
            })
        };
        assert_error(
            &ranged(|n| n.private_cluster = true),
            "authorized-ip-ranges-private-cluster",
        );
        assert_error(
            &ranged(|n| n.load_balancer_sku = Some("Basic".into())),
            "authorized-ip-ranges-basic-lb",
        );
        let ok = ranged(|n| n.load_balancer_sku = Some("standard".into()));
        assert!(ok.errors.is_empty(), "{:?}", ok.errors);
        assert!(warning_codes(&ok).is_empty(), "{:?}", ok.warnings);
        assert!(
            warning_codes(&ranged(|n| n.authorized_ip_ranges.push("0.0.0.0/0".into())))
                .contains(&"authorized-ip-ranges-open")
        );
        assert!(warning_codes(&ranged(
            |n| n.authorized_ip_ranges = vec!["0.0.0.0/32".into()]
        ))
        .contains(&"authorized-ip-ranges-outbound-only"));
        assert!(warning_codes(&ranged(
            |n| n.outbound.outbound_type = Some("userDefinedRouting".into())
        ))
        .contains(&"authorized-ip-ranges-egress-ip"));
        // Without ranges none of them applies.
        let none = flags(NetworkPlugin::Overlay, |n| {
            n.private_cluster = true;
            n.load_balancer_sku = Some("basic".into());
        });
        assert!(!error_codes(&none)
            .iter()
            .any(|c| c.starts_with("authorized")));
        let p = flags(NetworkPlugin::Overlay, |n| {
            n.ip_families = vec!["IPv4".into(), "IPv6".into()];
            n.ipv6 = Some(crate::spec::Ipv6Design {
                service_cidr: Some("fd00::/64".parse().unwrap()),
                ..Default::default()
            });
        });
        assert_error(&p, "service-cidr-v6-too-large");
        assert!(
            flags(NetworkPlugin::Overlay, |n| n.ip_families =
                vec!["IPv4".into(), "IPv6".into()])
            .valid
        );
        assert_error(
            &flags(NetworkPlugin::Azure, |n| {
                n.ip_families = vec!["IPv4".into(), "IPv6".into()]
            }),
            "dual-stack-unsupported-plugin",
        );
    }
}
