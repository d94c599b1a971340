//! Connection tracking entries over ctnetlink (`NETLINK_NETFILTER`,
//! subsystem `NFNL_SUBSYS_CTNETLINK`): list the IPv4 entries of a namespace
//! and delete single entries, what kube-proxy does to UDP flows whose
//! endpoint went away (a UDP "connection" never ends by itself, so without
//! the deletion a client keeps being translated to the dead endpoint).
//!
//! No crate of the ecosystem speaks ctnetlink in a maintained way, and the
//! two requests needed are small: the messages are written and read here by
//! hand (`include/uapi/linux/netfilter/nfnetlink_conntrack.h`).
//!
//! [`ConntrackDriver`] is the boundary: [`Conntrack`] is the kernel,
//! [`FakeConntrack`] an in-memory table for tests above it.

use std::net::Ipv4Addr;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket as NlSocket, SocketAddr};

use crate::netns::Netns;
use crate::{Error, Result};

/// `IPPROTO_TCP`.
pub const PROTO_TCP: u8 = 6;
/// `IPPROTO_UDP`.
pub const PROTO_UDP: u8 = 17;

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_ID: u16 = 12;
const CTA_ZONE: u16 = 18;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;

const NLMSG_HDR: usize = 16;
const NFGENMSG: usize = 4;
const RECV_BUF: usize = 256 * 1024;

/// One direction of a tracked connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tuple {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// IP protocol number ([`PROTO_TCP`], [`PROTO_UDP`], …).
    pub proto: u8,
    /// Ports (0 for protocols without them).
    pub sport: u16,
    pub dport: u16,
}

/// A conntrack entry: its original direction (as the client sent it) and
/// the reply direction (as the server answers: after a DNAT, the reply's
/// source is the endpoint the connection was translated to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Flow {
    pub orig: Tuple,
    pub reply: Tuple,
    /// The conntrack zone (0 unless someone uses zones).
    pub zone: u16,
    /// The kernel's id of the entry (0 when unknown): a deletion names it so
    /// that a new entry with the same tuple is not deleted instead.
    pub id: u32,
}

/// What the agent needs of the conntrack table.
pub trait ConntrackDriver: Send {
    /// Every IPv4 entry.
    fn flows(&mut self) -> Result<Vec<Flow>>;
    /// Deletes one entry; `false` when it was already gone.
    fn delete(&mut self, flow: &Flow) -> Result<bool>;
}

/// Deletes every entry `stale` selects, from one listing. Returns how many
/// were deleted (entries that expired meanwhile are not counted).
pub fn delete_where(
    driver: &mut dyn ConntrackDriver,
    mut stale: impl FnMut(&Flow) -> bool,
) -> Result<usize> {
    let mut n = 0;
    for f in driver.flows()?.iter().filter(|f| stale(f)) {
        if driver.delete(f)? {
            n += 1;
        }
    }
    Ok(n)
}

/// An in-memory conntrack table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeConntrack {
    pub flows: Vec<Flow>,
    /// Every deletion asked for, in order.
    pub deleted: Vec<Flow>,
}

impl ConntrackDriver for FakeConntrack {
    fn flows(&mut self) -> Result<Vec<Flow>> {
        Ok(self.flows.clone())
    }

    fn delete(&mut self, flow: &Flow) -> Result<bool> {
        self.deleted.push(*flow);
        let before = self.flows.len();
        self.flows
            .retain(|f| f.orig != flow.orig || f.zone != flow.zone);
        Ok(self.flows.len() != before)
    }
}

/// A ctnetlink socket, bound to the namespace it was created in.
pub struct Conntrack {
    sock: NlSocket,
    seq: u32,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Conntrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conntrack").field("seq", &self.seq).finish()
    }
}

impl Conntrack {
    /// A socket in the calling thread's namespace.
    pub fn new() -> Result<Conntrack> {
        let mut sock = NlSocket::new(NETLINK_NETFILTER)
            .map_err(|e| Error::io("open netfilter netlink socket", e))?;
        sock.bind_auto()
            .map_err(|e| Error::io("bind netfilter netlink socket", e))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|e| Error::io("connect netfilter netlink socket", e))?;
        Ok(Conntrack {
            sock,
            seq: 0,
            buf: vec![0; RECV_BUF],
        })
    }

    /// A socket bound to `ns`; the calling thread enters `ns` only while
    /// the socket is created.
    pub fn new_in(ns: &Netns) -> Result<Conntrack> {
        let _guard = ns.enter()?;
        Conntrack::new()
    }

    fn send(&mut self, cmd: u16, flags: u16, attrs: &[u8]) -> Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let msg = request(cmd, flags, self.seq, attrs);
        self.sock
            .send(&msg, 0)
            .map_err(|e| Error::io("send ctnetlink request", e))?;
        Ok(self.seq)
    }

    /// Reads answers to `seq` until the ack, the error or `NLMSG_DONE`;
    /// `each` gets the payload (after the nfgenmsg) of every data message.
    fn recv_until(
        &mut self,
        op: &str,
        seq: u32,
        dump: bool,
        mut each: impl FnMut(&[u8]),
    ) -> Result<()> {
        loop {
            let n = {
                let mut slice = &mut self.buf[..];
                self.sock
                    .recv(&mut slice, 0)
                    .map_err(|e| Error::io(format!("receive ctnetlink answer to {op}"), e))?
            };
            let mut off = 0usize;
            while off + NLMSG_HDR <= n {
                let h = &self.buf[off..n];
                let len = u32_ne(&h[0..4]) as usize;
                let kind = u16_ne(&h[4..6]);
                let mseq = u32_ne(&h[8..12]);
                if len < NLMSG_HDR || len > h.len() {
                    return Err(Error::Decode {
                        op: op.into(),
                        msg: format!("bad message length {len}"),
                    });
                }
                let body = &h[NLMSG_HDR..len];
                off += align4(len);
                if mseq != seq {
                    continue;
                }
                match kind {
                    NLMSG_ERROR => {
                        let code = body.get(0..4).map(i32_ne).unwrap_or(0);
                        if code == 0 {
                            if !dump {
                                return Ok(());
                            }
                            continue;
                        }
                        return Err(Error::Netlink {
                            op: op.into(),
                            source: std::io::Error::from_raw_os_error(-code),
                        });
                    }
                    NLMSG_DONE => return Ok(()),
                    k if k == ((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW)
                        && body.len() >= NFGENMSG =>
                    {
                        each(&body[NFGENMSG..]);
                    }
                    _ => {}
                }
            }
        }
    }
}

impl ConntrackDriver for Conntrack {
    fn flows(&mut self) -> Result<Vec<Flow>> {
        let seq = self.send(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, &[])?;
        let mut out = vec![];
        let mut bad = None;
        self.recv_until(
            "list conntrack entries",
            seq,
            true,
            |attrs| match parse_flow(attrs) {
                Some(f) => out.push(f),
                None => bad = Some(()),
            },
        )?;
        if bad.is_some() {
            tracing::debug!("a conntrack entry without IPv4 tuples was skipped");
        }
        Ok(out)
    }

    fn delete(&mut self, flow: &Flow) -> Result<bool> {
        let mut attrs = vec![];
        put_tuple(&mut attrs, CTA_TUPLE_ORIG, &flow.orig);
        if flow.zone != 0 {
            put_attr(&mut attrs, CTA_ZONE, &flow.zone.to_be_bytes());
        }
        if flow.id != 0 {
            put_attr(&mut attrs, CTA_ID, &flow.id.to_be_bytes());
        }
        let seq = self.send(IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, &attrs)?;
        let op = format!(
            "delete conntrack entry {}:{} -> {}:{} proto {}",
            flow.orig.src, flow.orig.sport, flow.orig.dst, flow.orig.dport, flow.orig.proto
        );
        match self.recv_until(&op, seq, false, |_| {}) {
            Ok(()) => Ok(true),
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_ne(b: &[u8]) -> u16 {
    u16::from_ne_bytes([b[0], b[1]])
}

fn u32_ne(b: &[u8]) -> u32 {
    u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
}

fn i32_ne(b: &[u8]) -> i32 {
    i32::from_ne_bytes([b[0], b[1], b[2], b[3]])
}

/// A ctnetlink request: nlmsghdr, nfgenmsg (AF_INET, version 0), attributes.
fn request(cmd: u16, flags: u16, seq: u32, attrs: &[u8]) -> Vec<u8> {
    let len = NLMSG_HDR + NFGENMSG + attrs.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_ne_bytes());
    m.extend_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | cmd).to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.push(u8::try_from(libc::AF_INET).unwrap_or(2));
    m.push(0); // NFNETLINK_V0
    m.extend_from_slice(&0u16.to_be_bytes()); // res_id
    m.extend_from_slice(attrs);
    m
}

fn put_attr(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(data);
    out.resize(align4(out.len()), 0);
}

fn put_nested(out: &mut Vec<u8>, kind: u16, inner: &[u8]) {
    put_attr(out, kind | NLA_F_NESTED, inner);
}

fn put_tuple(out: &mut Vec<u8>, kind: u16, t: &Tuple) {
    let mut ip = vec![];
    put_attr(&mut ip, CTA_IP_V4_SRC, &t.src.octets());
    put_attr(&mut ip, CTA_IP_V4_DST, &t.dst.octets());
    let mut proto = vec![];
    put_attr(&mut proto, CTA_PROTO_NUM, &[t.proto]);
    put_attr(&mut proto, CTA_PROTO_SRC_PORT, &t.sport.to_be_bytes());
    put_attr(&mut proto, CTA_PROTO_DST_PORT, &t.dport.to_be_bytes());
    let mut tuple = vec![];
    put_nested(&mut tuple, CTA_TUPLE_IP, &ip);
    put_nested(&mut tuple, CTA_TUPLE_PROTO, &proto);
    put_nested(out, kind, &tuple);
}

/// The attributes of `b`: (type without flags, payload).
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = usize::from(u16_ne(&b[0..2]));
        let kind = u16_ne(&b[2..4]) & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            return None;
        }
        let data = &b[4..len];
        b = &b[align4(len).min(b.len())..];
        Some((kind, data))
    })
}

fn parse_tuple(b: &[u8]) -> Option<Tuple> {
    let (mut src, mut dst, mut proto) = (None, None, None);
    let (mut sport, mut dport) = (0, 0);
    for (k, v) in attrs(b) {
        match k {
            CTA_TUPLE_IP => {
                for (k, v) in attrs(v) {
                    let a = <[u8; 4]>::try_from(v).ok().map(Ipv4Addr::from);
                    match k {
                        CTA_IP_V4_SRC => src = a,
                        CTA_IP_V4_DST => dst = a,
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for (k, v) in attrs(v) {
                    let port = <[u8; 2]>::try_from(v).ok().map(u16::from_be_bytes);
                    match k {
                        CTA_PROTO_NUM => proto = v.first().copied(),
                        CTA_PROTO_SRC_PORT => sport = port.unwrap_or(0),
                        CTA_PROTO_DST_PORT => dport = port.unwrap_or(0),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some(Tuple {
        src: src?,
        dst: dst?,
        proto: proto?,
        sport,
        dport,
    })
}

/// A flow from the attributes of one conntrack message; `None` without
/// both IPv4 tuples.
fn parse_flow(b: &[u8]) -> Option<Flow> {
    let (mut orig, mut reply, mut zone, mut id) = (None, None, 0, 0);
    for (k, v) in attrs(b) {
        match k {
            CTA_TUPLE_ORIG => orig = parse_tuple(v),
            CTA_TUPLE_REPLY => reply = parse_tuple(v),
            CTA_ZONE => zone = <[u8; 2]>::try_from(v).map(u16::from_be_bytes).unwrap_or(0),
            CTA_ID => id = <[u8; 4]>::try_from(v).map(u32::from_be_bytes).unwrap_or(0),
            _ => {}
        }
    }
    Some(Flow {
        orig: orig?,
        reply: reply?,
        zone,
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> Flow {
        Flow {
            orig: Tuple {
                src: Ipv4Addr::new(10, 244, 0, 2),
                dst: Ipv4Addr::new(10, 0, 0, 10),
                proto: PROTO_UDP,
                sport: 40000,
                dport: 53,
            },
            reply: Tuple {
                src: Ipv4Addr::new(10, 244, 1, 5),
                dst: Ipv4Addr::new(10, 244, 0, 2),
                proto: PROTO_UDP,
                sport: 5353,
                dport: 40000,
            },
            zone: 7,
            id: 0xdead_beef,
        }
    }

    #[test]
    fn a_flow_reads_back_from_the_attributes_written_for_it() {
        let f = flow();
        let mut b = vec![];
        put_tuple(&mut b, CTA_TUPLE_ORIG, &f.orig);
        put_tuple(&mut b, CTA_TUPLE_REPLY, &f.reply);
        put_attr(&mut b, CTA_ZONE, &f.zone.to_be_bytes());
        put_attr(&mut b, CTA_ID, &f.id.to_be_bytes());
        assert_eq!(parse_flow(&b), Some(f));
    }

    #[test]
    fn a_message_without_a_reply_tuple_is_not_a_flow() {
        let mut b = vec![];
        put_tuple(&mut b, CTA_TUPLE_ORIG, &flow().orig);
        assert_eq!(parse_flow(&b), None);
        assert_eq!(parse_flow(&[1, 0]), None);
    }

    #[test]
    fn a_request_carries_its_length_type_and_family() {
        let m = request(IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, 9, &[0; 8]);
        assert_eq!(m.len(), 28);
        assert_eq!(u32_ne(&m[0..4]), 28);
        assert_eq!(u16_ne(&m[4..6]), 0x102);
        assert_eq!(u32_ne(&m[8..12]), 9);
        assert_eq!(m[16], 2);
    }

    #[test]
    fn delete_where_deletes_what_it_selects_and_counts_it() {
        let a = flow();
        let mut b = flow();
        b.orig.sport = 40001;
        let mut fake = FakeConntrack {
            flows: vec![a, b],
            deleted: vec![],
        };
        let n = delete_where(&mut fake, |f| f.orig.sport == 40001).unwrap_or(99);
        assert_eq!(n, 1);
        assert_eq!(fake.flows, vec![a]);
        assert_eq!(fake.deleted, vec![b]);
    }
}
