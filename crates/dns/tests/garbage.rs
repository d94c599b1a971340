//! Bad queries get FORMERR (or the rcode their header asks for), never a
//! crash: hand-made malformed messages, then property tests throwing
//! random packets and mutated queries at a live server over UDP and TCP,
//! each followed by a real query that must still be answered.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use aksnet_dns::client::query_message;
use common::*;
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::RecordType;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};

struct Live {
    addr: SocketAddr,
    // Field order is drop order: the server before its runtime, the store
    // directory last.
    server: Option<aksnet_dns::DnsServer>,
    rt: tokio::runtime::Runtime,
    _cluster: Cluster,
}

impl Live {
    fn start() -> Live {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let cluster = Cluster::new();
        cluster.apply(APP);
        let server = rt.block_on(cluster.serve(|_| {}));
        Live {
            addr: server.local_addr(),
            server: Some(server),
            rt,
            _cluster: cluster,
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.shutdown()).ok();
        }
    }
}

fn probe_bytes(id: u16) -> Vec<u8> {
    let mut m = query_message(&name("web.shop.svc.cluster.local."), RecordType::A, None);
    m.metadata.id = id;
    m.to_vec().unwrap()
}

/// Sends `packet` over UDP, then a real query from the same socket, and
/// returns every reply to the packet; fails unless the real query is
/// answered correctly within 3 s and every reply decodes as a response.
fn udp_then_probe(live: &Live, packet: &[u8]) -> Vec<Message> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.connect(live.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(40))).unwrap();
    s.send(packet).unwrap();
    let probe_id = if packet.len() >= 2 && u16::from_be_bytes([packet[0], packet[1]]) == 0xBEEF {
        0xBEF0
    } else {
        0xBEEF
    };
    s.send(&probe_bytes(probe_id)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut replies = vec![];
    let mut probed = false;
    let mut buf = [0u8; 65535];
    while Instant::now() < deadline {
        let n = match s.recv(&mut buf) {
            Ok(n) => n,
            Err(_) if probed => break,
            Err(_) => continue,
        };
        let m = Message::from_vec(&buf[..n])
            .unwrap_or_else(|e| panic!("a reply that does not decode ({e}): {:?}", &buf[..n]));
        assert_eq!(m.metadata.message_type, MessageType::Response);
        if m.metadata.id == probe_id && !probed {
            assert_eq!(m.metadata.response_code, ResponseCode::NoError);
            assert_eq!(m.answers.len(), 1, "the probe's answer: {m:?}");
            probed = true;
        } else {
            replies.push(m);
        }
    }
    assert!(
        probed,
        "the server did not answer a real query after {packet:?}"
    );
    replies
}

fn header(id: u16, flags: u16, qd: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    let mut h = vec![];
    for v in [id, flags, qd, an, ns, ar] {
        h.extend_from_slice(&v.to_be_bytes());
    }
    h
}

fn question(name: &[u8], qtype: u16, class: u16) -> Vec<u8> {
    let mut q = name.to_vec();
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&class.to_be_bytes());
    q
}

const WEB: &[u8] = b"\x03web\x04shop\x03svc\x07cluster\x05local\x00";

fn only_reply(live: &Live, packet: &[u8]) -> Message {
    let replies = udp_then_probe(live, packet);
    assert_eq!(replies.len(), 1, "one reply to {packet:?}: {replies:?}");
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    assert_eq!(
        replies[0].metadata.id, id,
        "the reply carries the query's ID"
    );
    replies.into_iter().next().unwrap()
}

#[test]
fn malformed_queries_get_formerr() {
    let live = Live::start();
    // The header promises a question that is not there.
    let m = only_reply(&live, &header(1, 0x0100, 1, 0, 0, 0));
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    // A name whose compression pointer points at itself.
    let mut p = header(2, 0x0100, 1, 0, 0, 0);
    p.extend(question(b"\xc0\x0c", 1, 1));
    assert_eq!(
        only_reply(&live, &p).metadata.response_code,
        ResponseCode::FormErr
    );
    // A label longer than the packet.
    let mut p = header(3, 0x0100, 1, 0, 0, 0);
    p.extend_from_slice(b"\x3fabc");
    assert_eq!(
        only_reply(&live, &p).metadata.response_code,
        ResponseCode::FormErr
    );
    // An answer record promised and cut off.
    let mut p = header(4, 0x0100, 1, 1, 0, 0);
    p.extend(question(WEB, 1, 1));
    p.extend_from_slice(b"\x00\x00\x01");
    assert_eq!(
        only_reply(&live, &p).metadata.response_code,
        ResponseCode::FormErr
    );
    // No question at all, and two questions: not one question, FORMERR.
    assert_eq!(
        only_reply(&live, &header(5, 0x0100, 0, 0, 0, 0))
            .metadata
            .response_code,
        ResponseCode::FormErr
    );
    let mut p = header(6, 0x0100, 2, 0, 0, 0);
    p.extend(question(WEB, 1, 1));
    p.extend(question(WEB, 28, 1));
    assert_eq!(
        only_reply(&live, &p).metadata.response_code,
        ResponseCode::FormErr
    );
}

#[test]
fn well_formed_but_unsupported() {
    let live = Live::start();
    // Opcode STATUS (2) and UPDATE (5): NOTIMP.
    for opcode in [2u16, 5] {
        let mut p = header(10 + opcode, opcode << 11, 1, 0, 0, 0);
        p.extend(question(WEB, 1, 1));
        assert_eq!(
            only_reply(&live, &p).metadata.response_code,
            ResponseCode::NotImp,
            "opcode {opcode}"
        );
    }
    // Class CHAOS: refused.
    let mut p = header(20, 0x0100, 1, 0, 0, 0);
    p.extend(question(WEB, 16, 3));
    assert_eq!(
        only_reply(&live, &p).metadata.response_code,
        ResponseCode::Refused
    );
    // EDNS version 1: BADVERS (RFC 6891 §6.1.3).
    let mut p = header(21, 0x0100, 1, 0, 0, 1);
    p.extend(question(WEB, 1, 1));
    // OPT: root name, type 41, payload 1232, ext-rcode 0, version 1, flags 0, no data.
    p.extend_from_slice(b"\x00\x00\x29\x04\xd0\x00\x01\x00\x00\x00\x00");
    // Rcode 16 is BADVERS with an OPT (hickory decodes 16 as BADSIG, its twin).
    let m = only_reply(&live, &p);
    assert_eq!(u16::from(m.metadata.response_code), 16);
    assert!(m.edns.is_some(), "BADVERS comes with an OPT record");
    // A zone transfer of the cluster domain: refused.
    let mut p = header(22, 0x0000, 1, 0, 0, 0);
    p.extend(question(b"\x07cluster\x05local\x00", 252, 1));
    assert_eq!(
        only_reply(&live, &p).metadata.response_code,
        ResponseCode::Refused
    );
}

#[test]
fn responses_and_runts_are_dropped_not_answered() {
    let live = Live::start();
    // A response (QR set) is never answered: no reflection.
    let mut p = header(30, 0x8180, 1, 0, 0, 0);
    p.extend(question(WEB, 1, 1));
    assert!(udp_then_probe(&live, &p).is_empty());
    // Shorter than a header: nothing to answer to.
    assert!(udp_then_probe(&live, b"\x00\x01\x02").is_empty());
    assert!(udp_then_probe(&live, b"").is_empty());
}

#[test]
fn tcp_garbage_closes_that_connection_only() {
    let live = Live::start();
    let at = live.addr;
    // A length prefix promising more than comes, then a hang-up.
    let mut s = TcpStream::connect(at).unwrap();
    s.write_all(b"\x10\x00abc").unwrap();
    drop(s);
    // A framed garbage message: FORMERR on the same connection.
    let mut s = TcpStream::connect(at).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut msg = header(40, 0x0100, 1, 0, 0, 0);
    msg.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01");
    let mut framed = (msg.len() as u16).to_be_bytes().to_vec();
    framed.extend(&msg);
    s.write_all(&framed).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    let m = Message::from_vec(&body).unwrap();
    assert_eq!(m.metadata.id, 40);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    // The server still answers.
    assert!(udp_then_probe(&live, &probe_bytes(41)).len() == 1);
}

fn runner() -> TestRunner {
    TestRunner::new(ProptestConfig {
        cases: 128,
        ..ProptestConfig::default()
    })
}

/// Random bytes: whatever comes back is a well-formed response, and the
/// server keeps answering.
#[test]
fn random_packets() {
    let live = Live::start();
    runner()
        .run(&proptest::collection::vec(any::<u8>(), 0..600), |p| {
            udp_then_probe(&live, &p);
            Ok(())
        })
        .unwrap();
}

/// A query header (QR 0, opcode QUERY, one or two questions) and random
/// bytes after it: always answered (FORMERR when the rest does not
/// decode), with the query's ID.
#[test]
fn query_headers_with_random_bodies() {
    let live = Live::start();
    let strategy = (
        0u16..0xBE00,
        (1u16..3, 0u16..3, 0u16..3, 0u16..3),
        proptest::collection::vec(any::<u8>(), 0..300),
    );
    runner()
        .run(&strategy, |(id, counts, body)| {
            let mut p = header(id, 0x0100, counts.0, counts.1, counts.2, counts.3);
            p.extend(&body);
            let replies = udp_then_probe(&live, &p);
            prop_assert_eq!(replies.len(), 1, "{:?}", replies);
            prop_assert_eq!(replies[0].metadata.id, id);
            Ok(())
        })
        .unwrap();
}

/// A real query with bytes flipped or cut: handled, never fatal.
#[test]
fn mutated_queries() {
    let live = Live::start();
    let strategy = (
        proptest::collection::vec((0usize..64, any::<u8>()), 1..6),
        12usize..80,
    );
    runner()
        .run(&strategy, |(flips, cut)| {
            let mut p = probe_bytes(0x1234);
            for (at, v) in flips {
                let i = at % p.len();
                p[i] ^= v | 1;
            }
            p.truncate(cut.min(p.len()));
            udp_then_probe(&live, &p);
            Ok(())
        })
        .unwrap();
}

/// Random framed messages over TCP, several on one connection.
#[test]
fn tcp_random_frames() {
    let live = Live::start();
    let strategy = proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..4);
    runner()
        .run(&strategy, |frames| {
            let mut s = TcpStream::connect(live.addr).unwrap();
            for f in &frames {
                let mut framed = (f.len() as u16).to_be_bytes().to_vec();
                framed.extend(f);
                // The server may close on garbage: a failed write is fine.
                if s.write_all(&framed).is_err() {
                    break;
                }
            }
            drop(s);
            udp_then_probe(&live, &probe_bytes(0x4321));
            Ok(())
        })
        .unwrap();
}
