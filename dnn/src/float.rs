//! The f32 source models (as trained by `scripts/mnist/train.py`): their layer list, weights, and
//! an f32 forward pass used to calibrate activation scales and to measure float accuracy.

use crate::graph::{read_file, read_manifest, sibling, ModelError};
use safetensors::SafeTensors;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One layer of a float model, as `float.json` lists it.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum FloatLayer {
    /// 2-D convolution, square stride and padding.
    Conv2d {
        /// Layer name (prefix of its tensors).
        name: String,
        /// `[stride_y, stride_x]`.
        stride: [usize; 2],
        /// `[pad_y, pad_x]`.
        padding: [usize; 2],
    },
    /// Fully connected.
    Linear {
        /// Layer name.
        name: String,
    },
    /// `max(x, 0)`.
    Relu,
    /// Max pooling.
    Maxpool2d {
        /// `[k, k]`.
        kernel: [usize; 2],
        /// `[s, s]`.
        stride: [usize; 2],
    },
    /// Row-major flatten.
    Flatten,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct FloatInput {
    shape: Vec<usize>,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct FloatManifest {
    model: String,
    weights: String,
    input: FloatInput,
    layers: Vec<FloatLayer>,
}

/// A float model: layers and f32 weights.
#[derive(Debug, Clone)]
pub struct FloatModel {
    /// Its name.
    pub name: String,
    /// Input shape (`[1, 28, 28]` for MNIST).
    pub input_shape: Vec<usize>,
    /// Layers in order.
    pub layers: Vec<FloatLayer>,
    /// Weights by name, with shapes.
    pub weights: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    /// Where it was loaded from.
    pub path: PathBuf,
}

/// An activation: shape and values.
pub type Activation = (Vec<usize>, Vec<f32>);

impl FloatModel {
    /// Loads `float.json` and its safetensors file.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let (path, m): (_, FloatManifest) = read_manifest(path, "float.json")?;
        let wpath = sibling(&path, &m.weights);
        let bytes = read_file(&wpath)?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| ModelError::Safetensors {
            path: wpath.clone(),
            reason: e.to_string(),
        })?;
        let mut weights = BTreeMap::new();
        for (name, view) in st.tensors() {
            if view.dtype() != safetensors::Dtype::F32 {
                return Err(ModelError::Weight {
                    name,
                    reason: format!("{:?}, not F32", view.dtype()),
                });
            }
            weights.insert(name, (view.shape().to_vec(), f32_le(view.data())));
        }
        let model = Self {
            name: m.model,
            input_shape: m.input.shape,
            layers: m.layers,
            weights,
            path,
        };
        for layer in &model.layers {
            if let FloatLayer::Conv2d { name, .. } | FloatLayer::Linear { name } = layer {
                model.weight(&format!("{name}.weight"))?;
                model.weight(&format!("{name}.bias"))?;
            }
        }
        Ok(model)
    }

    /// A weight by name, or an error naming it.
    pub fn weight(&self, name: &str) -> Result<&(Vec<usize>, Vec<f32>), ModelError> {
        self.weights.get(name).ok_or_else(|| ModelError::Weight {
            name: name.to_string(),
            reason: format!("missing from {}", self.path.display()),
        })
    }

    /// Runs the float model; returns every layer's output (the last is the logits).
    pub fn forward(&self, input: Activation) -> Result<Vec<Activation>, ModelError> {
        let mut x = input;
        let mut outs = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            x = match layer {
                FloatLayer::Conv2d {
                    name,
                    stride,
                    padding,
                } => {
                    let (ws, w) = self.weight(&format!("{name}.weight"))?;
                    let (_, b) = self.weight(&format!("{name}.bias"))?;
                    conv2d(&x, ws, w, b, stride[0], padding[0])
                }
                FloatLayer::Linear { name } => {
                    let (ws, w) = self.weight(&format!("{name}.weight"))?;
                    let (_, b) = self.weight(&format!("{name}.bias"))?;
                    let (n, k) = (ws[0], ws[1]);
                    let y = (0..n)
                        .map(|o| {
                            b[o] + w[o * k..(o + 1) * k]
                                .iter()
                                .zip(&x.1)
                                .map(|(a, b)| a * b)
                                .sum::<f32>()
                        })
                        .collect();
                    (vec![n], y)
                }
                FloatLayer::Relu => (x.0.clone(), x.1.iter().map(|v| v.max(0.0)).collect()),
                FloatLayer::Maxpool2d { kernel, stride } => maxpool(&x, kernel[0], stride[0]),
                FloatLayer::Flatten => (vec![x.1.len()], x.1.clone()),
            };
            outs.push(x.clone());
        }
        Ok(outs)
    }
}

/// The f32 values of little-endian bytes (a safetensors F32 tensor's data; a trailing partial
/// value is ignored, which safetensors' own length check rules out).
pub(crate) fn f32_le(data: &[u8]) -> Vec<f32> {
    data.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn conv2d(x: &Activation, ws: &[usize], w: &[f32], b: &[f32], s: usize, p: usize) -> Activation {
    let (c, h, wd) = (x.0[0], x.0[1], x.0[2]);
    let (o, kh, kw) = (ws[0], ws[2], ws[3]);
    let (ho, wo) = ((h + 2 * p - kh) / s + 1, (wd + 2 * p - kw) / s + 1);
    let mut y = vec![0f32; o * ho * wo];
    for oc in 0..o {
        for oy in 0..ho {
            for ox in 0..wo {
                let mut acc = b[oc];
                for ic in 0..c {
                    for ky in 0..kh {
                        let iy = (oy * s + ky) as isize - p as isize;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        for kx in 0..kw {
                            let ix = (ox * s + kx) as isize - p as isize;
                            if ix >= 0 && ix < wd as isize {
                                acc += x.1[(ic * h + iy as usize) * wd + ix as usize]
                                    * w[((oc * c + ic) * kh + ky) * kw + kx];
                            }
                        }
                    }
                }
                y[(oc * ho + oy) * wo + ox] = acc;
            }
        }
    }
    (vec![o, ho, wo], y)
}

fn maxpool(x: &Activation, k: usize, s: usize) -> Activation {
    let (c, h, w) = (x.0[0], x.0[1], x.0[2]);
    let (ho, wo) = ((h - k) / s + 1, (w - k) / s + 1);
    let mut y = Vec::with_capacity(c * ho * wo);
    for ch in 0..c {
        for oy in 0..ho {
            for ox in 0..wo {
                let mut m = f32::NEG_INFINITY;
                for ky in 0..k {
                    for kx in 0..k {
                        m = m.max(x.1[(ch * h + oy * s + ky) * w + ox * s + kx]);
                    }
                }
                y.push(m);
            }
        }
    }
    (vec![c, ho, wo], y)
}
