//! The fake's state changes and refusals (the refusal classes were checked by
//! hand against nft 1.0.6 on kernel 6.18, see docs/nft.md).

use super::*;
use crate::diff;
use crate::expr::build::*;
use crate::expr::{Payload, Verdict};
use crate::model::{Chain, KeyType};

fn id() -> TableId {
    TableId::new(Family::Ip, "t")
}

fn base_table() -> Table {
    let mut t = Table::new(Family::Ip, "t");
    t.chain(
        "post",
        Chain::base(
            BaseChain::nat(Hook::Postrouting),
            vec![Rule::new([jump("masq")])],
        ),
    );
    t.chain("masq", Chain::regular(vec![Rule::new([Stmt::Masquerade])]));
    t.set(
        "pods",
        Set::new(vec![KeyType::Ipv4Addr]).elem(Value::Addr("10.0.0.1".parse().unwrap())),
    );
    t
}

fn kind(r: Result<(), DriverError>) -> ErrorKind {
    r.unwrap_err().kind
}

#[test]
fn create_then_dump() {
    let mut f = Fake::new();
    f.apply(&diff::create(&base_table())).unwrap();
    assert_eq!(
        f.dump(),
        "table ip t {\n\tset pods {\n\t\ttype ipv4_addr\n\t\telements = { 10.0.0.1 }\n\t}\n\tchain masq {\n\t\tmasquerade\n\t}\n\tchain post {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\tjump masq\n\t}\n}\n"
    );
    assert_eq!(f.table(&id()).unwrap(), base_table());
}

#[test]
fn refuses_missing_objects_and_leaves_state_untouched() {
    let mut f = Fake::new();
    let rule = |chain: &str, r: Rule| Command::AddRule {
        table: id(),
        chain: chain.into(),
        rule: r,
    };
    let mut b = Batch::new();
    b.push(rule("post", Rule::new([accept()])));
    assert_eq!(kind(f.apply(&b)), ErrorKind::NotFound, "no table");
    f.apply(&diff::create(&base_table())).unwrap();
    let before = f.dump();
    for bad in [
        rule("nope", Rule::new([accept()])),
        rule("masq", Rule::new([jump("nope")])),
        rule(
            "masq",
            Rule::new([in_set(Expr::Payload(Payload::IpSaddr), "nope")]),
        ),
        Command::DeleteElements {
            table: id(),
            set: "pods".into(),
            keys: vec![Value::Addr("10.9.9.9".parse().unwrap())],
        },
        Command::FlushSet {
            table: id(),
            set: "nope".into(),
            map: false,
        },
        Command::DeleteTable(TableId::new(Family::Ip6, "t")),
    ] {
        // A valid command first: it must not survive the refusal.
        let mut b = Batch::new();
        b.push(Command::FlushChain {
            table: id(),
            chain: "masq".into(),
        });
        b.push(bad.clone());
        assert_eq!(kind(f.apply(&b)), ErrorKind::NotFound, "{bad}");
        assert_eq!(f.dump(), before);
    }
    assert_eq!(f.refused, 7);
}

#[test]
fn refuses_duplicates_overlaps_and_busy_objects() {
    let mut f = Fake::new();
    let mut t = base_table();
    t.set(
        "nets",
        Set::new(vec![KeyType::Ipv4Addr])
            .interval()
            .elem(Value::net("10.0.0.0/8".parse().unwrap())),
    );
    t.set("vm", Set::vmap(vec![KeyType::Ipv4Addr]));
    f.apply(&diff::create(&t)).unwrap();
    let one = |c: Command| {
        let mut b = Batch::new();
        b.push(c);
        b
    };
    let el = |k: &str| (Value::net(k.parse().unwrap()), Element::default());
    let create = Command::CreateElements {
        table: id(),
        set: "pods".into(),
        elements: vec![el("10.0.0.1/32")],
    };
    assert_eq!(kind(f.apply(&one(create))), ErrorKind::Exists);
    // `add` of the identical element is no error, as in the kernel.
    f.apply(&one(Command::AddElements {
        table: id(),
        set: "pods".into(),
        elements: vec![el("10.0.0.1/32")],
    }))
    .unwrap();
    let overlap = Command::AddElements {
        table: id(),
        set: "nets".into(),
        elements: vec![el("10.1.0.0/16")],
    };
    assert_eq!(kind(f.apply(&one(overlap))), ErrorKind::Exists);
    let v = |c: &str| Element {
        data: Some(ElemData::Verdict(Verdict::Jump(c.into()))),
        ..Element::default()
    };
    let to_masq = Command::AddElements {
        table: id(),
        set: "vm".into(),
        elements: vec![(Value::Addr("10.0.0.1".parse().unwrap()), v("masq"))],
    };
    f.apply(&one(to_masq)).unwrap();
    let clash = Command::AddElements {
        table: id(),
        set: "vm".into(),
        elements: vec![(
            Value::Addr("10.0.0.1".parse().unwrap()),
            Element {
                data: Some(ElemData::Verdict(Verdict::Drop)),
                ..Element::default()
            },
        )],
    };
    assert_eq!(kind(f.apply(&one(clash))), ErrorKind::Exists);
    let missing_target = Command::AddElements {
        table: id(),
        set: "vm".into(),
        elements: vec![(Value::Addr("10.0.0.2".parse().unwrap()), v("nope"))],
    };
    assert_eq!(kind(f.apply(&one(missing_target))), ErrorKind::NotFound);
    // masq is jumped to (a rule and a vmap element) and not empty.
    let mut b = Batch::new();
    b.push(Command::FlushChain {
        table: id(),
        chain: "masq".into(),
    });
    b.push(Command::DeleteChain {
        table: id(),
        chain: "masq".into(),
    });
    assert_eq!(kind(f.apply(&b)), ErrorKind::Busy);
    assert_eq!(
        kind(f.apply(&one(Command::DeleteChain {
            table: id(),
            chain: "masq".into()
        }))),
        ErrorKind::Busy
    );
    // A set a rule uses cannot go.
    let mut t2 = t.clone();
    t2.chains.get_mut("masq").unwrap().rules.insert(
        0,
        Rule::new([in_set(Expr::Payload(Payload::IpSaddr), "pods"), ret()]),
    );
    f.apply(&diff::diff(&t, &t2)).unwrap();
    assert_eq!(
        kind(f.apply(&one(Command::DeleteSet {
            table: id(),
            set: "pods".into(),
            map: false
        }))),
        ErrorKind::Busy
    );
}

#[test]
fn refuses_what_the_kernel_finds_invalid() {
    let mut f = Fake::new();
    f.apply(&diff::create(&base_table())).unwrap();
    let one = |c: Command| {
        let mut b = Batch::new();
        b.push(c);
        b
    };
    let wrong_type = Command::AddElements {
        table: id(),
        set: "pods".into(),
        elements: vec![(Value::Port(80), Element::default())],
    };
    assert_eq!(kind(f.apply(&one(wrong_type))), ErrorKind::Invalid);
    let interval = Command::AddElements {
        table: id(),
        set: "pods".into(),
        elements: vec![(
            Value::net("10.0.0.0/8".parse().unwrap()),
            Element::default(),
        )],
    };
    assert_eq!(kind(f.apply(&one(interval))), ErrorKind::Invalid);
    let timeout = Command::AddElements {
        table: id(),
        set: "pods".into(),
        elements: vec![(
            Value::Addr("10.0.0.3".parse().unwrap()),
            Element {
                timeout: Some(5),
                ..Element::default()
            },
        )],
    };
    assert_eq!(kind(f.apply(&one(timeout))), ErrorKind::Invalid);
    let dnat_at_post = Command::AddRule {
        table: id(),
        chain: "post".into(),
        rule: Rule::new([dnat("10.0.0.1".parse().unwrap(), None)]),
    };
    assert_eq!(kind(f.apply(&one(dnat_at_post))), ErrorKind::Invalid);
    let port_without_proto = Command::AddRule {
        table: id(),
        chain: "masq".into(),
        rule: Rule::new([dnat("10.0.0.1".parse().unwrap(), Some(80))]),
    };
    assert_eq!(kind(f.apply(&one(port_without_proto))), ErrorKind::Invalid);
    let jump_base = Command::AddRule {
        table: id(),
        chain: "masq".into(),
        rule: Rule::new([jump("post")]),
    };
    assert_eq!(kind(f.apply(&one(jump_base))), ErrorKind::Invalid);
    let netdev_nat = Command::AddChain {
        table: TableId::new(Family::Netdev, "n"),
        chain: "c".into(),
        base: Some(BaseChain::nat(Hook::Prerouting)),
    };
    assert_eq!(kind(f.apply(&one(netdev_nat))), ErrorKind::Invalid);
    let hook_change = Command::AddChain {
        table: id(),
        chain: "post".into(),
        base: Some(BaseChain::nat(Hook::Output)),
    };
    assert_eq!(kind(f.apply(&one(hook_change))), ErrorKind::Exists);
}

#[test]
fn timeout_sets_and_every_family() {
    let mut f = Fake::new();
    for fam in [
        Family::Ip,
        Family::Ip6,
        Family::Inet,
        Family::Bridge,
        Family::Netdev,
    ] {
        let mut t = Table::new(fam, "all");
        let base = match fam {
            Family::Netdev => BaseChain {
                device: Some("eth0".into()),
                ..BaseChain::filter(Hook::Ingress)
            },
            _ => BaseChain::filter(Hook::Forward),
        };
        t.chain("c", Chain::base(base, vec![Rule::new([Stmt::Counter])]));
        t.set(
            "seen",
            Set::new(vec![KeyType::Ipv4Addr, KeyType::InetService]).with_timeout(60),
        );
        t.sets.get_mut("seen").unwrap().insert(
            Value::Concat(vec![
                Value::Addr("10.0.0.1".parse().unwrap()),
                Value::Port(53),
            ]),
            Element {
                timeout: Some(10),
                ..Element::default()
            },
        );
        f.apply(&diff::create(&t)).unwrap();
    }
    let dump = f.dump();
    for fam in ["ip", "ip6", "inet", "bridge", "netdev"] {
        assert!(dump.contains(&format!("table {fam} all {{")), "{dump}");
    }
    assert!(
        dump.contains("type filter hook ingress device \"eth0\" priority filter; policy accept;"),
        "{dump}"
    );
    assert!(
        dump.contains(
            "flags timeout\n\t\ttimeout 60s\n\t\telements = { 10.0.0.1 . 53 timeout 10s }"
        ),
        "{dump}"
    );
}
