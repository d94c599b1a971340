//! `aksnet-ipam`: host-local compatible IP address management.

use std::process::ExitCode;

fn main() -> ExitCode {
    aksnet_cni::skel::run(&aksnet_cni::ipam::IpamPlugin)
}
