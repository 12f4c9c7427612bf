//! A LLaMA-shaped decoder as a graph of the library's integer ops: one token's forward pass, with
//! weights drawn from a seed (for tests and benches of the decoder's ops at a model's shapes; no
//! trained weights are imported yet).
//!
//! Graph: the token's embedding row (`gather`); per layer `rms_norm`, the q, k, v projections
//! (`mat_mul`, int8 weights), heads split (`reshape`, `transpose`), `rope` on q and k at the
//! token's position, scores (`mat_mul` between activations, 1/√d folded into its scale),
//! `causal_softmax`, the context `mat_mul`, heads joined, the output projection and the residual
//! `add16`; then `rms_norm`, SwiGLU (gate and up projections, SiLU as a `lookup` table, `mul16`),
//! the down projection and the residual; a final `rms_norm`, the LM head and `arg_max16`: the
//! next token's id. Without a KV cache the token attends to itself only (`t = n = 1`); its
//! position still enters through `rope`'s `start`.
//!
//! Every activation is int16 at one scale ([`ACTIVATION_SCALE`]); the weights are uniform in
//! ±1/√fan-in, the embeddings in ±1, the norms' γ in 0.5..1.5.

use crate::bert::quantize::{clamp_i16, exp_table, GraphBuilder};
use crate::bert::Dense;
use crate::graph::{InputSpec, Model, ModelError, ModelManifest, TensorRef};
use crate::ops::{MatMul, Mul16, Op, Rope};
use crate::quant::Requant;
use crate::tensor::DType;
use ndarray::{Array1, Array2};

/// The real value of one integer step of every activation (range ±16).
pub const ACTIVATION_SCALE: f64 = 1.0 / 2048.0;

/// The shapes of a LLaMA-style decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlamaConfig {
    /// Width of the residual stream.
    pub dim: usize,
    /// Decoder layers.
    pub layers: usize,
    /// Attention heads (`dim / heads` must be even, for RoPE's pairs).
    pub heads: usize,
    /// Hidden width of the feed-forward block.
    pub ffn: usize,
    /// Tokens of the vocabulary.
    pub vocab: usize,
    /// Positions the RoPE tables cover.
    pub max_positions: usize,
}

impl LlamaConfig {
    /// The tiny test decoder: dim 64, 2 layers, 4 heads, ffn 172, vocab 256, 64 positions.
    pub const fn tiny() -> Self {
        Self {
            dim: 64,
            layers: 2,
            heads: 4,
            ffn: 172,
            vocab: 256,
            max_positions: 64,
        }
    }

    /// Checks the shapes; an error names the field at fault.
    fn check(&self, position: usize) -> Result<usize, LlamaError> {
        let bad = |field: &'static str, reason: String| Err(LlamaError::Config { field, reason });
        if [self.dim, self.layers, self.heads, self.ffn, self.vocab].contains(&0) {
            return bad(
                "dim, layers, heads, ffn, vocab",
                format!("none may be 0: {self:?}"),
            );
        }
        if !self.dim.is_multiple_of(self.heads) || !(self.dim / self.heads).is_multiple_of(2) {
            return bad(
                "heads",
                format!(
                    "{} heads must split dim {} into even head widths",
                    self.heads, self.dim
                ),
            );
        }
        if position >= self.max_positions {
            return bad(
                "position",
                format!(
                    "{position} is past the {} positions of the RoPE tables",
                    self.max_positions
                ),
            );
        }
        Ok(self.dim / self.heads)
    }
}

/// Why a decoder graph cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum LlamaError {
    /// The config or position does not describe a decoder this graph computes.
    #[error("llama config: {field}: {reason}")]
    Config {
        /// The field at fault.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The graph does not check (a bug of the builder).
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// A deterministic generator of uniform floats (SplitMix64): the weights of one seed are the same
/// on every machine.
struct Uniform(u64);

impl Uniform {
    /// A value in `[lo, hi)`.
    fn next(&mut self, lo: f64, hi: f64) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        lo + (hi - lo) * (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f32> {
        (0..n).map(|_| self.next(lo, hi) as f32).collect()
    }

    /// A projection `[out, in]` with weights in ±1/√in and no bias.
    fn dense(&mut self, out: usize, inp: usize) -> Dense {
        let a = 1.0 / (inp as f64).sqrt();
        Dense {
            weight: Array2::from_shape_vec((out, inp), self.vec(out * inp, -a, a))
                .expect("out × in"),
            bias: Array1::zeros(out),
        }
    }
}

/// `silu(x) = x · σ(x)`.
fn silu(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

/// The graph of one token's forward pass at `position` of a decoder of shapes `config`, with
/// weights from `seed`. The request input is the token's id (int32 `[1]`), the output the id of
/// the most likely next token (int32 `[1]`).
pub fn random_model(config: &LlamaConfig, seed: u64, position: usize) -> Result<Model, LlamaError> {
    let dh = config.check(position)?;
    let (dim, heads, half) = (config.dim, config.heads, dh / 2);
    let s = ACTIVATION_SCALE;
    let mut rng = Uniform(seed);
    let mut g = GraphBuilder::default();

    let embed = rng.vec(config.vocab * dim, -1.0, 1.0);
    let table = g.i16s(
        "embed".into(),
        &[config.vocab, dim],
        embed.iter().map(|&v| clamp_i16(f64::from(v) / s)).collect(),
    );
    let mut x = g.node(
        "embed.gather".into(),
        Op::Gather,
        vec![TensorRef::Input, table],
    );

    // RoPE tables in Q15, LLaMA's frequencies 10000^(−2j/dh); shared by every layer.
    let q15 = |v: f64| (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
    let angles: Vec<f64> = (0..config.max_positions)
        .flat_map(|p| (0..half).map(move |j| p as f64 * 10_000f64.powf(-(j as f64) / half as f64)))
        .collect();
    let rope_shape = [config.max_positions, half];
    let cos = g.i16s(
        "rope.cos".into(),
        &rope_shape,
        angles.iter().map(|a| q15(a.cos())).collect(),
    );
    let sin = g.i16s(
        "rope.sin".into(),
        &rope_shape,
        angles.iter().map(|a| q15(a.sin())).collect(),
    );
    let exp = exp_table(s);
    let exp = g.i16s("softmax.exp".into(), &[exp.len()], exp);
    let silu_table: Vec<i16> = (-32768i32..=32767)
        .map(|v| clamp_i16(silu(f64::from(v) * s) / s))
        .collect();
    let silu_table = g.i16s("silu".into(), &[1 << 16], silu_table);
    let zero = g.i32s("zero.bias".into(), &[1], vec![0]);
    let single = |g: &mut GraphBuilder, name: String, scale: f64| {
        let q = Requant::from_scale(scale).expect("a scale in range");
        g.i32s(name, &[1, 2], vec![q.multiplier, q.shift as i32])
    };
    let rms_norm = |g: &mut GraphBuilder, rng: &mut Uniform, name: String, x: TensorRef| {
        let gamma = rng.vec(dim, 0.5, 1.5);
        let scale = g.gamma_scales(&name, &gamma, s);
        g.node(name, Op::RmsNorm, vec![x, scale])
    };
    let rope = Op::Rope(Rope {
        start: position as u32,
    });

    for i in 0..config.layers {
        let p = |what: &str| format!("layer.{i}.{what}");
        let h = rms_norm(&mut g, &mut rng, p("attention_norm"), x.clone());
        let mut project = |g: &mut GraphBuilder, what: &str, perm: Vec<usize>| {
            let t = g.dense(&p(what), h.clone(), 1, s, &rng.dense(dim, dim), s);
            let t = g.node(
                p(&format!("{what}.heads")),
                Op::Reshape {
                    shape: vec![1, heads, dh],
                },
                vec![t],
            );
            g.node(
                p(&format!("{what}.transpose")),
                Op::Transpose { perm },
                vec![t],
            )
        };
        let q = project(&mut g, "query", vec![1, 0, 2]);
        let k = project(&mut g, "key", vec![1, 0, 2]);
        let vt = project(&mut g, "value", vec![1, 2, 0]);
        let q = g.node(
            p("query.rope"),
            rope.clone(),
            vec![q, cos.clone(), sin.clone()],
        );
        let k = g.node(
            p("key.rope"),
            rope.clone(),
            vec![k, cos.clone(), sin.clone()],
        );
        let scores_scale = single(&mut g, p("scores.scale"), s / (dh as f64).sqrt());
        let scores = g.node(
            p("scores"),
            Op::MatMul(MatMul {}),
            vec![q, k, zero.clone(), scores_scale],
        );
        let probs = g.node(p("softmax"), Op::CausalSoftmax, vec![scores, exp.clone()]);
        let ctx_scale = single(&mut g, p("context.scale"), 1.0 / 32768.0);
        let ctx = g.node(
            p("context"),
            Op::MatMul(MatMul {}),
            vec![probs, vt, zero.clone(), ctx_scale],
        );
        let ctx = g.join_heads(&p(""), ctx, 1, dim);
        let o = g.dense(&p("attention.output"), ctx, 1, s, &rng.dense(dim, dim), s);
        x = g.add(p("attention.residual"), x, s, o, s, s);

        let h = rms_norm(&mut g, &mut rng, p("ffn_norm"), x.clone());
        let gate = g.dense(
            &p("ffn.gate"),
            h.clone(),
            1,
            s,
            &rng.dense(config.ffn, dim),
            s,
        );
        let up = g.dense(&p("ffn.up"), h, 1, s, &rng.dense(config.ffn, dim), s);
        let gate = g.node(p("ffn.silu"), Op::Lookup, vec![gate, silu_table.clone()]);
        let m = g.node(
            p("ffn.mul"),
            Op::Mul16(Mul16 {
                requant: Requant::from_scale(s).expect("a scale in range"),
            }),
            vec![gate, up],
        );
        let down = g.dense(&p("ffn.down"), m, 1, s, &rng.dense(dim, config.ffn), s);
        x = g.add(p("ffn.residual"), x, s, down, s, s);
    }
    let h = rms_norm(&mut g, &mut rng, "norm".into(), x);
    let logits = g.dense("lm_head", h, 1, s, &rng.dense(config.vocab, dim), s);
    let logits = g.node(
        "lm_head.flatten".into(),
        Op::Reshape {
            shape: vec![config.vocab],
        },
        vec![logits],
    );
    g.node("next_token".into(), Op::ArgMax16, vec![logits]);
    let manifest = ModelManifest {
        name: format!("llama-{}x{}-seed{seed}", config.layers, dim),
        input: InputSpec {
            dtype: DType::I32,
            shape: vec![1],
            scale: 1.0,
        },
        nodes: g.nodes,
        weights: "weights.safetensors".into(),
        provenance: serde_json::json!({
            "architecture": "llama",
            "seed": seed,
            "position": position,
            "dim": dim,
            "layers": config.layers,
            "heads": heads,
            "ffn": config.ffn,
            "vocab": config.vocab,
            "activation_scale": s,
        }),
    };
    Ok(Model::new(manifest, g.weights)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::test_rng;
    use crate::ops::OpKind;
    use crate::tensor::Tensor;
    use rand::Rng;

    /// Every node of the tiny decoder, run natively on a token, replays in the VM to the native
    /// output's commitment: a dispute's phase 1 can replay any node of a decoder.
    #[test]
    fn every_node_of_the_tiny_decoder_replays_in_the_vm() {
        let (mut rng, seed) = test_rng("llama::every_node_of_the_tiny_decoder_replays_in_the_vm");
        let config = LlamaConfig::tiny();
        let position = rng.gen_range(0..config.max_positions);
        let model = random_model(&config, seed, position).unwrap();
        let token = rng.gen_range(0..config.vocab as i32);
        let input = Tensor::I32(ndarray::Array1::from(vec![token]).into_dyn());
        let trace = model.run(&input).unwrap();
        for (i, node) in model.manifest.nodes.iter().enumerate() {
            let run = model
                .run_node_in_vm(i, &input, &trace, crate::bert::MAX_NODE_STEPS)
                .unwrap_or_else(|e| panic!("seed {seed}: node {i} ({}): {e}", node.name));
            assert_eq!(
                run.commitment, trace.nodes[i].commitment,
                "seed {seed}: node {i} ({}) differs in the VM",
                node.name
            );
            eprintln!("node {i:>3} {:<32} {:>9} VM steps", node.name, run.steps);
        }
        let kinds: std::collections::BTreeSet<OpKind> =
            model.manifest.nodes.iter().map(|n| n.op.kind()).collect();
        for kind in [
            OpKind::RmsNorm,
            OpKind::Rope,
            OpKind::CausalSoftmax,
            OpKind::Mul16,
            OpKind::ArgMax16,
        ] {
            assert!(kinds.contains(&kind), "no {} node", kind.name());
        }
        let next = trace.output().as_i32().unwrap()[[0]];
        assert!(
            (0..config.vocab as i32).contains(&next),
            "seed {seed}: {next}"
        );
        // The activations are not all saturated or all zero: the scales fit the weights.
        let stream = trace.nodes[model.manifest.nodes.len() - 2]
            .output
            .as_i16()
            .unwrap();
        assert!(
            stream.iter().any(|&v| v != 0) && stream.iter().any(|&v| v.unsigned_abs() < 32767),
            "seed {seed}: degenerate logits"
        );
    }

    /// One seed gives one model (its commitment), another seed another.
    #[test]
    fn the_seed_fixes_the_weights() {
        let config = LlamaConfig::tiny();
        let a = random_model(&config, 7, 3).unwrap().commitment().unwrap();
        let b = random_model(&config, 7, 3).unwrap().commitment().unwrap();
        let c = random_model(&config, 8, 3).unwrap().commitment().unwrap();
        let d = random_model(&config, 7, 4).unwrap().commitment().unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(
            a, d,
            "the position is in rope's params, so in the commitment"
        );
    }

    #[test]
    fn bad_configs_are_named() {
        let tiny = LlamaConfig::tiny();
        let cases = [
            (LlamaConfig { heads: 3, ..tiny }, 0, "heads"),
            (LlamaConfig { heads: 64, ..tiny }, 0, "even head widths"),
            (LlamaConfig { dim: 0, ..tiny }, 0, "none may be 0"),
            (LlamaConfig { vocab: 0, ..tiny }, 0, "none may be 0"),
            (tiny, 64, "past the 64 positions"),
            (tiny, usize::MAX, "position"),
        ];
        for (config, position, want) in cases {
            let err = random_model(&config, 1, position).unwrap_err().to_string();
            assert!(err.contains(want), "{err} (wanted {want})");
        }
    }
}
