use super::*;
use proptest::prelude::*;
use serde_json::json;

fn rc(subnet: &str) -> RangeConf {
    RangeConf {
        subnet: subnet.into(),
        range_start: None,
        range_end: None,
        gateway: None,
    }
}

fn conf(v: serde_json::Value) -> NetConf {
    serde_json::from_value(v).unwrap()
}

#[test]
fn defaults_like_host_local() {
    let r = Range::from_conf(&rc("10.244.1.0/24")).unwrap();
    assert_eq!(r.start.to_string(), "10.244.1.1");
    assert_eq!(r.end.to_string(), "10.244.1.254");
    assert_eq!(r.gateway.unwrap().to_string(), "10.244.1.1");
    assert_eq!(r.capacity(), 253);
    let r6 = Range::from_conf(&rc("fd00::/120")).unwrap();
    assert_eq!(r6.end.to_string(), "fd00::ff");
    assert_eq!(r6.capacity(), 254);
}

#[test]
fn rejects_bad_ranges() {
    for (s, bad) in [
        ("10.244.1.5/24", "host bits"),
        ("10.244.1.0/31", "too small"),
        ("nope", "not a CIDR"),
    ] {
        let e = Range::from_conf(&rc(s)).unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.contains(bad), "{}", e.msg);
    }
    let mut c = rc("10.0.0.0/24");
    c.range_start = Some("10.0.1.5".parse().unwrap());
    assert!(Range::from_conf(&c).unwrap_err().msg.contains("outside"));
    let mut c = rc("10.0.0.0/24");
    c.range_start = Some("10.0.0.9".parse().unwrap());
    c.range_end = Some("10.0.0.3".parse().unwrap());
    assert!(Range::from_conf(&c).unwrap_err().msg.contains("after"));
}

#[test]
fn range_sets_from_config_runtime_and_legacy() {
    let c = conf(json!({"cniVersion": "1.0.0", "name": "n",
        "ipam": {"type": "aksnet-ipam", "ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "fd00::/64"}]]}}));
    let ipam = IpamConf::from_netconf(&c).unwrap();
    let sets = ipam.range_sets(&c).unwrap();
    assert_eq!(sets.len(), 2);
    assert_eq!(ipam.store_dir("n"), "/var/lib/cni/networks/n");

    let c = conf(json!({"cniVersion": "1.0.0", "name": "n",
        "runtimeConfig": {"ipRanges": [[{"subnet": "10.9.0.0/24"}]]},
        "ipam": {"type": "aksnet-ipam", "subnet": "10.1.0.0/24", "dataDir": "/tmp/x/"}}));
    let ipam = IpamConf::from_netconf(&c).unwrap();
    assert_eq!(
        ipam.range_sets(&c).unwrap()[0].0[0].subnet.to_string(),
        "10.9.0.0/24"
    );
    assert_eq!(ipam.store_dir("n"), "/tmp/x/n");

    let c = conf(json!({"cniVersion": "1.0.0", "name": "n",
        "ipam": {"type": "aksnet-ipam", "subnet": "10.1.0.0/24"}}));
    let ipam = IpamConf::from_netconf(&c).unwrap();
    assert_eq!(ipam.range_sets(&c).unwrap().len(), 1);

    for bad in [
        json!({"type": "x"}),
        json!({"type": "x", "ranges": [[]]}),
        json!({"type": "x", "ranges": [[{"subnet": "10.1.0.0/24"}, {"subnet": "fd00::/64"}]]}),
        json!({"type": "x", "ranges": [[{"subnet": "10.1.0.0/24"}, {"subnet": "10.1.0.0/25"}]]}),
        json!({"type": "x", "ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.1.0.0/25"}]]}),
    ] {
        let c = conf(json!({"cniVersion": "1.0.0", "name": "n", "ipam": bad}));
        let ipam = IpamConf::from_netconf(&c).unwrap();
        assert_eq!(ipam.range_sets(&c).unwrap_err().code, 7, "{bad}");
    }
    let c = conf(json!({"cniVersion": "1.0.0", "name": "n", "ipam": {"ranges": 5}}));
    assert_eq!(IpamConf::from_netconf(&c).unwrap_err().code, 7);
}

#[test]
fn candidate_order_matches_host_local() {
    let mut c = rc("10.0.0.0/29");
    c.gateway = Some("10.0.0.3".parse().unwrap());
    let set = RangeSet(vec![Range::from_conf(&c).unwrap()]);
    let all: Vec<String> = set.candidates(None).map(|i| i.to_string()).collect();
    assert_eq!(
        all,
        ["10.0.0.1", "10.0.0.2", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
    );
    let from: Vec<String> = set
        .candidates(Some("10.0.0.4".parse().unwrap()))
        .map(|i| i.to_string())
        .collect();
    assert_eq!(
        from,
        ["10.0.0.5", "10.0.0.6", "10.0.0.1", "10.0.0.2", "10.0.0.4"]
    );
    // A last-reserved address outside the set starts from the beginning.
    assert_eq!(
        set.candidates(Some("192.168.0.1".parse().unwrap()))
            .next()
            .unwrap()
            .to_string(),
        "10.0.0.1"
    );
    let used: HashSet<IpAddr> = ["10.0.0.5", "10.0.0.6"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(
        set.next_free(Some("10.0.0.4".parse().unwrap()), &used)
            .unwrap()
            .to_string(),
        "10.0.0.1"
    );
}

#[test]
fn requested_from_all_sources() {
    let c = conf(json!({"cniVersion": "1.0.0", "name": "n",
        "args": {"cni": {"ips": ["10.0.0.8"]}},
        "runtimeConfig": {"ips": ["10.0.0.9/24", "10.0.0.8"]}}));
    let a = CniArgs::parse("IP=10.0.0.7").unwrap();
    let ips: Vec<String> = requested_ips(&c, &a)
        .unwrap()
        .iter()
        .map(|i| i.to_string())
        .collect();
    assert_eq!(ips, ["10.0.0.7", "10.0.0.8", "10.0.0.9"]);
    let bad = conf(json!({"cniVersion": "1.0.0", "name": "n", "runtimeConfig": {"ips": [5]}}));
    assert_eq!(
        requested_ips(&bad, &CniArgs::default()).unwrap_err().code,
        7
    );
    let bad = conf(json!({"cniVersion": "1.0.0", "name": "n", "runtimeConfig": {"ips": "x"}}));
    assert_eq!(
        requested_ips(&bad, &CniArgs::default()).unwrap_err().code,
        7
    );
}

#[test]
fn owner_files_and_gc() {
    assert_eq!(owner_content("abc", "eth0"), "abc\r\neth0");
    assert_eq!(
        parse_owner("abc\r\neth0"),
        Some(("abc".into(), Some("eth0".into())))
    );
    assert_eq!(parse_owner("abc"), Some(("abc".into(), None)));
    assert_eq!(parse_owner("abc\n"), Some(("abc".into(), None)));
    assert_eq!(parse_owner(""), None);
    let allocs = vec![
        Allocation {
            ip: "10.0.0.2".parse().unwrap(),
            container_id: "a".into(),
            ifname: Some("eth0".into()),
        },
        Allocation {
            ip: "10.0.0.3".parse().unwrap(),
            container_id: "b".into(),
            ifname: Some("eth0".into()),
        },
        Allocation {
            ip: "10.0.0.4".parse().unwrap(),
            container_id: "c".into(),
            ifname: None,
        },
        Allocation {
            ip: "10.0.0.5".parse().unwrap(),
            container_id: "a".into(),
            ifname: Some("eth1".into()),
        },
    ];
    let valid = vec![
        Attachment {
            container_id: "a".into(),
            ifname: "eth0".into(),
        },
        Attachment {
            container_id: "c".into(),
            ifname: "eth0".into(),
        },
    ];
    let s: Vec<String> = stale(&allocs, &valid)
        .iter()
        .map(|a| a.ip.to_string())
        .collect();
    assert_eq!(s, ["10.0.0.3", "10.0.0.5"]);
    assert!(allocs[2].owned_by("c", "eth9"));
    assert!(!allocs[0].owned_by("a", "eth1"));
}

#[test]
fn resolv_conf() {
    let d = parse_resolv_conf(
        "# c\nnameserver 10.0.0.10\nnameserver 8.8.8.8\nsearch a b\ndomain x\noptions ndots:5\n",
    );
    assert_eq!(d.nameservers, ["10.0.0.10", "8.8.8.8"]);
    assert_eq!(d.search, ["a", "b"]);
    assert_eq!(d.domain.as_deref(), Some("x"));
    assert_eq!(d.options, ["ndots:5"]);
}

proptest! {
    /// Every allocatable address is a candidate exactly once, whatever the
    /// range bounds, gateway and last reserved address.
    #[test]
    fn candidates_visit_each_address_once(
        start in 1u32..40, len in 0u32..40, gw in 0u32..80, last in 0u32..90, split in 0u32..40,
    ) {
        let end = start + len;
        let mk = |s: u32, e: u32| RangeConf {
            subnet: "10.0.0.0/25".into(),
            range_start: Some(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + s))),
            range_end: Some(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + e))),
            gateway: Some(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + gw))),
        };
        // One range, or two adjacent ones when split falls inside.
        let mut ranges = vec![];
        if split > start && split <= end {
            ranges.push(Range::from_conf(&mk(start, split - 1)).unwrap());
            ranges.push(Range::from_conf(&mk(split, end)).unwrap());
        } else {
            ranges.push(Range::from_conf(&mk(start, end)).unwrap());
        }
        let set = RangeSet(ranges);
        let last_ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + last));
        let got: Vec<IpAddr> = set.candidates(Some(last_ip)).collect();
        let uniq: HashSet<IpAddr> = got.iter().copied().collect();
        prop_assert_eq!(uniq.len(), got.len());
        prop_assert_eq!(got.len() as u128, set.capacity());
        let gw_ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + gw));
        prop_assert!(!uniq.contains(&gw_ip));
        if set.range_for(last_ip).is_some() && set.capacity() > 0 && last_ip != gw_ip {
            // Round robin: the last reserved address comes last.
            prop_assert_eq!(*got.last().unwrap(), last_ip);
        }
        // Allocating until exhaustion never repeats an address.
        let mut used = HashSet::new();
        let mut last = None;
        while let Some(ip) = set.next_free(last, &used) {
            prop_assert!(used.insert(ip));
            last = Some(ip);
        }
        prop_assert_eq!(used.len() as u128, set.capacity());
    }
}

#[test]
fn last_reserved_at_the_end_of_a_range_wraps_to_the_next_and_stops() {
    // Azure-style pool: several single-address entries in one set.
    let mk = |a: &str, b: &str| RangeConf {
        subnet: "10.224.0.0/16".into(),
        range_start: Some(a.parse().unwrap()),
        range_end: Some(b.parse().unwrap()),
        gateway: None,
    };
    let set = RangeSet(vec![
        Range::from_conf(&mk("10.224.0.30", "10.224.0.31")).unwrap(),
        Range::from_conf(&mk("10.224.0.50", "10.224.0.50")).unwrap(),
    ]);
    for last in ["10.224.0.31", "10.224.0.50", "10.224.0.30"] {
        let got: Vec<String> = set
            .candidates(Some(last.parse().unwrap()))
            .take(10)
            .map(|i| i.to_string())
            .collect();
        assert_eq!(got.len(), 3, "last {last}: {got:?}");
        assert_eq!(got.last().map(String::as_str), Some(last));
    }
}
