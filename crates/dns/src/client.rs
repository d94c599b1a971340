//! A small DNS client over UDP or TCP, for forwarding and for anything
//! that wants to ask a server one question (tests, the lab's checks).
//! Messages are encoded and decoded by hickory-proto; TCP uses the 2-byte
//! length prefix of RFC 1035 §4.2.2.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// A query ID nobody can predict (std's hasher keys are random per
/// instance).
pub fn random_id() -> u16 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish() as u16
}

/// A recursive query for one name and type; with `udp_payload`, EDNS
/// with that payload size (without, the 512-byte classic limit holds).
pub fn query_message(name: &Name, rtype: RecordType, udp_payload: Option<u16>) -> Message {
    let mut msg = Message::new(random_id(), MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(name.clone(), rtype));
    if let Some(size) = udp_payload {
        let mut edns = Edns::new();
        edns.set_max_payload(size);
        msg.set_edns(edns);
    }
    msg
}

/// Sends `msg` and waits up to `timeout` for its answer.
pub async fn exchange(
    server: SocketAddr,
    msg: &Message,
    transport: Transport,
    timeout: Duration,
) -> Result<Message, String> {
    let fut = async {
        match transport {
            Transport::Udp => udp(server, msg).await,
            Transport::Tcp => tcp(server, msg).await,
        }
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| format!("{server}: no answer within {timeout:?}"))?
}

fn encode(msg: &Message) -> Result<Vec<u8>, String> {
    msg.to_vec()
        .map_err(|e| format!("cannot encode the query: {e}"))
}

/// An answer is ours if it has our ID, is a response and asks our question.
fn matches(sent: &Message, got: &Message) -> bool {
    got.metadata.id == sent.metadata.id
        && got.metadata.message_type == MessageType::Response
        && got.queries == sent.queries
}

pub(crate) async fn udp(addr: SocketAddr, msg: &Message) -> Result<Message, String> {
    let bind: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let sock = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
    sock.connect(addr).await.map_err(|e| e.to_string())?;
    sock.send(&encode(msg)?).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = sock.recv(&mut buf).await.map_err(|e| e.to_string())?;
        // Anything that is not the answer (garbage, a stale or forged
        // reply) is dropped and the wait goes on until the time-out.
        match Message::from_vec(&buf[..n]) {
            Ok(got) if matches(msg, &got) => return Ok(got),
            Ok(_) => tracing::debug!(%addr, "dropped a reply that is not the answer"),
            Err(e) => tracing::debug!(%addr, "dropped an undecodable reply: {e}"),
        }
    }
}

pub(crate) async fn tcp(addr: SocketAddr, msg: &Message) -> Result<Message, String> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let bytes = encode(msg)?;
    let len = u16::try_from(bytes.len()).map_err(|_| "query too long".to_string())?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(&bytes);
    s.write_all(&framed).await.map_err(|e| e.to_string())?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    let got = Message::from_vec(&buf).map_err(|e| format!("undecodable answer: {e}"))?;
    if !matches(msg, &got) {
        return Err("the answer is not for the question asked".into());
    }
    Ok(got)
}

/// What one blocking A lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The name's addresses (CNAMEs followed by the server).
    Found(Vec<std::net::Ipv4Addr>),
    /// NXDOMAIN.
    NoSuchName,
    /// The name exists without an A record (NODATA).
    NoData,
    /// Another answer code (SERVFAIL, REFUSED, …).
    Code(String),
}

/// Asks `server` for the A records of `name` over UDP from the calling
/// thread (and its network namespace), again over TCP when the answer is
/// truncated. For callers without an async runtime (the lab's probes).
pub fn lookup_a_blocking(
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<Lookup, String> {
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::RData;
    use std::io::{Read, Write};
    let mut n = Name::from_ascii(name).map_err(|e| format!("'{name}': {e}"))?;
    n.set_fqdn(true);
    let msg = query_message(&n, RecordType::A, Some(1232));
    let bytes = encode(&msg)?;
    let sock = std::net::UdpSocket::bind(if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })
    .map_err(|e| e.to_string())?;
    sock.connect(server).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    sock.send(&bytes).map_err(|e| format!("{server}: {e}"))?;
    let mut buf = vec![0u8; 65535];
    let mut got = loop {
        let k = sock
            .recv(&mut buf)
            .map_err(|e| format!("{server}: no answer ({e})"))?;
        if let Ok(m) = Message::from_vec(&buf[..k]) {
            if matches(&msg, &m) {
                break m;
            }
        }
    };
    if got.metadata.truncation {
        let mut s = std::net::TcpStream::connect_timeout(&server, timeout)
            .map_err(|e| format!("{server} (tcp): {e}"))?;
        s.set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let len = u16::try_from(bytes.len()).map_err(|_| "query too long".to_string())?;
        s.write_all(&len.to_be_bytes())
            .and_then(|_| s.write_all(&bytes))
            .map_err(|e| e.to_string())?;
        let mut l = [0u8; 2];
        s.read_exact(&mut l).map_err(|e| e.to_string())?;
        let mut b = vec![0u8; usize::from(u16::from_be_bytes(l))];
        s.read_exact(&mut b).map_err(|e| e.to_string())?;
        got = Message::from_vec(&b).map_err(|e| format!("undecodable answer: {e}"))?;
    }
    Ok(match got.metadata.response_code {
        ResponseCode::NoError => {
            let ips: Vec<std::net::Ipv4Addr> = got
                .answers
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(a.0),
                    _ => None,
                })
                .collect();
            if ips.is_empty() {
                Lookup::NoData
            } else {
                Lookup::Found(ips)
            }
        }
        ResponseCode::NXDomain => Lookup::NoSuchName,
        c => Lookup::Code(c.to_string()),
    })
}
