//! A bot's TOML configuration file.

use super::keystore::{self, PASSWORD_ENV};
use crate::MAX_NODE_STEPS;
use alloy::primitives::utils::{parse_units, ParseUnits};
use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use opml_contracts::try_dev_signer;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What is wrong with a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for a bot.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where and what.
        source: Box<toml::de::Error>,
    },
    /// A field has a value the bot cannot use.
    #[error("{path}: `{field}`: {reason}")]
    Field {
        /// The file.
        path: PathBuf,
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

/// Where the bot's chain is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The in-process embedded chain (only within the process that runs it, as `opml demo` does).
    Embedded,
    /// A JSON-RPC node over HTTP.
    Http(alloy::transports::http::reqwest::Url),
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    rpc: String,
    key: String,
    game: Address,
    models: Vec<PathBuf>,
    bond: String,
    reserve: Option<String>,
    arity: Option<u64>,
    #[serde(default = "default_poll_ms")]
    poll_interval_ms: u64,
    db: PathBuf,
    #[serde(default)]
    serve: Vec<Address>,
    #[serde(default)]
    from_block: u64,
    max_node_steps: Option<u64>,
    metrics_addr: Option<String>,
    key_password_file: Option<PathBuf>,
    max_fee_gwei: Option<Number>,
    confirmations: Option<u64>,
}

/// A TOML number, integer or not.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Number {
    Integer(u64),
    Float(f64),
}

fn default_poll_ms() -> u64 {
    1000
}

/// Games a submitter keeps a defence bond for when its config names no `reserve`.
pub const DEFAULT_RESERVE_GAMES: u64 = 8;

/// Confirmations a bot waits for on a chain that is not a development chain when its config
/// names none: the blocks mined on top of a block before the bot acts on its logs. Reorgs of
/// Ethereum's head are one or two blocks deep; three keep a bot from acting on a request or
/// result that such a reorg removes, and cost it three blocks of a challenge window (an hour by
/// default) or of a game's clock when it first sees the game.
pub const DEFAULT_CONFIRMATIONS: u64 = 3;

/// A submitter's or challenger's configuration (see `docs/bots.md` for an annotated file).
#[derive(Debug, Clone)]
pub struct BotConfig {
    /// The chain.
    pub rpc: Endpoint,
    /// The account that signs the bot's transactions.
    pub signer: PrivateKeySigner,
    /// The `DisputeGame` contract.
    pub game: Address,
    /// Model folders (manifest and weights) whose requests or results the bot handles.
    pub models: Vec<PathBuf>,
    /// The most wei the bot locks per result (submitter) or game (challenger): it refuses to
    /// start against a contract whose bond is larger.
    pub bond: U256,
    /// Submitter: wei it keeps for defending games (a defence bond and gas per game) and never
    /// spends on a new result: below it, it stops taking requests and says so. `None` is
    /// [`DEFAULT_RESERVE_GAMES`] challenge bonds of the contract.
    pub reserve: Option<U256>,
    /// The arity the bot expects of the contract, if stated.
    pub arity: Option<u64>,
    /// How often it polls the chain.
    pub poll_interval: Duration,
    /// Its database file.
    pub db: PathBuf,
    /// Submitter: the requesters it answers (all when empty).
    pub serve: Vec<Address>,
    /// First block to scan for requests and results (the game's deployment block when earlier).
    pub from_block: u64,
    /// The most VM steps it records of one disputed node (time and memory): a game whose node
    /// needs more is reported and left, the others go on. Default [`MAX_NODE_STEPS`].
    pub max_node_steps: u64,
    /// Where it serves its Prometheus metrics (`GET /metrics`), if anywhere (default: nowhere).
    pub metrics_addr: Option<SocketAddr>,
    /// The most wei per gas it offers (`max_fee_per_gas`) in any transaction it signs or
    /// re-prices; while the market asks more it sends nothing and says so. `None`: no cap.
    pub max_fee_per_gas: Option<u128>,
    /// The blocks that must be mined on top of a block before the bot acts on its logs (a reorg
    /// shallower than this cannot make it act on a log that disappears). `None`:
    /// [`BotConfig::confirmations_on`] picks by chain.
    pub confirmations: Option<u64>,
}

impl BotConfig {
    /// Reads and checks `path`; relative paths in it resolve against its folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                source,
            },
            ConfigError::Field { field, reason, .. } => ConfigError::Field {
                path: path.to_path_buf(),
                field,
                reason,
            },
            other => other,
        })
    }

    /// Parses the TOML `text`, resolving relative paths against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: PathBuf::new(),
            source: Box::new(source),
        })?;
        let field = |field, reason: String| ConfigError::Field {
            path: PathBuf::new(),
            field,
            reason,
        };
        let rpc = if raw.rpc == "embedded" {
            Endpoint::Embedded
        } else {
            Endpoint::Http(
                raw.rpc
                    .parse()
                    .map_err(|e| field("rpc", format!("{:?} is not a URL: {e}", raw.rpc)))?,
            )
        };
        let signer = parse_key(&raw.key, base, raw.key_password_file.as_deref()).map_err(|e| {
            let name = match e {
                KeyError::PasswordFile { .. } => "key_password_file",
                _ => "key",
            };
            field(name, e.to_string())
        })?;
        if raw.key_password_file.is_some() && !raw.key.starts_with(KEYSTORE_PREFIX) {
            return Err(field(
                "key_password_file",
                "only a `keystore:PATH` key has a password".into(),
            ));
        }
        let max_fee_per_gas = raw
            .max_fee_gwei
            .map(|n| parse_gwei(&n).map_err(|reason| field("max_fee_gwei", reason)))
            .transpose()?;
        if raw.models.is_empty() {
            return Err(field("models", "names no model".into()));
        }
        let bond = parse_amount(&raw.bond).map_err(|reason| field("bond", reason))?;
        let reserve = raw
            .reserve
            .map(|r| parse_amount(&r).map_err(|reason| field("reserve", reason)))
            .transpose()?;
        if raw.arity.is_some_and(|k| !(2..=64).contains(&k)) {
            return Err(field("arity", "must be 2..=64".into()));
        }
        if raw.poll_interval_ms == 0 {
            return Err(field("poll_interval_ms", "must be positive".into()));
        }
        if raw.max_node_steps == Some(0) {
            return Err(field("max_node_steps", "must be positive".into()));
        }
        let metrics_addr = raw
            .metrics_addr
            .map(|a| {
                a.parse().map_err(|_| {
                    field(
                        "metrics_addr",
                        format!("{a:?} is not an IP address and port, e.g. \"127.0.0.1:9464\""),
                    )
                })
            })
            .transpose()?;
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        Ok(Self {
            rpc,
            signer,
            game: raw.game,
            models: raw.models.into_iter().map(resolve).collect(),
            bond,
            reserve,
            arity: raw.arity,
            poll_interval: Duration::from_millis(raw.poll_interval_ms),
            db: resolve(raw.db),
            serve: raw.serve,
            from_block: raw.from_block,
            max_node_steps: raw.max_node_steps.unwrap_or(MAX_NODE_STEPS),
            metrics_addr,
            max_fee_per_gas,
            confirmations: raw.confirmations,
        })
    }

    /// The confirmations the bot waits for on chain `chain_id`: the configured number, else none
    /// on a development chain (its blocks are mined only with transactions, so a bot waiting for
    /// more would wait forever) and [`DEFAULT_CONFIRMATIONS`] on any other.
    pub fn confirmations_on(&self, chain_id: u64) -> u64 {
        self.confirmations
            .unwrap_or(if opml_contracts::is_dev_chain(chain_id) {
                0
            } else {
                DEFAULT_CONFIRMATIONS
            })
    }
}

/// `max_fee_gwei` in wei: a positive number of gwei with at most nine decimals.
fn parse_gwei(n: &Number) -> Result<u128, String> {
    let text = match n {
        Number::Integer(i) => i.to_string(),
        Number::Float(f) if f.is_finite() => f.to_string(),
        Number::Float(f) => return Err(format!("{f} is not a number of gwei")),
    };
    let wei = match parse_units(&text, "gwei").map_err(|e| format!("{text}: {e}"))? {
        ParseUnits::U256(wei) => wei,
        ParseUnits::I256(_) => return Err(format!("{text}: a fee cannot be negative")),
    };
    match u128::try_from(wei) {
        Ok(0) => Err("must be positive".into()),
        Ok(wei) => Ok(wei),
        Err(_) => Err(format!("{text} gwei is beyond any fee")),
    }
}

/// The prefix of a key held by an encrypted keystore file.
const KEYSTORE_PREFIX: &str = "keystore:";

/// Why a `key` (of a bot's file, or `--private-key-env` / `--keystore` of an operator command)
/// gives no signer. Each names the variable or file at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not 32 bytes in hex, nor `dev:N`, `env:VAR` or `keystore:PATH`.
    #[error("not a 32-byte hex private key, dev:N, env:VAR or keystore:PATH")]
    NotAKey,
    /// `dev:N` with N not an account number of the mnemonic.
    #[error("dev:{0}: dev accounts are numbered 0 to 2147483647")]
    DevIndex(String),
    /// `env:VAR` with VAR not set (or not Unicode).
    #[error("env:{0}: the environment variable {0} is not set")]
    EnvUnset(String),
    /// `env:VAR` with VAR set to something else than a hex private key (its value is not repeated).
    #[error("env:{0}: the environment variable {0} does not hold a 32-byte hex private key")]
    EnvNotAKey(String),
    /// The keystore file cannot be read (missing, unreadable, too large).
    #[error("keystore {path}: cannot read it: {reason}")]
    KeystoreRead {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file is not an encrypted keystore this build decrypts.
    #[error(
        "keystore {path}: not an encrypted keystore file (Web3 Secret Storage version 3, as \
         `cast wallet import` and geth write): {reason}"
    )]
    NotAKeystore {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The password does not decrypt the keystore (its MAC does not match).
    #[error("cannot decrypt the keystore {path}: wrong password?")]
    WrongPassword {
        /// The file.
        path: PathBuf,
    },
    /// A keystore and no password: neither a password file nor the environment variable.
    #[error(
        "keystore {path}: no password given: set the environment variable {PASSWORD_ENV} or name \
         a file that holds it (`key_password_file` in a bot's file, --password-file on the \
         command line)"
    )]
    NoPassword {
        /// The keystore file.
        path: PathBuf,
    },
    /// The password file cannot be read.
    #[error("password file {path}: {reason}")]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The signer of a key as written in a bot's `key` (and behind `--private-key-env` and
/// `--keystore` of the operator commands): 32 bytes in hex; `env:VAR`, the hex key held by the
/// environment variable VAR (so the file itself holds no secret); `keystore:PATH`, an encrypted
/// keystore file (relative to `base`) whose password is in `password_file` (relative to `base`)
/// or else in the environment variable [`PASSWORD_ENV`]; or `dev:N` for account N of the public
/// development mnemonic (test chains only: anyone can spend from those accounts).
pub fn parse_key(
    key: &str,
    base: &Path,
    password_file: Option<&Path>,
) -> Result<PrivateKeySigner, KeyError> {
    parse_key_with(key, base, password_file, |var| std::env::var(var).ok())
}

/// [`parse_key`] with the environment given as a lookup (tests need not change the process's).
fn parse_key_with(
    key: &str,
    base: &Path,
    password_file: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<PrivateKeySigner, KeyError> {
    if let Some(index) = key.strip_prefix("dev:") {
        let dev = || KeyError::DevIndex(index.to_string());
        let index: u32 = index.parse().map_err(|_| dev())?;
        return try_dev_signer(index).ok_or_else(dev);
    }
    if let Some(var) = key.strip_prefix("env:") {
        let value = env(var).ok_or_else(|| KeyError::EnvUnset(var.to_string()))?;
        return value
            .trim()
            .parse()
            .map_err(|_| KeyError::EnvNotAKey(var.to_string()));
    }
    if let Some(path) = key.strip_prefix(KEYSTORE_PREFIX) {
        let path = base.join(path);
        let password = match password_file {
            Some(file) => keystore::read_password_file(&base.join(file))?,
            None => env(PASSWORD_ENV)
                .ok_or_else(|| KeyError::NoPassword { path: path.clone() })?
                .into_bytes(),
        };
        return keystore::decrypt(&path, &password);
    }
    key.parse().map_err(|_| KeyError::NotAKey)
}

/// An amount such as `1 ether`, `0.5 ether`, `20 gwei` or `1000` (wei).
fn parse_amount(amount: &str) -> Result<U256, String> {
    let mut parts = amount.split_whitespace();
    let (value, unit) = match (parts.next(), parts.next(), parts.next()) {
        (Some(v), None, None) => (v, "wei"),
        (Some(v), Some(u), None) => (v, u),
        _ => {
            return Err(format!(
                "{amount:?}: write an amount and a unit, e.g. \"1 ether\""
            ))
        }
    };
    match parse_units(value, unit).map_err(|e| format!("{amount:?}: {e}"))? {
        ParseUnits::U256(wei) => Ok(wei),
        ParseUnits::I256(_) => Err(format!("{amount:?}: a bond cannot be negative")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opml_contracts::dev_signer;

    const GOOD: &str = r#"
        rpc = "http://127.0.0.1:8545"
        key = "dev:2"
        game = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
        models = ["../models/mnist-cnn"]
        bond = "1 ether"
        arity = 2
        poll_interval_ms = 250
        db = "challenger.redb"
    "#;

    #[test]
    fn parses_a_full_file_and_resolves_paths() {
        let c = BotConfig::parse(GOOD, Path::new("/etc/opml")).unwrap();
        assert_eq!(c.signer.address(), dev_signer(2).address());
        assert_eq!(c.reserve, None);
        assert_eq!(
            c.models,
            vec![PathBuf::from("/etc/opml/../models/mnist-cnn")]
        );
        assert_eq!(c.db, PathBuf::from("/etc/opml/challenger.redb"));
        assert_eq!(c.bond, U256::from(10u128.pow(18)));
        assert_eq!(c.poll_interval, Duration::from_millis(250));
        assert_eq!(c.max_node_steps, MAX_NODE_STEPS);
        assert!(matches!(c.rpc, Endpoint::Http(_)));
        assert_eq!(c.metrics_addr, None);
        let cases = [
            ("127.0.0.1:9464", "127.0.0.1:9464"),
            ("0.0.0.0:9464", "0.0.0.0:9464"),
            ("[::1]:9464", "[::1]:9464"),
        ];
        for (written, want) in cases {
            let text = format!("{GOOD}\nmetrics_addr = \"{written}\"");
            let c = BotConfig::parse(&text, Path::new(".")).unwrap();
            assert_eq!(c.metrics_addr, Some(want.parse().unwrap()), "{written}");
        }
    }

    #[test]
    fn rejects_bad_fields_by_name() {
        let cases = [
            (
                r#"rpc = "http://127.0.0.1:8545""#,
                r#"rpc = "not a url""#,
                "rpc",
            ),
            (r#"key = "dev:2""#, r#"key = "0x1234""#, "key"),
            (r#"key = "dev:2""#, r#"key = "dev:4294967295""#, "key"),
            (
                r#"key = "dev:2""#,
                r#"key = "env:OPML_TEST_NEVER_SET_7F3A""#,
                "key",
            ),
            (r#"bond = "1 ether""#, r#"bond = "one ether""#, "bond"),
            (r#"bond = "1 ether""#, r#"bond = "1 potato""#, "bond"),
            (r#"bond = "1 ether""#, r#"bond = "-1 ether""#, "bond"),
            ("arity = 2", "arity = 1", "arity"),
            ("arity = 2", r#"reserve = "a lot""#, "reserve"),
            (
                "poll_interval_ms = 250",
                "poll_interval_ms = 0",
                "poll_interval_ms",
            ),
            (
                r#"models = ["../models/mnist-cnn"]"#,
                "models = []",
                "models",
            ),
            ("arity = 2", "max_node_steps = 0", "max_node_steps"),
            (
                "arity = 2",
                r#"metrics_addr = "localhost:9464""#,
                "metrics_addr",
            ),
            ("arity = 2", r#"metrics_addr = "9464""#, "metrics_addr"),
            (
                "arity = 2",
                r#"metrics_addr = "127.0.0.1:99999""#,
                "metrics_addr",
            ),
            ("arity = 2", "max_fee_gwei = 0", "max_fee_gwei"),
            ("arity = 2", "max_fee_gwei = -3", "max_fee_gwei"),
            ("arity = 2", "max_fee_gwei = 0.0000000001", "max_fee_gwei"),
            ("arity = 2", "max_fee_gwei = nan", "max_fee_gwei"),
            // A password belongs to a keystore key, and is never written in the file itself.
            (
                "arity = 2",
                r#"key_password_file = "pw.txt""#,
                "key_password_file",
            ),
            (
                r#"key = "dev:2""#,
                r#"key = "keystore:/nonexistent/opml-key.json""#,
                "key",
            ),
        ];
        for (from, to, want) in cases {
            let text = GOOD.replace(from, to);
            match BotConfig::parse(&text, Path::new(".")) {
                Err(ConfigError::Field { field, .. }) => assert_eq!(field, want, "{to}"),
                other => panic!("{to}: {other:?}"),
            }
        }
    }

    #[test]
    fn rejects_unknown_and_missing_fields() {
        for text in [
            format!("{GOOD}\nbonds = \"1 ether\""),
            // A production bot cannot be configured to lie: `opml adversary` is another command.
            format!("{GOOD}\nfault = \"node=2\""),
            format!("{GOOD}\nkey_password = \"hunter2\""),
            format!("{GOOD}\nconfirmations = -1"),
            format!("{GOOD}\nmax_fee_gwei = \"200\""),
            GOOD.replace(r#"db = "challenger.redb""#, ""),
            GOOD.replace("game = ", "game = 1 #"),
        ] {
            assert!(
                matches!(
                    BotConfig::parse(&text, Path::new(".")),
                    Err(ConfigError::Parse { .. })
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn reads_keys_from_the_environment() {
        let hex0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
        let env = |var: &str| match var {
            "OPML_KEY" => Some(format!("{hex0}\n")),
            "JUNK" => Some("0x1234".to_string()),
            _ => None,
        };
        let cases: [(&str, Result<Address, KeyError>); 7] = [
            ("env:OPML_KEY", Ok(dev_signer(0).address())),
            (hex0, Ok(dev_signer(0).address())),
            ("dev:1", Ok(dev_signer(1).address())),
            ("env:MISSING", Err(KeyError::EnvUnset("MISSING".into()))),
            ("env:JUNK", Err(KeyError::EnvNotAKey("JUNK".into()))),
            ("dev:x", Err(KeyError::DevIndex("x".into()))),
            ("OPML_KEY", Err(KeyError::NotAKey)),
        ];
        for (key, want) in cases {
            let got = parse_key_with(key, Path::new("."), None, env).map(|s| s.address());
            assert_eq!(got, want, "{key}");
        }
        // The error names the variable, so an operator knows what to export.
        let e = parse_key_with("env:MISSING", Path::new("."), None, env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("MISSING") && e.contains("not set"), "{e}");
    }

    /// A folder of its own under the system's temporary folder, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("opml-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn reads_keys_from_encrypted_keystores() {
        use rand::SeedableRng;
        let dir = TempDir::new("keystore");
        let key = alloy::primitives::B256::repeat_byte(0x42);
        // eth-keystore's own encryption (scrypt n = 2^13, as `cast wallet import` writes).
        let (signer, _) = PrivateKeySigner::encrypt_keystore(
            &dir.0,
            &mut rand::rngs::StdRng::seed_from_u64(7),
            key,
            "correct horse",
            Some("key.json"),
        )
        .unwrap();
        let want = signer.address();
        std::fs::write(dir.0.join("garbage.json"), "{\"not\": \"a keystore\"}").unwrap();
        std::fs::write(dir.0.join("pw.txt"), "correct horse\n").unwrap();
        std::fs::write(dir.0.join("bad-pw.txt"), "battery staple\r\n").unwrap();
        let env = |password: Option<&'static str>| {
            move |var: &str| {
                (var == PASSWORD_ENV)
                    .then(|| password.map(String::from))
                    .flatten()
            }
        };
        let at = |name: &str| dir.0.join(name);
        // (key, password file, password in the environment) → the address, or the error. Each
        // case decrypts at most once.
        let cases: [(
            &str,
            Option<&str>,
            Option<&'static str>,
            Result<Address, KeyError>,
        ); 9] = [
            ("keystore:key.json", None, Some("correct horse"), Ok(want)),
            // A file written by `echo` ends in a newline, which is no part of the password; the
            // file wins over the environment.
            ("keystore:key.json", Some("pw.txt"), Some("wrong"), Ok(want)),
            (
                "keystore:key.json",
                None,
                Some("wrong"),
                Err(KeyError::WrongPassword {
                    path: at("key.json"),
                }),
            ),
            (
                "keystore:key.json",
                Some("bad-pw.txt"),
                None,
                Err(KeyError::WrongPassword {
                    path: at("key.json"),
                }),
            ),
            (
                "keystore:key.json",
                None,
                None,
                Err(KeyError::NoPassword {
                    path: at("key.json"),
                }),
            ),
            (
                "keystore:missing.json",
                None,
                Some("correct horse"),
                Err(KeyError::KeystoreRead {
                    path: at("missing.json"),
                    reason: String::new(),
                }),
            ),
            (
                "keystore:garbage.json",
                None,
                Some("correct horse"),
                Err(KeyError::NotAKeystore {
                    path: at("garbage.json"),
                    reason: String::new(),
                }),
            ),
            (
                "keystore:key.json",
                Some("no-such-pw.txt"),
                None,
                Err(KeyError::PasswordFile {
                    path: at("no-such-pw.txt"),
                    reason: String::new(),
                }),
            ),
            // A directory is not a keystore file.
            (
                "keystore:.",
                None,
                Some("correct horse"),
                Err(KeyError::KeystoreRead {
                    path: at("."),
                    reason: String::new(),
                }),
            ),
        ];
        for (key, file, password, want) in cases {
            let got = parse_key_with(key, &dir.0, file.map(Path::new), env(password));
            // Reasons come from the system and serde; the variant and the file are what count.
            let got = got.map(|s| s.address()).map_err(|e| {
                let text = e.to_string();
                let path = match &e {
                    KeyError::KeystoreRead { path, .. }
                    | KeyError::NotAKeystore { path, .. }
                    | KeyError::WrongPassword { path }
                    | KeyError::NoPassword { path }
                    | KeyError::PasswordFile { path, .. } => path.clone(),
                    other => panic!("{key}: {other}"),
                };
                assert!(text.contains(&path.display().to_string()), "{text}");
                match e {
                    KeyError::KeystoreRead { path, .. } => KeyError::KeystoreRead {
                        path,
                        reason: String::new(),
                    },
                    KeyError::NotAKeystore { path, .. } => KeyError::NotAKeystore {
                        path,
                        reason: String::new(),
                    },
                    KeyError::PasswordFile { path, .. } => KeyError::PasswordFile {
                        path,
                        reason: String::new(),
                    },
                    other => other,
                }
            });
            assert_eq!(got, want, "{key} {file:?} {password:?}");
        }
        let wrong = KeyError::WrongPassword {
            path: at("key.json"),
        }
        .to_string();
        assert!(wrong.contains("cannot decrypt") && wrong.contains("wrong password?"));
        // In a bot's file: the path resolves against the file's folder, and a bad password is an
        // error of `key`.
        let text = GOOD.replace("dev:2", "keystore:key.json");
        let text = format!("{text}\nkey_password_file = \"pw.txt\"");
        let c = BotConfig::parse(&text, &dir.0).unwrap();
        assert_eq!(c.signer.address(), want);
        let text = text.replace("pw.txt", "bad-pw.txt");
        match BotConfig::parse(&text, &dir.0) {
            Err(ConfigError::Field {
                field: "key",
                reason,
                ..
            }) => {
                assert!(reason.contains("wrong password?"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fee_cap_and_confirmations() {
        let gwei = 1_000_000_000u128;
        let cases: [(&str, Option<u128>); 4] = [
            ("", None),
            ("max_fee_gwei = 200", Some(200 * gwei)),
            ("max_fee_gwei = 1.5", Some(3 * gwei / 2)),
            ("max_fee_gwei = 0.000000001", Some(1)),
        ];
        for (line, want) in cases {
            let c = BotConfig::parse(&format!("{GOOD}\n{line}"), Path::new(".")).unwrap();
            assert_eq!(c.max_fee_per_gas, want, "{line}");
        }
        // (the file's line, the chain) → confirmations: none on a dev chain, whose blocks come
        // only with transactions; DEFAULT_CONFIRMATIONS elsewhere; what the file says over both.
        let cases = [
            ("", 31337, 0),
            ("", 1, DEFAULT_CONFIRMATIONS),
            ("confirmations = 12", 1, 12),
            ("confirmations = 2", 31337, 2),
            ("confirmations = 0", 10, 0),
        ];
        for (line, chain, want) in cases {
            let c = BotConfig::parse(&format!("{GOOD}\n{line}"), Path::new(".")).unwrap();
            assert_eq!(c.confirmations_on(chain), want, "{line} on {chain}");
        }
    }

    #[test]
    fn parses_the_shipped_examples() {
        let examples = [
            (include_str!("../../../examples/submitter.toml"), true),
            (include_str!("../../../examples/challenger.toml"), false),
        ];
        // The examples read their key from OPML_KEY, which tests must not need set.
        for (text, submitter) in examples {
            let text = text.replace("key = \"env:OPML_KEY\"", "key = \"dev:1\"");
            assert!(text.contains("dev:1"), "the example reads OPML_KEY");
            let c = BotConfig::parse(&text, Path::new("/srv/opml")).unwrap();
            assert!(matches!(c.rpc, Endpoint::Http(_)));
            assert!(c.bond > U256::ZERO);
            assert!(!c.models.is_empty());
            assert_eq!(c.reserve.is_some(), submitter);
            // Off unless asked for; the commented line shows the way.
            assert_eq!(c.metrics_addr, None);
            let on = text.replace("# metrics_addr = ", "metrics_addr = ");
            let c = BotConfig::parse(&on, Path::new("/srv/opml")).unwrap();
            assert_eq!(c.metrics_addr, Some("127.0.0.1:9464".parse().unwrap()));
            assert_eq!((c.max_fee_per_gas, c.confirmations), (None, None));
            // The optional fields, as the comments write them, parse too.
            let text = text
                .replace("# max_fee_gwei = ", "max_fee_gwei = ")
                .replace("# confirmations = ", "confirmations = ");
            let c = BotConfig::parse(&text, Path::new("/srv/opml")).unwrap();
            assert_eq!(c.max_fee_per_gas, Some(200_000_000_000));
            assert_eq!(c.confirmations, Some(DEFAULT_CONFIRMATIONS));
        }
    }

    #[test]
    fn embedded_and_hex_keys() {
        let text = GOOD.replace("http://127.0.0.1:8545", "embedded").replace(
            "dev:2",
            "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        );
        let c = BotConfig::parse(&text, Path::new(".")).unwrap();
        assert_eq!(c.rpc, Endpoint::Embedded);
        assert_eq!(c.signer.address(), dev_signer(0).address());
    }
}
