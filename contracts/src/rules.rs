//! Which EVM rules (hard fork) a chain follows. Gas figures mean little without them: one step
//! transaction costs about 64.5k gas under Osaka (EIP-7623's calldata floor prices its ~1.1 kB
//! witness) and about 47.8k under Cancun. The embedded chain takes its fork by name
//! ([`crate::ChainConfig::spec`]); a node's is probed, feature by feature, with `eth_call`s that
//! only the newer rules accept ([`probe_hardfork`]).

use alloy::primitives::{address, Address, Bytes};
use alloy::providers::{DynProvider, Provider};
use alloy::transports::TransportError;
use revm::primitives::hardfork::SpecId;
use serde_json::json;

/// The hard forks opml's contracts run under, oldest first: they are compiled for Cancun
/// (`contracts/scripts/compile.js`), so no older fork runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hardfork {
    /// Cancun (March 2024): transient storage, `MCOPY`, blobs; calldata at 4/16 gas a byte.
    Cancun,
    /// Prague (May 2025): EIP-7623's calldata floor (10/40 gas a zero/non-zero byte when a
    /// transaction executes little), BLS12-381 precompiles.
    Prague,
    /// Osaka (December 2025): Prague's rules, EIP-7825's cap of 2^24 gas per transaction, `CLZ`.
    Osaka,
}

/// A name that is none of [`Hardfork::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown hard fork `{0}`: expected cancun, prague or osaka (opml's contracts need cancun or newer)")]
pub struct UnknownHardfork(pub String);

impl Hardfork {
    /// Every fork opml runs under, oldest first.
    pub const ALL: [Hardfork; 3] = [Hardfork::Cancun, Hardfork::Prague, Hardfork::Osaka];

    /// revm's spec id of the fork.
    pub fn spec(self) -> SpecId {
        match self {
            Hardfork::Cancun => SpecId::CANCUN,
            Hardfork::Prague => SpecId::PRAGUE,
            Hardfork::Osaka => SpecId::OSAKA,
        }
    }

    /// The fork of a revm spec id, if opml runs under it.
    pub fn of_spec(spec: SpecId) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.spec() == spec)
    }

    /// Its name: revm's name of the spec, in lower case (`osaka`), as `--hardfork` takes it and
    /// JSON reports write it (`evm_rules`).
    pub fn name(self) -> &'static str {
        match self {
            Hardfork::Cancun => "cancun",
            Hardfork::Prague => "prague",
            Hardfork::Osaka => "osaka",
        }
    }

    /// Its name with the rules that change what a step transaction costs, for people.
    pub fn describe(self) -> &'static str {
        match self {
            Hardfork::Cancun => "cancun (calldata at 4/16 gas a zero/non-zero byte, no floor)",
            Hardfork::Prague => "prague (EIP-7623 calldata floor)",
            Hardfork::Osaka => "osaka (EIP-7623 calldata floor, EIP-7825 2^24 tx gas cap)",
        }
    }
}

impl std::fmt::Display for Hardfork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Hardfork {
    type Err = UnknownHardfork;

    /// Reads a name of [`Hardfork::name`], in any case (revm writes `Osaka`).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|h| h.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownHardfork(name.to_string()))
    }
}

/// BLS12-381 G1 addition (EIP-2537, Prague): 256 zero bytes (the point at infinity twice) give
/// 128 zero bytes; before Prague the address holds no code and answers nothing.
const BLS12_G1ADD: Address = address!("0x000000000000000000000000000000000000000b");

/// Init code that stops at once: a node that refuses it cannot be probed.
const STOP: &[u8] = &[0x00];
/// Init code `PUSH0 TLOAD STOP`: valid from Cancun on (EIP-1153).
const TLOAD: &[u8] = &[0x5f, 0x5c, 0x00];
/// Init code `PUSH1 1 CLZ STOP`: valid from Osaka on (EIP-7939).
const CLZ: &[u8] = &[0x60, 0x01, 0x1e, 0x00];

/// The newest fork of [`Hardfork::ALL`] whose rules the node at `provider` follows, learnt from
/// what its `eth_call` accepts (an opcode or precompile each fork added); `None` when it follows
/// none of them (older than Cancun). A node that answers with an error counts as not having the
/// feature; a transport failure, or a node that refuses even a call that only stops, is an error.
/// A hostile node can lie here as everywhere: the answer labels reports, it decides nothing.
pub async fn probe_hardfork(provider: &DynProvider) -> Result<Option<Hardfork>, TransportError> {
    let accepts = |request: serde_json::Value| async move {
        match provider
            .raw_request::<_, Bytes>("eth_call".into(), (request, "latest"))
            .await
        {
            Ok(output) => Ok(Some(output)),
            Err(e) if e.is_error_resp() => Ok(None),
            Err(e) => Err(e),
        }
    };
    let create = |code: &[u8]| json!({ "data": Bytes::copy_from_slice(code), "gas": "0x100000" });
    if accepts(create(STOP)).await?.is_none() {
        return Err(TransportError::local_usage_str(
            "the node refuses an eth_call that only stops, so its EVM rules cannot be probed",
        ));
    }
    if accepts(create(TLOAD)).await?.is_none() {
        return Ok(None);
    }
    let g1add = json!({
        "to": BLS12_G1ADD,
        "data": Bytes::from(vec![0u8; 256]),
        "gas": "0x100000",
    });
    let prague = accepts(g1add)
        .await?
        .is_some_and(|out| out.len() == 128 && out.iter().all(|b| *b == 0));
    if !prague {
        return Ok(Some(Hardfork::Cancun));
    }
    Ok(Some(if accepts(create(CLZ)).await?.is_some() {
        Hardfork::Osaka
    } else {
        Hardfork::Prague
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{dev_signer, ChainConfig, EmbeddedChain};

    #[test]
    fn names_are_revms_in_lower_case_and_read_back() {
        for fork in Hardfork::ALL {
            assert_eq!(<&str>::from(fork.spec()).to_lowercase(), fork.name());
            assert_eq!(Hardfork::of_spec(fork.spec()), Some(fork));
            assert!(fork.describe().starts_with(fork.name()));
            for spelling in [fork.name().to_string(), <&str>::from(fork.spec()).into()] {
                assert_eq!(spelling.parse::<Hardfork>(), Ok(fork), "{spelling}");
            }
        }
        let cases = [("shanghai", "shanghai"), ("", ""), ("osaka ", "osaka ")];
        for (name, echoed) in cases {
            let err = name.parse::<Hardfork>().unwrap_err();
            assert!(err.to_string().contains(&format!("`{echoed}`")), "{err}");
        }
        assert_eq!(Hardfork::of_spec(SpecId::SHANGHAI), None);
    }

    /// The probe finds each fork the embedded chain is configured with, and the forks are ordered
    /// as the chain's own rules are.
    #[tokio::test]
    async fn the_probe_finds_the_embedded_chains_fork() {
        for fork in Hardfork::ALL {
            let chain = EmbeddedChain::new(ChainConfig {
                spec: fork.spec(),
                ..ChainConfig::default()
            });
            let provider = chain.provider(dev_signer(0));
            assert_eq!(
                probe_hardfork(&provider).await.unwrap(),
                Some(fork),
                "{fork}"
            );
        }
        let old = EmbeddedChain::new(ChainConfig {
            spec: SpecId::SHANGHAI,
            ..ChainConfig::default()
        });
        assert_eq!(
            probe_hardfork(&old.provider(dev_signer(0))).await.unwrap(),
            None
        );
    }
}
