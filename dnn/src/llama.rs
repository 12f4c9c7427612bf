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
//! next token's id.
//!
//! **KV cache.** The graph at position `p > 0` takes, besides the token's id (the request input),
//! `2·layers` state inputs ([`crate::ModelManifest::state`]): per layer the keys `[heads, p, dh]`
//! (after `rope`) and the transposed values `[heads, dh, p]` of the positions before it. Each
//! layer `concat`s its new row onto them (nodes `layer.{i}.key.cache`, `layer.{i}.value.cache`),
//! and those node outputs are the cache the next position takes; at `p = 0` the new rows
//! themselves are the cache. [`DecoderStep::cache_nodes`] names them, [`generate`] chains the
//! steps, and [`token_state`] commits to the tokens and cache after a step (protocol section 13).
//!
//! Every activation is int16 at one scale ([`ACTIVATION_SCALE`]); the weights are uniform in
//! ±1/√fan-in, the embeddings in ±1, the norms' γ in 0.5..1.5.

use crate::bert::quantize::{clamp_i16, exp_table, GraphBuilder};
use crate::bert::Dense;
use crate::graph::{InputSpec, Model, ModelError, ModelManifest, TensorRef};
use crate::ops::{MatMul, Mul16, Op, Rope};
use crate::quant::Requant;
use crate::tensor::{DType, Tensor, TensorError};
use ndarray::{Array1, Array2};
use opml_vm::{data_root, keccak256, Hash};

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
    /// A token id or prompt that the decoder cannot take.
    #[error("tokens: {0}")]
    Tokens(String),
    /// The graph does not check (a bug of the builder), or a run fails.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A tensor cannot be committed to.
    #[error(transparent)]
    Tensor(#[from] TensorError),
}

/// One position's forward-pass graph and where its cache outputs are.
#[derive(Debug, Clone)]
pub struct DecoderStep {
    /// The graph: request input the token id (int32 `[1]`), state inputs the cache of the
    /// positions before (none at position 0), output the next token's id (int32 `[1]`).
    pub model: Model,
    /// Per layer, the nodes whose outputs are its keys `[heads, p + 1, dh]` and transposed values
    /// `[heads, dh, p + 1]` after this position, in state-input order (`2·layer`, `2·layer + 1`):
    /// the next position's state inputs.
    pub cache_nodes: Vec<usize>,
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
/// weights from `seed`. The request input is the token's id (int32 `[1]`), the state inputs the KV
/// cache of the positions before it, the output the id of the most likely next token (int32 `[1]`).
pub fn random_model(
    config: &LlamaConfig,
    seed: u64,
    position: usize,
) -> Result<DecoderStep, LlamaError> {
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
    // State inputs: per layer the keys and the transposed values of the positions before.
    let mut state = Vec::new();
    let mut cache_nodes = Vec::new();
    let mut cached = |g: &mut GraphBuilder, name: String, new: TensorRef, axis: usize| {
        if position == 0 {
            return new;
        }
        let mut shape = vec![heads, dh, dh];
        shape[axis] = position;
        state.push(InputSpec {
            dtype: DType::I16,
            shape,
            scale: ACTIVATION_SCALE,
        });
        g.node(
            name,
            Op::Concat { axis },
            vec![TensorRef::State(state.len() - 1), new],
        )
    };

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
        let k = cached(&mut g, p("key.cache"), k, 1);
        let vt = cached(&mut g, p("value.cache"), vt, 2);
        for r in [&k, &vt] {
            let TensorRef::Node(n) = r else {
                unreachable!("cache tensors are node outputs")
            };
            cache_nodes.push(*n);
        }
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
        state,
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
    Ok(DecoderStep {
        model: Model::new(manifest, g.weights)?,
        cache_nodes,
    })
}

/// The token state after a decoding step (protocol section 13): `H(tokensCommitment ‖ cacheRoot)`.
///
/// `tokens` are the ids of positions `0..=p + 1`: those whose keys and values the cache holds and
/// the token the next step takes (the prompt's next one while the prompt lasts, else the step's
/// output), as a tensor commitment of int32 `[p + 2]`; `cacheRoot` is the data root of the tensor
/// commitments of the `2·layers` cache tensors in state-input order. State `i` of the token phase
/// is this hash after the step at position `i`: it fixes both inputs of step `i + 1`, and its
/// cache commitments are the outputs `O_j` of step `i`'s cache nodes, so the phases link.
pub fn token_state(tokens: &[i32], cache: &[Tensor]) -> Result<Hash, LlamaError> {
    let tokens = Tensor::I32(Array1::from(tokens.to_vec()).into_dyn()).commitment()?;
    let commitments = cache
        .iter()
        .map(Tensor::commitment)
        .collect::<Result<Vec<Hash>, _>>()?;
    Ok(keccak256(
        &[&tokens[..], &data_root(&commitments.concat())].concat(),
    ))
}

/// A greedy generation: every token, and the token state after every step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// The prompt followed by the generated tokens.
    pub tokens: Vec<i32>,
    /// How many of `tokens` the prompt gave.
    pub prompt_len: usize,
    /// The token state ([`token_state`]) after the step at each position.
    pub states: Vec<Hash>,
}

impl Generation {
    /// The generated tokens (after the prompt).
    pub fn generated(&self) -> &[i32] {
        &self.tokens[self.prompt_len..]
    }
}

/// The token ids of a one-token request input.
fn token_input(token: i32) -> Tensor {
    Tensor::I32(Array1::from(vec![token]).into_dyn())
}

/// Checks a prompt and a number of new tokens against `config`; returns the steps to run.
pub fn check_request(
    config: &LlamaConfig,
    prompt: &[i32],
    new_tokens: usize,
) -> Result<usize, LlamaError> {
    if prompt.is_empty() {
        return Err(LlamaError::Tokens("the prompt has no tokens".into()));
    }
    if new_tokens == 0 {
        return Err(LlamaError::Tokens(
            "a request generates at least one token".into(),
        ));
    }
    if let Some((i, t)) = prompt
        .iter()
        .enumerate()
        .find(|(_, &t)| t < 0 || t as usize >= config.vocab)
    {
        return Err(LlamaError::Tokens(format!(
            "prompt token {i} is {t}, not an id below the vocabulary's {}",
            config.vocab
        )));
    }
    // The last generated token is never fed back, so it needs no position.
    let steps = prompt.len() + new_tokens - 1;
    if steps > config.max_positions {
        return Err(LlamaError::Tokens(format!(
            "{} prompt tokens and {new_tokens} new ones need {steps} positions; the decoder has {}",
            prompt.len(),
            config.max_positions
        )));
    }
    Ok(steps)
}

/// One decoding step run natively: its graph, trace, next token and the cache after it.
#[derive(Debug, Clone)]
pub struct StepRun {
    /// The position's graph.
    pub step: DecoderStep,
    /// The native run (every node's output and commitment).
    pub trace: crate::Trace,
    /// The request input it ran on (the token's id).
    pub input: Tensor,
    /// The next token's id (the graph's output).
    pub next: i32,
    /// The cache after this position: the outputs of [`DecoderStep::cache_nodes`].
    pub cache: Vec<Tensor>,
    /// Wall time of the native run (commitments and trace included, the graph's construction not).
    pub time: std::time::Duration,
}

/// Runs the decoder at `position` on `token` with the `cache` of the positions before it.
pub fn run_step(
    config: &LlamaConfig,
    seed: u64,
    position: usize,
    token: i32,
    cache: &[Tensor],
) -> Result<StepRun, LlamaError> {
    if token < 0 || token as usize >= config.vocab {
        return Err(LlamaError::Tokens(format!(
            "token {token} at position {position} is not an id below the vocabulary's {}",
            config.vocab
        )));
    }
    let step = random_model(config, seed, position)?;
    let input = token_input(token);
    let start = std::time::Instant::now();
    let trace = step.model.run_with_state(&input, cache)?;
    let time = start.elapsed();
    let next = trace.output().as_i32()?[[0]];
    let cache = step
        .cache_nodes
        .iter()
        .map(|&n| trace.nodes[n].output.clone())
        .collect();
    Ok(StepRun {
        step,
        trace,
        input,
        next,
        cache,
        time,
    })
}

/// Greedy decoding of `new_tokens` tokens after `prompt` with the KV cache: one graph per
/// position ([`random_model`]), each taking the cache outputs of the one before.
pub fn generate(
    config: &LlamaConfig,
    seed: u64,
    prompt: &[i32],
    new_tokens: usize,
) -> Result<Generation, LlamaError> {
    let steps = check_request(config, prompt, new_tokens)?;
    let mut tokens = prompt.to_vec();
    let mut cache: Vec<Tensor> = Vec::new();
    let mut states = Vec::with_capacity(steps);
    for position in 0..steps {
        let run = run_step(config, seed, position, tokens[position], &cache)?;
        // Past the prompt, the step's output is the next token.
        if position + 1 == tokens.len() {
            tokens.push(run.next);
        }
        cache = run.cache;
        states.push(token_state(&tokens[..position + 2], &cache)?);
    }
    Ok(Generation {
        tokens,
        prompt_len: prompt.len(),
        states,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::test_rng;
    use crate::ops::OpKind;
    use rand::Rng;

    /// Every node of the tiny decoder's step at a position past 0, run natively on a token and the
    /// KV cache of the positions before, replays in the VM to the native output's commitment: a
    /// dispute's phase 1 can replay any node of a cached decoding step.
    #[test]
    fn every_node_of_a_cached_decoding_step_replays_in_the_vm() {
        let (mut rng, seed) =
            test_rng("llama::every_node_of_a_cached_decoding_step_replays_in_the_vm");
        let config = LlamaConfig::tiny();
        let position = rng.gen_range(1..6);
        let mut cache = Vec::new();
        for p in 0..position {
            let token = rng.gen_range(0..config.vocab as i32);
            cache = run_step(&config, seed, p, token, &cache).unwrap().cache;
        }
        let token = rng.gen_range(0..config.vocab as i32);
        let run = run_step(&config, seed, position, token, &cache).unwrap();
        let model = &run.step.model;
        assert_eq!(model.manifest.state.len(), 2 * config.layers);
        for (i, node) in model.manifest.nodes.iter().enumerate() {
            let vm = model
                .run_node_in_vm_with_state(
                    i,
                    &run.input,
                    &cache,
                    &run.trace,
                    crate::bert::MAX_NODE_STEPS,
                )
                .unwrap_or_else(|e| panic!("seed {seed}: node {i} ({}): {e}", node.name));
            assert_eq!(
                vm.commitment, run.trace.nodes[i].commitment,
                "seed {seed}: node {i} ({}) differs in the VM",
                node.name
            );
        }
        let kinds: std::collections::BTreeSet<OpKind> =
            model.manifest.nodes.iter().map(|n| n.op.kind()).collect();
        for kind in [
            OpKind::RmsNorm,
            OpKind::Rope,
            OpKind::CausalSoftmax,
            OpKind::Mul16,
            OpKind::ArgMax16,
            OpKind::Concat,
        ] {
            assert!(kinds.contains(&kind), "no {} node", kind.name());
        }
        for (layer, pair) in run.cache.chunks(2).enumerate() {
            let (dh, heads) = (config.dim / config.heads, config.heads);
            assert_eq!(
                pair[0].shape(),
                [heads, position + 1, dh],
                "layer {layer} keys"
            );
            assert_eq!(
                pair[1].shape(),
                [heads, dh, position + 1],
                "layer {layer} values"
            );
        }
        assert!(
            (0..config.vocab as i32).contains(&run.next),
            "seed {seed}: {}",
            run.next
        );
        // The activations are not all saturated or all zero: the scales fit the weights.
        let logits = run.trace.nodes[model.manifest.nodes.len() - 2]
            .output
            .as_i16()
            .unwrap();
        assert!(
            logits.iter().any(|&v| v != 0) && logits.iter().any(|&v| v.unsigned_abs() < 32767),
            "seed {seed}: degenerate logits"
        );
    }

    /// Generation with the cache equals a re-run: the same request gives the same tokens and
    /// states, and a request whose prompt is the first tokens of a generation continues it with the
    /// same tokens and the same token states (the cache rebuilt from the prompt equals the cache
    /// carried through the generation).
    #[test]
    fn generation_equals_a_rerun_from_any_prefix() {
        let (mut rng, seed) = test_rng("llama::generation_equals_a_rerun_from_any_prefix");
        let config = LlamaConfig::tiny();
        let prompt: Vec<i32> = (0..3).map(|_| rng.gen_range(0..256)).collect();
        let whole = generate(&config, seed, &prompt, 6).unwrap();
        assert_eq!(whole.generated().len(), 6);
        assert_eq!(whole.states.len(), prompt.len() + 6 - 1);
        assert_eq!(whole, generate(&config, seed, &prompt, 6).unwrap());
        for k in [1, 3, 5] {
            let prefix = &whole.tokens[..prompt.len() + k];
            let rest = generate(&config, seed, prefix, 6 - k).unwrap();
            assert_eq!(rest.tokens, whole.tokens, "seed {seed}: from {k} generated");
            assert_eq!(rest.states, whole.states, "seed {seed}: from {k} generated");
        }
        let other = generate(&config, seed ^ 1, &prompt, 6).unwrap();
        assert_ne!(
            other.states, whole.states,
            "seed {seed}: the weights are in the states"
        );
    }

    /// One seed gives one model (its commitment), another seed another.
    #[test]
    fn the_seed_fixes_the_weights() {
        let config = LlamaConfig::tiny();
        let commit = |seed, position| {
            random_model(&config, seed, position)
                .unwrap()
                .model
                .commitment()
                .unwrap()
        };
        assert_eq!(commit(7, 3), commit(7, 3));
        assert_ne!(commit(7, 3), commit(8, 3));
        assert_ne!(
            commit(7, 3),
            commit(7, 4),
            "the position is in rope's params and the cache's shapes, so in the commitment"
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

    /// Hostile requests and caches are refused with an error naming what is wrong.
    #[test]
    fn hostile_requests_are_named_errors() {
        let tiny = LlamaConfig::tiny();
        let cases: [(&[i32], usize, &str); 6] = [
            (&[], 1, "the prompt has no tokens"),
            (&[1], 0, "at least one token"),
            (&[1, 256], 1, "prompt token 1 is 256"),
            (&[-1], 1, "prompt token 0 is -1"),
            (&[1, 2], 64, "need 65 positions; the decoder has 64"),
            (&[1; 64], 2, "need 65 positions"),
        ];
        for (prompt, n, want) in cases {
            let err = generate(&tiny, 1, prompt, n).unwrap_err().to_string();
            assert!(
                err.contains(want),
                "{prompt:?} + {n}: {err} (wanted {want})"
            );
        }
        // The last allowed length runs.
        assert!(check_request(&tiny, &[1; 64], 1).is_ok());
        let cache = run_step(&tiny, 1, 0, 5, &[]).unwrap().cache;
        let mut short = cache.clone();
        short.pop();
        let mut wrong = cache.clone();
        wrong[1] = cache[0].clone();
        let steps: [(usize, i32, &[Tensor], &str); 5] = [
            (1, 256, &cache, "token 256 at position 1"),
            (1, 5, &[], "0 state tensors given; the graph takes 4"),
            (1, 5, &short, "3 state tensors given"),
            (1, 5, &wrong, "state input 1 must be I16 [4, 16, 1]"),
            (2, 5, &cache, "state input 0 must be I16 [4, 2, 16]"),
        ];
        for (position, token, cache, want) in steps {
            let err = run_step(&tiny, 1, position, token, cache)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(want),
                "position {position}: {err} (wanted {want})"
            );
        }
    }
}
