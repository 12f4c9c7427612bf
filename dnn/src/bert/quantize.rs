//! The integer form of a [`FloatBert`]: int8 per-output-channel weights, int16 activations at
//! scales calibrated on the project's sentences, and the encoder as a graph of the library's ops
//! (every node native and in the VM bit for bit). The request's input is the token ids, padded with
//! 0 (`[PAD]`) to a fixed number of tokens; the ids are also the attention mask (a real token's id
//! is never 0). The output is the mean-pooled sentence vector in int16; normalising it is left to
//! the float edge (cosine similarity does not see the vector's length).
//!
//! Graph, per layer: three projections (`mat_mul` with int8 weights), heads split by `reshape` and
//! `transpose`, scores `mat_mul` between activations (the 1/√d folded into its scale), `softmax`
//! with the ids as mask and an exp table, the context `mat_mul`, heads joined, the output
//! projection, the residual `add16`, `layer_norm`; the MLP's two projections with GELU as a
//! `lookup` table between them, `add16`, `layer_norm`. A projection whose VM run would pass
//! [`MAX_NODE_STEPS`] is split into tiles of output channels joined by `concat`.

use super::{BertError, Dense, FloatBert, LayerNorm};
use crate::graph::{InputSpec, Model, ModelManifest, Node, TensorRef};
use crate::ops::{Add, MatMul, Op};
use crate::quant::Requant;
use crate::tensor::{DType, Tensor};
use ndarray::{Array1, ArrayD, IxDyn};
use std::collections::{BTreeMap, HashMap};

/// The VM steps a node should stay under (the bound; a dispute's phase 1 records every
/// step of one node).
pub const MAX_NODE_STEPS: u64 = 100_000_000;

/// Headroom over the largest calibration magnitude of an activation (int16 leaves plenty of
/// resolution, so a sentence somewhat beyond the calibration set does not saturate).
const RANGE_MARGIN: f64 = 1.5;

/// int16's largest magnitude.
const I16_MAX: f64 = 32767.0;

/// Builds a graph node by node, with its weights (the BERT import's and the LLaMA graph's).
#[derive(Default)]
pub(crate) struct GraphBuilder {
    pub(crate) nodes: Vec<Node>,
    pub(crate) weights: BTreeMap<String, Tensor>,
    /// The most VM steps estimated for one projection node.
    pub(crate) largest_steps: u64,
}

impl GraphBuilder {
    pub(crate) fn node(&mut self, name: String, op: Op, inputs: Vec<TensorRef>) -> TensorRef {
        self.nodes.push(Node { name, op, inputs });
        TensorRef::Node(self.nodes.len() - 1)
    }

    /// The heads' contexts `[heads, rows, head_dim]` joined back into `[rows, width]`: nodes
    /// `{prefix}context.transpose` and `{prefix}context.join`.
    pub(crate) fn join_heads(
        &mut self,
        prefix: &str,
        ctx: TensorRef,
        rows: usize,
        width: usize,
    ) -> TensorRef {
        let ctx = self.node(
            format!("{prefix}context.transpose"),
            Op::Transpose {
                perm: vec![1, 0, 2],
            },
            vec![ctx],
        );
        self.node(
            format!("{prefix}context.join"),
            Op::Reshape {
                shape: vec![rows, width],
            },
            vec![ctx],
        )
    }

    pub(crate) fn weight(&mut self, name: String, t: Tensor) -> TensorRef {
        self.weights.insert(name.clone(), t);
        TensorRef::Weight(name)
    }

    pub(crate) fn i32s(&mut self, name: String, shape: &[usize], v: Vec<i32>) -> TensorRef {
        let t = Tensor::I32(ArrayD::from_shape_vec(IxDyn(shape), v).expect("sized by the caller"));
        self.weight(name, t)
    }

    pub(crate) fn i16s(&mut self, name: String, shape: &[usize], v: Vec<i16>) -> TensorRef {
        let t = Tensor::I16(ArrayD::from_shape_vec(IxDyn(shape), v).expect("sized by the caller"));
        self.weight(name, t)
    }

    /// `x [tokens, in] (scale sx) · Wᵀ + b` at scale `sy`, in tiles of output channels when one node
    /// would pass [`MAX_NODE_STEPS`].
    pub(crate) fn dense(
        &mut self,
        name: &str,
        x: TensorRef,
        tokens: usize,
        sx: f64,
        d: &Dense,
        sy: f64,
    ) -> TensorRef {
        let (n, k) = d.weight.dim();
        let steps = MatMul::vm_steps(1, tokens, k, n, false);
        let tiles = steps.div_ceil(MAX_NODE_STEPS).max(1) as usize;
        let width = n.div_ceil(tiles);
        self.largest_steps = self
            .largest_steps
            .max(MatMul::vm_steps(1, tokens, k, width, false));
        let mut joined: Option<TensorRef> = None;
        for (t, start) in (0..n).step_by(width).enumerate() {
            let end = (start + width).min(n);
            let suffix = if tiles > 1 {
                format!(".tile{t}")
            } else {
                String::new()
            };
            let (mut qw, mut qb, mut qs) = (Vec::new(), Vec::new(), Vec::new());
            for o in start..end {
                let row = d.weight.row(o);
                let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
                // A dead channel gets the smallest weight scale whose requantization is
                // representable; its weights then round to zero.
                let sw = (f64::from(amax) / 127.0).max(sy / sx * 2f64.powi(-31));
                qw.extend(
                    row.iter()
                        .map(|&v| (f64::from(v) / sw).round().clamp(-127.0, 127.0) as i8),
                );
                qb.push(clamp_i32(f64::from(d.bias[o]) / (sx * sw)));
                let q = Requant::from_scale(sx * sw / sy).expect("a scale in range");
                qs.extend([q.multiplier, q.shift as i32]);
            }
            let w = self.weight(
                format!("{name}.weight{suffix}"),
                Tensor::I8(ArrayD::from_shape_vec(IxDyn(&[end - start, k]), qw).expect("rows × k")),
            );
            let b = self.i32s(format!("{name}.bias{suffix}"), &[end - start], qb);
            let s = self.i32s(format!("{name}.scale{suffix}"), &[end - start, 2], qs);
            let tile = self.node(
                format!("{name}{suffix}"),
                Op::MatMul(MatMul {}),
                vec![x.clone(), w, b, s],
            );
            joined = Some(match joined {
                None => tile,
                Some(left) => self.node(
                    format!("{name}.join{t}"),
                    Op::Concat { axis: 1 },
                    vec![left, tile],
                ),
            });
        }
        joined.expect("n ≥ 1")
    }

    /// `a (sa) + b (sb)` at scale `sy`: both weighted by 15-bit integers onto a common scale.
    pub(crate) fn add(
        &mut self,
        name: String,
        a: TensorRef,
        sa: f64,
        b: TensorRef,
        sb: f64,
        sy: f64,
    ) -> TensorRef {
        let big = sa.max(sb);
        let common = big / f64::from(1 << 14);
        let op = Op::Add16(Add {
            a_multiplier: (sa / common).round() as i32,
            b_multiplier: (sb / common).round() as i32,
            requant: Requant::from_scale(common / sy).expect("a scale in range"),
        });
        self.node(name, op, vec![a, b])
    }

    /// The weight `{name}.scale` of a norm's γ (per channel) into scale `sy`: the requantization
    /// of its Q12 normalized value.
    pub(crate) fn gamma_scales(&mut self, name: &str, gamma: &[f32], sy: f64) -> TensorRef {
        let mut scale = Vec::with_capacity(2 * gamma.len());
        for &g in gamma {
            let g = f64::from(g) / 4096.0 / sy;
            // A γ too small for a requantization contributes nothing at int16 resolution.
            let q = if g.abs() < 2f64.powi(-31) {
                Requant {
                    multiplier: 0,
                    shift: 1,
                }
            } else {
                Requant::from_scale(g.abs()).expect("a scale in range")
            };
            scale.extend([
                if g < 0.0 { -q.multiplier } else { q.multiplier },
                q.shift as i32,
            ]);
        }
        self.i32s(format!("{name}.scale"), &[gamma.len(), 2], scale)
    }

    /// LayerNorm of `x` with γ, β into scale `sy`.
    fn layer_norm(&mut self, name: &str, x: TensorRef, ln: &LayerNorm, sy: f64) -> TensorRef {
        let d = ln.gamma.len();
        let s = self.gamma_scales(name, ln.gamma.as_slice().expect("a vector"), sy);
        let b = self.i32s(
            format!("{name}.bias"),
            &[d],
            ln.beta
                .iter()
                .map(|&v| clamp_i32(f64::from(v) / sy))
                .collect(),
        );
        self.node(name.into(), Op::LayerNorm, vec![x, s, b])
    }
}

fn clamp_i32(v: f64) -> i32 {
    v.round().clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
}

/// `v` rounded into int16, saturating.
pub(crate) fn clamp_i16(v: f64) -> i16 {
    v.round().clamp(-32768.0, I16_MAX) as i16
}

/// The table of `exp(−δ·s)` in Q15 for score gaps δ, long enough that every entry past it rounds
/// to 0.
pub(crate) fn exp_table(s: f64) -> Vec<i16> {
    let len = ((65536f64.ln() / s).ceil() as usize + 1).clamp(1, 1 << 16);
    (0..len)
        .map(|d| ((-(d as f64) * s).exp() * 32768.0).round().min(I16_MAX) as i16)
        .collect()
}

impl FloatBert {
    /// The largest magnitude of every observed activation over `calibration` (each sequence cut to
    /// `tokens`).
    fn ranges(
        &self,
        calibration: &[Vec<u32>],
        tokens: usize,
    ) -> Result<HashMap<String, f32>, BertError> {
        let mut ranges: HashMap<String, f32> = HashMap::new();
        for ids in calibration {
            let ids = &ids[..ids.len().min(tokens)];
            self.forward(ids, &mut |name, x| {
                let m = x.iter().fold(0f32, |m, v| m.max(v.abs()));
                let e = ranges.entry(name.to_string()).or_default();
                *e = e.max(m);
            })?;
        }
        Ok(ranges)
    }

    /// The integer model of this encoder for sequences of `tokens` ids, with activation scales
    /// calibrated on `calibration` (token ids of sentences never used to measure it).
    pub fn quantize(
        &self,
        name: &str,
        calibration: &[Vec<u32>],
        tokens: usize,
    ) -> Result<Model, BertError> {
        if calibration.is_empty() {
            return Err(BertError::Calibration("no calibration sentences".into()));
        }
        let c = &self.config;
        let (h, heads, dh) = (c.hidden_size, c.num_attention_heads, c.head_size());
        if tokens == 0 || tokens > c.max_position_embeddings {
            return Err(BertError::Calibration(format!(
                "{tokens} tokens; the model's positions allow 1 to {}",
                c.max_position_embeddings
            )));
        }
        let ranges = self.ranges(calibration, tokens)?;
        let scale = |what: &str| -> f64 {
            f64::from(ranges.get(what).copied().unwrap_or(0.0)).max(1e-6) * RANGE_MARGIN / I16_MAX
        };
        let mut g = GraphBuilder::default();

        // Embeddings: the token's row (int16 at the table's scale) plus position and type.
        let sw = f64::from(self.word.iter().fold(0f32, |m, v| m.max(v.abs()))).max(1e-6) / I16_MAX;
        let word = g.i16s(
            "embeddings.word".into(),
            &[c.vocab_size, h],
            self.word
                .iter()
                .map(|&v| clamp_i16(f64::from(v) / sw))
                .collect(),
        );
        let pos_type: Vec<f32> = (0..tokens)
            .flat_map(|t| (0..h).map(move |j| (t, j)))
            .map(|(t, j)| self.position[[t, j]] + self.token_type[[0, j]])
            .collect();
        let sp = f64::from(pos_type.iter().fold(0f32, |m, v| m.max(v.abs()))).max(1e-6) / I16_MAX;
        let pos = g.i16s(
            "embeddings.position".into(),
            &[tokens, h],
            pos_type
                .iter()
                .map(|&v| clamp_i16(f64::from(v) / sp))
                .collect(),
        );
        let gathered = g.node(
            "embeddings.gather".into(),
            Op::Gather,
            vec![TensorRef::Input, word],
        );
        let se = scale("embeddings_sum");
        let sum = g.add("embeddings.add".into(), gathered, sw, pos, sp, se);
        let mut sx = scale("embeddings");
        let mut x = g.layer_norm("embeddings.norm", sum, &self.embedding_norm, sx);

        let probs_scale = 1.0 / 32768.0;
        for (i, layer) in self.layers.iter().enumerate() {
            let p = |what: &str| format!("layer.{i}.{what}");
            let (sq, sk, sv) = (scale(&p("query")), scale(&p("key")), scale(&p("value")));
            let q = g.dense(&p("query"), x.clone(), tokens, sx, &layer.query, sq);
            let k = g.dense(&p("key"), x.clone(), tokens, sx, &layer.key, sk);
            let v = g.dense(&p("value"), x.clone(), tokens, sx, &layer.value, sv);
            let split = |g: &mut GraphBuilder, t: TensorRef, what: &str, perm: Vec<usize>| {
                let r = g.node(
                    p(&format!("{what}.heads")),
                    Op::Reshape {
                        shape: vec![tokens, heads, dh],
                    },
                    vec![t],
                );
                g.node(
                    p(&format!("{what}.transpose")),
                    Op::Transpose { perm },
                    vec![r],
                )
            };
            let qh = split(&mut g, q, "query", vec![1, 0, 2]);
            let kh = split(&mut g, k, "key", vec![1, 0, 2]);
            let vt = split(&mut g, v, "value", vec![1, 2, 0]);
            let ss = scale(&p("scores"));
            let scores_q =
                Requant::from_scale(sq * sk / (dh as f64).sqrt() / ss).expect("a scale in range");
            let zero = g.i32s(p("scores.bias"), &[1], vec![0]);
            let s_scale = g.i32s(
                p("scores.scale"),
                &[1, 2],
                vec![scores_q.multiplier, scores_q.shift as i32],
            );
            let scores = g.node(
                p("scores"),
                Op::MatMul(MatMul {}),
                vec![qh, kh, zero.clone(), s_scale],
            );
            let table = g.i16s(p("softmax.exp"), &[exp_table(ss).len()], exp_table(ss));
            let probs = g.node(
                p("softmax"),
                Op::Softmax,
                vec![scores, TensorRef::Input, table],
            );
            let sc = scale(&p("context"));
            let ctx_q = Requant::from_scale(probs_scale * sv / sc).expect("a scale in range");
            let c_scale = g.i32s(
                p("context.scale"),
                &[1, 2],
                vec![ctx_q.multiplier, ctx_q.shift as i32],
            );
            let ctx = g.node(
                p("context"),
                Op::MatMul(MatMul {}),
                vec![probs, vt, zero, c_scale],
            );
            let ctx = g.join_heads(&p(""), ctx, tokens, h);
            let so = scale(&p("attention_dense"));
            let o = g.dense(
                &p("attention.dense"),
                ctx,
                tokens,
                sc,
                &layer.attention_output,
                so,
            );
            let sr = scale(&p("attention_residual"));
            let r = g.add(p("attention.residual"), o, so, x.clone(), sx, sr);
            let sa = scale(&p("attention"));
            let a = g.layer_norm(&p("attention.norm"), r, &layer.attention_norm, sa);
            let su = scale(&p("intermediate_dense"));
            let u = g.dense(
                &p("intermediate.dense"),
                a.clone(),
                tokens,
                sa,
                &layer.intermediate,
                su,
            );
            let sg = scale(&p("intermediate"));
            let gelu: Vec<i16> = (-32768i32..=32767)
                .map(|v| clamp_i16(f64::from(super::gelu((f64::from(v) * su) as f32)) / sg))
                .collect();
            let gelu = g.i16s(p("gelu"), &[1 << 16], gelu);
            let m = g.node(p("gelu"), Op::Lookup, vec![u, gelu]);
            let sd = scale(&p("output_dense"));
            let dn = g.dense(&p("output.dense"), m, tokens, sg, &layer.output, sd);
            let sr2 = scale(&p("output_residual"));
            let r2 = g.add(p("output.residual"), dn, sd, a, sa, sr2);
            sx = scale(&p("output"));
            x = g.layer_norm(&p("output.norm"), r2, &layer.output_norm, sx);
        }
        g.node("pool".into(), Op::MeanPool, vec![x, TensorRef::Input]);
        let largest_steps = g.largest_steps;
        let manifest = ModelManifest {
            name: name.into(),
            input: InputSpec {
                dtype: DType::I32,
                shape: vec![tokens],
                scale: 1.0,
            },
            nodes: g.nodes,
            state: Vec::new(),
            weights: "weights.safetensors".into(),
            provenance: serde_json::json!({
                "architecture": "bert",
                "tokens": tokens,
                "hidden_size": h,
                "output_scale": sx,
                "calibration_sentences": calibration.len(),
                "largest_node_steps": largest_steps,
            }),
        };
        Ok(Model::new(manifest, g.weights)?)
    }
}

/// The request input for `ids`: padded with 0 (`[PAD]`, also the mask's "no token") to `tokens`.
pub fn padded_ids(ids: &[u32], tokens: usize) -> Tensor {
    let mut v: Vec<i32> = ids.iter().take(tokens).map(|&id| id as i32).collect();
    v.resize(tokens, 0);
    Tensor::I32(Array1::from(v).into_dyn())
}

#[cfg(all(test, feature = "text"))]
mod tests {
    use super::*;
    use crate::bert::cosine;
    use crate::minilm_fixture::{model_dir, reference};

    /// The integer MiniLM against the float model (the numpy reference's embeddings) on the
    /// project's test sentences, never used for calibration: the bar is min ≥ 0.99 and
    /// mean ≥ 0.995.
    #[test]
    fn integer_minilm_is_close_to_the_float_model() {
        let bert = FloatBert::load(model_dir()).unwrap();
        let r = reference();
        let calibration: Vec<Vec<u32>> = r.calibration.iter().map(|e| e.ids.clone()).collect();
        let tokens = r.test.iter().map(|e| e.ids.len()).max().unwrap();
        let model = bert.quantize("minilm-test", &calibration, tokens).unwrap();
        let out_scale = model.manifest.provenance["output_scale"].as_f64().unwrap();
        let mut cosines = Vec::new();
        for e in &r.test {
            let y = model.run(&padded_ids(&e.ids, tokens)).unwrap();
            let pooled: Vec<f32> = y
                .output()
                .as_i16()
                .unwrap()
                .iter()
                .map(|&v| (f64::from(v) * out_scale) as f32)
                .collect();
            cosines.push(cosine(&pooled, &e.embedding));
        }
        let min = cosines.iter().copied().fold(f64::INFINITY, f64::min);
        let mean = cosines.iter().sum::<f64>() / cosines.len() as f64;
        eprintln!(
            "integer MiniLM, {} test sentences, {tokens} tokens, {} nodes: min cosine {min:.5}, mean {mean:.5}",
            cosines.len(),
            model.manifest.nodes.len()
        );
        assert!(min >= 0.99 && mean >= 0.995, "min {min}, mean {mean}");
    }

    /// One node of every kind of the real integer MiniLM (a short sentence, 16 tokens) re-executed
    /// in the VM gives the native output's commitment: the dispute's phase 1 can replay any node.
    #[test]
    fn every_kind_of_minilm_node_replays_in_the_vm() {
        let bert = FloatBert::load(model_dir()).unwrap();
        let r = reference();
        let calibration: Vec<Vec<u32>> = r.calibration.iter().map(|e| e.ids.clone()).collect();
        let tokens = 16;
        let model = bert.quantize("minilm-16", &calibration, tokens).unwrap();
        let sentence = r
            .test
            .iter()
            .find(|e| e.ids.len() <= tokens)
            .expect("a short sentence");
        let input = padded_ids(&sentence.ids, tokens);
        let trace = model.run(&input).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for (i, node) in model.manifest.nodes.iter().enumerate() {
            // Every kind once, and the products between activations (scores, context) besides
            // the projections.
            let between = node.name == "layer.0.scores" || node.name == "layer.0.context";
            if !seen.insert(node.op.kind()) && !between {
                continue;
            }
            let run = model
                .run_node_in_vm(i, &input, &trace, MAX_NODE_STEPS)
                .unwrap_or_else(|e| panic!("node {i} ({}): {e}", node.name));
            assert_eq!(
                run.commitment, trace.nodes[i].commitment,
                "node {i} ({}) differs in the VM",
                node.name
            );
            eprintln!("node {i:>3} {:<28} {:>11} VM steps", node.name, run.steps);
        }
        assert_eq!(seen.len(), 9, "kinds seen: {seen:?}");
    }
}
