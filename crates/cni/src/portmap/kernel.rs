//! What aksnet-portmap does to the kernel of the calling thread's network
//! namespace (the host's): nftables transactions, retried when a
//! concurrent invocation changed the table between listing and applying,
//! and `route_localnet` on the interfaces towards a container.

use std::net::IpAddr;

use aksnet_core::cni::{code, CniError};
use aksnet_linux::nft::Nft;
use aksnet_linux::route::TABLE_MAIN;
use aksnet_linux::{sysctl, Socket};
use aksnet_nft::{Batch, DriverError, Family, Listing};

use super::rules::{table_id, TABLE};

/// Attempts for list-then-apply: a concurrent DEL or GC may delete a
/// handle we listed, which fails our whole transaction (atomically).
const ATTEMPTS: u32 = 5;

/// A kernel failure as the CNI error to print.
pub fn error(what: &str, e: aksnet_linux::Error) -> CniError {
    CniError::new(code::IO, format!("{what}: {e}"), "")
}

fn nft_error(what: &str, e: DriverError) -> CniError {
    CniError::new(code::IO, format!("{what}: {e}"), "")
}

/// List `family`'s aksnet-portmap table (`None` if it does not exist).
pub fn list(family: Family) -> Result<Option<Listing>, CniError> {
    use aksnet_nft::Driver;
    Nft::current()
        .list(&table_id(family))
        .map_err(|e| nft_error(&format!("list table {family} {TABLE}"), e))
}

/// List the table, build a batch from the listing with `build`, apply it;
/// start again from the listing when another call changed the table
/// meanwhile, up to [`ATTEMPTS`].
pub fn list_and_apply(
    family: Family,
    what: &str,
    build: impl Fn(Option<&Listing>) -> Batch,
) -> Result<(), CniError> {
    aksnet_nft::list_and_apply(&mut Nft::current(), &table_id(family), ATTEMPTS, &build)
        .map(|_| ())
        .map_err(|e| nft_error(what, e))
}

/// The interface the main table routes `ip` through (longest prefix).
fn route_dev(
    sock: &mut Socket,
    routes: &[aksnet_linux::route::Route],
    ip: IpAddr,
) -> Option<String> {
    let best = routes
        .iter()
        .filter(|r| r.oif.is_some() && r.dst.contains(&ip))
        .max_by_key(|r| r.dst.prefix_len())?;
    let oif = best.oif?;
    sock.link_by_index(oif).ok().flatten().map(|l| l.name)
}

/// Set `net.ipv4.conf.<dev>.route_localnet=1` on the interfaces the host
/// routes the IPv4 addresses `ips` through, so that connections to
/// 127.0.0.1:HOSTPORT, DNATed to a container, may leave through them
/// (the kernel drops loopback sources on other interfaces otherwise).
/// Only those interfaces: `all` would expose the host's loopback services
/// on every interface.
pub fn enable_route_localnet(ips: &[IpAddr]) -> Result<Vec<String>, CniError> {
    let v4: Vec<IpAddr> = ips.iter().copied().filter(IpAddr::is_ipv4).collect();
    if v4.is_empty() {
        return Ok(Vec::new());
    }
    let mut sock = Socket::new().map_err(|e| error("open netlink socket", e))?;
    let routes = sock
        .routes(false, Some(TABLE_MAIN))
        .map_err(|e| error("list IPv4 routes", e))?;
    let mut devs: Vec<String> = Vec::new();
    for ip in v4 {
        let dev = route_dev(&mut sock, &routes, ip).ok_or_else(|| {
            CniError::new(
                code::IO,
                format!("no route to container address {ip} in the host namespace"),
                "the main plugin of the chain should have added one (bridge subnet or /32 host route)",
            )
        })?;
        if !devs.contains(&dev) {
            devs.push(dev);
        }
    }
    for dev in &devs {
        sysctl::ensure(&["net", "ipv4", "conf", dev, "route_localnet"], "1")
            .map_err(|e| error(&format!("enable route_localnet on {dev}"), e))?;
    }
    Ok(devs)
}
