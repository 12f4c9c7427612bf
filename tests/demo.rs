//! The main job end to end, as a user runs it: `opml demo --json` on the embedded chain. The honest
//! results end final, the faulty one is disputed and rejected, the challenger is paid both bonds, and
//! the game contract is empty once everyone has withdrawn.

use serde_json::Value;
use std::process::Command;

fn demo(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_opml"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("demo")
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "opml demo {args:?} exited {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_challenger_disputes_only_the_faulty_result_and_wins() {
    let cases: [&[&str]; 3] = [
        &[],
        &["--requests", "2", "--fault", "step=3:100", "--arity", "4"],
        &["--requests", "1", "--fault", "output"],
    ];
    for args in cases {
        let report = demo(args);
        let results = report["results"].as_array().unwrap();
        let last = results.len() - 1;
        for (i, r) in results.iter().enumerate() {
            let faulty = i == last;
            assert_eq!(r["disputed"], faulty, "{args:?} {r}");
            assert_eq!(
                r["status"],
                if faulty { "rejected" } else { "final" },
                "{args:?} {r}"
            );
            let want = if faulty {
                "faulty_submitter"
            } else {
                "honest_submitter"
            };
            assert_eq!(r["submitter"], want, "{args:?}");
        }
        let credits = &report["credits"];
        // The game's two bonds (0.5 ether each) to the challenger; the result bond burnt.
        assert_eq!(credits["challenger"], "1000000000000000000", "{args:?}");
        assert_eq!(report["burnt"], "1000000000000000000", "{args:?}");
        assert_eq!(credits["faulty_submitter"], "0", "{args:?}");
        assert_eq!(
            credits["honest_submitter"],
            (last as u128 * 1_000_000_000_000_000_000).to_string(),
            "{args:?}"
        );
        assert_eq!(report["final_balance"], "0", "{args:?}");
        let moves = report["moves"].as_array().unwrap();
        let challenges: Vec<_> = moves
            .iter()
            .filter(|m| m["action"] == "challenge")
            .collect();
        assert_eq!(challenges.len(), 1, "{args:?}");
    }
}
