//! The committed artifacts in `contracts/out/` are what the pinned solc makes of `contracts/src/`:
//! the check recompiles (solc-js from `contracts/package-lock.json`) and names any stale contract.

use std::path::Path;
use std::process::Command;

#[test]
fn committed_artifacts_are_up_to_date() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/compile-contracts.sh");
    let out = Command::new(&script)
        .arg("--check")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "running {}: {e} (node and npm are needed)",
                script.display()
            )
        });
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
