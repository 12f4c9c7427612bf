//! `opml dispute simulate` and the main job `opml demo` against a real Ethereum node process:
//! Hardhat's node, installed from the repository's npm lockfile (`scripts/setup.sh`), listening on
//! 127.0.0.1. The same engine and contracts that run on the embedded chain play whole disputes
//! there, and the honest party wins.

mod support;

use serde_json::Value;
use std::process::Command;
use support::hardhat::HardhatNode;

#[test]
fn disputes_on_a_real_node() {
    let node = HardhatNode::start();
    let cases = [
        ("node=3", "2", "challenger"),
        ("output", "2", "challenger"),
        ("step=2:5000", "8", "challenger"),
        ("challenger", "3", "submitter"),
    ];
    for (fault, arity, winner) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_opml"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([
                "dispute",
                "simulate",
                "models/mnist-cnn",
                "data/mnist/samples/digit-7-label-0.pgm",
                "--fault",
                fault,
                "--arity",
                arity,
                "--rpc",
                &node.url,
                "--json",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{fault}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let t: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(t["winner"], winner, "{fault}");
        assert!(
            t["rounds"].as_u64().unwrap() <= t["rounds_bound"].as_u64().unwrap(),
            "{fault}"
        );
        assert_eq!(t["bonds"]["locked"], "0", "{fault}");
        assert_eq!(t["bonds"]["balance"], t["bonds"]["owed"], "{fault}");
    }
}

#[test]
fn the_main_job_on_a_real_node() {
    let node = HardhatNode::start();
    let out = Command::new(env!("CARGO_BIN_EXE_opml"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["demo", "--requests", "2", "--rpc", &node.url, "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let status: Vec<&str> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(status, ["final", "rejected"]);
    // The game's two bonds (0.5 ether each) to the challenger; the faulty result's bond burnt.
    assert_eq!(report["credits"]["challenger"], "1000000000000000000");
    assert_eq!(report["burnt"], "1000000000000000000");
    assert_eq!(report["final_balance"], "0");
}
