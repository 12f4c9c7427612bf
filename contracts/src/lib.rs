//! Solidity contracts of opml (step verifier, registries, dispute game), their committed artifacts, alloy bindings and the embedded revm chain (filled in by the on-chain step issue).
