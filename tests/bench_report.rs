//! `opml bench report`: its gas tables are the same run to run (gas is deterministic), and the
//! files it says it wrote are there: a report, the gas tables as JSON, and SVG plots that parse as
//! XML and carry drawn data. Runs the quick report's gas sections on two small programs, twice.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs the quick report's gas sections into `out`; its `--json` answer.
fn report(out: &Path) -> Value {
    let _ = std::fs::remove_dir_all(out);
    let result = Command::new(env!("CARGO_BIN_EXE_opml"))
        .args([
            "bench",
            "report",
            "--quick",
            "--only",
            "step-gas,dispute,anchors",
        ])
        .args(["--programs", "hello,switch", "--json", "--out"])
        .arg(out)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "opml bench report: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    serde_json::from_slice(&result.stdout).unwrap()
}

fn scratch(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("opml-report-{tag}-{}", std::process::id()))
}

/// The drawn data of an SVG (which must parse): lines and shapes in a colour, beside the black
/// axes and text on white.
fn drawn_elements(svg: &str) -> usize {
    let doc = roxmltree::Document::parse(svg).unwrap();
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let coloured = |v: Option<&str>| {
        v.is_some_and(|c| !["#FFFFFF", "#000000", "NONE"].contains(&c.to_uppercase().as_str()))
    };
    doc.descendants()
        .filter(|n| ["polyline", "path", "rect", "line"].contains(&n.tag_name().name()))
        .filter(|n| coloured(n.attribute("stroke")) || coloured(n.attribute("fill")))
        .count()
}

#[test]
fn gas_tables_repeat_and_the_files_are_there() {
    let (a, b) = (scratch("a"), scratch("b"));
    let first = report(&a);
    let second = report(&b);
    let tables = |dir: &Path| std::fs::read_to_string(dir.join("gas.json")).unwrap();
    let (ta, tb) = (tables(&a), tables(&b));
    assert_eq!(ta, tb, "the gas tables differ between two runs");
    let parsed: Value = serde_json::from_str(&ta).unwrap();
    // hello and switch, each with its halted step.
    assert_eq!(parsed["step_gas"]["steps"], 88 + 1 + 2_247 + 1);
    assert!(parsed["dispute"]["moves"]["prove_step"].as_u64().unwrap() > 21_000);
    for key in ["step_gas", "witness_bytes", "disputes", "optimal_arity"] {
        assert_eq!(first[key], second[key], "{key}");
    }
    assert_eq!(first["evm_rules"], "osaka");

    let report = std::fs::read_to_string(first["report"].as_str().unwrap()).unwrap();
    for heading in [
        "## 1. One-step gas",
        "## 2. Dispute rounds",
        "## 5. Anchors",
    ] {
        assert!(report.contains(heading), "report.md lacks {heading:?}");
    }
    assert!(
        !report.contains("## 3."),
        "a section not asked for was written"
    );
    let plots = first["plots"].as_array().unwrap();
    assert_eq!(plots.len(), 4, "{plots:?}");
    for plot in plots {
        let path = Path::new(plot.as_str().unwrap());
        let svg = std::fs::read_to_string(path).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(report.contains(name), "report.md does not show {name}");
        // A bar per bin, or a line (and its legend) per arity.
        assert!(drawn_elements(&svg) >= 2, "{name} has no data drawn");
    }
    let _ = std::fs::remove_dir_all(&a);
    let _ = std::fs::remove_dir_all(&b);
}

/// Bad input is refused with an error naming it, before anything is measured.
#[test]
fn unknown_programs_and_sections_are_refused() {
    let cases: [(&[&str], &str); 3] = [
        (
            &["--programs", "../../etc/passwd"],
            "not an example program",
        ),
        (&["--programs", "longrun"], "more than"),
        (&["--only", "everything"], "invalid value"),
    ];
    for (args, want) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_opml"))
            .args(["bench", "report", "--quick", "--out"])
            .arg(scratch("bad"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}
