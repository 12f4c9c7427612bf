//! all-MiniLM-L6-v2 as an integer model: fetched once into the cache by
//! `scripts/minilm/fetch.sh`, imported at 16 tokens by `opml model import`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The f32 model folder in the cache (`$OPML_CACHE` or the repository's `.cache`), fetched when
/// missing.
pub fn float_dir() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fetch = Command::new("bash")
        .arg(repo.join("scripts/minilm/fetch.sh"))
        .status()
        .unwrap();
    assert!(fetch.success(), "scripts/minilm/fetch.sh failed");
    std::env::var_os("OPML_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join(".cache"))
        .join("minilm/all-MiniLM-L6-v2")
}

/// The arguments of `opml model import` that quantize MiniLM at 16 tokens into `out`.
pub fn import_args(float: &Path, out: &Path) -> Vec<String> {
    [
        "model",
        "import",
        float.to_str().unwrap(),
        "--calibration",
        "data/sentences/calibration.txt",
        "--tokens",
        "16",
        "--out",
        out.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}
