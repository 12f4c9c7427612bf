//! Serde helpers for the JSON that opml prints (the vocabulary of README.md, "JSON output"): wei
//! as decimal strings, addresses EIP-55 checksummed, durations in milliseconds. alloy's own serde
//! writes `U256` as `0x` hex and `Address` in lower case, which a reader cannot tell apart from
//! other hex nor check against a typo; these are for `#[serde(serialize_with = "…")]`.

use alloy::primitives::{Address, U256};
use serde::Serializer;

/// Writes an amount of wei as a decimal string (`"1000000000000000000"`): exact where a JSON
/// number is not (past 2^53), and plain to read.
pub fn wei<S: Serializer>(value: &U256, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// Writes an address EIP-55 checksummed (`0xf39Fd6e5…`), as alloy's `Display` does.
pub fn checksummed<S: Serializer>(address: &Address, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&address.to_checksum(None))
}

/// Writes a duration given in whole seconds (chain time: windows, clocks) in milliseconds.
pub fn seconds_as_ms<S: Serializer>(seconds: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(*seconds as f64 * 1e3)
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{address, Address, U256};
    use serde::Serialize;

    #[derive(Serialize)]
    struct Sample {
        #[serde(serialize_with = "super::wei")]
        bond_wei: U256,
        #[serde(serialize_with = "super::checksummed")]
        game: Address,
        #[serde(serialize_with = "super::seconds_as_ms")]
        clock_ms: u64,
    }

    #[test]
    fn amounts_addresses_and_durations_take_the_vocabularys_form() {
        let cases = [
            (
                U256::ZERO,
                Address::ZERO,
                0,
                r#"{"bond_wei":"0","game":"0x0000000000000000000000000000000000000000","clock_ms":0.0}"#,
            ),
            (
                U256::from(10u64).pow(U256::from(18u64)),
                address!("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"),
                1800,
                r#"{"bond_wei":"1000000000000000000","game":"0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266","clock_ms":1800000.0}"#,
            ),
            (
                U256::MAX,
                address!("0x5fbdb2315678afecb367f032d93f642f64180aa3"),
                u64::from(u32::MAX),
                r#"{"bond_wei":"115792089237316195423570985008687907853269984665640564039457584007913129639935","game":"0x5FbDB2315678afecb367f032d93F642f64180aa3","clock_ms":4294967295000.0}"#,
            ),
        ];
        for (bond_wei, game, clock_ms, want) in cases {
            let json = serde_json::to_string(&Sample {
                bond_wei,
                game,
                clock_ms,
            })
            .unwrap();
            assert_eq!(json, want);
        }
    }
}
