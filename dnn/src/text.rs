//! Sentences to token ids for the BERT sentence encoders of [`crate::bert`]: the model's own
//! `tokenizer.json` (a WordPiece vocabulary after BERT's normaliser and pre-tokenizer), run by the
//! `tokenizers` crate with the settings sentence-transformers uses: `[CLS] ... [SEP]`, no padding,
//! truncated to `max_seq_length` of `sentence_bert_config.json` (256 for all-MiniLM-L6-v2; its
//! `tokenizer.json` itself says 128 and pads to 128, which sentence-transformers overrides).

use crate::bert::{BertConfig, BertError};
use crate::graph::{read_manifest, ModelError};
use std::path::{Path, PathBuf};
use tokenizers::{
    ModelWrapper, NormalizerWrapper, PostProcessor, PreTokenizerWrapper, TruncationDirection,
    TruncationParams, TruncationStrategy,
};

/// What is wrong with a tokenizer's files, or with a text given to it.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// `config.json` is unreadable or not a BERT this crate computes.
    #[error(transparent)]
    Config(#[from] BertError),
    /// `sentence_bert_config.json` cannot be read or parsed.
    #[error(transparent)]
    File(#[from] ModelError),
    /// `tokenizer.json` cannot be read or is not a tokenizer.
    #[error("{path}: not a tokenizer: {reason}")]
    Load {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `tokenizer.json` is a tokenizer, but not BERT's WordPiece pipeline.
    #[error("{path}: {part} is {found}; a BERT WordPiece tokenizer is expected")]
    NotWordPiece {
        /// The file.
        path: PathBuf,
        /// Which part: `model`, `normalizer`, `pre_tokenizer`.
        part: &'static str,
        /// What the file has instead.
        found: String,
    },
    /// The vocabulary has ids beyond the model's embedding table.
    #[error("{path}: token ids go up to {largest}, but the model embeds only {model} ids")]
    Vocab {
        /// The tokenizer file.
        path: PathBuf,
        /// The largest id the tokenizer can give.
        largest: u32,
        /// `vocab_size` of the model.
        model: usize,
    },
    /// The truncation length leaves no room for the special tokens.
    #[error("max_tokens {max_tokens}: the special tokens alone take {special}")]
    MaxTokens {
        /// The length asked for.
        max_tokens: usize,
        /// Tokens the post-processor adds.
        special: usize,
    },
    /// The tokenizer failed on a text.
    #[error("cannot tokenize the text: {0}")]
    Encode(String),
}

/// `sentence_bert_config.json`: the sentence-transformers settings of the Transformer module.
#[derive(Debug, serde::Deserialize)]
struct SentenceBertConfig {
    max_seq_length: usize,
}

/// The `type` a tokenizer part has in `tokenizer.json`, to name it in an error.
fn kind(part: &impl serde::Serialize) -> String {
    serde_json::to_value(part)
        .ok()
        .and_then(|v| v.get("type")?.as_str().map(str::to_string))
        .unwrap_or_else(|| "of an unknown type".into())
}

/// A BERT WordPiece tokenizer with sentence-transformers' truncation and no padding.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    max_tokens: usize,
}

impl Tokenizer {
    /// Loads the tokenizer of a model directory: `tokenizer.json`, truncated to `max_seq_length`
    /// of `sentence_bert_config.json` (or to `max_position_embeddings` of `config.json` when the
    /// former is absent, and never beyond it), with its vocabulary checked against `config.json`.
    pub fn load(dir: &Path) -> Result<Self, TextError> {
        let config = BertConfig::load(&dir.join("config.json"))?;
        let st_path = dir.join("sentence_bert_config.json");
        let max_tokens = if st_path.exists() {
            let (_, st): (_, SentenceBertConfig) = read_manifest(&st_path, "")?;
            st.max_seq_length.min(config.max_position_embeddings)
        } else {
            config.max_position_embeddings
        };
        let path = dir.join("tokenizer.json");
        let tokenizer = Self::from_file(&path, max_tokens)?;
        let largest = tokenizer.inner.get_vocab(true).into_values().max();
        if let Some(largest) = largest.filter(|&id| id as usize >= config.vocab_size) {
            return Err(TextError::Vocab {
                path,
                largest,
                model: config.vocab_size,
            });
        }
        Ok(tokenizer)
    }

    /// Loads a `tokenizer.json` of BERT's pipeline (`BertNormalizer` or none, `BertPreTokenizer`,
    /// `WordPiece`) and truncates every text to `max_tokens` ids, special tokens included. Other
    /// pipelines are refused: no model here needs them, and regex pre-tokenizers from a file
    /// could be made to run for a very long time.
    pub fn from_file(path: &Path, max_tokens: usize) -> Result<Self, TextError> {
        let mut inner = tokenizers::Tokenizer::from_file(path).map_err(|e| TextError::Load {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let refuse = |part, found: String| TextError::NotWordPiece {
            path: path.to_path_buf(),
            part,
            found,
        };
        if !matches!(inner.get_model(), ModelWrapper::WordPiece(_)) {
            return Err(refuse("model", kind(inner.get_model())));
        }
        match inner.get_normalizer() {
            None | Some(NormalizerWrapper::BertNormalizer(_)) => {}
            Some(other) => return Err(refuse("normalizer", kind(other))),
        }
        match inner.get_pre_tokenizer() {
            Some(PreTokenizerWrapper::BertPreTokenizer(_)) => {}
            Some(other) => return Err(refuse("pre_tokenizer", kind(other))),
            None => return Err(refuse("pre_tokenizer", "absent".into())),
        }
        let special = inner
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(false));
        if max_tokens <= special {
            return Err(TextError::MaxTokens {
                max_tokens,
                special,
            });
        }
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: max_tokens,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| TextError::Load {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok(Self { inner, max_tokens })
    }

    /// Most ids [`Self::encode`] returns.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// The token ids of a text: `[CLS]`, its WordPiece ids (cut to fit), `[SEP]`.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TextError> {
        let encoding = self
            .inner
            .encode(text, true)
            .map_err(|e| TextError::Encode(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::minilm_fixture::{model_dir, reference, sentences};

    /// A fresh folder holding copies of the model's small files, `edit` applied to each.
    fn model_copy(tag: &str, edit: impl Fn(&str, String) -> Option<String>) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("opml-text-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["config.json", "sentence_bert_config.json", "tokenizer.json"] {
            let text = std::fs::read_to_string(model_dir().join(name)).unwrap();
            if let Some(text) = edit(name, text) {
                std::fs::write(dir.join(name), text).unwrap();
            }
        }
        dir
    }

    #[test]
    fn ids_are_the_references() {
        let tokenizer = Tokenizer::load(model_dir()).unwrap();
        let r = reference();
        assert_eq!(tokenizer.max_tokens(), r.max_tokens);
        assert_eq!(tokenizer.max_tokens(), 256);
        let all = r.test.iter().chain(&r.calibration);
        for (i, e) in all.enumerate() {
            assert_eq!(
                tokenizer.encode(&e.text).unwrap(),
                e.ids,
                "sentence {i}: {:?}",
                e.text
            );
        }
        let long = sentences("test").join(" ");
        let ids = tokenizer.encode(&long).unwrap();
        assert_eq!(ids, r.truncation.ids, "the truncated text");
        assert_eq!((ids.len(), ids[0], ids[255]), (256, 101, 102));
    }

    #[test]
    fn reference_is_of_the_sentence_files() {
        let r = reference();
        for (name, entries) in [("test", &r.test), ("calibration", &r.calibration)] {
            let texts: Vec<_> = entries.iter().map(|e| e.text.clone()).collect();
            assert_eq!(
                texts,
                sentences(name),
                "{name}: run scripts/minilm/reference.sh"
            );
        }
        assert_eq!((r.test.len(), r.calibration.len()), (48, 64));
        let test = sentences("test");
        let overlap: Vec<_> = sentences("calibration")
            .into_iter()
            .filter(|s| test.contains(s))
            .collect();
        assert!(
            overlap.is_empty(),
            "test sentences used for calibration: {overlap:?}"
        );
    }

    #[test]
    fn truncation_length_follows_the_configs() {
        let cases: [(&str, fn(&str, String) -> Option<String>, usize); 3] = [
            ("as-shipped", |_, t| Some(t), 256),
            (
                "no-st-config",
                |n, t| (n != "sentence_bert_config.json").then_some(t),
                512,
            ),
            (
                "st-beyond-positions",
                |n, t| {
                    Some(if n == "sentence_bert_config.json" {
                        t.replace("256", "4096")
                    } else {
                        t
                    })
                },
                512,
            ),
        ];
        for (tag, edit, want) in cases {
            let dir = model_copy(tag, edit);
            assert_eq!(Tokenizer::load(&dir).unwrap().max_tokens(), want, "{tag}");
            std::fs::remove_dir_all(dir).unwrap();
        }
        let short = Tokenizer::from_file(&model_dir().join("tokenizer.json"), 5).unwrap();
        assert_eq!(
            short.encode("one two three four five").unwrap(),
            [101, 2028, 2048, 2093, 102]
        );
        assert_eq!(short.encode("").unwrap(), [101, 102]);
    }

    /// `tokenizer.json` with one of its parts replaced.
    fn replace_part(
        name: &str,
        text: String,
        part: &str,
        with: serde_json::Value,
    ) -> Option<String> {
        if name != "tokenizer.json" {
            return Some(text);
        }
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v[part] = with;
        Some(v.to_string())
    }

    #[test]
    fn refuses_what_is_not_a_bert_wordpiece_tokenizer() {
        use serde_json::json;
        let only = |file: &'static str, f: fn(String) -> String| {
            move |n: &str, t: String| Some(if n == file { f(t) } else { t })
        };
        let cases: Vec<(&str, Box<dyn Fn(&str, String) -> Option<String>>, &str)> = vec![
            (
                "truncated",
                Box::new(only("tokenizer.json", |t| t[..1000].into())),
                "not a tokenizer",
            ),
            (
                "zip",
                Box::new(only("tokenizer.json", |_| "PK\u{3}\u{4}".into())),
                "not a tokenizer",
            ),
            (
                "missing",
                Box::new(|n, t| (n != "tokenizer.json").then_some(t)),
                "not a tokenizer",
            ),
            (
                "bpe",
                Box::new(|n, t| {
                    let bpe = json!({"type": "BPE", "vocab": {"a": 0}, "merges": []});
                    replace_part(n, t, "model", bpe)
                }),
                "model is BPE",
            ),
            (
                "regex-split",
                Box::new(|n, t| {
                    let split = json!({"type": "Split", "pattern": {"Regex": "(a+)+$"},
                        "behavior": "Isolated", "invert": false});
                    replace_part(n, t, "pre_tokenizer", split)
                }),
                "pre_tokenizer is Split",
            ),
            (
                "no-pre-tokenizer",
                Box::new(|n, t| replace_part(n, t, "pre_tokenizer", json!(null))),
                "pre_tokenizer is absent",
            ),
            (
                "lowercase",
                Box::new(|n, t| replace_part(n, t, "normalizer", json!({"type": "Lowercase"}))),
                "normalizer is Lowercase",
            ),
            (
                "small-model",
                Box::new(only("config.json", |t| t.replace("30522", "1000"))),
                "token ids go up to 30521, but the model embeds only 1000 ids",
            ),
            (
                "sparse-vocab",
                Box::new(|n, t| {
                    if n != "tokenizer.json" {
                        return Some(t);
                    }
                    let mut v: serde_json::Value = serde_json::from_str(&t).unwrap();
                    v["model"]["vocab"]["[unused0]"] = json!(99999);
                    Some(v.to_string())
                }),
                "token ids go up to 99999, but the model embeds only 30522 ids",
            ),
            (
                "two-tokens",
                Box::new(only("sentence_bert_config.json", |t| t.replace("256", "2"))),
                "max_tokens 2: the special tokens alone take 2",
            ),
            (
                "no-config",
                Box::new(|n, t| (n != "config.json").then_some(t)),
                "config.json",
            ),
            (
                "bad-st-config",
                Box::new(only("sentence_bert_config.json", |t| {
                    t.replace("max_seq_length", "max_len")
                })),
                "missing field `max_seq_length`",
            ),
        ];
        for (tag, edit, want) in cases {
            let dir = model_copy(tag, edit);
            let err = Tokenizer::load(&dir).unwrap_err().to_string();
            assert!(err.contains(want), "{tag}: {err}");
            std::fs::remove_dir_all(dir).unwrap();
        }
    }
}
