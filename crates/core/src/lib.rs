pub mod cidr;
pub mod cni;
