//! The f32 source models (as trained by `scripts/mnist/train.py`, or read from ONNX by
//! [`crate::onnx`]): their layer list, weights, and an f32 forward pass used to calibrate activation
//! scales and to measure float accuracy.

use crate::graph::{read_file, read_manifest, sibling, ModelError, MAX_INPUT_BYTES};
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
    pub weights: FloatWeights,
    /// Where it was loaded from.
    pub path: PathBuf,
}

/// An activation: shape and values.
pub type Activation = (Vec<usize>, Vec<f32>);

/// Float weights by name, with their shapes (row-major values).
pub type FloatWeights = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

impl FloatLayer {
    /// Its name (conv and linear layers) or its kind, for messages.
    pub fn label(&self) -> &str {
        match self {
            FloatLayer::Conv2d { name, .. } | FloatLayer::Linear { name } => name,
            FloatLayer::Relu => "relu",
            FloatLayer::Maxpool2d { .. } => "maxpool2d",
            FloatLayer::Flatten => "flatten",
        }
    }

    /// The shape this layer outputs for an input of `shape` (no batch dimension), with its
    /// weights taken from `weights`; or why the input, the weights and the parameters do not fit.
    /// The one statement of each layer's shape rule: [`FloatModel::forward`] indexes by it, so a
    /// model is checked with it before it runs.
    pub fn output_shape(
        &self,
        shape: &[usize],
        weights: &FloatWeights,
    ) -> Result<Vec<usize>, String> {
        let weight = |name: &str| {
            weights
                .get(name)
                .map(|(s, _)| s.as_slice())
                .ok_or_else(|| format!("weight {name} is missing"))
        };
        let bias = |name: &str, n: usize| match weight(name)? {
            [b] if *b == n => Ok(()),
            other => Err(format!("bias {name} has shape {other:?}, not [{n}]")),
        };
        match self {
            FloatLayer::Conv2d {
                name,
                stride,
                padding,
            } => {
                let &[c, h, w] = shape else {
                    return Err(format!("needs a [C, H, W] input, gets {shape:?}"));
                };
                let wname = format!("{name}.weight");
                let &[o, ci, kh, kw] = weight(&wname)? else {
                    return Err(format!("weight {wname} is not [out, in, kh, kw]"));
                };
                bias(&format!("{name}.bias"), o)?;
                let ([s, sx], [p, px]) = (*stride, *padding);
                if ci != c {
                    return Err(format!(
                        "weight {wname} reads {ci} channels, the input has {c}"
                    ));
                }
                if s != sx || p != px || s == 0 {
                    return Err(format!(
                        "stride {stride:?} and padding {padding:?}: only equal, non-zero strides \
                         and equal paddings on both axes"
                    ));
                }
                // Wider padding than half the kernel adds outputs that see only zeros (and lets a
                // hostile file ask for huge activations).
                if 2 * p > kh.min(kw) {
                    return Err(format!(
                        "padding {p} is more than half the {kh}x{kw} kernel"
                    ));
                }
                if h + 2 * p < kh || w + 2 * p < kw {
                    return Err(format!("a {kh}x{kw} kernel does not fit a {h}x{w} input"));
                }
                Ok(vec![o, (h + 2 * p - kh) / s + 1, (w + 2 * p - kw) / s + 1])
            }
            FloatLayer::Linear { name } => {
                let &[k] = shape else {
                    return Err(format!("needs a 1-D input (flatten first), gets {shape:?}"));
                };
                let wname = format!("{name}.weight");
                let &[n, wk] = weight(&wname)? else {
                    return Err(format!("weight {wname} is not [out, in]"));
                };
                if wk != k {
                    return Err(format!(
                        "weight {wname} reads {wk} inputs, the input has {k}"
                    ));
                }
                bias(&format!("{name}.bias"), n)?;
                Ok(vec![n])
            }
            FloatLayer::Relu => Ok(shape.to_vec()),
            FloatLayer::Maxpool2d { kernel, stride } => {
                let &[c, h, w] = shape else {
                    return Err(format!("needs a [C, H, W] input, gets {shape:?}"));
                };
                let ([k, kx], [s, sx]) = (*kernel, *stride);
                if k != kx || s != sx || k == 0 || s == 0 {
                    return Err(format!(
                        "kernel {kernel:?} and stride {stride:?}: only square, non-zero windows \
                         and equal strides"
                    ));
                }
                if k > h || k > w {
                    return Err(format!("a {k}x{k} window does not fit a {h}x{w} input"));
                }
                Ok(vec![c, (h - k) / s + 1, (w - k) / s + 1])
            }
            FloatLayer::Flatten => Ok(vec![shape.iter().product()]),
        }
    }
}

impl FloatModel {
    /// Loads a float model: an `.onnx` file (read by [`crate::onnx`], with the crate's `onnx`
    /// feature), or else `float.json` (the file, or the directory holding it) and its safetensors
    /// file. Checks that every layer fits its input and weights.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let model = if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
        {
            load_onnx(path)?
        } else {
            Self::load_json(path)?
        };
        model.check()?;
        Ok(model)
    }

    /// Loads `float.json` and its safetensors file.
    fn load_json(path: &Path) -> Result<Self, ModelError> {
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
        Ok(Self {
            name: m.model,
            input_shape: m.input.shape,
            layers: m.layers,
            weights,
            path,
        })
    }

    /// Checks that the input fits a request and that every layer fits the shape it receives (by
    /// [`FloatLayer::output_shape`]), so that [`FloatModel::forward`] cannot index out of bounds or
    /// allocate without bound on a hostile file.
    fn check(&self) -> Result<(), ModelError> {
        let mut shape = self.input_shape.clone();
        let elements = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .unwrap_or(usize::MAX);
        // The integer input is int8: one byte per element.
        if elements > MAX_INPUT_BYTES {
            return Err(ModelError::InputTooLarge {
                shape,
                bytes: elements,
                max: MAX_INPUT_BYTES,
            });
        }
        for (index, layer) in self.layers.iter().enumerate() {
            shape = layer
                .output_shape(&shape, &self.weights)
                .map_err(|reason| ModelError::Layer {
                    index,
                    name: layer.label().to_string(),
                    reason,
                })?;
        }
        Ok(())
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

#[cfg(feature = "onnx")]
fn load_onnx(path: &Path) -> Result<FloatModel, ModelError> {
    crate::onnx::load(path)
}

#[cfg(not(feature = "onnx"))]
fn load_onnx(path: &Path) -> Result<FloatModel, ModelError> {
    Err(ModelError::OnnxDisabled {
        path: path.to_path_buf(),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(name: &str, stride: usize, padding: usize) -> FloatLayer {
        FloatLayer::Conv2d {
            name: name.into(),
            stride: [stride; 2],
            padding: [padding; 2],
        }
    }

    fn linear(name: &str) -> FloatLayer {
        FloatLayer::Linear { name: name.into() }
    }

    fn pool(k: usize, s: usize) -> FloatLayer {
        FloatLayer::Maxpool2d {
            kernel: [k; 2],
            stride: [s; 2],
        }
    }

    /// conv c: 1 -> 2 channels 3x3; fc: 8 -> 3.
    fn weights() -> FloatWeights {
        [
            ("c.weight", vec![2, 1, 3, 3]),
            ("c.bias", vec![2]),
            ("fc.weight", vec![3, 8]),
            ("fc.bias", vec![3]),
        ]
        .into_iter()
        .map(|(n, s)| {
            let len = s.iter().product();
            (n.to_string(), (s, vec![0.5; len]))
        })
        .collect()
    }

    /// A layer list that does not fit its input or weights is refused before anything runs,
    /// naming the layer.
    #[test]
    fn check_refuses_layers_that_do_not_fit() {
        let good = || {
            vec![
                conv("c", 1, 1),
                FloatLayer::Relu,
                pool(2, 2),
                FloatLayer::Flatten,
                linear("fc"),
            ]
        };
        // (case, input shape, edit of the layers, edit of the weights, error or "" for none)
        let cases: Vec<(
            &str,
            Vec<usize>,
            fn(&mut Vec<FloatLayer>),
            fn(&mut FloatWeights),
            &str,
        )> = vec![
            ("fits", vec![1, 4, 4], |_| {}, |_| {}, ""),
            (
                "two input channels for a one-channel conv",
                vec![2, 4, 4],
                |_| {},
                |_| {},
                "float layer 0 (c): weight c.weight reads 1 channels, the input has 2",
            ),
            (
                "linear without flatten",
                vec![1, 4, 4],
                |l| {
                    l.remove(3);
                },
                |_| {},
                "float layer 3 (fc): needs a 1-D input (flatten first), gets [2, 2, 2]",
            ),
            (
                "a non-square stride",
                vec![1, 4, 4],
                |l| {
                    l[0] = FloatLayer::Conv2d {
                        name: "c".into(),
                        stride: [1, 2],
                        padding: [1, 1],
                    }
                },
                |_| {},
                "float layer 0 (c): stride [1, 2] and padding [1, 1]: only equal",
            ),
            (
                "a zero stride",
                vec![1, 4, 4],
                |l| l[0] = conv("c", 0, 1),
                |_| {},
                "only equal, non-zero strides",
            ),
            (
                "padding wider than half the kernel",
                vec![1, 4, 4],
                |l| l[0] = conv("c", 1, 1_000_000),
                |_| {},
                "float layer 0 (c): padding 1000000 is more than half the 3x3 kernel",
            ),
            (
                "a window larger than the input",
                vec![1, 4, 4],
                |l| l[2] = pool(5, 1),
                |_| {},
                "float layer 2 (maxpool2d): a 5x5 window does not fit a 4x4 input",
            ),
            (
                "a missing bias",
                vec![1, 4, 4],
                |_| {},
                |w| {
                    w.remove("fc.bias");
                },
                "float layer 4 (fc): weight fc.bias is missing",
            ),
            (
                "a bias of the wrong length",
                vec![1, 4, 4],
                |_| {},
                |w| {
                    w.insert("c.bias".into(), (vec![3], vec![0.0; 3]));
                },
                "float layer 0 (c): bias c.bias has shape [3], not [2]",
            ),
            (
                "an input larger than a request carries",
                vec![1, 1000, 1000],
                |_| {},
                |_| {},
                "the input [1, 1000, 1000] takes 1000000 bytes; a request carries at most 65536",
            ),
        ];
        for (case, input_shape, edit_layers, edit_weights, want) in cases {
            let mut layers = good();
            edit_layers(&mut layers);
            let mut weights = weights();
            edit_weights(&mut weights);
            let model = FloatModel {
                name: "t".into(),
                input_shape,
                layers,
                weights,
                path: PathBuf::from("t.json"),
            };
            match model.check() {
                Ok(()) => assert_eq!(want, "", "{case}: accepted"),
                Err(e) => assert!(
                    !want.is_empty() && e.to_string().contains(want),
                    "{case}: {e}"
                ),
            }
        }
    }

    /// Without the `onnx` feature an `.onnx` path is named as unreadable by this build, not
    /// misread as JSON.
    #[cfg(not(feature = "onnx"))]
    #[test]
    fn onnx_without_the_feature_is_a_named_error() {
        let err = FloatModel::load(Path::new("models/x.ONNX")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "models/x.ONNX: this build does not read ONNX (opml-dnn's `onnx` feature is off)"
        );
    }
}
