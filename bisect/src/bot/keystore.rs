//! Encrypted keystore files (Web3 Secret Storage version 3, the JSON that `cast wallet import`,
//! geth and clef write), opened for a `keystore:PATH` key ([`parse_key`](super::parse_key)).
//!
//! The file is checked before it reaches the decryption (eth-keystore, through alloy), which
//! slices and allocates by what the file says: a damaged or hostile file (a derived key shorter
//! than 32 bytes, a short IV, an scrypt cost of 2^31) would panic it or keep it busy for hours.
//! Here such a file is an error naming it.

use super::KeyError;
use alloy::signers::local::{LocalSignerError, PrivateKeySigner};
use serde::Deserialize;
use std::io::Read;
use std::path::Path;

/// The environment variable that holds a keystore's password when no password file is named.
pub const PASSWORD_ENV: &str = "OPML_KEYSTORE_PASSWORD";

/// The largest keystore or password file read (a keystore is about 500 bytes).
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// The most memory scrypt may take, 128·n·r bytes: geth's "standard" keystores (n = 2^18, r = 8)
/// take 256 MiB, `cast`'s (n = 2^13) 8 MiB.
const MAX_SCRYPT_MEMORY: u64 = 256 << 20;

/// The most scrypt work, 128·n·r·p bytes mixed: four times geth's standard keystore.
const MAX_SCRYPT_WORK: u64 = 4 * MAX_SCRYPT_MEMORY;

/// The most PBKDF2 rounds (geth's PBKDF2 keystores use 262,144; ten million take seconds).
const MAX_PBKDF2_ROUNDS: u64 = 10_000_000;

/// The parts of a keystore file that decide what decrypting it costs and whether the decryption
/// can run at all.
#[derive(Deserialize)]
struct KeystoreFile {
    version: u64,
    crypto: Crypto,
}

#[derive(Deserialize)]
struct Crypto {
    cipher: String,
    cipherparams: CipherParams,
    ciphertext: String,
    kdf: String,
    kdfparams: KdfParams,
    mac: String,
}

#[derive(Deserialize)]
struct CipherParams {
    iv: String,
}

#[derive(Deserialize)]
struct KdfParams {
    dklen: u64,
    salt: String,
    n: Option<u64>,
    r: Option<u64>,
    p: Option<u64>,
    c: Option<u64>,
    prf: Option<String>,
}

/// The bytes of `path`, at most [`MAX_FILE_BYTES`] of them.
fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    Ok(bytes)
}

/// `field` as hex of exactly `len` bytes.
fn hex_of_len(field: &str, value: &str, len: usize) -> Result<(), String> {
    match hex::decode(value) {
        Ok(bytes) if bytes.len() == len => Ok(()),
        Ok(bytes) => Err(format!("{field} has {} bytes, not {len}", bytes.len())),
        Err(e) => Err(format!("{field} is not hex: {e}")),
    }
}

/// Why the keystore `text` cannot be decrypted safely, if it cannot.
fn check(text: &[u8]) -> Result<(), String> {
    let file: KeystoreFile = serde_json::from_slice(text).map_err(|e| e.to_string())?;
    if file.version != 3 {
        return Err(format!("version {}, not 3", file.version));
    }
    let c = &file.crypto;
    if c.cipher != "aes-128-ctr" {
        return Err(format!("cipher {:?}, not aes-128-ctr", c.cipher));
    }
    hex_of_len("cipherparams.iv", &c.cipherparams.iv, 16)?;
    hex_of_len("ciphertext", &c.ciphertext, 32)?;
    hex_of_len("mac", &c.mac, 32)?;
    let k = &c.kdfparams;
    if k.dklen != 32 {
        return Err(format!("kdfparams.dklen {}, not 32", k.dklen));
    }
    hex::decode(&k.salt).map_err(|e| format!("kdfparams.salt is not hex: {e}"))?;
    match c.kdf.as_str() {
        "scrypt" => {
            let (Some(n), Some(r), Some(p), None) = (k.n, k.r, k.p, k.c) else {
                return Err("scrypt needs kdfparams n, r and p (and no c)".into());
            };
            if n < 2 || !n.is_power_of_two() || r == 0 || p == 0 {
                return Err(format!(
                    "scrypt n = {n}, r = {r}, p = {p}: n must be a power of two from 2, r and p positive"
                ));
            }
            let memory = 128u64.saturating_mul(n).saturating_mul(r);
            if memory > MAX_SCRYPT_MEMORY || memory.saturating_mul(p) > MAX_SCRYPT_WORK {
                return Err(format!(
                    "scrypt n = {n}, r = {r}, p = {p} costs more than this build decrypts \
                     ({} MiB of memory, {} MiB of work)",
                    MAX_SCRYPT_MEMORY >> 20,
                    MAX_SCRYPT_WORK >> 20
                ));
            }
        }
        "pbkdf2" => {
            let (Some(rounds), Some("hmac-sha256")) = (k.c, k.prf.as_deref()) else {
                return Err("pbkdf2 needs kdfparams c and prf = hmac-sha256".into());
            };
            if rounds == 0 || rounds > MAX_PBKDF2_ROUNDS {
                return Err(format!(
                    "pbkdf2 c = {rounds}: must be 1 to {MAX_PBKDF2_ROUNDS}"
                ));
            }
        }
        other => return Err(format!("kdf {other:?}, not scrypt or pbkdf2")),
    }
    Ok(())
}

/// The password held by the file `path`: its bytes without the line ending after them (a file
/// written by `echo` ends in one), at most [`MAX_FILE_BYTES`].
pub(super) fn read_password_file(path: &Path) -> Result<Vec<u8>, KeyError> {
    let mut bytes = read_bounded(path).map_err(|reason| KeyError::PasswordFile {
        path: path.to_path_buf(),
        reason,
    })?;
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    Ok(bytes)
}

/// The signer whose key the keystore file `path` holds, encrypted with `password`.
pub(super) fn decrypt(path: &Path, password: &[u8]) -> Result<PrivateKeySigner, KeyError> {
    let not_a_keystore = |reason: String| KeyError::NotAKeystore {
        path: path.to_path_buf(),
        reason,
    };
    let text = read_bounded(path).map_err(|reason| KeyError::KeystoreRead {
        path: path.to_path_buf(),
        reason,
    })?;
    check(&text).map_err(not_a_keystore)?;
    PrivateKeySigner::decrypt_keystore(path, password).map_err(|e| match e {
        LocalSignerError::EthKeystoreError(eth_keystore::KeystoreError::MacMismatch) => {
            KeyError::WrongPassword {
                path: path.to_path_buf(),
            }
        }
        LocalSignerError::EthKeystoreError(eth_keystore::KeystoreError::StdIo(reason)) => {
            KeyError::KeystoreRead {
                path: path.to_path_buf(),
                reason,
            }
        }
        other => not_a_keystore(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A keystore as `cast wallet import` writes it (scrypt, n = 2^13), with its parts named.
    const GOOD: &str = r#"{"crypto":{"cipher":"aes-128-ctr","cipherparams":{"iv":"IV"},
        "ciphertext":"CT","kdf":"scrypt","kdfparams":{"dklen":32,"n":8192,"p":1,"r":8,
        "salt":"SALT"},"mac":"MAC"},"id":"8f5d1bcb-9f53-4fb6-9f47-2d1b7d6b3c1e","version":3}"#;

    fn good() -> String {
        GOOD.replace("IV", &"ab".repeat(16))
            .replace("CT", &"cd".repeat(32))
            .replace("SALT", &"ef".repeat(32))
            .replace("MAC", &"01".repeat(32))
    }

    #[test]
    fn refuses_files_that_would_break_or_stall_the_decryption() {
        // (what is changed, into what, the reason names) — none of these reaches eth-keystore.
        let cases = [
            ("\"dklen\":32", "\"dklen\":16", "dklen"),
            (&"ab".repeat(16), "abab", "iv"),
            ("\"n\":8192", "\"n\":2147483648", "costs more"),
            ("\"n\":8192", "\"n\":262144", ""),
            ("\"n\":8192", "\"n\":8191", "power of two"),
            ("\"r\":8", "\"r\":0", "r and p positive"),
            ("\"p\":1", "\"p\":1000", "costs more"),
            ("\"version\":3", "\"version\":1", "version"),
            ("aes-128-ctr", "aes-256-gcm", "cipher"),
            ("\"kdf\":\"scrypt\"", "\"kdf\":\"argon2\"", "kdf"),
            ("\"kdf\":\"scrypt\"", "\"kdf\":\"pbkdf2\"", "pbkdf2 needs"),
            (&"cd".repeat(32), "zz", "ciphertext"),
            ("\"crypto\"", "\"Crypto\"", "missing field"),
        ];
        assert_eq!(check(good().as_bytes()), Ok(()));
        for (from, to, want) in cases {
            let text = good().replace(from, to);
            assert_ne!(text, good(), "{from} is not in the sample");
            match check(text.as_bytes()) {
                Ok(()) => assert!(want.is_empty(), "{to}: accepted"),
                Err(reason) => assert!(!want.is_empty() && reason.contains(want), "{to}: {reason}"),
            }
        }
        let pbkdf2 = good()
            .replace("\"kdf\":\"scrypt\"", "\"kdf\":\"pbkdf2\"")
            .replace(
                "\"n\":8192,\"p\":1,\"r\":8,",
                "\"c\":262144,\"prf\":\"hmac-sha256\",",
            );
        assert_eq!(check(pbkdf2.as_bytes()), Ok(()));
        let slow = pbkdf2.replace("262144", "4294967295");
        assert!(check(slow.as_bytes()).unwrap_err().contains("pbkdf2 c"));
        assert!(check(b"garbage").is_err());
    }
}
