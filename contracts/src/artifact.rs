//! The runtime code of each committed artifact, so that a bot can tell a deployment of these
//! contracts from look-alikes before it locks a bond in one (a game wired to another Step
//! verifier, say, would let a liar win every step).

use alloy::primitives::Address;
use serde::Deserialize;

/// The contracts whose deployed code a bot checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    /// `Step.sol`.
    Step,
    /// `NodeVm.sol`.
    NodeVm,
    /// `Registry.sol`.
    Registry,
    /// `DisputeGame.sol`.
    DisputeGame,
}

impl Contract {
    fn artifact(self) -> &'static str {
        match self {
            Contract::Step => include_str!("../out/Step.json"),
            Contract::NodeVm => include_str!("../out/NodeVm.json"),
            Contract::Registry => include_str!("../out/Registry.json"),
            Contract::DisputeGame => include_str!("../out/DisputeGame.json"),
        }
    }

    /// Whether `deployed` (the code at some address) is this contract's runtime code as compiled:
    /// equal byte for byte, except in the ranges that the constructor fills with immutables
    /// (those values are the contract's to report through its getters).
    pub fn matches(self, deployed: &[u8]) -> bool {
        let artifact: Artifact =
            serde_json::from_str(self.artifact()).expect("a committed artifact parses");
        let Ok(code) = alloy::hex::decode(&artifact.deployed_bytecode) else {
            return false;
        };
        if code.len() != deployed.len() {
            return false;
        }
        let mut mask = vec![false; code.len()];
        for range in artifact.immutable_references.values().flatten() {
            mask[range.start..range.start + range.length].fill(true);
        }
        code.iter()
            .zip(deployed)
            .zip(&mask)
            .all(|((a, b), skip)| *skip || a == b)
    }
}

/// What a deployment check found wrong.
#[derive(Debug, thiserror::Error)]
#[error("the code at {address} is not opml's {contract:?} as compiled in this build")]
pub struct ForeignCode {
    /// The contract expected there.
    pub contract: Contract,
    /// Where.
    pub address: Address,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Artifact {
    deployed_bytecode: String,
    #[serde(default)]
    immutable_references: std::collections::BTreeMap<String, Vec<ImmutableRange>>,
}

#[derive(Deserialize)]
struct ImmutableRange {
    start: usize,
    length: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(contract: Contract) -> Vec<u8> {
        let artifact: Artifact = serde_json::from_str(contract.artifact()).unwrap();
        alloy::hex::decode(&artifact.deployed_bytecode).unwrap()
    }

    #[test]
    fn only_immutables_may_differ() {
        let game = compiled(Contract::DisputeGame);
        let artifact: Artifact = serde_json::from_str(Contract::DisputeGame.artifact()).unwrap();
        let immutable = artifact
            .immutable_references
            .values()
            .flatten()
            .next()
            .unwrap();
        let mut filled = game.clone();
        filled[immutable.start + 31] = 0x42;
        let mut patched = game.clone();
        let outside = (0..game.len())
            .find(|i| {
                !artifact
                    .immutable_references
                    .values()
                    .flatten()
                    .any(|r| (r.start..r.start + r.length).contains(i))
            })
            .unwrap();
        patched[outside] ^= 1;
        let cases: [(&str, Contract, Vec<u8>, bool); 6] = [
            ("as compiled", Contract::DisputeGame, game.clone(), true),
            (
                "an immutable filled in",
                Contract::DisputeGame,
                filled,
                true,
            ),
            ("one byte changed", Contract::DisputeGame, patched, false),
            (
                "one byte short",
                Contract::DisputeGame,
                game[1..].to_vec(),
                false,
            ),
            (
                "another contract",
                Contract::Step,
                compiled(Contract::NodeVm),
                false,
            ),
            ("no code", Contract::Registry, Vec::new(), false),
        ];
        for (case, contract, code, want) in cases {
            assert_eq!(contract.matches(&code), want, "{case}");
        }
    }
}
