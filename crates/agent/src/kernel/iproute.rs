//! [`Kernel`] on iproute2 and nft, run inside the managed namespace. Reads
//! use JSON output (`ip -j`, `bridge -j`, `nft -j`); writes go as one
//! `ip -batch -` per step, so a reconcile of hundreds of routes costs one
//! process, not hundreds.

use std::net::Ipv4Addr;
use std::path::Path;

use serde_json::Value;

use super::exec::NetnsExec;
use super::{AddressedLink, Kernel, KernelError};
use crate::routes::vxlan::{Fdb, Neigh, VxlanDevice};
use crate::routes::{Route, RTPROT_AKSNET};

pub struct IprouteKernel {
    ns: NetnsExec,
}

impl IprouteKernel {
    pub fn new(netns: Option<&Path>) -> Result<Self, KernelError> {
        Ok(Self {
            ns: NetnsExec::new(netns)?,
        })
    }

    fn json(&self, program: &str, args: &[&str]) -> Result<Value, KernelError> {
        let out = self.ns.run(program, args, None)?;
        if out.trim().is_empty() {
            return Ok(Value::Array(vec![]));
        }
        serde_json::from_str(&out)
            .map_err(|e| KernelError::Parse(format!("{program} {}: {e}", args.join(" "))))
    }

    fn batch(&self, program: &str, lines: &[String]) -> Result<(), KernelError> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut text = lines.join("\n");
        text.push('\n');
        self.ns
            .run(program, &["-batch", "-"], Some(text.as_bytes()))?;
        Ok(())
    }
}

fn route_args(r: &Route) -> String {
    let mut s = format!("{} via {}", r.dst, r.via);
    if let Some(d) = &r.dev {
        s.push_str(&format!(" dev {d}"));
    }
    if r.onlink {
        s.push_str(" onlink");
    }
    s
}

fn parse_route(v: &Value) -> Option<Route> {
    let dst = v["dst"].as_str()?;
    let dst = if dst.contains('/') {
        dst.parse().ok()?
    } else {
        ipnet::Ipv4Net::new(dst.parse().ok()?, 32).ok()?
    };
    let via: Ipv4Addr = v["gateway"].as_str()?.parse().ok()?;
    let flags: Vec<&str> = v["flags"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f.as_str()).collect())
        .unwrap_or_default();
    Some(Route {
        dst,
        via,
        dev: v["dev"].as_str().map(str::to_string),
        onlink: flags.contains(&"onlink"),
    })
}

impl Kernel for IprouteKernel {
    fn routes(&mut self) -> Result<Vec<Route>, KernelError> {
        let proto = RTPROT_AKSNET.to_string();
        let v = self.json(
            "ip",
            &[
                "-j", "-4", "route", "show", "table", "main", "proto", &proto,
            ],
        )?;
        Ok(v.as_array()
            .map(|a| a.iter().filter_map(parse_route).collect())
            .unwrap_or_default())
    }

    fn program_routes(&mut self, replace: &[Route], delete: &[Route]) -> Result<(), KernelError> {
        let mut lines: Vec<String> = delete
            .iter()
            .map(|r| format!("route del {} proto {RTPROT_AKSNET}", r.dst))
            .collect();
        lines.extend(
            replace
                .iter()
                .map(|r| format!("route replace {} proto {RTPROT_AKSNET}", route_args(r))),
        );
        self.batch("ip", &lines)
    }

    fn ensure_vxlan(&mut self, d: &VxlanDevice) -> Result<bool, KernelError> {
        let cur = self
            .json("ip", &["-j", "-d", "link", "show", "dev", &d.name])
            .ok();
        let cur = cur
            .as_ref()
            .and_then(|v| v.as_array())
            .and_then(|a| a.first().cloned());
        let mut changed = false;
        let matches = cur.as_ref().is_some_and(|l| {
            let info = &l["linkinfo"]["info_data"];
            l["linkinfo"]["info_kind"] == "vxlan"
                && info["id"].as_u64() == Some(u64::from(d.vni))
                && info["port"].as_u64() == Some(u64::from(d.port))
                && info["local"].as_str() == Some(d.local.to_string().as_str())
                && info["learning"].as_bool() == Some(false)
                && l["address"]
                    .as_str()
                    .map(str::to_ascii_lowercase)
                    .as_deref()
                    == Some(d.mac.as_str())
        });
        if !matches {
            let mut lines = Vec::new();
            if cur.is_some() {
                lines.push(format!("link del dev {}", d.name));
            }
            lines.push(format!(
                "link add {} address {} mtu {} type vxlan id {} local {} dstport {} nolearning",
                d.name, d.mac, d.mtu, d.vni, d.local, d.port
            ));
            self.batch("ip", &lines)?;
            changed = true;
        }
        let link = self.json("ip", &["-j", "addr", "show", "dev", &d.name])?;
        let l = link
            .as_array()
            .and_then(|a| a.first())
            .cloned()
            .unwrap_or(Value::Null);
        let want_addr = d.address.to_string();
        let has_addr = l["addr_info"].as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["local"].as_str() == Some(want_addr.as_str()) && x["prefixlen"] == 32)
        });
        let mut lines = Vec::new();
        if l["mtu"].as_u64() != Some(u64::from(d.mtu)) {
            lines.push(format!("link set dev {} mtu {}", d.name, d.mtu));
        }
        if !has_addr {
            // The device holds only the block's .0 as a /32: a stale one goes.
            lines.push(format!("addr flush dev {}", d.name));
            lines.push(format!("addr add {want_addr}/32 dev {}", d.name));
        }
        let up = l["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "UP"));
        if !up {
            lines.push(format!("link set dev {} up", d.name));
        }
        changed |= !lines.is_empty();
        self.batch("ip", &lines)?;
        Ok(changed)
    }

    fn remove_link(&mut self, name: &str) -> Result<(), KernelError> {
        let exists = self
            .ns
            .run("ip", &["link", "show", "dev", name], None)
            .is_ok();
        if exists {
            self.ns.run("ip", &["link", "del", "dev", name], None)?;
        }
        Ok(())
    }

    fn l2_entries(&mut self, dev: &str) -> Result<(Vec<Neigh>, Vec<Fdb>), KernelError> {
        let n = self.json(
            "ip",
            &["-j", "-4", "neigh", "show", "dev", dev, "nud", "permanent"],
        )?;
        let neighs = n
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| {
                        Some(Neigh {
                            ip: e["dst"].as_str()?.parse().ok()?,
                            mac: e["lladdr"].as_str()?.to_ascii_lowercase(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let f = self.json("bridge", &["-j", "fdb", "show", "dev", dev])?;
        let fdb = f
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| {
                        Some(Fdb {
                            mac: e["mac"].as_str()?.to_ascii_lowercase(),
                            dst: e["dst"].as_str()?.parse().ok()?,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok((neighs, fdb))
    }

    fn program_l2(
        &mut self,
        dev: &str,
        add_neighs: &[Neigh],
        del_neighs: &[Neigh],
        add_fdb: &[Fdb],
        del_fdb: &[Fdb],
    ) -> Result<(), KernelError> {
        let mut ip = Vec::new();
        let mut br = Vec::new();
        for n in del_neighs {
            ip.push(format!("neigh del {} dev {dev}", n.ip));
        }
        for f in del_fdb {
            br.push(format!("fdb del {} dev {dev} dst {} self", f.mac, f.dst));
        }
        for f in add_fdb {
            br.push(format!(
                "fdb replace {} dev {dev} dst {} self permanent",
                f.mac, f.dst
            ));
        }
        for n in add_neighs {
            ip.push(format!(
                "neigh replace {} lladdr {} dev {dev} nud permanent",
                n.ip, n.mac
            ));
        }
        self.batch("bridge", &br)?;
        self.batch("ip", &ip)
    }

    fn nft_list_table(&mut self, family: &str, name: &str) -> Result<Option<Value>, KernelError> {
        match self
            .ns
            .run("nft", &["-j", "list", "table", family, name], None)
        {
            Ok(out) => serde_json::from_str(&out)
                .map(Some)
                .map_err(|e| KernelError::Parse(format!("nft -j list table {family} {name}: {e}"))),
            Err(KernelError::Command { message, .. })
                if message.contains("No such file or directory")
                    || message.contains("does not exist") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn nft_apply(&mut self, batch: &Value) -> Result<(), KernelError> {
        let text = serde_json::to_vec(batch).map_err(|e| KernelError::Parse(e.to_string()))?;
        self.ns.run("nft", &["-j", "-f", "-"], Some(&text))?;
        Ok(())
    }

    fn sysctl(&mut self, name: &str) -> Result<String, KernelError> {
        Ok(self
            .ns
            .run("sysctl", &["-n", name], None)?
            .trim()
            .to_string())
    }

    fn set_sysctl(&mut self, name: &str, value: &str) -> Result<(), KernelError> {
        self.ns
            .run("sysctl", &["-q", "-w", &format!("{name}={value}")], None)?;
        Ok(())
    }

    fn link_with_address(&mut self, ip: Ipv4Addr) -> Result<Option<AddressedLink>, KernelError> {
        let v = self.json("ip", &["-j", "-4", "addr", "show"])?;
        let want = ip.to_string();
        Ok(v.as_array().and_then(|links| {
            links.iter().find_map(|l| {
                let has = l["addr_info"]
                    .as_array()?
                    .iter()
                    .any(|a| a["local"].as_str() == Some(want.as_str()));
                has.then(|| AddressedLink {
                    name: l["ifname"].as_str().unwrap_or_default().to_string(),
                    mtu: l["mtu"]
                        .as_u64()
                        .and_then(|m| u32::try_from(m).ok())
                        .unwrap_or(1500),
                    address: ip,
                })
            })
        }))
    }
}
