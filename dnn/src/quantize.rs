//! Post-training quantization of a float model into an integer [`Model`]: symmetric
//! per-output-channel int8 weights, int32 biases at the accumulator's scale, activation scales
//! calibrated as the largest magnitude seen on sample inputs, and a multiplier and shift per output
//! channel (the rule of [`crate::quant`]). ReLU that follows a conv or linear layer is fused into it;
//! an integer ArgMax ends the graph.

use crate::float::{Activation, FloatLayer, FloatModel};
use crate::graph::{InputSpec, Model, ModelError, ModelManifest, Node, TensorRef};
use crate::ops::{Conv2d, Linear, MaxPool2d, Op};
use crate::quant::Requant;
use crate::tensor::{DType, Tensor};
use ndarray::{ArrayD, IxDyn};
use std::collections::BTreeMap;

/// Scale of one step of the int8 input (pixels in 0..=1 map to 0..=127).
pub const INPUT_SCALE: f64 = 1.0 / 127.0;

/// Quantizes `float` with activation scales from `calibration` inputs.
pub fn quantize(float: &FloatModel, calibration: &[Activation]) -> Result<Model, ModelError> {
    // Largest magnitude of every layer's output over the calibration inputs.
    let mut max_abs = vec![0f32; float.layers.len()];
    for input in calibration {
        for (m, out) in max_abs.iter_mut().zip(float.forward(input.clone())?) {
            *m = out.1.iter().fold(*m, |m, v| m.max(v.abs()));
        }
    }
    let mut nodes = Vec::new();
    let mut weights = BTreeMap::new();
    let mut scales = Vec::new();
    let mut current = TensorRef::Input;
    let mut scale = INPUT_SCALE;
    let mut shape = float.input_shape.clone();
    let mut i = 0;
    while i < float.layers.len() {
        let fused_relu = matches!(float.layers.get(i + 1), Some(FloatLayer::Relu));
        let (node, out_layer) = match &float.layers[i] {
            FloatLayer::Conv2d { name, .. } | FloatLayer::Linear { name } => {
                let out_layer = if fused_relu { i + 1 } else { i };
                let out_scale = f64::from(max_abs[out_layer]).max(1e-6) / 127.0;
                let (ws, w) = float.weight(&format!("{name}.weight"))?;
                let (_, b) = float.weight(&format!("{name}.bias"))?;
                let per_out = w.len() / ws[0];
                let mut qw = Vec::with_capacity(w.len());
                let mut qb = Vec::with_capacity(ws[0]);
                let mut qs = Vec::with_capacity(2 * ws[0]);
                for o in 0..ws[0] {
                    let row = &w[o * per_out..(o + 1) * per_out];
                    let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
                    // A (nearly) dead channel gets the smallest weight scale whose requantization is
                    // representable; its weights then round to zero.
                    let sw = (f64::from(amax) / 127.0).max(out_scale / scale * 2f64.powi(-31));
                    qw.extend(
                        row.iter()
                            .map(|&v| (f64::from(v) / sw).round().clamp(-127.0, 127.0) as i8),
                    );
                    qb.push(
                        (f64::from(b[o]) / (scale * sw))
                            .round()
                            .clamp(i32::MIN as f64, i32::MAX as f64) as i32,
                    );
                    let rq = Requant::from_scale(scale * sw / out_scale).map_err(|e| {
                        ModelError::Weight {
                            name: name.clone(),
                            reason: format!("output channel {o}: {e}"),
                        }
                    })?;
                    qs.extend([rq.multiplier, rq.shift as i32]);
                }
                let n_out = ws[0];
                weights.insert(
                    format!("{name}.weight"),
                    Tensor::I8(ArrayD::from_shape_vec(IxDyn(ws), qw).expect("same shape")),
                );
                weights.insert(
                    format!("{name}.bias"),
                    Tensor::I32(ArrayD::from_shape_vec(IxDyn(&[n_out]), qb).expect("n biases")),
                );
                weights.insert(
                    format!("{name}.scale"),
                    Tensor::I32(ArrayD::from_shape_vec(IxDyn(&[n_out, 2]), qs).expect("n scales")),
                );
                let op = match &float.layers[i] {
                    FloatLayer::Conv2d {
                        stride, padding, ..
                    } => Op::Conv2d(Conv2d {
                        stride: stride[0],
                        padding: padding[0],
                        relu: fused_relu,
                    }),
                    _ => Op::Linear(Linear { relu: fused_relu }),
                };
                let inputs = vec![
                    current.clone(),
                    TensorRef::Weight(format!("{name}.weight")),
                    TensorRef::Weight(format!("{name}.bias")),
                    TensorRef::Weight(format!("{name}.scale")),
                ];
                scale = out_scale;
                (
                    Node {
                        name: name.clone(),
                        op,
                        inputs,
                    },
                    out_layer,
                )
            }
            FloatLayer::Relu => (
                Node {
                    name: format!("relu{i}"),
                    op: Op::Relu,
                    inputs: vec![current.clone()],
                },
                i,
            ),
            FloatLayer::Maxpool2d { kernel, stride } => (
                Node {
                    name: format!("pool{i}"),
                    op: Op::MaxPool2d(MaxPool2d {
                        kernel: kernel[0],
                        stride: stride[0],
                    }),
                    inputs: vec![current.clone()],
                },
                i,
            ),
            FloatLayer::Flatten => {
                let n = shape.iter().product();
                (
                    Node {
                        name: format!("flatten{i}"),
                        op: Op::Reshape { shape: vec![n] },
                        inputs: vec![current.clone()],
                    },
                    i,
                )
            }
        };
        scales.push(serde_json::json!({ "node": node.name, "output_scale": scale }));
        nodes.push(node);
        current = TensorRef::Node(nodes.len() - 1);
        shape = float.forward_shape(out_layer)?;
        i = out_layer + 1;
    }
    nodes.push(Node {
        name: "argmax".into(),
        op: Op::ArgMax,
        inputs: vec![current],
    });
    let manifest = ModelManifest {
        name: float.name.clone(),
        input: InputSpec {
            dtype: DType::I8,
            shape: float.input_shape.clone(),
            scale: INPUT_SCALE,
        },
        nodes,
        state: Vec::new(),
        weights: "weights.safetensors".into(),
        provenance: serde_json::json!({
            "float_model": float.path.display().to_string(),
            "calibration_inputs": calibration.len(),
            "input_quantization": "q = (127 * pixel + 127) / 255, integer division (scale 1/127)",
            "weights": "symmetric per output channel: scale = max|w| / 127, q = round(w / scale)",
            "bias": "round(b / (input_scale * weight_scale)), int32",
            "activations": "scale = largest |output| over the calibration inputs / 127",
            "requantization": "(acc * m + 2^(s-1)) >> s in 64 bits, clamped to int8; (m, s) per output channel",
            "node_output_scales": scales,
        }),
    };
    Model::new(manifest, weights)
}

impl FloatModel {
    /// Shape of layer `layer`'s output (from a zero input).
    fn forward_shape(&self, layer: usize) -> Result<Vec<usize>, ModelError> {
        let n = self.input_shape.iter().product();
        Ok(
            self.forward((self.input_shape.clone(), vec![0.0; n]))?[layer]
                .0
                .clone(),
        )
    }
}
