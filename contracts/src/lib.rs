//! Solidity contracts of opml, their committed artifacts, alloy bindings and the embedded chain.
//!
//! The Solidity sources live in `contracts/src/*.sol` and are compiled by the pinned solc-js
//! (`scripts/compile-contracts.sh`) into `contracts/out/*.json`, which are committed: building this
//! crate needs no Solidity compiler. [`bindings`] are generated from those artifacts by alloy's
//! `sol!`; [`chain`] is an in-process revm chain that code reaches through an ordinary alloy
//! provider, exactly as it would reach a JSON-RPC node.

pub mod artifact;
pub mod bindings;
pub mod chain;
pub mod json;
pub mod rules;
pub mod step;

pub use artifact::{Contract, ForeignCode};
pub use chain::{
    dev_signer, is_dev_account, is_dev_chain, try_dev_signer, warn_if_dev_key, ChainConfig,
    EmbeddedChain, DEV_CHAIN_IDS, DEV_KEY_ACCOUNTS, DEV_MNEMONIC,
};
pub use rules::{probe_hardfork, Hardfork, UnknownHardfork};
