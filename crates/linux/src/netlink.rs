//! A blocking rtnetlink socket.
//!
//! One request at a time: [`Socket::ack`] sends a request and waits for the
//! kernel's acknowledgement, [`Socket::dump`] collects a multipart answer.
//! The socket is bound to the network namespace of the thread that created
//! it, for its whole life.

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP,
    NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket as NlSocket, SocketAddr};

use crate::netns::Netns;
use crate::{Error, Result};

const RECV_BUF: usize = 64 * 1024;

/// A blocking `NETLINK_ROUTE` socket.
pub struct Socket {
    sock: NlSocket,
    seq: u32,
    buf: Vec<u8>,
    send_buf: Vec<u8>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket").field("seq", &self.seq).finish()
    }
}

impl Socket {
    /// A socket in the calling thread's network namespace.
    pub fn new() -> Result<Socket> {
        let mut sock =
            NlSocket::new(NETLINK_ROUTE).map_err(|e| Error::io("open netlink socket", e))?;
        sock.bind_auto()
            .map_err(|e| Error::io("bind netlink socket", e))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|e| Error::io("connect netlink socket", e))?;
        // Best effort: strict checking lets the kernel filter dumps.
        let _ = sock.set_netlink_get_strict_chk(true);
        let _ = sock.set_ext_ack(true);
        Ok(Socket {
            sock,
            seq: 0,
            buf: vec![0; RECV_BUF],
            send_buf: Vec::with_capacity(1024),
        })
    }

    /// A socket bound to `ns`. The calling thread enters `ns` only for the
    /// creation of the socket.
    pub fn new_in(ns: &Netns) -> Result<Socket> {
        let _guard = ns.enter()?;
        Socket::new()
    }

    fn send(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let len = packet.buffer_len();
        self.send_buf.clear();
        self.send_buf.resize(len, 0);
        packet.serialize(&mut self.send_buf[..]);
        self.sock
            .send(&self.send_buf[..], 0)
            .map_err(|e| Error::io("send netlink request", e))?;
        Ok(self.seq)
    }

    /// Receive until the message with `seq` is finished; call `each` for
    /// every inner message. Returns when an ack, an error or `NLMSG_DONE`
    /// arrives.
    fn recv_until(
        &mut self,
        op: &dyn Fn() -> String,
        seq: u32,
        dump: bool,
        mut each: impl FnMut(RouteNetlinkMessage),
    ) -> Result<()> {
        loop {
            let n = {
                let mut slice = &mut self.buf[..];
                self.sock
                    .recv(&mut slice, 0)
                    .map_err(|e| Error::io("receive netlink answer", e))?
            };
            let mut off = 0usize;
            while off < n {
                let rest = &self.buf[off..n];
                let nb = NetlinkBuffer::new_checked(rest)
                    .map_err(|source| Error::Malformed { op: op(), source })?;
                let len = nb.length() as usize;
                if len == 0 || len > rest.len() {
                    return Err(Error::Decode {
                        op: op(),
                        msg: format!("bad message length {len}"),
                    });
                }
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rest[..len])
                    .map_err(|source| Error::Malformed { op: op(), source })?;
                off += (len + 3) & !3;
                if msg.header.sequence_number != seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Error(err) => {
                        if err.code.is_none() {
                            if !dump {
                                return Ok(());
                            }
                            continue;
                        }
                        return Err(Error::Netlink {
                            op: op(),
                            source: err.to_io(),
                        });
                    }
                    NetlinkPayload::Done(_) => return Ok(()),
                    NetlinkPayload::InnerMessage(inner) => each(inner),
                    _ => {}
                }
            }
        }
    }

    /// Send `msg` with `flags` (REQUEST and ACK are added) and wait for the
    /// acknowledgement. `op` names the request in errors.
    pub fn ack(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: &dyn Fn() -> String,
    ) -> Result<()> {
        let seq = self.send(msg, flags | NLM_F_REQUEST | NLM_F_ACK)?;
        self.recv_until(op, seq, false, |_| {})
    }

    /// Send a request that answers with one message (a `GET` of one object)
    /// and return that message.
    pub fn get(
        &mut self,
        msg: RouteNetlinkMessage,
        op: &dyn Fn() -> String,
    ) -> Result<Option<RouteNetlinkMessage>> {
        let seq = self.send(msg, NLM_F_REQUEST | NLM_F_ACK)?;
        let mut out = None;
        match self.recv_until(op, seq, false, |m| {
            if out.is_none() {
                out = Some(m)
            }
        }) {
            Ok(()) => Ok(out),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Send a dump request and collect every answer.
    pub fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
        op: &dyn Fn() -> String,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let seq = self.send(msg, NLM_F_REQUEST | NLM_F_DUMP)?;
        let mut out = Vec::new();
        self.recv_until(op, seq, true, |m| out.push(m))?;
        Ok(out)
    }
}
