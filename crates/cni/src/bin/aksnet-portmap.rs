//! `aksnet-portmap`: the chained host-port plugin (see
//! `aksnet_cni::portmap`).

use std::process::ExitCode;

fn main() -> ExitCode {
    aksnet_cni::skel::run(&aksnet_cni::portmap::PortmapPlugin)
}
