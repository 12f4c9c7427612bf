//! ONNX import (feature `onnx`): reads an `.onnx` file into the same [`FloatModel`] that
//! `float.json` + safetensors give, so that it quantizes to the same integer model.
//!
//! The protobuf is decoded by prost into the `onnx.proto` messages of [`proto`]. The graph must be
//! one chain of nodes in topological order from its one input to its one output; every other input
//! of a node is an initializer (or the output of a `Constant` node). The ops it maps:
//!
//! | ONNX | float layer | accepted attributes |
//! | --- | --- | --- |
//! | `Conv` (weight, optional bias) | `conv2d` | group 1, dilations 1, equal strides, equal symmetric pads (at most half the kernel), `auto_pad` NOTSET or VALID |
//! | `Gemm` (weight, optional bias) | `linear` | alpha = beta = 1, transA 0, transB 0 or 1 |
//! | `MatMul` with a weight, then optionally `Add` of a bias (PyTorch's export of `Linear`) | `linear` | |
//! | `Relu` | `relu` | |
//! | `MaxPool` | `maxpool2d` | square kernel, equal strides (default 1), no pads, dilations 1, ceil_mode 0, no indices output |
//! | `Flatten`, `Reshape` | `flatten` | Flatten: axis 1; Reshape: to `[1, n]` or `[n]` |
//!
//! Any other op, attribute or attribute value is an error that names it, with its node. Inputs and
//! activations carry a batch dimension of 1 in ONNX, which the float model drops.
//!
//! Weight names: a layer whose weight initializer is called `<prefix>.weight` (as exporters from
//! PyTorch name them) is the layer `<prefix>`; else the bias's `<prefix>.bias` names it; else the
//! node's name. So a file whose initializers carry `float.json`'s names (`conv1.weight`, …) gives
//! the same weight names, hence the same integer model and model commitment.
//!
//! Against a hostile file: prost bounds message nesting and lengths by the bytes present; tensors
//! stored outside the file are refused (import never opens another path); shapes are checked with
//! overflow-checked arithmetic against the data actually present, and every layer against its input
//! by [`FloatLayer::output_shape`] before anything runs.

mod proto;

use crate::float::{FloatLayer, FloatModel, FloatWeights};
use crate::graph::{read_file, ModelError};
use prost::Message;
use proto::{attribute_type, data_type, AttributeProto, GraphProto, NodeProto, TensorProto};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

/// The ONNX ops the importer maps (see the module's table).
pub const SUPPORTED_OPS: &[&str] = &[
    "Conv",
    "Gemm",
    "MatMul",
    "Add (as the bias of a MatMul)",
    "Relu",
    "MaxPool",
    "Flatten",
    "Reshape",
    "Constant",
];

/// What is wrong with an ONNX file, naming the node, attribute or tensor.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The bytes are not an ONNX protobuf (truncated, or another kind of file).
    #[error("not an ONNX model (protobuf decoding failed: {0})")]
    Decode(String),
    /// An operator the importer does not map.
    #[error("{node}: op {op} is not supported; supported: {}", SUPPORTED_OPS.join(", "))]
    UnsupportedOp {
        /// The node.
        node: NodeRef,
        /// The op, with its domain when not the standard one.
        op: String,
    },
    /// An attribute, or an attribute value, the importer does not map.
    #[error("{node}: attribute {attribute}: {reason}")]
    Attribute {
        /// The node.
        node: NodeRef,
        /// The attribute and its value, as text (`pads = [1, 0, 2, 0]`).
        attribute: String,
        /// What the importer accepts instead.
        reason: String,
    },
    /// A node that does not fit: its inputs, outputs or shapes.
    #[error("{node}: {reason}")]
    Node {
        /// The node.
        node: NodeRef,
        /// Why.
        reason: String,
    },
    /// A node reads a weight that no initializer (nor `Constant` node) provides.
    #[error("{node}: input {input} is not an initializer")]
    MissingInitializer {
        /// The node.
        node: NodeRef,
        /// The name it reads.
        input: String,
    },
    /// The graph is not a single chain of nodes from its one input to its one output.
    #[error("the graph is not a single chain from its input: {0}")]
    NotChain(String),
    /// The graph's input is not one f32 tensor of known shape with a batch of 1.
    #[error("graph input {name}: {reason}")]
    Input {
        /// The input.
        name: String,
        /// Why.
        reason: String,
    },
    /// A tensor (initializer or constant) the importer cannot read.
    #[error("tensor {name}: {reason}")]
    Tensor {
        /// The tensor.
        name: String,
        /// Why.
        reason: String,
    },
}

/// A node of the graph, for messages: its index, name and op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRef {
    /// Index in the graph's node list.
    pub index: usize,
    /// Its name (may be empty in a file).
    pub name: String,
    /// Its op type.
    pub op: String,
}

impl fmt::Display for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {} ({:?}, {})", self.index, self.name, self.op)
    }
}

/// Reads an `.onnx` file into a float model (layers and weights), without checking the layers'
/// shapes against each other beyond what mapping needs ([`FloatModel::load`] checks them all).
pub fn load(path: &Path) -> Result<FloatModel, ModelError> {
    let onnx = |error| ModelError::Onnx {
        path: path.to_path_buf(),
        error: Box::new(error),
    };
    let bytes = read_file(path)?;
    let model = proto::ModelProto::decode(bytes.as_slice())
        .map_err(|e| onnx(OnnxError::Decode(e.to_string())))?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| onnx(OnnxError::NotChain("the file has no graph".into())))?;
    let Import {
        input_shape,
        layers,
        weights,
    } = import(graph).map_err(onnx)?;
    Ok(FloatModel {
        name: graph.name.clone(),
        input_shape,
        layers,
        weights,
        path: path.to_path_buf(),
    })
}

/// What the graph maps to.
struct Import {
    input_shape: Vec<usize>,
    layers: Vec<FloatLayer>,
    weights: FloatWeights,
}

/// Maps a graph onto float layers, walking the chain from its input.
fn import(graph: &GraphProto) -> Result<Import, OnnxError> {
    let mut constants: BTreeMap<&str, &TensorProto> = BTreeMap::new();
    for t in &graph.initializer {
        if constants.insert(&t.name, t).is_some() {
            return Err(tensor_err(&t.name, "two initializers have this name"));
        }
    }
    // Constant nodes are values, not steps of the chain: gather them first.
    for (index, node) in graph.node.iter().enumerate() {
        if is_standard(node) && node.op_type == "Constant" {
            let at = At::new(index, node);
            let [name] = node.output.as_slice() else {
                return Err(at.err("a Constant has one output"));
            };
            let value = match node.attribute.as_slice() {
                [a] if a.name == "value" && a.r#type == attribute_type::TENSOR => a.t.as_ref(),
                _ => None,
            };
            let value = value.ok_or_else(|| at.err("only a Constant with one `value` tensor"))?;
            if constants.insert(name, value).is_some() {
                return Err(at.err(format!("its output {name} is also an initializer")));
            }
        }
    }
    let inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|v| !constants.contains_key(v.name.as_str()))
        .collect();
    let [input] = inputs.as_slice() else {
        return Err(OnnxError::NotChain(format!(
            "{} graph inputs besides the initializers; the importer reads one",
            inputs.len()
        )));
    };
    let input_shape = input_shape(input)?;
    let mut chain = Chain {
        current: input.name.clone(),
        shape: input_shape.clone(),
        layers: Vec::new(),
        weights: BTreeMap::new(),
        // Initializers and constants are names too: a node must not write over one.
        written: constants
            .keys()
            .map(|k| k.to_string())
            .chain([input.name.clone()])
            .collect(),
    };
    let nodes: Vec<_> = graph
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| !(is_standard(n) && n.op_type == "Constant"))
        .collect();
    let mut i = 0;
    while i < nodes.len() {
        let (index, node) = nodes[i];
        let at = At::new(index, node);
        // A MatMul followed by the Add of its bias is one linear layer.
        let bias_add = nodes.get(i + 1).filter(|(_, next)| {
            node.op_type == "MatMul"
                && next.op_type == "Add"
                && is_standard(next)
                && node
                    .output
                    .first()
                    .is_some_and(|out| next.input.contains(out))
        });
        i += 1 + usize::from(bias_add.is_some());
        let layer = map_node(&at, &chain.shape, &constants, bias_add.copied())?;
        chain.push(&at, layer)?;
        if let Some((index, add)) = bias_add {
            chain.step(&At::new(*index, add))?;
        }
    }
    if chain.layers.is_empty() {
        return Err(OnnxError::NotChain("it has no nodes".into()));
    }
    match graph.output.as_slice() {
        [out] if out.name == chain.current => {}
        outs => {
            let names: Vec<_> = outs.iter().map(|o| o.name.as_str()).collect();
            return Err(OnnxError::NotChain(format!(
                "the graph's outputs are {names:?}; the importer reads one, the last node's {}",
                chain.current
            )));
        }
    }
    Ok(Import {
        input_shape,
        layers: chain.layers,
        weights: chain.weights,
    })
}

/// The walk along the chain: the tensor the next node must read and its shape (no batch), the
/// layers and weights so far, and every tensor name written (each is written once).
struct Chain {
    current: String,
    shape: Vec<usize>,
    layers: Vec<FloatLayer>,
    weights: FloatWeights,
    written: BTreeSet<String>,
}

impl Chain {
    /// Checks that `at` reads the chain's current tensor first and writes one new tensor, which
    /// becomes the current one.
    fn step(&mut self, at: &At) -> Result<(), OnnxError> {
        let node = at.node;
        match node.input.iter().position(|x| *x == self.current) {
            Some(0) => {}
            // `Add` is commutative: the bias may come first.
            Some(1) if node.op_type == "Add" => {}
            _ => {
                return Err(OnnxError::NotChain(format!(
                    "{} reads {:?}, not {} (the output of the node before it, or the graph input): \
                     the nodes must form one chain, in order",
                    at.node_ref(),
                    node.input,
                    self.current
                )))
            }
        }
        let output = match node.output.as_slice() {
            [out] => out,
            // MaxPool's optional indices output, left out.
            [out, idx] if node.op_type == "MaxPool" && idx.is_empty() => out,
            outs => return Err(at.err(format!("writes {outs:?}; the importer reads one output"))),
        };
        if output.is_empty() || !self.written.insert(output.clone()) {
            return Err(OnnxError::NotChain(format!(
                "{} writes {output:?}, which is empty, or already the graph input, an \
                 initializer, a constant or an earlier output",
                at.node_ref()
            )));
        }
        self.current = output.clone();
        Ok(())
    }

    /// Steps over `at` and appends its layer, checking it against the current shape.
    fn push(&mut self, at: &At, layer: Mapped) -> Result<(), OnnxError> {
        self.step(at)?;
        let layer = match layer {
            Mapped::Layer(layer) => layer,
            Mapped::Weighted {
                layer,
                weight,
                bias,
            } => {
                let name = layer.label().to_string();
                let out = weight.0[0];
                let bias = bias.unwrap_or_else(|| (vec![out], vec![0.0; out]));
                for (key, value) in [("weight", weight), ("bias", bias)] {
                    if self
                        .weights
                        .insert(format!("{name}.{key}"), value)
                        .is_some()
                    {
                        return Err(at.err(format!(
                            "another layer is also named {name}: its weights would clash"
                        )));
                    }
                }
                layer
            }
        };
        self.shape = layer
            .output_shape(&self.shape, &self.weights)
            .map_err(|reason| at.err(reason))?;
        self.layers.push(layer);
        Ok(())
    }
}

/// A mapped node: a layer, with its weight `[out, …]` and optional bias when it has them.
enum Mapped {
    Layer(FloatLayer),
    Weighted {
        layer: FloatLayer,
        weight: (Vec<usize>, Vec<f32>),
        bias: Option<(Vec<usize>, Vec<f32>)>,
    },
}

/// Maps one node (and the `Add` of its bias after a MatMul) onto a float layer; `shape` is the
/// activation it reads (no batch).
fn map_node(
    at: &At,
    shape: &[usize],
    constants: &BTreeMap<&str, &TensorProto>,
    bias_add: Option<(usize, &NodeProto)>,
) -> Result<Mapped, OnnxError> {
    let node = at.node;
    if !is_standard(node) {
        return Err(OnnxError::UnsupportedOp {
            node: at.node_ref(),
            op: format!("{}::{}", node.domain, node.op_type),
        });
    }
    // The tensor in input slot `slot`, when it is a constant.
    let constant = |at: &At, slot: usize| -> Result<Option<&TensorProto>, OnnxError> {
        match at.node.input.get(slot).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(name) => constants.get(name).copied().map(Some).ok_or_else(|| {
                OnnxError::MissingInitializer {
                    node: at.node_ref(),
                    input: name.to_string(),
                }
            }),
        }
    };
    let required = |slot: usize| {
        constant(at, slot)?.ok_or_else(|| at.err(format!("input {slot} (a weight) is missing")))
    };
    let max_inputs = match node.op_type.as_str() {
        "Conv" | "Gemm" => 3,
        "MatMul" | "Reshape" | "Add" => 2,
        "Relu" | "MaxPool" | "Flatten" => 1,
        op => {
            return Err(OnnxError::UnsupportedOp {
                node: at.node_ref(),
                op: op.to_string(),
            })
        }
    };
    at.inputs_at_most(max_inputs)?;
    let attrs = at.attributes()?;
    Ok(match node.op_type.as_str() {
        "Conv" => {
            attrs.only(&[
                "kernel_shape",
                "strides",
                "pads",
                "dilations",
                "group",
                "auto_pad",
            ])?;
            let (w, b) = (required(1)?, constant(at, 2)?);
            let (ws, wv) = floats(w)?;
            if ws.len() != 4 {
                return Err(at.err(format!(
                    "weight {} has shape {ws:?}, not [out, in, kh, kw]",
                    w.name
                )));
            }
            if let Some(k) = attrs.ints("kernel_shape")? {
                if k != [ws[2] as i64, ws[3] as i64] {
                    return Err(attrs.bad("kernel_shape", "the weight's kernel is different"));
                }
            }
            attrs.expect_int("group", 1)?;
            attrs.expect_ints("dilations", &[1, 1])?;
            let stride = attrs.pair("strides", 1)?;
            let auto_pad = attrs.string("auto_pad")?.unwrap_or("NOTSET");
            let padding = match (auto_pad, attrs.ints("pads")?) {
                ("NOTSET", None) | ("VALID", None) => [0, 0],
                ("NOTSET", Some(&[t, l, b, r])) if t == b && l == r && t >= 0 && l >= 0 => {
                    [t as usize, l as usize]
                }
                ("NOTSET", Some(_)) => {
                    return Err(
                        attrs.bad("pads", "only [p, q, p, q]: the same padding on both sides")
                    )
                }
                (_, _) => return Err(attrs.bad("auto_pad", "only NOTSET (explicit pads) or VALID")),
            };
            Mapped::Weighted {
                layer: FloatLayer::Conv2d {
                    name: layer_name(at, &w.name, b.map(|b| b.name.as_str())),
                    stride,
                    padding,
                },
                weight: (ws, wv),
                bias: b.map(floats).transpose()?,
            }
        }
        "Gemm" => {
            attrs.only(&["alpha", "beta", "transA", "transB"])?;
            attrs.expect_float("alpha", 1.0)?;
            attrs.expect_float("beta", 1.0)?;
            attrs.expect_int("transA", 0)?;
            let trans_b = match attrs.int("transB")?.unwrap_or(0) {
                t @ (0 | 1) => t == 1,
                _ => return Err(attrs.bad("transB", "only 0 or 1")),
            };
            let (w, b) = (required(1)?, constant(at, 2)?);
            let weight = matrix(at, w, !trans_b)?;
            let bias = b.map(|b| vector(at, b, weight.0[0])).transpose()?;
            Mapped::Weighted {
                layer: FloatLayer::Linear {
                    name: layer_name(at, &w.name, b.map(|b| b.name.as_str())),
                },
                weight,
                bias,
            }
        }
        "MatMul" => {
            attrs.only(&[])?;
            let w = required(1)?;
            // MatMul's weight is [in, out]: the linear layer's is its transpose.
            let weight = matrix(at, w, true)?;
            let bias = match bias_add {
                None => None,
                Some((index, add)) => {
                    let add_at = At::new(index, add);
                    add_at.attributes()?.only(&[])?;
                    add_at.inputs_at_most(2)?;
                    let slot = usize::from(add.input.first() == node.output.first());
                    let b = constant(&add_at, slot)?
                        .ok_or_else(|| add_at.err("the bias input is missing"))?;
                    Some(vector(&add_at, b, weight.0[0])?)
                }
            };
            let bias_name = bias_add.and_then(|(_, add)| {
                add.input
                    .iter()
                    .find(|x| constants.contains_key(x.as_str()))
                    .map(String::as_str)
            });
            Mapped::Weighted {
                layer: FloatLayer::Linear {
                    name: layer_name(at, &w.name, bias_name),
                },
                weight,
                bias,
            }
        }
        "Relu" => {
            attrs.only(&[])?;
            Mapped::Layer(FloatLayer::Relu)
        }
        "MaxPool" => {
            attrs.only(&[
                "kernel_shape",
                "strides",
                "pads",
                "dilations",
                "auto_pad",
                "ceil_mode",
                "storage_order",
            ])?;
            if attrs.ints("kernel_shape")?.is_none() {
                return Err(at.err("attribute kernel_shape is missing"));
            }
            let kernel = attrs.pair("kernel_shape", 0)?;
            let stride = attrs.pair("strides", 1)?;
            if attrs
                .ints("pads")?
                .is_some_and(|p| p.iter().any(|&p| p != 0))
            {
                return Err(attrs.bad("pads", "only a max pool without padding"));
            }
            if !matches!(attrs.string("auto_pad")?, None | Some("NOTSET" | "VALID")) {
                return Err(attrs.bad("auto_pad", "only NOTSET or VALID (no padding)"));
            }
            attrs.expect_ints("dilations", &[1, 1])?;
            attrs.expect_int("ceil_mode", 0)?;
            attrs.expect_int("storage_order", 0)?;
            Mapped::Layer(FloatLayer::Maxpool2d { kernel, stride })
        }
        "Flatten" => {
            attrs.only(&["axis"])?;
            attrs.expect_int("axis", 1)?;
            Mapped::Layer(FloatLayer::Flatten)
        }
        "Reshape" => {
            attrs.only(&["allowzero"])?;
            let allow_zero = attrs.int("allowzero")?.unwrap_or(0) != 0;
            let target = ints(required(1)?)?;
            if !reshape_flattens(&target, shape, allow_zero) {
                let n: usize = shape.iter().product();
                return Err(at.err(format!(
                    "Reshape of the [1, {}] activation to {target:?}: only a flatten to [1, {n}] \
                     or [{n}]",
                    shape
                        .iter()
                        .map(usize::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            Mapped::Layer(FloatLayer::Flatten)
        }
        // Add, alone.
        _ => {
            return Err(at.err(
                "an Add is read only as the bias of the MatMul just before it, with an initializer",
            ))
        }
    })
}

/// Whether Reshape to `target` (ONNX's rule: 0 copies the input's size unless `allow_zero`, one -1
/// takes what is left) maps an activation of `shape` with a batch of 1 in front onto `[1, n]` or
/// `[n]`, `n` its number of values: a flatten.
fn reshape_flattens(target: &[i64], shape: &[usize], allow_zero: bool) -> bool {
    let n: usize = shape.iter().product();
    let full: Vec<usize> = std::iter::once(1).chain(shape.iter().copied()).collect();
    let mut sizes = Vec::with_capacity(target.len());
    for (i, &d) in target.iter().enumerate() {
        sizes.push(match d {
            0 if !allow_zero => match full.get(i) {
                Some(&s) => Some(s),
                None => return false,
            },
            -1 => None,
            d => match usize::try_from(d) {
                Ok(d) => Some(d),
                Err(_) => return false,
            },
        });
    }
    let known: Option<usize> = sizes
        .iter()
        .flatten()
        .try_fold(1usize, |p, &d| p.checked_mul(d));
    let free = sizes.iter().filter(|d| d.is_none()).count();
    let inferred = match (known, free) {
        (Some(k), 0) if k == n => None,
        (Some(k), 1) if k > 0 && n.is_multiple_of(k) => Some(n / k),
        _ => return false,
    };
    let resolved: Vec<usize> = sizes.iter().map(|d| d.or(inferred).unwrap_or(0)).collect();
    resolved == [1, n] || resolved == [n]
}

/// The standard domain: `""` or `"ai.onnx"`.
fn is_standard(node: &NodeProto) -> bool {
    matches!(node.domain.as_str(), "" | "ai.onnx")
}

/// The layer's name: the weight's `<prefix>.weight`, else the bias's `<prefix>.bias`, else the
/// node's name, else `<op><index>`.
fn layer_name(at: &At, weight: &str, bias: Option<&str>) -> String {
    let prefix = |name: &str, suffix: &str| {
        name.strip_suffix(suffix)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
    };
    prefix(weight, ".weight")
        .or_else(|| bias.and_then(|b| prefix(b, ".bias")))
        .or_else(|| Some(at.node.name.clone()).filter(|n| !n.is_empty()))
        .unwrap_or_else(|| format!("{}{}", at.node.op_type.to_lowercase(), at.index))
}

/// A 2-D FLOAT weight as `[out, in]`: as stored, or transposed from `[in, out]`.
fn matrix(at: &At, t: &TensorProto, transpose: bool) -> Result<(Vec<usize>, Vec<f32>), OnnxError> {
    let (shape, values) = floats(t)?;
    let &[r, c] = shape.as_slice() else {
        return Err(at.err(format!("weight {} has shape {shape:?}, not 2-D", t.name)));
    };
    if !transpose {
        return Ok((shape, values));
    }
    let mut out = vec![0f32; values.len()];
    for (i, row) in values.chunks_exact(c.max(1)).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            out[j * r + i] = v;
        }
    }
    Ok((vec![c, r], out))
}

/// A bias of `n` FLOAT values (any shape holding `n`, e.g. `[n]` or `[1, n]`), as `[n]`.
fn vector(at: &At, t: &TensorProto, n: usize) -> Result<(Vec<usize>, Vec<f32>), OnnxError> {
    let (shape, values) = floats(t)?;
    if values.len() != n || shape.iter().filter(|&&d| d != 1).count() > 1 {
        return Err(at.err(format!("bias {} has shape {shape:?}, not [{n}]", t.name)));
    }
    Ok((vec![n], values))
}

/// The shape of a tensor in the file, checked: no negative size, no overflow.
fn dims(t: &TensorProto) -> Result<(Vec<usize>, usize), OnnxError> {
    if t.data_location != 0 || !t.external_data.is_empty() {
        return Err(tensor_err(
            &t.name,
            "its data is stored outside the file (external data), which import does not read",
        ));
    }
    if t.segment.is_some() {
        return Err(tensor_err(
            &t.name,
            "a segment of a larger tensor is not read",
        ));
    }
    let shape = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| tensor_err(&t.name, format!("negative size in shape {:?}", t.dims)))?;
    let n = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| tensor_err(&t.name, format!("shape {:?} overflows", t.dims)))?;
    Ok((shape, n))
}

/// A FLOAT tensor's shape and values (from `raw_data`, little-endian, or `float_data`).
fn floats(t: &TensorProto) -> Result<(Vec<usize>, Vec<f32>), OnnxError> {
    let (shape, n) = dims(t)?;
    if t.data_type != data_type::FLOAT {
        return Err(tensor_err(
            &t.name,
            format!("data type {} is not FLOAT (1)", t.data_type),
        ));
    }
    let values: Vec<f32> = if t.raw_data.is_empty() {
        t.float_data.clone()
    } else {
        t.raw_data
            .chunks(4)
            .map(|c| c.try_into().map(f32::from_le_bytes))
            .collect::<Result<_, _>>()
            .map_err(|_| tensor_err(&t.name, "raw data is not a whole number of floats"))?
    };
    if values.len() != n {
        return Err(tensor_err(
            &t.name,
            format!(
                "shape {shape:?} holds {n} values, the data has {}",
                values.len()
            ),
        ));
    }
    Ok((shape, values))
}

/// An INT64 tensor's values (from `raw_data`, little-endian, or `int64_data`).
fn ints(t: &TensorProto) -> Result<Vec<i64>, OnnxError> {
    let (shape, n) = dims(t)?;
    if t.data_type != data_type::INT64 {
        return Err(tensor_err(
            &t.name,
            format!("data type {} is not INT64 (7)", t.data_type),
        ));
    }
    let values: Vec<i64> = if t.raw_data.is_empty() {
        t.int64_data.clone()
    } else {
        t.raw_data
            .chunks(8)
            .map(|c| c.try_into().map(i64::from_le_bytes))
            .collect::<Result<_, _>>()
            .map_err(|_| tensor_err(&t.name, "raw data is not a whole number of int64s"))?
    };
    if values.len() != n {
        return Err(tensor_err(
            &t.name,
            format!(
                "shape {shape:?} holds {n} values, the data has {}",
                values.len()
            ),
        ));
    }
    Ok(values)
}

fn tensor_err(name: &str, reason: impl Into<String>) -> OnnxError {
    OnnxError::Tensor {
        name: name.to_string(),
        reason: reason.into(),
    }
}

/// The graph input's shape without its batch dimension (which must be 1 or symbolic).
fn input_shape(input: &proto::ValueInfoProto) -> Result<Vec<usize>, OnnxError> {
    let fail = |reason: String| OnnxError::Input {
        name: input.name.clone(),
        reason,
    };
    let tensor = input
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .ok_or_else(|| fail("not a tensor".into()))?;
    if tensor.elem_type != data_type::FLOAT {
        return Err(fail(format!(
            "element type {} is not FLOAT (1)",
            tensor.elem_type
        )));
    }
    let dims = tensor
        .shape
        .as_ref()
        .map(|s| s.dim.as_slice())
        .unwrap_or_default();
    let Some((batch, rest)) = dims.split_first() else {
        return Err(fail(
            "no shape: the importer needs [batch, ...] sizes".into(),
        ));
    };
    let batch_ok = match batch.dim_value {
        Some(v) => v == 1,
        None => batch.dim_param.is_some(),
    };
    if !batch_ok {
        return Err(fail(format!(
            "the first dimension (the batch) is {batch:?}; the importer reads a batch of 1 or a \
             named one"
        )));
    }
    rest.iter()
        .map(|d| match d.dim_value {
            Some(v) if v > 0 => usize::try_from(v).map_err(|_| fail(format!("size {v}"))),
            _ => Err(fail(format!(
                "every dimension after the batch needs a fixed positive size, not {d:?}"
            ))),
        })
        .collect()
}

/// A node being mapped, for checks and messages.
struct At<'a> {
    index: usize,
    node: &'a NodeProto,
}

impl<'a> At<'a> {
    fn new(index: usize, node: &'a NodeProto) -> Self {
        Self { index, node }
    }

    fn node_ref(&self) -> NodeRef {
        NodeRef {
            index: self.index,
            name: self.node.name.clone(),
            op: self.node.op_type.clone(),
        }
    }

    fn err(&self, reason: impl Into<String>) -> OnnxError {
        OnnxError::Node {
            node: self.node_ref(),
            reason: reason.into(),
        }
    }

    fn inputs_at_most(&self, n: usize) -> Result<(), OnnxError> {
        if self.node.input.len() > n {
            return Err(self.err(format!(
                "reads {} inputs {:?}; the importer maps at most {n}",
                self.node.input.len(),
                self.node.input
            )));
        }
        Ok(())
    }

    /// The node's attributes by name (a name given twice is an error).
    fn attributes(&self) -> Result<Attrs<'a>, OnnxError> {
        let mut map = BTreeMap::new();
        for a in &self.node.attribute {
            if map.insert(a.name.as_str(), a).is_some() {
                return Err(self.err(format!("attribute {} is given twice", a.name)));
            }
        }
        Ok(Attrs {
            node: self.node_ref(),
            map,
        })
    }
}

/// A node's attributes, read by type.
struct Attrs<'a> {
    node: NodeRef,
    map: BTreeMap<&'a str, &'a AttributeProto>,
}

impl<'a> Attrs<'a> {
    /// Refuses any attribute not in `known` (the importer would ignore what it means).
    fn only(&self, known: &[&str]) -> Result<(), OnnxError> {
        match self.map.keys().find(|k| !known.contains(k)) {
            Some(name) => Err(self.bad(name, "the importer does not read this attribute")),
            None => Ok(()),
        }
    }

    /// The error for attribute `name`'s value.
    fn bad(&self, name: &str, reason: &str) -> OnnxError {
        let value = self.map.get(name).map_or("(absent)".into(), |a| show(a));
        OnnxError::Attribute {
            node: self.node.clone(),
            attribute: format!("{name} = {value}"),
            reason: reason.to_string(),
        }
    }

    /// Attribute `name` when it is of type `ty`; an error when it has another type.
    fn typed(&self, name: &str, ty: i32) -> Result<Option<&'a AttributeProto>, OnnxError> {
        match self.map.get(name) {
            Some(a) if a.r#type != ty => {
                Err(self.bad(name, &format!("not of attribute type {ty}")))
            }
            a => Ok(a.copied()),
        }
    }

    fn int(&self, name: &str) -> Result<Option<i64>, OnnxError> {
        Ok(self.typed(name, attribute_type::INT)?.map(|a| a.i))
    }

    fn ints(&self, name: &str) -> Result<Option<&'a [i64]>, OnnxError> {
        Ok(self
            .typed(name, attribute_type::INTS)?
            .map(|a| a.ints.as_slice()))
    }

    fn string(&self, name: &str) -> Result<Option<&'a str>, OnnxError> {
        self.typed(name, attribute_type::STRING)?
            .map(|a| std::str::from_utf8(&a.s).map_err(|_| self.bad(name, "not UTF-8")))
            .transpose()
    }

    /// Checks that INT attribute `name` is absent or `want` (its default).
    fn expect_int(&self, name: &str, want: i64) -> Result<(), OnnxError> {
        match self.int(name)? {
            Some(v) if v != want => Err(self.bad(name, &format!("only {want}"))),
            _ => Ok(()),
        }
    }

    /// Checks that INTS attribute `name` is absent or `want`.
    fn expect_ints(&self, name: &str, want: &[i64]) -> Result<(), OnnxError> {
        match self.ints(name)? {
            Some(v) if v != want => Err(self.bad(name, &format!("only {want:?}"))),
            _ => Ok(()),
        }
    }

    /// Checks that FLOAT attribute `name` is absent or `want`.
    fn expect_float(&self, name: &str, want: f32) -> Result<(), OnnxError> {
        match self.typed(name, attribute_type::FLOAT)? {
            Some(a) if a.f != want => Err(self.bad(name, &format!("only {want}"))),
            _ => Ok(()),
        }
    }

    /// INTS attribute `name` as a pair of positive sizes `[y, x]` (`[default; 2]` when absent).
    fn pair(&self, name: &str, default: usize) -> Result<[usize; 2], OnnxError> {
        match self.ints(name)? {
            None => Ok([default; 2]),
            Some(&[y, x]) if y > 0 && x > 0 => Ok([y as usize, x as usize]),
            Some(_) => Err(self.bad(name, "only two positive sizes (2-D)")),
        }
    }
}

/// An attribute's value as text, for messages.
fn show(a: &AttributeProto) -> String {
    match a.r#type {
        attribute_type::FLOAT => a.f.to_string(),
        attribute_type::INT => a.i.to_string(),
        attribute_type::STRING => format!("{:?}", String::from_utf8_lossy(&a.s)),
        attribute_type::TENSOR => "(a tensor)".into(),
        attribute_type::FLOATS => format!("{:?}", a.floats),
        attribute_type::INTS => format!("{:?}", a.ints),
        t => format!("(a value of attribute type {t})"),
    }
}

#[cfg(test)]
mod tests {
    use super::proto::{
        Dimension, ModelProto, StringStringEntryProto, TensorShapeProto, TensorTypeProto,
        TypeProto, ValueInfoProto,
    };
    use super::*;

    fn tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
        TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: data_type::FLOAT,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        }
    }

    fn int64s(name: &str, values: &[i64]) -> TensorProto {
        TensorProto {
            name: name.into(),
            dims: vec![values.len() as i64],
            data_type: data_type::INT64,
            int64_data: values.to_vec(),
            ..Default::default()
        }
    }

    fn ramp(n: usize) -> Vec<f32> {
        (0..n).map(|i| (i as f32 - n as f32 / 2.0) / 8.0).collect()
    }

    fn node(op: &str, name: &str, inputs: &[&str], output: &str) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            name: name.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            ..Default::default()
        }
    }

    fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: attribute_type::INTS,
            ints: v.to_vec(),
            ..Default::default()
        }
    }

    fn int_attr(name: &str, i: i64) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: attribute_type::INT,
            i,
            ..Default::default()
        }
    }

    fn float_attr(name: &str, f: f32) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: attribute_type::FLOAT,
            f,
            ..Default::default()
        }
    }

    fn string_attr(name: &str, s: &str) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: attribute_type::STRING,
            s: s.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    fn value(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
        ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                tensor_type: Some(TensorTypeProto {
                    elem_type: data_type::FLOAT,
                    shape: Some(TensorShapeProto {
                        dim: dims
                            .iter()
                            .map(|&d| Dimension {
                                dim_value: d,
                                dim_param: d.is_none().then(|| "batch".into()),
                            })
                            .collect(),
                    }),
                }),
            }),
        }
    }

    /// A small CNN as PyTorch would export it: input [1, 1, 4, 4], conv c (2 channels, 3x3, pad 1),
    /// relu, 2x2 max pool, flatten, Gemm fc (8 -> 3).
    fn cnn() -> GraphProto {
        let mut conv = node("Conv", "c", &["x", "c.weight", "c.bias"], "c_out");
        conv.attribute = vec![
            ints_attr("kernel_shape", &[3, 3]),
            ints_attr("pads", &[1, 1, 1, 1]),
            ints_attr("strides", &[1, 1]),
            ints_attr("dilations", &[1, 1]),
            int_attr("group", 1),
        ];
        let mut pool = node("MaxPool", "pool", &["relu_out"], "pool_out");
        pool.attribute = vec![
            ints_attr("kernel_shape", &[2, 2]),
            ints_attr("strides", &[2, 2]),
        ];
        let mut flatten = node("Flatten", "flat", &["pool_out"], "flat_out");
        flatten.attribute = vec![int_attr("axis", 1)];
        let mut gemm = node("Gemm", "fc", &["flat_out", "fc.weight", "fc.bias"], "y");
        gemm.attribute = vec![
            float_attr("alpha", 1.0),
            float_attr("beta", 1.0),
            int_attr("transB", 1),
        ];
        GraphProto {
            name: "tiny".into(),
            node: vec![
                conv,
                node("Relu", "relu", &["c_out"], "relu_out"),
                pool,
                flatten,
                gemm,
            ],
            initializer: vec![
                tensor("c.weight", &[2, 1, 3, 3], &ramp(18)),
                tensor("c.bias", &[2], &[0.5, -0.5]),
                tensor("fc.weight", &[3, 8], &ramp(24)),
                tensor("fc.bias", &[3], &[1.0, 2.0, 3.0]),
            ],
            input: vec![value("x", &[Some(1), Some(1), Some(4), Some(4)])],
            output: vec![value("y", &[Some(1), Some(3)])],
        }
    }

    /// Writes `graph` as an ONNX file and loads it as `FloatModel::load` does.
    fn load_graph(tag: &str, graph: GraphProto) -> Result<FloatModel, ModelError> {
        let model = ModelProto {
            ir_version: 8,
            producer_name: "opml test".into(),
            graph: Some(graph),
            ..Default::default()
        };
        let path = scratch(tag);
        std::fs::write(&path, model.encode_to_vec()).unwrap();
        let loaded = FloatModel::load(&path);
        std::fs::remove_file(&path).unwrap();
        loaded
    }

    fn scratch(tag: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("opml-onnx-{tag}-{}.onnx", std::process::id()))
    }

    fn node_mut<'a>(g: &'a mut GraphProto, name: &str) -> &'a mut NodeProto {
        g.node.iter_mut().find(|n| n.name == name).unwrap()
    }

    fn set_attr(g: &mut GraphProto, node: &str, a: AttributeProto) {
        let n = node_mut(g, node);
        n.attribute.retain(|x| x.name != a.name);
        n.attribute.push(a);
    }

    #[test]
    fn maps_the_supported_ops_onto_float_layers() {
        let model = load_graph("ok", cnn()).unwrap();
        assert_eq!(model.name, "tiny");
        assert_eq!(model.input_shape, [1, 4, 4]);
        let layers: Vec<_> = model.layers.iter().map(|l| format!("{l:?}")).collect();
        assert_eq!(
            layers,
            [
                "Conv2d { name: \"c\", stride: [1, 1], padding: [1, 1] }",
                "Relu",
                "Maxpool2d { kernel: [2, 2], stride: [2, 2] }",
                "Flatten",
                "Linear { name: \"fc\" }",
            ]
        );
        assert_eq!(
            model.weight("c.weight").unwrap(),
            &(vec![2, 1, 3, 3], ramp(18))
        );
        assert_eq!(model.weight("fc.weight").unwrap(), &(vec![3, 8], ramp(24)));
        assert_eq!(model.weight("fc.bias").unwrap().1, [1.0, 2.0, 3.0]);
        let out = model.forward((vec![1, 4, 4], ramp(16))).unwrap();
        assert_eq!(out.last().unwrap().0, [3]);
    }

    /// The same network written in the other ways exporters write it gives the same float model.
    #[test]
    fn equivalent_exports_give_the_same_model() {
        let reference = load_graph("ref", cnn()).unwrap();
        let cases: Vec<(&str, Box<dyn Fn(&mut GraphProto)>)> = vec![
            (
                // PyTorch's export of Linear on a >2-D input: MatMul by the transposed weight,
                // then Add of the bias, named only by the bias.
                "matmul + add",
                Box::new(|g| {
                    let w = ramp(24);
                    let wt: Vec<f32> = (0..24).map(|i| w[(i % 3) * 8 + i / 3]).collect();
                    g.initializer[2] = tensor("onnx::MatMul_7", &[8, 3], &wt);
                    g.node.pop();
                    g.node.push(node(
                        "MatMul",
                        "/fc/MatMul",
                        &["flat_out", "onnx::MatMul_7"],
                        "mm",
                    ));
                    g.node.push(node("Add", "/fc/Add", &["fc.bias", "mm"], "y"));
                }),
            ),
            (
                "Gemm with transB 0",
                Box::new(|g| {
                    let w = ramp(24);
                    let wt: Vec<f32> = (0..24).map(|i| w[(i % 3) * 8 + i / 3]).collect();
                    g.initializer[2] = tensor("fc.weight", &[8, 3], &wt);
                    set_attr(g, "fc", int_attr("transB", 0));
                }),
            ),
            (
                "Reshape by a Constant shape, float_data, symbolic batch, defaults left out",
                Box::new(|g| {
                    let mut shape = node("Constant", "shape", &[], "shape");
                    shape.attribute = vec![AttributeProto {
                        name: "value".into(),
                        r#type: attribute_type::TENSOR,
                        t: Some(int64s("", &[1, -1])),
                        ..Default::default()
                    }];
                    g.node.insert(0, shape);
                    *node_mut(g, "flat") =
                        node("Reshape", "flat", &["pool_out", "shape"], "flat_out");
                    node_mut(g, "c").attribute.retain(|a| a.name == "pads");
                    node_mut(g, "fc").attribute.retain(|a| a.name == "transB");
                    let w = &mut g.initializer[0];
                    w.float_data = ramp(18);
                    w.raw_data.clear();
                    g.input[0] = value("x", &[None, Some(1), Some(4), Some(4)]);
                }),
            ),
            (
                "Reshape by an initializer to [0, 8]",
                Box::new(|g| {
                    g.initializer.push(int64s("shape", &[0, 8]));
                    *node_mut(g, "flat") =
                        node("Reshape", "flat", &["pool_out", "shape"], "flat_out");
                }),
            ),
            (
                // IR < 4: initializers are listed among the graph inputs too.
                "initializers among the inputs",
                Box::new(|g| {
                    g.input
                        .push(value("c.weight", &[Some(2), Some(1), Some(3), Some(3)]));
                }),
            ),
        ];
        for (case, edit) in cases {
            let mut g = cnn();
            edit(&mut g);
            let model = load_graph("equivalent", g).unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(
                format!("{:?}", model.layers),
                format!("{:?}", reference.layers),
                "{case}"
            );
            assert_eq!(model.weights, reference.weights, "{case}");
            assert_eq!(model.input_shape, reference.input_shape, "{case}");
        }
    }

    /// Every graph the importer cannot map gives an error naming what and where.
    #[test]
    fn refuses_what_it_cannot_map_naming_it() {
        let cases: Vec<(&str, Box<dyn Fn(&mut GraphProto)>, &str)> = vec![
            (
                "an unsupported op",
                Box::new(|g| node_mut(g, "relu").op_type = "Sigmoid".into()),
                "node 1 (\"relu\", Sigmoid): op Sigmoid is not supported; supported: Conv, Gemm, \
                 MatMul, Add (as the bias of a MatMul), Relu, MaxPool, Flatten, Reshape, Constant",
            ),
            (
                "a custom domain",
                Box::new(|g| node_mut(g, "relu").domain = "com.example".into()),
                "op com.example::Relu is not supported",
            ),
            (
                "a grouped conv",
                Box::new(|g| set_attr(g, "c", int_attr("group", 2))),
                "node 0 (\"c\", Conv): attribute group = 2: only 1",
            ),
            (
                "a dilated conv",
                Box::new(|g| set_attr(g, "c", ints_attr("dilations", &[2, 2]))),
                "attribute dilations = [2, 2]: only [1, 1]",
            ),
            (
                "asymmetric pads",
                Box::new(|g| set_attr(g, "c", ints_attr("pads", &[0, 0, 1, 1]))),
                "attribute pads = [0, 0, 1, 1]: only [p, q, p, q]",
            ),
            (
                "auto padding",
                Box::new(|g| {
                    node_mut(g, "c").attribute.retain(|a| a.name != "pads");
                    set_attr(g, "c", string_attr("auto_pad", "SAME_UPPER"));
                }),
                "attribute auto_pad = \"SAME_UPPER\": only NOTSET (explicit pads) or VALID",
            ),
            (
                "unequal strides",
                Box::new(|g| set_attr(g, "c", ints_attr("strides", &[1, 2]))),
                "node 0 (\"c\", Conv): stride [1, 2] and padding [1, 1]: only equal",
            ),
            (
                "a kernel_shape that is not the weight's",
                Box::new(|g| set_attr(g, "c", ints_attr("kernel_shape", &[5, 5]))),
                "attribute kernel_shape = [5, 5]: the weight's kernel is different",
            ),
            (
                "an attribute of the wrong type",
                Box::new(|g| set_attr(g, "c", int_attr("strides", 1))),
                "attribute strides = 1: not of attribute type 7",
            ),
            (
                "an attribute it does not read",
                Box::new(|g| set_attr(g, "relu", float_attr("alpha", 0.1))),
                "node 1 (\"relu\", Relu): attribute alpha = 0.1: the importer does not read",
            ),
            (
                "Gemm alpha",
                Box::new(|g| set_attr(g, "fc", float_attr("alpha", 2.0))),
                "node 4 (\"fc\", Gemm): attribute alpha = 2: only 1",
            ),
            (
                "Gemm transA",
                Box::new(|g| set_attr(g, "fc", int_attr("transA", 1))),
                "attribute transA = 1: only 0",
            ),
            (
                "a padded max pool",
                Box::new(|g| set_attr(g, "pool", ints_attr("pads", &[1, 1, 1, 1]))),
                "node 2 (\"pool\", MaxPool): attribute pads = [1, 1, 1, 1]: only a max pool without",
            ),
            (
                "ceil mode",
                Box::new(|g| set_attr(g, "pool", int_attr("ceil_mode", 1))),
                "attribute ceil_mode = 1: only 0",
            ),
            (
                "a max pool's indices",
                Box::new(|g| node_mut(g, "pool").output.push("indices".into())),
                "writes [\"pool_out\", \"indices\"]; the importer reads one output",
            ),
            (
                "Flatten on another axis",
                Box::new(|g| set_attr(g, "flat", int_attr("axis", 2))),
                "node 3 (\"flat\", Flatten): attribute axis = 2: only 1",
            ),
            (
                "a Reshape that is no flatten",
                Box::new(|g| {
                    g.initializer.push(int64s("shape", &[2, -1]));
                    *node_mut(g, "flat") = node("Reshape", "flat", &["pool_out", "shape"], "flat_out");
                }),
                "Reshape of the [1, 2, 2, 2] activation to [2, -1]: only a flatten to [1, 8] or [8]",
            ),
            (
                "a missing initializer",
                Box::new(|g| node_mut(g, "fc").input[1] = "fc.w".into()),
                "node 4 (\"fc\", Gemm): input fc.w is not an initializer",
            ),
            (
                "a weight read from another node",
                Box::new(|g| node_mut(g, "fc").input[1] = "c_out".into()),
                "input c_out is not an initializer",
            ),
            (
                "nodes out of order",
                Box::new(|g| g.node.swap(0, 1)),
                "the graph is not a single chain from its input: node 0 (\"relu\", Relu) reads \
                 [\"c_out\"], not x",
            ),
            (
                "a branch",
                Box::new(|g| node_mut(g, "pool").input[0] = "c_out".into()),
                "node 2 (\"pool\", MaxPool) reads [\"c_out\"], not relu_out",
            ),
            (
                "a tensor written twice",
                Box::new(|g| node_mut(g, "relu").output[0] = "x".into()),
                "node 1 (\"relu\", Relu) writes \"x\", which is empty, or already",
            ),
            (
                "a tensor written over an initializer",
                Box::new(|g| node_mut(g, "relu").output[0] = "fc.bias".into()),
                "node 1 (\"relu\", Relu) writes \"fc.bias\", which is empty, or already",
            ),
            (
                "two inputs",
                Box::new(|g| g.input.push(value("z", &[Some(1), Some(3)]))),
                "2 graph inputs besides the initializers",
            ),
            (
                "an output that is not the last node's",
                Box::new(|g| g.output[0].name = "c_out".into()),
                "the graph's outputs are [\"c_out\"]; the importer reads one, the last node's y",
            ),
            (
                "a batch of 2",
                Box::new(|g| g.input[0] = value("x", &[Some(2), Some(1), Some(4), Some(4)])),
                "graph input x: the first dimension (the batch) is",
            ),
            (
                "an unknown size",
                Box::new(|g| g.input[0] = value("x", &[Some(1), Some(1), None, Some(4)])),
                "graph input x: every dimension after the batch needs a fixed positive size",
            ),
            (
                "external data",
                Box::new(|g| {
                    let w = &mut g.initializer[2];
                    w.data_location = 1;
                    w.external_data = vec![StringStringEntryProto {
                        key: "location".into(),
                        value: "/etc/passwd".into(),
                    }];
                }),
                "tensor fc.weight: its data is stored outside the file (external data)",
            ),
            (
                "data shorter than the shape",
                Box::new(|g| g.initializer[0].raw_data.truncate(17 * 4)),
                "tensor c.weight: shape [2, 1, 3, 3] holds 18 values, the data has 17",
            ),
            (
                "raw data of a partial float",
                Box::new(|g| g.initializer[0].raw_data.pop().map(drop).unwrap()),
                "tensor c.weight: raw data is not a whole number of floats",
            ),
            (
                "an overflowing shape",
                Box::new(|g| g.initializer[0].dims = vec![1 << 40, 1 << 40]),
                "tensor c.weight: shape [1099511627776, 1099511627776] overflows",
            ),
            (
                "a negative size",
                Box::new(|g| g.initializer[0].dims = vec![-18]),
                "tensor c.weight: negative size in shape [-18]",
            ),
            (
                "an integer weight",
                Box::new(|g| g.initializer[2].data_type = data_type::INT64),
                "tensor fc.weight: data type 7 is not FLOAT (1)",
            ),
            (
                "a weight of the wrong width",
                Box::new(|g| {
                    g.initializer[2] = tensor("fc.weight", &[3, 9], &ramp(27));
                }),
                "node 4 (\"fc\", Gemm): weight fc.weight reads 9 inputs, the input has 8",
            ),
            (
                "a bias of the wrong length",
                Box::new(|g| g.initializer[3] = tensor("fc.bias", &[2], &[1.0, 2.0])),
                "node 4 (\"fc\", Gemm): bias fc.bias has shape [2], not [3]",
            ),
            (
                "two layers with one name",
                Box::new(|g| {
                    // Named by its bias, c.bias, like the first conv.
                    g.initializer.push(tensor("w2", &[2, 2, 3, 3], &ramp(36)));
                    let mut conv = node("Conv", "c2", &["relu_out", "w2", "c.bias"], "c2");
                    conv.attribute = vec![ints_attr("pads", &[1, 1, 1, 1])];
                    g.node.insert(2, conv);
                    node_mut(g, "pool").input[0] = "c2".into();
                }),
                "node 2 (\"c2\", Conv): another layer is also named c",
            ),
            (
                "an Add that is no bias",
                Box::new(|g| {
                    g.initializer.push(tensor("k", &[3], &[1.0, 1.0, 1.0]));
                    g.node.push(node("Add", "add", &["y", "k"], "z"));
                    g.output[0].name = "z".into();
                }),
                "node 5 (\"add\", Add): an Add is read only as the bias of the MatMul",
            ),
            (
                "no nodes",
                Box::new(|g| {
                    g.node.clear();
                    g.output[0].name = "x".into();
                }),
                "the graph is not a single chain from its input: it has no nodes",
            ),
        ];
        for (case, edit, want) in cases {
            let mut g = cnn();
            edit(&mut g);
            let err = load_graph("bad", g).map(|_| ()).unwrap_err().to_string();
            assert!(err.contains(want), "{case}: {err}\n  wanted: {want}");
            let path = std::env::temp_dir().join("opml-onnx-bad");
            assert!(
                err.starts_with(&path.display().to_string()),
                "{case}: {err}"
            );
        }
    }

    /// Bytes that are not an ONNX model give a decoding error that names the file.
    #[test]
    fn names_the_file_it_cannot_decode() {
        let good = ModelProto {
            graph: Some(cnn()),
            ..Default::default()
        }
        .encode_to_vec();
        let cases: [(&str, Vec<u8>, &str); 4] = [
            (
                "truncated",
                good[..good.len() / 2].to_vec(),
                "not an ONNX model (protobuf decoding failed",
            ),
            (
                "json",
                br#"{"model": "mnist"}"#.to_vec(),
                "not an ONNX model (protobuf decoding failed",
            ),
            (
                "empty",
                Vec::new(),
                "the graph is not a single chain from its input: the file has no graph",
            ),
            // Nesting beyond prost's recursion limit: refused, no stack overflow.
            (
                "nested",
                nested(100_000),
                "not an ONNX model (protobuf decoding failed",
            ),
        ];
        for (tag, bytes, want) in cases {
            let path = scratch(tag);
            std::fs::write(&path, &bytes).unwrap();
            let err = FloatModel::load(&path).map(|_| ()).unwrap_err().to_string();
            std::fs::remove_file(&path).unwrap();
            assert!(
                err.starts_with(&format!("{}: ", path.display())),
                "{tag}: {err}"
            );
            assert!(err.contains(want), "{tag}: {err}");
        }
    }

    /// `depth` nested groups of an unknown field (field 30, wire type 3 "start group"): prost
    /// skips unknown fields, recursing into groups up to its recursion limit.
    fn nested(depth: usize) -> Vec<u8> {
        let mut key = Vec::new();
        prost::encoding::encode_key(30, prost::encoding::WireType::StartGroup, &mut key);
        key.repeat(depth)
    }

    #[test]
    fn reshape_flattens_only_to_one_row() {
        // (target, activation shape, allowzero, flattens)
        let cases: [(&[i64], &[usize], bool, bool); 10] = [
            (&[1, -1], &[2, 2, 2], false, true),
            (&[-1], &[2, 2, 2], false, true),
            (&[1, 8], &[2, 2, 2], false, true),
            (&[0, -1], &[2, 2, 2], false, true),
            (&[0, -1], &[2, 2, 2], true, false),
            (&[8], &[2, 2, 2], false, true),
            (&[2, -1], &[2, 2, 2], false, false),
            (&[1, 2, 4], &[2, 2, 2], false, false),
            (&[-1, -1], &[2, 2, 2], false, false),
            (&[1, -2], &[2, 2, 2], false, false),
        ];
        for (target, shape, allow_zero, want) in cases {
            assert_eq!(
                reshape_flattens(target, shape, allow_zero),
                want,
                "{target:?} of {shape:?}"
            );
        }
    }
}
