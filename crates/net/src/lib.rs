//! berth-net: the host side of a container's network: links over rtnetlink ([`link`]) and
//! traffic shaping ([`shaping`]), which bounds a container's bandwidth from outside it.

#![forbid(unsafe_code)]

pub mod addr;
pub mod dnsmasq;
pub mod link;
pub mod nat;
pub mod shaping;

pub use shaping::{Error, Shaping};
