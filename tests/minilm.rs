//! all-MiniLM-L6-v2 through the whole system: the integer model imported from the f32 one,
//! disputed on the embedded chain with a submitter lying in each part of a transformer layer.

mod support;

use serde_json::Value;
use std::process::Command;

const OPML: &str = env!("CARGO_BIN_EXE_opml");
const SENTENCE: &str = "A man is playing a guitar.";

/// Runs `opml args` in the repository; its exit status and stdout as JSON.
fn opml(args: &[&str]) -> (Option<i32>, Value) {
    let out = Command::new(OPML)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "opml {args:?}: {e}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), json)
}

#[test]
fn a_lie_in_attention_the_mlp_or_a_layer_norm_loses() {
    let dir = std::env::temp_dir().join(format!("opml-minilm-{}", std::process::id()));
    let out = Command::new(OPML)
        .args(support::minilm::import_args(
            &support::minilm::float_dir(),
            &dir,
        ))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let model = dir.to_str().unwrap();
    let (_, info) = opml(&["model", "info", model, "--json"]);
    let names: Vec<&str> = info["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    let index = |name: &str| names.iter().position(|n| *n == name).unwrap().to_string();
    // The node tiles keep every node under 10^8 VM steps.
    assert!(info["largest_node_steps"].as_u64().unwrap() < 100_000_000);

    for (part, node) in [
        ("attention", "layer.0.softmax"),
        ("the MLP", "layer.1.gelu"),
        ("a layer norm", "layer.2.attention.norm"),
    ] {
        let fault = format!("node={}", index(node));
        let (status, report) = opml(&[
            "dispute", "simulate", model, SENTENCE, "--fault", &fault, "--arity", "8", "--json",
        ]);
        assert_eq!(status, Some(0), "a lie in {part} ({node}): {report}");
        assert_eq!(report["winner"], "challenger", "a lie in {part} ({node})");
    }
    let _ = std::fs::remove_dir_all(dir);
}
