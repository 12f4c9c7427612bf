//! One check of the JSON vocabulary (README.md, "JSON output") over every command that prints
//! `--json`: each runs on small inputs with quick flags, its stdout must be exactly one JSON
//! document, and every key and value in it must follow the rules. The commands that need a
//! long-lived chain (`deploy`, `request`) run against Hardhat's node; the others on the embedded
//! chain. A command that gains `--json` without a row here fails the test.

mod support;

use alloy::primitives::Address;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::hardhat::HardhatNode;

const OPML: &str = env!("CARGO_BIN_EXE_opml");

/// Runs `opml args` in the repository, which must exit with status `exit`; its stdout parsed as
/// one JSON document.
fn opml_json(args: &[String], exit: i32) -> Value {
    let out = Command::new(OPML)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(exit),
        "opml {args:?} exited {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "opml {args:?}: stdout is not one JSON document ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Whether `key` is snake_case: lower-case letters, digits and underscores.
fn is_snake(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Keys of durations in another unit than milliseconds (or in none at all).
fn is_other_duration(key: &str) -> bool {
    ["ms", "s", "us", "ns", "seconds", "secs", "elapsed"].contains(&key)
        || ["_seconds", "_secs", "_s", "_us", "_ns", "_elapsed"]
            .iter()
            .any(|suffix| key.ends_with(suffix))
}

/// Keys whose values are amounts of wei.
fn is_amount(key: &str) -> bool {
    key.ends_with("_wei")
        || ["bond", "balance", "burnt", "locked", "owed", "credits"].contains(&key)
        || ["_bond", "_balance", "_credit"]
            .iter()
            .any(|suffix| key.ends_with(suffix))
}

/// Keys whose values are 32-byte hashes (state hashes, roots, commitments), or lists or maps of them.
fn is_hash(key: &str) -> bool {
    ["hash", "root", "roots", "commitment", "models"]
        .iter()
        .any(|suffix| key.ends_with(suffix))
        || key == "output_acc"
}

/// Keys whose string values name one of a fixed set of things (enum values).
fn is_name(key: &str) -> bool {
    [
        "status",
        "action",
        "party",
        "actor",
        "winner",
        "class",
        "dtype",
        "output_dtype",
        "op",
        "submitter",
        "result",
        "evm_rules",
    ]
    .contains(&key)
}

/// Keys of byte strings that are neither addresses nor hashes.
const BYTES_KEYS: [&str; 1] = ["witness"];

/// Keys of free text for people, where a shortened hash (`0x1234…`) may stand.
const TEXT_KEYS: [&str; 1] = ["detail"];

fn is_hex(s: &str) -> Option<&str> {
    let digits = s.strip_prefix("0x")?;
    digits
        .bytes()
        .all(|b| b.is_ascii_hexdigit())
        .then_some(digits)
}

/// What the keys above a value say it is: an amount of wei, or a hash (a key such as `credits` or
/// `kernel_roots` names a map or list of them).
#[derive(Clone, Copy, Default)]
struct Kind {
    amount: bool,
    hash: bool,
}

/// Every breach of the vocabulary in `value`, found at `path` under `key` (the nearest object
/// key above it), of the `kind` its keys give it.
fn breaches(path: &str, key: &str, kind: Kind, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let here = format!("{path}.{k}");
                if !is_snake(k) {
                    out.push(format!("{here}: key not snake_case"));
                }
                if is_other_duration(k) {
                    out.push(format!("{here}: a duration not in `*_ms`"));
                }
                let kind = Kind {
                    amount: kind.amount || is_amount(k),
                    hash: kind.hash || is_hash(k),
                };
                breaches(&here, k, kind, v, out);
            }
        }
        Value::Array(items) => {
            // Records of one list have the same keys: none omits a field that does not apply.
            // (One-key objects are the variants of a tagged enum, such as a node's inputs
            // `{"node": 0}` and `{"weight": "fc1.weight"}`, not records.)
            let shapes: BTreeSet<Vec<&String>> = items
                .iter()
                .filter_map(|i| i.as_object().map(|m| m.keys().collect()))
                .collect();
            let variants = shapes.iter().all(|keys| keys.len() == 1);
            if shapes.len() > 1 && !variants {
                out.push(format!(
                    "{path}: objects of one list differ in keys: {shapes:?}"
                ));
            }
            for (i, item) in items.iter().enumerate() {
                breaches(&format!("{path}[{i}]"), key, kind, item, out);
            }
        }
        Value::Null => {}
        leaf => {
            let text = leaf.as_str();
            if kind.amount
                && !text.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            {
                out.push(format!("{path}: an amount not as a decimal string: {leaf}"));
            }
            let full_hash = text
                .and_then(is_hex)
                .is_some_and(|d| d.len() == 64 && d.bytes().all(|b| !b.is_ascii_uppercase()));
            if kind.hash && !full_hash {
                out.push(format!("{path}: not a full 0x hash: {leaf}"));
            }
            let Some(s) = text else { return };
            if let Some(digits) = is_hex(s) {
                match digits.len() {
                    40 => {
                        if Address::parse_checksummed(s, None).is_err() {
                            out.push(format!("{path}: address not EIP-55 checksummed: {s}"));
                        }
                    }
                    64 => {}
                    _ if BYTES_KEYS.contains(&key) => {}
                    n => out.push(format!(
                        "{path}: 0x hex of {n} digits, neither an address nor a full hash: {s}"
                    )),
                }
            }
            if s.contains('…') && !TEXT_KEYS.contains(&key) {
                out.push(format!("{path}: a shortened value: {s}"));
            }
            if is_name(key) && !is_snake(s) {
                out.push(format!("{path}: a name not in snake_case: {s}"));
            }
        }
    }
}

/// The vocabulary's checks on one command's output; panics naming every breach.
fn assert_vocabulary(command: &str, report: &Value) {
    let mut found = Vec::new();
    breaches("$", "", Kind::default(), report, &mut found);
    assert!(
        found.is_empty(),
        "opml {command}: the JSON breaks the vocabulary:\n  {}",
        found.join("\n  ")
    );
}

/// Every command path of the CLI (`vm run`, `bench gas`, …) whose `--help` offers `--json`.
fn commands_with_json() -> BTreeSet<String> {
    fn walk(path: &[String], out: &mut BTreeSet<String>) {
        let help = Command::new(OPML)
            .args(path)
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&help.stdout).into_owned();
        if help.contains("--json") {
            out.insert(path.join(" "));
        }
        let Some(commands) = help.split("Commands:\n").nth(1) else {
            return;
        };
        for line in commands.lines() {
            if line.trim().is_empty() || !line.starts_with("  ") {
                break;
            }
            let name = line.split_whitespace().next().unwrap();
            if name != "help" {
                let mut sub = path.to_vec();
                sub.push(name.to_string());
                walk(&sub, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&[], &mut out);
    out
}

/// A fresh empty directory under the system's temporary one.
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("opml-json-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One row: the command's path, its arguments, its exit status, and the EVM rules its report
/// must name (for the commands that report gas or talk to a chain).
struct Case {
    command: &'static str,
    args: Vec<String>,
    exit: i32,
    evm_rules: Option<&'static str>,
}

fn case(command: &'static str, args: &[&str], evm_rules: Option<&'static str>) -> Case {
    Case {
        command,
        args: args.iter().map(|a| a.to_string()).collect(),
        exit: 0,
        evm_rules,
    }
}

impl Case {
    /// The same, exiting with `status` (a program's exit code, the step limit's 124).
    fn exiting(self, status: i32) -> Self {
        Self {
            exit: status,
            ..self
        }
    }
}

#[test]
fn every_json_output_follows_one_vocabulary() {
    let tmp = scratch("schema");
    let witness = tmp.join("witness.json");
    let imported = tmp.join("imported");
    let report = tmp.join("report");
    let (witness, imported, report) = (
        witness.to_str().unwrap(),
        imported.to_str().unwrap(),
        report.to_str().unwrap(),
    );
    let primes = "target/riscv-programs/primes.elf";
    let digit = "data/mnist/samples/digit-7-label-0.pgm";
    // The tour builds the example programs on first use; the rows after it run them.
    let cases = [
        case("vm tour", &["vm", "tour", "--json"], Some("osaka")),
        case(
            "vm tour",
            &["vm", "tour", "--hardfork", "cancun", "--json"],
            Some("cancun"),
        ),
        // primes exits with its own code, 214.
        case("vm run", &["vm", "run", primes, "--json"], None).exiting(214),
        case(
            "vm run",
            &["vm", "run", primes, "--max-steps", "10", "--json"],
            None,
        )
        .exiting(124),
        case(
            "vm witness",
            &[
                "vm", "witness", primes, "--step", "10", "--out", witness, "--json",
            ],
            None,
        ),
        case(
            "vm verify-witness",
            &["vm", "verify-witness", witness, "--json"],
            None,
        ),
        case(
            "vm verify-onchain",
            &["vm", "verify-onchain", primes, "--steps", "0..3", "--json"],
            Some("osaka"),
        ),
        case(
            "vm bench",
            &[
                "vm",
                "bench",
                "--elf",
                primes,
                "--witness-step",
                "1000",
                "--checkpoint-interval",
                "100",
                "--merkle-mib",
                "1",
                "--repeat",
                "1",
                "--json",
            ],
            None,
        ),
        case("bench gas", &["bench", "gas", "--json"], Some("osaka")),
        case(
            "bench report",
            &[
                "bench",
                "report",
                "--quick",
                "--only",
                "step-gas,dispute,anchors",
                "--programs",
                "hello",
                "--hardfork",
                "prague",
                "--out",
                report,
                "--json",
            ],
            Some("prague"),
        ),
        case(
            "bench gas",
            &["bench", "gas", "--hardfork", "prague", "--json"],
            Some("prague"),
        ),
        case(
            "bench dnn",
            &["bench", "dnn", "models/mnist-mlp", "--runs", "1", "--json"],
            None,
        ),
        case(
            "bench gemm",
            &[
                "bench", "gemm", "--m", "2", "--k", "65", "--n", "33", "--runs", "1", "--json",
            ],
            None,
        ),
        case(
            "bench llm",
            &["bench", "llm", "--shape", "tiny", "--tokens", "2", "--json"],
            None,
        ),
        case(
            "generate",
            &[
                "generate",
                "tiny",
                "--prompt-tokens",
                "1,2",
                "--tokens",
                "2",
                "--json",
            ],
            None,
        ),
        case(
            "model import",
            &[
                "model",
                "import",
                "models/mnist-mlp",
                "--calibration",
                "data/mnist/train.safetensors",
                "--samples",
                "20",
                "--out",
                imported,
                "--json",
            ],
            None,
        ),
        case(
            "model info",
            &["model", "info", "models/mnist-cnn", "--json"],
            None,
        ),
        case(
            "model eval",
            &[
                "model",
                "eval",
                "models/mnist-mlp",
                "data/mnist/test.safetensors",
                "--json",
            ],
            None,
        ),
        case(
            "infer",
            &[
                "infer",
                "models/mnist-cnn",
                digit,
                "--check-vm",
                "--node",
                "7",
                "--json",
            ],
            None,
        ),
        case(
            "dispute simulate",
            &["dispute", "simulate", "models/mnist-mlp", digit, "--json"],
            Some("osaka"),
        ),
        case(
            "dispute simulate",
            &[
                "dispute",
                "simulate",
                "models/mnist-mlp",
                digit,
                "--fault",
                "challenger",
                "--hardfork",
                "cancun",
                "--json",
            ],
            Some("cancun"),
        ),
        case(
            "demo",
            &[
                "demo",
                "--model",
                "models/mnist-mlp",
                "--requests",
                "1",
                "--fault",
                "output",
                "--json",
            ],
            Some("osaka"),
        ),
    ];
    let mut covered = BTreeSet::new();
    let mut check = |c: &Case| -> Value {
        let report = opml_json(&c.args, c.exit);
        assert_vocabulary(&c.args.join(" "), &report);
        if let Some(rules) = c.evm_rules {
            assert_eq!(report["evm_rules"], rules, "opml {:?}", c.args);
            assert!(report["chain_id"].is_u64(), "opml {:?}", c.args);
        }
        covered.insert(c.command.to_string());
        report
    };
    for c in &cases {
        check(c);
    }

    // The commands that need a chain outliving one process, on Hardhat's node (cancun rules).
    let node = HardhatNode::start();
    let deployed = check(&case(
        "deploy",
        &[
            "deploy",
            "--rpc",
            &node.url,
            "--model",
            "models/mnist-mlp",
            "--json",
        ],
        Some("cancun"),
    ));
    assert_eq!(deployed["evm_rules_probed"], true);
    let game = deployed["game"].as_str().unwrap().to_string();
    let requested = check(&case(
        "request",
        &[
            "request",
            "--rpc",
            &node.url,
            "--game",
            &game,
            "--model",
            "models/mnist-mlp",
            "--digit",
            "3",
            "--json",
        ],
        Some("cancun"),
    ));
    assert_eq!(requested["request"], 1);
    assert_eq!(requested["model_commitment"], deployed["models"][0]);
    drop(node);

    // A BERT sentence encoder: all-MiniLM-L6-v2 imported at 16 tokens, evaluated on the test
    // sentences and embedded with the float model beside it and every node in the VM.
    let minilm = tmp.join("minilm");
    let mut import = support::minilm::import_args(&support::minilm::float_dir(), &minilm);
    import.push("--json".into());
    let import: Vec<&str> = import.iter().map(String::as_str).collect();
    let imported_bert = check(&case("model import", &import, None));
    let minilm = minilm.to_str().unwrap();
    let evaluated = check(&case(
        "model eval",
        &["model", "eval", minilm, "data/sentences/test.txt", "--json"],
        None,
    ));
    assert!(
        evaluated["min_cosine"].as_f64().unwrap() >= 0.99,
        "{evaluated}"
    );
    assert!(
        evaluated["mean_cosine"].as_f64().unwrap() >= 0.995,
        "{evaluated}"
    );
    let embedded = check(&case(
        "embed",
        &[
            "embed",
            minilm,
            "A man is playing a guitar.",
            "--float",
            "--check-vm",
            "--json",
        ],
        None,
    ));
    let first = &embedded[0];
    assert!(first["cosine"].as_f64().unwrap() > 0.99, "{first}");
    assert_eq!(first["vm_nodes_checked"], imported_bert["nodes"]);
    assert_eq!(first["embedding"].as_array().unwrap().len(), 384);

    let offered = commands_with_json();
    assert_eq!(
        covered, offered,
        "the commands checked here and those whose --help offers --json differ"
    );
    assert!(Path::new(imported).join("model.json").exists());
    let _ = std::fs::remove_dir_all(tmp);
}

/// The checker itself: each rule catches what it is for, and passes what follows it.
#[test]
fn the_checker_catches_each_breach() {
    let cases: [(Value, Option<&str>); 18] = [
        (serde_json::json!({"wall_ms": 1.5, "steps": 3}), None),
        (serde_json::json!({"wallMs": 1.5}), Some("not snake_case")),
        (
            serde_json::json!({"gas-by-class": {}}),
            Some("not snake_case"),
        ),
        (serde_json::json!({"elapsed_seconds": 1.0}), Some("`*_ms`")),
        (serde_json::json!({"native_us": 1.0}), Some("`*_ms`")),
        (serde_json::json!({"ms": 1.0}), Some("`*_ms`")),
        (serde_json::json!({"burnt": "0x0"}), Some("decimal string")),
        (
            serde_json::json!({"credits": {"challenger": 5}}),
            Some("decimal string"),
        ),
        (
            serde_json::json!({"game": "0x5fbdb2315678afecb367f032d93f642f64180aa3"}),
            Some("checksummed"),
        ),
        (
            serde_json::json!({"game": "0x5FbDB2315678afecb367f032d93F642f64180aa3"}),
            None,
        ),
        (
            serde_json::json!({"state_hash": "0x12ab"}),
            Some("full 0x hash"),
        ),
        (serde_json::json!({"note": "0x12ab…"}), Some("shortened")),
        (
            serde_json::json!({"moves": [{"a": 1, "b": null}, {"a": 2}]}),
            Some("differ in keys"),
        ),
        (
            serde_json::json!({"inputs": ["input", {"node": 0}, {"weight": "w"}]}),
            None,
        ),
        (
            serde_json::json!({"status": "step-limit"}),
            Some("snake_case"),
        ),
        (
            serde_json::json!({"params": {"result_bond": 5}}),
            Some("decimal string"),
        ),
        (
            serde_json::json!({"kernel_roots": {"relu": "0xAB"}}),
            Some("full 0x hash"),
        ),
        (
            serde_json::json!({"bonds": {"burnt": "10"}, "models": [format!("0x{}", "ab".repeat(32))], "witness": "0x0102"}),
            None,
        ),
    ];
    for (report, want) in cases {
        let mut found = Vec::new();
        breaches("$", "", Kind::default(), &report, &mut found);
        match want {
            None => assert!(found.is_empty(), "{report}: {found:?}"),
            Some(what) => assert!(
                found.iter().any(|f| f.contains(what)),
                "{report}: want `{what}`, found {found:?}"
            ),
        }
    }
}
