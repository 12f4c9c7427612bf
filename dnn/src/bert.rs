//! BERT sentence encoders in f32, as sentence-transformers runs all-MiniLM-L6-v2: the float
//! reference that the integer MiniLM graph is quantized from and measured against.
//!
//! [`BertConfig`] is the Hugging Face `config.json`; [`FloatBert`] holds the weights of
//! `model.safetensors` (Hugging Face `BertModel` names, checked against the config) and computes
//! embeddings = word + position + token type 0, LayerNorm; then per layer self-attention, dense,
//! residual, LayerNorm, dense, GELU (erf form), dense, residual, LayerNorm; then the mean over the
//! tokens and L2 normalisation. One sentence at a time, so there is no padding to mask.
//! `scripts/minilm/reference.py` is the same model in numpy; the tests hold the two together.

use crate::float::f32_le;
use crate::graph::{read_file, read_manifest, ModelError};
use ndarray::{s, Array1, Array2, ArrayView2, Axis};
use safetensors::SafeTensors;
use std::path::{Path, PathBuf};

pub(crate) mod quantize;
pub use quantize::{padded_ids, MAX_NODE_STEPS};

/// What is wrong with a BERT model's files or with a sequence given to it.
#[derive(Debug, thiserror::Error)]
pub enum BertError {
    /// A file cannot be read, or `config.json` does not parse (serde names a missing field), or
    /// the weights are not safetensors.
    #[error(transparent)]
    File(#[from] ModelError),
    /// `config.json` parses but describes something this encoder does not compute.
    #[error("{path}: {field}: {reason}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// The field at fault.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A tensor the model needs is not in the weights file.
    #[error("{path}: tensor {name} is missing")]
    MissingTensor {
        /// The weights file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
    },
    /// A tensor has another shape than the config implies.
    #[error("{path}: tensor {name} has shape {found:?}; config.json implies {expected:?}")]
    Shape {
        /// The weights file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// Its shape in the file.
        found: Vec<usize>,
        /// The shape the config implies.
        expected: Vec<usize>,
    },
    /// A tensor is not F32.
    #[error("{path}: tensor {name} is {found}, not F32")]
    Dtype {
        /// The weights file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// Its dtype.
        found: String,
    },
    /// The sequence is empty (a tokenizer gives at least `[CLS] [SEP]`).
    #[error("no tokens to embed")]
    NoTokens,
    /// The sequence is longer than the model has positions for.
    #[error("{len} tokens; the model has {max} positions")]
    TooManyTokens {
        /// Tokens given.
        len: usize,
        /// `max_position_embeddings`.
        max: usize,
    },
    /// The integer model cannot be built from what was given (no calibration, a bad length).
    #[error("quantizing: {0}")]
    Calibration(String),
    /// A token id is not in the vocabulary.
    #[error("token {index} is id {id}; the vocabulary has {vocab} ids")]
    TokenOutOfRange {
        /// Position in the sequence.
        index: usize,
        /// The id.
        id: u32,
        /// `vocab_size`.
        vocab: usize,
    },
}

/// The fields of a Hugging Face BERT `config.json` that the forward pass needs.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct BertConfig {
    /// Width of every token vector (384 for MiniLM-L6).
    pub hidden_size: usize,
    /// Encoder layers (6).
    pub num_hidden_layers: usize,
    /// Attention heads per layer (12); divides `hidden_size`.
    pub num_attention_heads: usize,
    /// Width of the MLP inside each layer (1536).
    pub intermediate_size: usize,
    /// Token ids are below this (30522).
    pub vocab_size: usize,
    /// Longest sequence (512).
    pub max_position_embeddings: usize,
    /// Token types (2; sentences use type 0 only).
    pub type_vocab_size: usize,
    /// The LayerNorm epsilon (1e-12).
    pub layer_norm_eps: f64,
    /// The MLP's activation; only `gelu` (the erf form) is computed.
    pub hidden_act: String,
    /// Only `absolute` (the default when absent) is computed.
    #[serde(default = "absolute")]
    pub position_embedding_type: String,
}

fn absolute() -> String {
    "absolute".into()
}

impl BertConfig {
    /// Loads `config.json`, or the `config.json` inside a directory, and checks that it describes
    /// a BERT this module computes.
    pub fn load(path: &Path) -> Result<Self, BertError> {
        let (path, config): (_, Self) = read_manifest(path, "config.json")?;
        config.check(&path)?;
        Ok(config)
    }

    fn check(&self, path: &Path) -> Result<(), BertError> {
        let fail = |field, reason: String| {
            Err(BertError::Config {
                path: path.to_path_buf(),
                field,
                reason,
            })
        };
        for (field, v) in [
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("vocab_size", self.vocab_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ] {
            if v == 0 {
                return fail(field, "must be positive".into());
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return fail(
                "num_attention_heads",
                format!(
                    "{} does not divide hidden_size {}",
                    self.num_attention_heads, self.hidden_size
                ),
            );
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return fail(
                "layer_norm_eps",
                format!("{} is not a positive number", self.layer_norm_eps),
            );
        }
        if self.hidden_act != "gelu" {
            return fail(
                "hidden_act",
                format!("{:?}; only \"gelu\" is computed", self.hidden_act),
            );
        }
        if self.position_embedding_type != "absolute" {
            return fail(
                "position_embedding_type",
                format!(
                    "{:?}; only \"absolute\" is computed",
                    self.position_embedding_type
                ),
            );
        }
        Ok(())
    }

    /// Width of one attention head.
    pub fn head_size(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// `y = x Wᵀ + b`, with `W` as stored: `[out, in]`.
#[derive(Debug, Clone)]
pub(crate) struct Dense {
    pub(crate) weight: Array2<f32>,
    pub(crate) bias: Array1<f32>,
}

impl Dense {
    fn apply(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        x.dot(&self.weight.t()) + &self.bias
    }
}

#[derive(Debug, Clone)]
struct LayerNorm {
    gamma: Array1<f32>,
    beta: Array1<f32>,
    eps: f64,
}

impl LayerNorm {
    /// Normalises each row in place (mean and variance summed in f64).
    fn apply(&self, x: &mut Array2<f32>) {
        for mut row in x.rows_mut() {
            let n = row.len() as f64;
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
            let inv = 1.0 / (var + self.eps).sqrt();
            for ((v, g), b) in row.iter_mut().zip(&self.gamma).zip(&self.beta) {
                *v = ((*v as f64 - mean) * inv) as f32 * g + b;
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Layer {
    query: Dense,
    key: Dense,
    value: Dense,
    attention_output: Dense,
    attention_norm: LayerNorm,
    intermediate: Dense,
    output: Dense,
    output_norm: LayerNorm,
}

/// A BERT encoder with mean pooling, in f32.
#[derive(Debug, Clone)]
pub struct FloatBert {
    /// Its configuration.
    pub config: BertConfig,
    word: Array2<f32>,
    position: Array2<f32>,
    token_type: Array2<f32>,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
}

/// The tensors of a safetensors file, looked up by name with dtype and shape checked.
struct Weights<'a> {
    st: SafeTensors<'a>,
    path: &'a Path,
}

impl Weights<'_> {
    fn get(&self, name: &str, expected: &[usize]) -> Result<Vec<f32>, BertError> {
        let view = self.st.tensor(name).map_err(|_| BertError::MissingTensor {
            path: self.path.to_path_buf(),
            name: name.into(),
        })?;
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(BertError::Dtype {
                path: self.path.to_path_buf(),
                name: name.into(),
                found: format!("{:?}", view.dtype()),
            });
        }
        if view.shape() != expected {
            return Err(BertError::Shape {
                path: self.path.to_path_buf(),
                name: name.into(),
                found: view.shape().to_vec(),
                expected: expected.to_vec(),
            });
        }
        Ok(f32_le(view.data()))
    }

    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Array2<f32>, BertError> {
        let v = self.get(name, &[rows, cols])?;
        Ok(Array2::from_shape_vec((rows, cols), v).expect("shape checked"))
    }

    fn vector(&self, name: &str, len: usize) -> Result<Array1<f32>, BertError> {
        Ok(Array1::from(self.get(name, &[len])?))
    }

    fn dense(&self, prefix: &str, out: usize, inp: usize) -> Result<Dense, BertError> {
        Ok(Dense {
            weight: self.matrix(&format!("{prefix}.weight"), out, inp)?,
            bias: self.vector(&format!("{prefix}.bias"), out)?,
        })
    }

    fn norm(&self, prefix: &str, len: usize, eps: f64) -> Result<LayerNorm, BertError> {
        Ok(LayerNorm {
            gamma: self.vector(&format!("{prefix}.weight"), len)?,
            beta: self.vector(&format!("{prefix}.bias"), len)?,
            eps,
        })
    }
}

/// GELU, erf form (Hugging Face's `"gelu"`): `x/2 · (1 + erf(x/√2))`.
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// Softmax of each row in place.
fn softmax_rows(x: &mut Array2<f32>) {
    for mut row in x.rows_mut() {
        let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        row.mapv_inplace(|v| (v - max).exp());
        let sum: f32 = row.sum();
        row.mapv_inplace(|v| v / sum);
    }
}

impl FloatBert {
    /// Loads `config.json` and `model.safetensors` from a model directory (as
    /// `scripts/minilm/fetch.sh` lays out all-MiniLM-L6-v2).
    pub fn load(dir: &Path) -> Result<Self, BertError> {
        let config = BertConfig::load(&dir.join("config.json"))?;
        let path = dir.join("model.safetensors");
        Self::from_safetensors(config, &read_file(&path)?, &path)
    }

    /// Builds the model from the bytes of a safetensors file with Hugging Face `BertModel` tensor
    /// names (`embeddings.word_embeddings.weight`, `encoder.layer.0.attention.self.query.weight`,
    /// ...); `path` only names the file in errors. Other tensors (the pooler) are ignored.
    pub fn from_safetensors(
        config: BertConfig,
        bytes: &[u8],
        path: &Path,
    ) -> Result<Self, BertError> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| ModelError::Safetensors {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let w = Weights { st, path };
        let (h, eps) = (config.hidden_size, config.layer_norm_eps);
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let p = format!("encoder.layer.{i}");
                let inter = config.intermediate_size;
                Ok(Layer {
                    query: w.dense(&format!("{p}.attention.self.query"), h, h)?,
                    key: w.dense(&format!("{p}.attention.self.key"), h, h)?,
                    value: w.dense(&format!("{p}.attention.self.value"), h, h)?,
                    attention_output: w.dense(&format!("{p}.attention.output.dense"), h, h)?,
                    attention_norm: w.norm(&format!("{p}.attention.output.LayerNorm"), h, eps)?,
                    intermediate: w.dense(&format!("{p}.intermediate.dense"), inter, h)?,
                    output: w.dense(&format!("{p}.output.dense"), h, inter)?,
                    output_norm: w.norm(&format!("{p}.output.LayerNorm"), h, eps)?,
                })
            })
            .collect::<Result<_, BertError>>()?;
        Ok(Self {
            word: w.matrix("embeddings.word_embeddings.weight", config.vocab_size, h)?,
            position: w.matrix(
                "embeddings.position_embeddings.weight",
                config.max_position_embeddings,
                h,
            )?,
            token_type: w.matrix(
                "embeddings.token_type_embeddings.weight",
                config.type_vocab_size,
                h,
            )?,
            embedding_norm: w.norm("embeddings.LayerNorm", h, eps)?,
            layers,
            config,
        })
    }

    fn check_ids(&self, ids: &[u32]) -> Result<(), BertError> {
        if ids.is_empty() {
            return Err(BertError::NoTokens);
        }
        let max = self.config.max_position_embeddings;
        if ids.len() > max {
            return Err(BertError::TooManyTokens {
                len: ids.len(),
                max,
            });
        }
        let vocab = self.config.vocab_size;
        match ids.iter().position(|&id| id as usize >= vocab) {
            Some(index) => Err(BertError::TokenOutOfRange {
                index,
                id: ids[index],
                vocab,
            }),
            None => Ok(()),
        }
    }

    /// The encoder's last hidden states, `[tokens, hidden_size]`, of one sequence (all of it
    /// attended to). `observe` sees every intermediate activation by name, for calibration:
    /// `embeddings_sum` (before its LayerNorm), `embeddings`, and for each layer `i`: `layer.i.query`, `.key`, `.value` (`[tokens, hidden]`),
    /// `layer.i.scores` (the scaled scores of each head before softmax, `[tokens, tokens]`, once
    /// per head), `layer.i.probs` (after softmax, once per head), `layer.i.context`,
    /// `layer.i.attention_dense` (the output projection), `layer.i.attention_residual` (plus the
    /// layer's input), `layer.i.attention` (after its LayerNorm), `layer.i.intermediate_dense`
    /// (before GELU), `layer.i.intermediate` (after GELU,
    /// `[tokens, intermediate]`), `layer.i.output_dense`, `layer.i.output_residual` and
    /// `layer.i.output` (after its LayerNorm).
    pub fn forward(
        &self,
        ids: &[u32],
        observe: &mut dyn FnMut(&str, ArrayView2<'_, f32>),
    ) -> Result<Array2<f32>, BertError> {
        self.check_ids(ids)?;
        let (n, h, d) = (ids.len(), self.config.hidden_size, self.config.head_size());
        let mut x = Array2::from_shape_fn((n, h), |(t, j)| {
            self.word[[ids[t] as usize, j]] + self.position[[t, j]] + self.token_type[[0, j]]
        });
        observe("embeddings_sum", x.view());
        self.embedding_norm.apply(&mut x);
        observe("embeddings", x.view());
        let scale = 1.0 / (d as f32).sqrt();
        for (i, layer) in self.layers.iter().enumerate() {
            let name = |what: &str| format!("layer.{i}.{what}");
            let q = layer.query.apply(x.view());
            let k = layer.key.apply(x.view());
            let v = layer.value.apply(x.view());
            observe(&name("query"), q.view());
            observe(&name("key"), k.view());
            observe(&name("value"), v.view());
            let mut context = Array2::<f32>::zeros((n, h));
            for head in 0..self.config.num_attention_heads {
                let cols = s![.., head * d..(head + 1) * d];
                let mut scores = q.slice(cols).dot(&k.slice(cols).t()) * scale;
                observe(&name("scores"), scores.view());
                softmax_rows(&mut scores);
                observe(&name("probs"), scores.view());
                context.slice_mut(cols).assign(&scores.dot(&v.slice(cols)));
            }
            observe(&name("context"), context.view());
            let dense = layer.attention_output.apply(context.view());
            observe(&name("attention_dense"), dense.view());
            let mut a = dense + &x;
            observe(&name("attention_residual"), a.view());
            layer.attention_norm.apply(&mut a);
            observe(&name("attention"), a.view());
            let mut m = layer.intermediate.apply(a.view());
            observe(&name("intermediate_dense"), m.view());
            m.mapv_inplace(gelu);
            observe(&name("intermediate"), m.view());
            let dense = layer.output.apply(m.view());
            observe(&name("output_dense"), dense.view());
            x = dense + &a;
            observe(&name("output_residual"), x.view());
            layer.output_norm.apply(&mut x);
            observe(&name("output"), x.view());
        }
        Ok(x)
    }

    /// The sentence vector before normalisation: the mean of the last hidden states over the
    /// tokens (sentence-transformers' mean pooling; every token is attended to).
    pub fn pooled(&self, ids: &[u32]) -> Result<Vec<f32>, BertError> {
        let x = self.forward(ids, &mut |_, _| {})?;
        Ok(x.mean_axis(Axis(0)).expect("at least one token").to_vec())
    }

    /// The sentence embedding: [`Self::pooled`] divided by its L2 norm (at least 1e-12, as
    /// sentence-transformers' `Normalize`), so cosine similarity is a dot product.
    pub fn embed(&self, ids: &[u32]) -> Result<Vec<f32>, BertError> {
        let mut v = self.pooled(ids)?;
        l2_normalize(&mut v);
        Ok(v)
    }
}

/// Divides `v` by its L2 norm (summed in f64; at least 1e-12, so a zero vector stays zero).
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v
        .iter()
        .map(|&x| (x as f64).powi(2))
        .sum::<f64>()
        .sqrt()
        .max(1e-12);
    for x in v {
        *x = (*x as f64 / norm) as f32;
    }
}

/// Cosine similarity of two vectors, in f64 (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    let norm = |v: &[f32]| v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let denom = norm(a) * norm(b);
    if denom == 0.0 {
        0.0
    } else {
        dot / denom
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;

    const TINY: &str = r#"{"hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 16, "vocab_size": 20, "max_position_embeddings": 10,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu"}"#;

    type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

    /// Every tensor of a BERT with `config`'s sizes, seeded random values.
    fn tiny_tensors(c: &BertConfig) -> Tensors {
        let (h, m) = (c.hidden_size, c.intermediate_size);
        let mut shapes = vec![
            (
                "embeddings.word_embeddings.weight".to_string(),
                vec![c.vocab_size, h],
            ),
            (
                "embeddings.position_embeddings.weight".into(),
                vec![c.max_position_embeddings, h],
            ),
            (
                "embeddings.token_type_embeddings.weight".into(),
                vec![c.type_vocab_size, h],
            ),
            ("embeddings.LayerNorm.weight".into(), vec![h]),
            ("embeddings.LayerNorm.bias".into(), vec![h]),
        ];
        for i in 0..c.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            for (name, out, inp) in [
                ("attention.self.query", h, h),
                ("attention.self.key", h, h),
                ("attention.self.value", h, h),
                ("attention.output.dense", h, h),
                ("intermediate.dense", m, h),
                ("output.dense", h, m),
            ] {
                shapes.push((format!("{p}.{name}.weight"), vec![out, inp]));
                shapes.push((format!("{p}.{name}.bias"), vec![out]));
            }
            for name in ["attention.output.LayerNorm", "output.LayerNorm"] {
                shapes.push((format!("{p}.{name}.weight"), vec![h]));
                shapes.push((format!("{p}.{name}.bias"), vec![h]));
            }
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(16);
        shapes
            .into_iter()
            .map(|(name, shape)| {
                let n = shape.iter().product();
                let v = (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
                (name, (shape, v))
            })
            .collect()
    }

    fn serialize(tensors: &Tensors, dtype_of: impl Fn(&str) -> safetensors::Dtype) -> Vec<u8> {
        let data: Vec<_> = tensors
            .iter()
            .map(|(name, (shape, v))| {
                let bytes = match dtype_of(name) {
                    safetensors::Dtype::F64 => {
                        v.iter().flat_map(|x| (*x as f64).to_le_bytes()).collect()
                    }
                    _ => v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(),
                };
                (name.clone(), dtype_of(name), shape.clone(), bytes)
            })
            .collect();
        let views = data.iter().map(|(name, dtype, shape, bytes)| {
            let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes).unwrap();
            (name.clone(), view)
        });
        safetensors::serialize(views, None).unwrap()
    }

    fn tiny_config() -> BertConfig {
        serde_json::from_str(TINY).unwrap()
    }

    fn tiny() -> (FloatBert, Tensors) {
        let config = tiny_config();
        let tensors = tiny_tensors(&config);
        let bytes = serialize(&tensors, |_| safetensors::Dtype::F32);
        let bert = FloatBert::from_safetensors(config, &bytes, Path::new("tiny")).unwrap();
        (bert, tensors)
    }

    /// BERT written out element by element in f64, a second reading of the same formulas.
    fn naive_pooled(c: &BertConfig, t: &Tensors, ids: &[u32]) -> Vec<f64> {
        let w = |name: &str| -> Vec<f64> { t[name].1.iter().map(|&v| v as f64).collect() };
        let (n, h, m, heads) = (
            ids.len(),
            c.hidden_size,
            c.intermediate_size,
            c.num_attention_heads,
        );
        let d = h / heads;
        let norm = |x: &mut [Vec<f64>], p: &str| {
            let (g, b) = (w(&format!("{p}.weight")), w(&format!("{p}.bias")));
            for row in x.iter_mut() {
                let mean = row.iter().sum::<f64>() / h as f64;
                let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / h as f64;
                for j in 0..h {
                    row[j] = (row[j] - mean) / (var + c.layer_norm_eps).sqrt() * g[j] + b[j];
                }
            }
        };
        let dense = |x: &[Vec<f64>], p: &str, out: usize, inp: usize| -> Vec<Vec<f64>> {
            let (wt, b) = (w(&format!("{p}.weight")), w(&format!("{p}.bias")));
            x.iter()
                .map(|row| {
                    (0..out)
                        .map(|o| b[o] + (0..inp).map(|i| wt[o * inp + i] * row[i]).sum::<f64>())
                        .collect()
                })
                .collect()
        };
        let (we, pe, te) = (
            w("embeddings.word_embeddings.weight"),
            w("embeddings.position_embeddings.weight"),
            w("embeddings.token_type_embeddings.weight"),
        );
        let mut x: Vec<Vec<f64>> = (0..n)
            .map(|p| {
                (0..h)
                    .map(|j| we[ids[p] as usize * h + j] + pe[p * h + j] + te[j])
                    .collect()
            })
            .collect();
        norm(&mut x, "embeddings.LayerNorm");
        for l in 0..c.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            let q = dense(&x, &format!("{p}.attention.self.query"), h, h);
            let k = dense(&x, &format!("{p}.attention.self.key"), h, h);
            let v = dense(&x, &format!("{p}.attention.self.value"), h, h);
            let mut ctx = vec![vec![0.0; h]; n];
            for hd in 0..heads {
                for i in 0..n {
                    let s: Vec<f64> = (0..n)
                        .map(|j| {
                            (0..d)
                                .map(|e| q[i][hd * d + e] * k[j][hd * d + e])
                                .sum::<f64>()
                                / (d as f64).sqrt()
                        })
                        .collect();
                    let max = s.iter().cloned().fold(f64::MIN, f64::max);
                    let z: f64 = s.iter().map(|v| (v - max).exp()).sum();
                    for j in 0..n {
                        for e in 0..d {
                            ctx[i][hd * d + e] += (s[j] - max).exp() / z * v[j][hd * d + e];
                        }
                    }
                }
            }
            let mut a = dense(&ctx, &format!("{p}.attention.output.dense"), h, h);
            a.iter_mut()
                .zip(&x)
                .for_each(|(r, xr)| r.iter_mut().zip(xr).for_each(|(v, xv)| *v += xv));
            norm(&mut a, &format!("{p}.attention.output.LayerNorm"));
            let mut mid = dense(&a, &format!("{p}.intermediate.dense"), m, h);
            mid.iter_mut()
                .flatten()
                .for_each(|v| *v = 0.5 * *v * (1.0 + libm::erf(*v / 2f64.sqrt())));
            x = dense(&mid, &format!("{p}.output.dense"), h, m);
            x.iter_mut()
                .zip(&a)
                .for_each(|(r, ar)| r.iter_mut().zip(ar).for_each(|(v, av)| *v += av));
            norm(&mut x, &format!("{p}.output.LayerNorm"));
        }
        (0..h)
            .map(|j| x.iter().map(|r| r[j]).sum::<f64>() / n as f64)
            .collect()
    }

    #[test]
    fn forward_is_the_element_by_element_formula() {
        let (bert, tensors) = tiny();
        for ids in [
            vec![3u32],
            vec![1, 19, 0],
            vec![5, 5, 5, 5],
            (0..10).collect(),
        ] {
            let want = naive_pooled(&bert.config, &tensors, &ids);
            let got = bert.pooled(&ids).unwrap();
            let diff = got
                .iter()
                .zip(&want)
                .map(|(g, w)| (*g as f64 - w).abs())
                .fold(0.0, f64::max);
            assert!(diff < 1e-5, "{ids:?}: pooled differs by {diff}");
            let e = bert.embed(&ids).unwrap();
            let norm = e.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
            assert!((norm - 1.0).abs() < 1e-6, "{ids:?}: |embedding| = {norm}");
            assert!(
                cosine(&e, &got) > 1.0 - 1e-12,
                "{ids:?}: embed is not pooled / |pooled|"
            );
        }
    }

    #[test]
    fn observe_sees_every_activation() {
        let (bert, _) = tiny();
        let mut seen: BTreeMap<String, (usize, Vec<usize>)> = BTreeMap::new();
        let mut last = Array2::zeros((0, 0));
        let out = bert
            .forward(&[1, 2, 3], &mut |name, x| {
                let e = seen.entry(name.into()).or_insert((0, x.shape().to_vec()));
                e.0 += 1;
                assert_eq!(e.1, x.shape(), "{name}");
                last = x.to_owned();
            })
            .unwrap();
        assert_eq!(out, last, "the last activation seen is the output");
        let mut want = vec![
            ("embeddings_sum".to_string(), (1, vec![3, 8])),
            ("embeddings".to_string(), (1, vec![3, 8])),
        ];
        for i in 0..2 {
            for (what, calls, shape) in [
                ("query", 1, vec![3, 8]),
                ("key", 1, vec![3, 8]),
                ("value", 1, vec![3, 8]),
                ("scores", 2, vec![3, 3]),
                ("probs", 2, vec![3, 3]),
                ("context", 1, vec![3, 8]),
                ("attention_dense", 1, vec![3, 8]),
                ("attention_residual", 1, vec![3, 8]),
                ("attention", 1, vec![3, 8]),
                ("intermediate_dense", 1, vec![3, 16]),
                ("intermediate", 1, vec![3, 16]),
                ("output_dense", 1, vec![3, 8]),
                ("output_residual", 1, vec![3, 8]),
                ("output", 1, vec![3, 8]),
            ] {
                want.push((format!("layer.{i}.{what}"), (calls, shape)));
            }
        }
        assert_eq!(seen, want.into_iter().collect());
    }

    #[test]
    fn bad_sequences_are_refused() {
        let (bert, _) = tiny();
        let cases: [(&[u32], &str); 4] = [
            (&[], "no tokens to embed"),
            (&[0; 11], "11 tokens; the model has 10 positions"),
            (&[1, 2, 20], "token 2 is id 20; the vocabulary has 20 ids"),
            (&[u32::MAX], "token 0 is id 4294967295"),
        ];
        for (ids, want) in cases {
            let err = bert.embed(ids).unwrap_err().to_string();
            assert!(err.contains(want), "{ids:?}: {err}");
        }
        assert_eq!(
            bert.embed(&[0; 10]).unwrap().len(),
            8,
            "all positions may be used"
        );
    }

    #[test]
    fn bad_weights_are_named() {
        let config = tiny_config();
        let tensors = tiny_tensors(&config);
        let f32s = |_: &str| safetensors::Dtype::F32;
        let good = serialize(&tensors, f32s);
        let without = |name: &str| {
            let mut t = tensors.clone();
            t.remove(name);
            serialize(&t, f32s)
        };
        let reshaped = {
            let mut t = tensors.clone();
            t.get_mut("encoder.layer.1.intermediate.dense.weight")
                .unwrap()
                .0 = vec![8, 16];
            serialize(&t, f32s)
        };
        let mut huge_header = good.clone();
        huge_header[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("truncated", good[..good.len() / 2].to_vec(), "w.safetensors: not a safetensors file"),
            ("empty", vec![], "not a safetensors file"),
            ("huge header", huge_header, "not a safetensors file"),
            (
                "missing",
                without("encoder.layer.1.output.dense.bias"),
                "w.safetensors: tensor encoder.layer.1.output.dense.bias is missing",
            ),
            (
                "shape",
                reshaped,
                "tensor encoder.layer.1.intermediate.dense.weight has shape [8, 16]; config.json implies [16, 8]",
            ),
            (
                "dtype",
                serialize(&tensors, |n| {
                    if n == "embeddings.LayerNorm.bias" {
                        safetensors::Dtype::F64
                    } else {
                        safetensors::Dtype::F32
                    }
                }),
                "tensor embeddings.LayerNorm.bias is F64, not F32",
            ),
        ];
        for (tag, bytes, want) in cases {
            let err =
                FloatBert::from_safetensors(config.clone(), &bytes, Path::new("w.safetensors"))
                    .unwrap_err()
                    .to_string();
            assert!(err.contains(want), "{tag}: {err}");
        }
        // Unused tensors (the pooler, position_ids) are ignored.
        let mut extra = tensors.clone();
        extra.insert("pooler.dense.bias".into(), (vec![8], vec![0.0; 8]));
        FloatBert::from_safetensors(config, &serialize(&extra, f32s), Path::new("w")).unwrap();
    }

    #[test]
    fn bad_configs_are_named() {
        let dir = std::env::temp_dir().join(format!("opml-bert-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases: [(&str, &str, &str); 9] = [
            (
                "missing eps",
                r#""layer_norm_eps": 1e-12,"#,
                "missing field `layer_norm_eps`",
            ),
            (
                "missing act",
                r#""hidden_act": "gelu""#,
                "missing field `hidden_act`",
            ),
            (
                "heads",
                r#""num_attention_heads": 2"#,
                "num_attention_heads: 3 does not divide hidden_size 8",
            ),
            (
                "zero layers",
                r#""num_hidden_layers": 2"#,
                "num_hidden_layers: must be positive",
            ),
            (
                "eps",
                r#""layer_norm_eps": 1e-12"#,
                "layer_norm_eps: -1 is not a positive number",
            ),
            (
                "act",
                r#""hidden_act": "gelu""#,
                r#"hidden_act: "relu"; only "gelu" is computed"#,
            ),
            (
                "negative",
                r#""vocab_size": 20"#,
                "invalid value: integer `-20`",
            ),
            ("string", r#""hidden_size": 8"#, "invalid type: string"),
            (
                "position",
                r#""type_vocab_size": 2"#,
                r#"position_embedding_type: "relative_key""#,
            ),
        ];
        let replacements = [
            "",
            r#""x": 0"#,
            r#""num_attention_heads": 3"#,
            r#""num_hidden_layers": 0"#,
            r#""layer_norm_eps": -1"#,
            r#""hidden_act": "relu""#,
            r#""vocab_size": -20"#,
            r#""hidden_size": "8""#,
            r#""type_vocab_size": 2, "position_embedding_type": "relative_key""#,
        ];
        for ((tag, from, want), to) in cases.into_iter().zip(replacements) {
            assert!(TINY.contains(from), "{tag}");
            let path = dir.join("config.json");
            std::fs::write(&path, TINY.replace(from, to)).unwrap();
            let err = BertConfig::load(&dir).unwrap_err().to_string();
            assert!(err.contains(want), "{tag}: {err}");
            assert!(
                err.contains("config.json"),
                "{tag}: the file is named: {err}"
            );
        }
        std::fs::write(dir.join("config.json"), TINY).unwrap();
        assert_eq!(BertConfig::load(&dir).unwrap(), tiny_config());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cosine_and_normalisation() {
        let cases: [(&[f32], &[f32], f64); 4] = [
            (&[1.0, 0.0], &[0.0, 2.0], 0.0),
            (&[1.0, 1.0], &[2.0, 2.0], 1.0),
            (&[1.0, 0.0], &[-3.0, 0.0], -1.0),
            (&[0.0, 0.0], &[1.0, 0.0], 0.0),
        ];
        for (a, b, want) in cases {
            assert!((cosine(a, b) - want).abs() < 1e-12, "{a:?} {b:?}");
        }
        let mut v = [3.0f32, 4.0];
        l2_normalize(&mut v);
        assert_eq!(v, [0.6, 0.8]);
        let mut zero = [0.0f32; 3];
        l2_normalize(&mut zero);
        assert_eq!(zero, [0.0; 3]);
    }

    #[cfg(feature = "text")]
    mod minilm {
        use super::super::*;
        use crate::minilm_fixture::{model_dir, reference};
        use std::time::Instant;

        #[test]
        fn embeddings_match_the_numpy_reference() {
            let bert = FloatBert::load(model_dir()).unwrap();
            let c = &bert.config;
            assert_eq!(
                (
                    c.hidden_size,
                    c.num_hidden_layers,
                    c.num_attention_heads,
                    c.intermediate_size
                ),
                (384, 6, 12, 1536)
            );
            assert_eq!(
                (c.vocab_size, c.max_position_embeddings, c.layer_norm_eps),
                (30522, 512, 1e-12)
            );
            let r = reference();
            let start = Instant::now();
            let embeddings: Vec<Vec<f32>> =
                r.test.iter().map(|e| bert.embed(&e.ids).unwrap()).collect();
            let per_sentence = start.elapsed() / r.test.len() as u32;
            let cosines: Vec<f64> = embeddings
                .iter()
                .zip(&r.test)
                .map(|(got, e)| cosine(got, &e.embedding))
                .collect();
            let (worst, min) =
                cosines
                    .iter()
                    .enumerate()
                    .fold(
                        (0, f64::MAX),
                        |(wi, m), (i, &c)| if c < m { (i, c) } else { (wi, m) },
                    );
            let mean = cosines.iter().sum::<f64>() / cosines.len() as f64;
            let tokens =
                r.test.iter().map(|e| e.ids.len()).sum::<usize>() as f64 / r.test.len() as f64;
            let sixteen = r
                .test
                .iter()
                .find(|e| e.ids.len() == 16)
                .expect("a 16-token sentence");
            let start = Instant::now();
            bert.embed(&sixteen.ids).unwrap();
            let sixteen_time = start.elapsed();
            println!(
                "f32 vs numpy: cosine min 1 - {:.1e} ({:?}), mean 1 - {:.1e}; {per_sentence:?} per \
                 sentence ({tokens:.1} tokens on average), {sixteen_time:?} for 16 tokens",
                1.0 - min,
                r.test[worst].text,
                1.0 - mean,
            );
            assert!(
                min >= 0.99999,
                "sentence {worst} {:?}: cosine {min}",
                r.test[worst].text
            );
            // sentence-transformers' README: the similarities of its three example sentences.
            for (i, j, want) in [(0, 1, 0.6660), (0, 2, 0.1046), (1, 2, 0.1411)] {
                let got = cosine(&embeddings[i], &embeddings[j]);
                assert!(
                    (got - want).abs() < 6e-5,
                    "similarity {i}-{j}: {got}, published {want}"
                );
            }
            let ids = &r.test[0].ids;
            let mut pooled = bert.pooled(ids).unwrap();
            assert!(
                pooled.iter().map(|v| v * v).sum::<f32>() > 0.1,
                "pooled is not normalised"
            );
            l2_normalize(&mut pooled);
            assert_eq!(pooled, embeddings[0]);
        }
    }
}
