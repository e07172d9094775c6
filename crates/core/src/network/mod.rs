//! How machines are reached: CIDR blocks, public address pools and security rules (`addresses`), the
//! packet filter those rules make (`packets`), firewalls and the worker that programs them on machines.
//! Uses `platform`, `accounts`, `catalog` and `billing`; never `compute` or `storage`.

mod addresses;
pub mod firewall_worker;
pub mod firewalls;
pub mod packets;

pub use addresses::*;
