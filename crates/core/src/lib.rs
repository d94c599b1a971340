pub mod cidr;
