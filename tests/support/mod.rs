//! Fixtures of the tests against a real node: the node process and a proxy that makes it flaky.
#![allow(dead_code, unreachable_pub)]

pub mod hardhat;
pub mod minilm;
pub mod rpc_proxy;
