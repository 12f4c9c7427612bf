//! Models: a graph of ops in topological order with int8/int32 weights, stored as a JSON graph a
//! person can read beside a safetensors file of weights, and committed to by one hash.

use crate::ops::{Op, OpError};
use crate::tensor::{header, DType, Tensor, TensorError};
use opml_vm::{data_root, keccak256, Hash};
use safetensors::{tensor::TensorView, SafeTensors};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where a node's input comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TensorRef {
    /// The request's input tensor.
    Input,
    /// A weight tensor of the model, by name.
    Weight(String),
    /// The output of an earlier node, by index.
    Node(usize),
    /// State input `k` of [`ModelManifest::state`]: a tensor carried over from an earlier run of a
    /// related graph (a decoder's KV cache), committed by the token state rather than the request.
    State(usize),
}

/// One node: an op, its inputs, and a name for people.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Node {
    /// Name for reports (e.g. `conv1`).
    pub name: String,
    /// The op and its parameters.
    #[serde(flatten)]
    pub op: Op,
    /// The op's inputs, in the op's order.
    pub inputs: Vec<TensorRef>,
}

/// Type, shape and real-valued scale of the model's input.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InputSpec {
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
    /// Real value of one integer step (for people and for quantizing new inputs).
    pub scale: f64,
}

/// The JSON half of a model file: everything but the weight values.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelManifest {
    /// Model name.
    pub name: String,
    /// The input the graph takes.
    pub input: InputSpec,
    /// State inputs ([`TensorRef::State`]), in order: tensors a run takes besides the request
    /// input, such as a decoder's KV cache of earlier positions. Empty (and absent from the JSON)
    /// for graphs that take only the request, whose commitment is then unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub state: Vec<InputSpec>,
    /// Nodes in topological order; the last node's output is the model's output.
    pub nodes: Vec<Node>,
    /// The weights file, relative to this file.
    pub weights: String,
    /// Free-form facts about how the model was made (source, calibration, accuracies).
    #[serde(default)]
    pub provenance: serde_json::Value,
}

/// A loaded, checked model.
#[derive(Debug, Clone)]
pub struct Model {
    /// The graph and its metadata.
    pub manifest: ModelManifest,
    /// Weights by name.
    pub weights: BTreeMap<String, Tensor>,
}

/// What is wrong with a model file or graph.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file cannot be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The JSON graph does not parse (serde names the line and column).
    #[error("{path}: {error}")]
    Json {
        /// The file.
        path: PathBuf,
        /// Why.
        error: serde_json::Error,
    },
    /// The weights file is not valid safetensors.
    #[error("{path}: not a safetensors file: {reason}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A weight tensor has a type the library does not hold, or inconsistent data.
    #[error("weight {name}: {reason}")]
    Weight {
        /// The tensor.
        name: String,
        /// Why.
        reason: String,
    },
    /// A node is inconsistent: a missing weight, a forward reference, or inputs its op rejects.
    #[error("node {index} ({name}): {reason}")]
    Node {
        /// Index of the node.
        index: usize,
        /// Its name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The graph has no nodes.
    #[error("the graph has no nodes")]
    Empty,
    /// The graph has more nodes than the phase-2 trace tree has leaves.
    #[error("the graph has {nodes} nodes; the trace tree holds at most {max}")]
    TooManyNodes {
        /// Nodes in the graph.
        nodes: usize,
        /// The limit, 2^TRACE_DEPTH.
        max: usize,
    },
    /// The model's input does not fit a request (the game's `MAX_INPUT_BYTES`).
    #[error("the input {shape:?} takes {bytes} bytes; a request carries at most {max}")]
    InputTooLarge {
        /// The declared input shape.
        shape: Vec<usize>,
        /// Its bytes (saturating).
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// A declared state input is too large for a check to allocate.
    #[error("state input {index} {shape:?} takes {bytes} bytes; at most {max}")]
    StateTooLarge {
        /// Its index.
        index: usize,
        /// The declared shape.
        shape: Vec<usize>,
        /// Its bytes (saturating).
        bytes: usize,
        /// The limit, [`MAX_STATE_BYTES`].
        max: usize,
    },
    /// The state tensors given to a run do not match the graph's state inputs.
    #[error("state inputs: {reason}")]
    State {
        /// What does not match.
        reason: String,
    },
    /// A tensor error.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// A layer of a float model does not fit its input, weights or parameters.
    #[error("float layer {index} ({name}): {reason}")]
    Layer {
        /// Index of the layer.
        index: usize,
        /// Its name, or its kind.
        name: String,
        /// Why.
        reason: String,
    },
    /// An ONNX file, in a build without the `onnx` feature of opml-dnn.
    #[error("{path}: this build does not read ONNX (opml-dnn's `onnx` feature is off)")]
    OnnxDisabled {
        /// The file.
        path: PathBuf,
    },
    /// An ONNX file that does not decode, or whose graph is not one the importer maps.
    #[cfg(feature = "onnx")]
    #[error("{path}: {error}")]
    Onnx {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the node, attribute or tensor (boxed: it is large and rare).
        error: Box<crate::onnx::OnnxError>,
    },
}

/// Most bytes of a model's input: the `DisputeGame`'s `MAX_INPUT_BYTES`, since a request carries
/// its input in calldata.
pub const MAX_INPUT_BYTES: usize = 65_536;

/// Most bytes of one state input (a layer's K or V cache: 7B-shaped at 4096 positions is 32 MiB),
/// so that a hostile model file cannot make a check allocate without bound.
pub const MAX_STATE_BYTES: usize = 1 << 28;

impl Model {
    /// Builds a model and checks it.
    pub fn new(
        manifest: ModelManifest,
        weights: BTreeMap<String, Tensor>,
    ) -> Result<Self, ModelError> {
        let model = Self { manifest, weights };
        model.check()?;
        Ok(model)
    }

    /// Loads `model.json` (or the JSON file given) and its weights file; checks the graph.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let (path, manifest): (_, ModelManifest) = read_manifest(path, "model.json")?;
        let weights_path = sibling(&path, &manifest.weights);
        let weights = read_safetensors(&weights_path, &read_file(&weights_path)?)?;
        Self::new(manifest, weights)
    }

    /// Writes `model.json` and the weights file into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), ModelError> {
        let io = |path: PathBuf| move |error| ModelError::Io { path, error };
        std::fs::create_dir_all(dir).map_err(io(dir.to_path_buf()))?;
        let json = serde_json::to_string_pretty(&self.manifest).expect("a manifest serializes");
        let path = dir.join("model.json");
        std::fs::write(&path, json + "\n").map_err(io(path.clone()))?;
        let path = dir.join(&self.manifest.weights);
        std::fs::write(&path, write_safetensors(&self.weights)?).map_err(io(path.clone()))?;
        Ok(())
    }

    /// The tensors a node reads, given the outputs of the nodes before it.
    pub fn node_inputs<'a>(
        &'a self,
        index: usize,
        input: &'a Tensor,
        outputs: &'a [Tensor],
    ) -> Result<Vec<&'a Tensor>, ModelError> {
        self.node_inputs_with(index, input, &[], outputs.len(), |j| &outputs[j])
    }

    /// [`Model::node_inputs`] of a graph with state inputs ([`ModelManifest::state`]).
    pub fn node_inputs_with_state<'a>(
        &'a self,
        index: usize,
        input: &'a Tensor,
        state: &'a [Tensor],
        outputs: &'a [Tensor],
    ) -> Result<Vec<&'a Tensor>, ModelError> {
        self.node_inputs_with(index, input, state, outputs.len(), |j| &outputs[j])
    }

    /// [`Model::node_inputs`] with the first `count` node outputs given by `output`, so that
    /// callers holding them elsewhere (a [`crate::Trace`]) need not copy them into a slice.
    pub(crate) fn node_inputs_with<'a>(
        &'a self,
        index: usize,
        input: &'a Tensor,
        state: &'a [Tensor],
        count: usize,
        output: impl Fn(usize) -> &'a Tensor,
    ) -> Result<Vec<&'a Tensor>, ModelError> {
        let node = &self.manifest.nodes[index];
        let fail = |reason: String| ModelError::Node {
            index,
            name: node.name.clone(),
            reason,
        };
        node.inputs
            .iter()
            .map(|r| match r {
                TensorRef::Input => Ok(input),
                TensorRef::Weight(name) => self
                    .weights
                    .get(name)
                    .ok_or_else(|| fail(format!("weight {name} is not in the weights file"))),
                TensorRef::Node(j) if *j < index && *j < count => Ok(output(*j)),
                TensorRef::Node(j) => Err(fail(format!("input node {j} does not come before it"))),
                TensorRef::State(k) => state.get(*k).ok_or_else(|| {
                    fail(format!(
                        "state input {k} is not given ({} given; the graph declares {})",
                        state.len(),
                        self.manifest.state.len()
                    ))
                }),
            })
            .collect()
    }

    /// Checks every reference and runs the graph on a zero input, so that a shape or type that does
    /// not fit is reported with its node.
    fn check(&self) -> Result<(), ModelError> {
        if self.manifest.nodes.is_empty() {
            return Err(ModelError::Empty);
        }
        let max = 1 << crate::executor::TRACE_DEPTH;
        if self.manifest.nodes.len() > max {
            return Err(ModelError::TooManyNodes {
                nodes: self.manifest.nodes.len(),
                max,
            });
        }
        let zero = self.zero_input()?;
        let state = self.zero_state()?;
        let mut outputs = Vec::new();
        for (index, node) in self.manifest.nodes.iter().enumerate() {
            let inputs = self.node_inputs_with_state(index, &zero, &state, &outputs)?;
            let fail = |reason: String| ModelError::Node {
                index,
                name: node.name.clone(),
                reason,
            };
            // Sized before it is computed: a hostile file must not make us allocate without bound.
            let (dtype, shape) = node
                .op
                .output_type(&inputs)
                .map_err(|e| fail(e.to_string()))?;
            crate::tensor::byte_len(dtype, &shape).map_err(|e| fail(format!("output: {e}")))?;
            let out = node.op.native(&inputs).map_err(|e| fail(e.to_string()))?;
            outputs.push(out);
        }
        Ok(())
    }

    /// Names of the weights in commitment order (sorted).
    pub fn weight_names(&self) -> Vec<&str> {
        self.weights.keys().map(String::as_str).collect()
    }

    /// The model commitment (protocol section 9): `keccak(inputHeader ‖ nodesRoot ‖ weightsRoot)`,
    /// and `‖ stateRoot` appended only when the graph has state inputs (so that every graph
    /// without them keeps its commitment).
    pub fn commitment(&self) -> Result<Hash, ModelError> {
        let leaves: Vec<u8> = self.node_leaves()?.concat();
        let spec = &self.manifest.input;
        let mut bytes = [
            &header(spec.dtype, &spec.shape)?[..],
            &data_root(&leaves),
            &self.weights_root()?,
        ]
        .concat();
        if !self.manifest.state.is_empty() {
            bytes.extend_from_slice(&self.state_root()?);
        }
        Ok(keccak256(&bytes))
    }

    /// The data root over `H(header)` of each state input in order (protocol section 9): the
    /// registered graph fixes the type and shape of every state tensor it reads.
    pub fn state_root(&self) -> Result<Hash, ModelError> {
        let leaves = self
            .manifest
            .state
            .iter()
            .map(|s| Ok(keccak256(&header(s.dtype, &s.shape)?)))
            .collect::<Result<Vec<Hash>, ModelError>>()?;
        Ok(data_root(&leaves.concat()))
    }

    /// Every node's leaf (protocol section 9), in order.
    pub fn node_leaves(&self) -> Result<Vec<Hash>, ModelError> {
        let zero = self.zero_input()?;
        let state = self.zero_state()?;
        let mut leaves = Vec::with_capacity(self.manifest.nodes.len());
        let mut outputs = Vec::new();
        for (index, node) in self.manifest.nodes.iter().enumerate() {
            let inputs = self.node_inputs_with_state(index, &zero, &state, &outputs)?;
            let output = node
                .op
                .native(&inputs)
                .map_err(|e| self.node_error(index, e))?;
            leaves.push(self.node_leaf(index, &inputs, &output)?);
            outputs.push(output);
        }
        Ok(leaves)
    }

    /// The weight commitments in name order (the leaves of the weights root).
    pub fn weight_commitments(&self) -> Result<Vec<Hash>, ModelError> {
        Ok(self
            .weights
            .values()
            .map(|t| t.commitment())
            .collect::<Result<_, _>>()?)
    }

    /// Merkle root over the weight commitments in name order.
    pub fn weights_root(&self) -> Result<Hash, ModelError> {
        Ok(data_root(&self.weight_commitments()?.concat()))
    }

    /// The leaf of node `index` (protocol section 9), given its inputs and an output of it (any
    /// input gives the same shape): the output header is committed, so that nobody can re-declare
    /// a node's output as another dtype or shape over the same bytes.
    pub fn node_leaf(
        &self,
        index: usize,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Hash, ModelError> {
        let node = &self.manifest.nodes[index];
        let params = node
            .op
            .params(inputs)
            .map_err(|e| self.node_error(index, e))?;
        let mut bytes = vec![node.op.kind() as u8];
        bytes.extend_from_slice(&params.commitment()?);
        bytes.extend_from_slice(&keccak256(&output.header()?));
        bytes.push(node.inputs.len() as u8);
        for (tag, idx) in self.input_refs(index) {
            bytes.push(tag);
            bytes.extend_from_slice(&idx.to_be_bytes());
        }
        Ok(keccak256(&bytes))
    }

    /// Node `index`'s inputs as committed (protocol section 9): per input its tag (0 the request
    /// input, 1 a weight, 2 a node, 3 a state input) and index (the weight's in name order, the
    /// node's, the state input's).
    pub fn input_refs(&self, index: usize) -> Vec<(u8, u32)> {
        self.manifest.nodes[index]
            .inputs
            .iter()
            .map(|r| match r {
                TensorRef::Input => (0u8, 0u32),
                TensorRef::Weight(name) => (
                    1,
                    self.weights.keys().position(|n| n == name).unwrap_or(0) as u32,
                ),
                TensorRef::Node(j) => (2, *j as u32),
                TensorRef::State(k) => (3, *k as u32),
            })
            .collect()
    }

    fn node_error(&self, index: usize, e: OpError) -> ModelError {
        ModelError::Node {
            index,
            name: self.manifest.nodes[index].name.clone(),
            reason: e.to_string(),
        }
    }

    /// The zero input of the declared shape, which must fit a request.
    fn zero_input(&self) -> Result<Tensor, ModelError> {
        let spec = &self.manifest.input;
        let too_large = |bytes| ModelError::InputTooLarge {
            shape: spec.shape.clone(),
            bytes,
            max: MAX_INPUT_BYTES,
        };
        zero_tensor(spec, MAX_INPUT_BYTES, too_large)
    }

    /// Zero tensors of the declared state inputs, each within [`MAX_STATE_BYTES`].
    fn zero_state(&self) -> Result<Vec<Tensor>, ModelError> {
        self.manifest
            .state
            .iter()
            .enumerate()
            .map(|(k, spec)| {
                let too_large = |bytes: usize| ModelError::StateTooLarge {
                    index: k,
                    shape: spec.shape.clone(),
                    bytes,
                    max: MAX_STATE_BYTES,
                };
                zero_tensor(spec, MAX_STATE_BYTES, too_large)
            })
            .collect()
    }

    /// Checks that `state` matches the declared state inputs in number, type and shape.
    pub fn check_state(&self, state: &[Tensor]) -> Result<(), ModelError> {
        let specs = &self.manifest.state;
        let bad = |reason: String| ModelError::State { reason };
        if state.len() != specs.len() {
            return Err(bad(format!(
                "{} state tensors given; the graph takes {}",
                state.len(),
                specs.len()
            )));
        }
        for (k, (t, spec)) in state.iter().zip(specs).enumerate() {
            if t.dtype() != spec.dtype || t.shape() != spec.shape.as_slice() {
                return Err(bad(format!(
                    "state input {k} must be {:?} {:?}, got {:?} {:?}",
                    spec.dtype,
                    spec.shape,
                    t.dtype(),
                    t.shape()
                )));
            }
        }
        Ok(())
    }
}

/// Reads a whole file, naming it in the error.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, ModelError> {
    std::fs::read(path).map_err(|error| ModelError::Io {
        path: path.to_path_buf(),
        error,
    })
}

/// Reads a JSON manifest: `path` itself, or `default_name` inside it when it is a directory.
/// Returns the file's path (its directory holds the files it names) and the parsed manifest.
pub(crate) fn read_manifest<T: serde::de::DeserializeOwned>(
    path: &Path,
    default_name: &str,
) -> Result<(PathBuf, T), ModelError> {
    let path = if path.is_dir() {
        path.join(default_name)
    } else {
        path.to_path_buf()
    };
    let manifest =
        serde_json::from_slice(&read_file(&path)?).map_err(|error| ModelError::Json {
            path: path.clone(),
            error,
        })?;
    Ok((path, manifest))
}

/// The path of `name` beside the manifest at `manifest`.
pub(crate) fn sibling(manifest: &Path, name: &str) -> PathBuf {
    manifest.parent().unwrap_or(Path::new(".")).join(name)
}

/// Reads int8/int16/int32 tensors from a safetensors file.
pub fn read_safetensors(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, Tensor>, ModelError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| ModelError::Safetensors {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let dtype = match view.dtype() {
            safetensors::Dtype::I8 => DType::I8,
            safetensors::Dtype::I16 => DType::I16,
            safetensors::Dtype::I32 => DType::I32,
            other => {
                return Err(ModelError::Weight {
                    name,
                    reason: format!(
                        "{other:?} is not an integer type this library holds (i8, i16, i32)"
                    ),
                })
            }
        };
        let tensor = Tensor::from_le_bytes(dtype, view.shape(), view.data()).map_err(|e| {
            ModelError::Weight {
                name: name.clone(),
                reason: e.to_string(),
            }
        })?;
        out.insert(name, tensor);
    }
    Ok(out)
}

/// Encodes tensors as a safetensors file (names sorted, so the bytes are reproducible).
pub fn write_safetensors(tensors: &BTreeMap<String, Tensor>) -> Result<Vec<u8>, ModelError> {
    let bytes: Vec<(String, Vec<u8>, &Tensor)> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.to_le_bytes(), t))
        .collect();
    let views = bytes
        .iter()
        .map(|(name, data, t)| {
            let dtype = match t.dtype() {
                DType::I8 => safetensors::Dtype::I8,
                DType::I16 => safetensors::Dtype::I16,
                DType::I32 => safetensors::Dtype::I32,
            };
            TensorView::new(dtype, t.shape().to_vec(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| ModelError::Weight {
                    name: name.clone(),
                    reason: e.to_string(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize(views, None).map_err(|e| ModelError::Weight {
        name: String::new(),
        reason: e.to_string(),
    })
}

/// The zero tensor of `spec`'s type and shape, refused with `too_large(bytes)` above `max` bytes
/// (`usize::MAX` when the size overflows): a model file cannot make a load allocate without bound.
fn zero_tensor(
    spec: &InputSpec,
    max: usize,
    too_large: impl Fn(usize) -> ModelError,
) -> Result<Tensor, ModelError> {
    let bytes =
        crate::tensor::byte_len(spec.dtype, &spec.shape).map_err(|_| too_large(usize::MAX))?;
    if bytes > max {
        return Err(too_large(bytes));
    }
    Ok(Tensor::from_le_bytes(
        spec.dtype,
        &spec.shape,
        &vec![0; bytes],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn mlp_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/mnist-mlp")
    }

    /// A graph longer than the trace tree is refused before anything runs, rather than given
    /// trace roots that no longer commit to every node.
    #[test]
    fn graphs_longer_than_the_trace_tree_are_refused() {
        let max = 1 << crate::executor::TRACE_DEPTH;
        let chain = |len: usize| ModelManifest {
            name: "chain".into(),
            input: InputSpec {
                dtype: DType::I8,
                shape: vec![4],
                scale: 1.0,
            },
            nodes: (0..len)
                .map(|i| Node {
                    name: format!("r{i}"),
                    op: Op::Relu,
                    inputs: vec![if i == 0 {
                        TensorRef::Input
                    } else {
                        TensorRef::Node(i - 1)
                    }],
                })
                .collect(),
            state: Vec::new(),
            weights: "weights.safetensors".into(),
            provenance: serde_json::Value::Null,
        };
        for (len, refused) in [(3, false), (max + 1, true)] {
            let result = Model::new(chain(len), BTreeMap::new());
            assert_eq!(
                matches!(result, Err(ModelError::TooManyNodes { .. })),
                refused,
                "{len} nodes: {result:?}"
            );
        }
    }

    /// A copy of the committed MLP with `edit` applied to its JSON and weights bytes.
    fn edited(
        tag: &str,
        edit_json: impl Fn(&str) -> String,
        edit_weights: impl Fn(Vec<u8>) -> Vec<u8>,
    ) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("opml-model-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let json = std::fs::read_to_string(mlp_dir().join("model.json")).unwrap();
        std::fs::write(dir.join("model.json"), edit_json(&json)).unwrap();
        let weights = std::fs::read(mlp_dir().join("weights.safetensors")).unwrap();
        std::fs::write(dir.join("weights.safetensors"), edit_weights(weights)).unwrap();
        dir
    }

    #[test]
    fn malformed_models_are_named_errors() {
        let keep = |s: &str| s.to_string();
        let same = |w: Vec<u8>| w;
        let cases: Vec<(&str, PathBuf, &str)> = vec![
            (
                "json",
                edited("json", |s| s[..s.len() / 2].to_string(), same),
                "model.json: EOF",
            ),
            (
                "truncated weights",
                edited("trunc", keep, |w| w[..w.len() - 100].to_vec()),
                "not a safetensors file",
            ),
            (
                "missing weight",
                edited(
                    "missing",
                    |s| s.replace("\"fc2.bias\"", "\"fc9.bias\""),
                    same,
                ),
                "node 2 (fc2): weight fc9.bias is not in the weights file",
            ),
            (
                "wrong weight for the op",
                edited(
                    "shape",
                    |s| s.replace("\"fc2.weight\"", "\"fc1.weight\""),
                    same,
                ),
                "node 2 (fc2): linear:",
            ),
            (
                "forward reference",
                edited(
                    "forward",
                    |s| s.replacen("\"input\"\n", "{\"node\": 3}\n", 1),
                    same,
                ),
                "node 0 (flatten0): input node 3 does not come before it",
            ),
            (
                "an input of a terabyte",
                edited(
                    "huge",
                    |s| s.replacen("1,\n      28,\n      28", "1000000,\n      1000000", 1),
                    same,
                ),
                "a request carries at most 65536",
            ),
            (
                "an input whose size overflows",
                edited(
                    "overflow",
                    |s| {
                        s.replacen(
                            "1,\n      28,\n      28",
                            "4294967296,\n      4294967296,\n      4294967296",
                            1,
                        )
                    },
                    same,
                ),
                "a request carries at most 65536",
            ),
        ];
        for (what, dir, want) in cases {
            let err = Model::load(&dir).unwrap_err().to_string();
            assert!(err.contains(want), "{what}: {err}");
            std::fs::remove_dir_all(dir).ok();
        }
    }

    #[test]
    fn commitment_is_stable_and_covers_the_weights() {
        let model = Model::load(&mlp_dir()).unwrap();
        let again = Model::load(&mlp_dir()).unwrap();
        assert_eq!(model.commitment().unwrap(), again.commitment().unwrap());
        let mut changed = model.clone();
        if let Some(Tensor::I8(w)) = changed.weights.get_mut("fc2.weight") {
            w[[0, 0]] = w[[0, 0]].wrapping_add(1);
        }
        assert_ne!(model.commitment().unwrap(), changed.commitment().unwrap());
        let mut relinked = model.clone();
        relinked.manifest.nodes[1].name = "renamed".into();
        // Names are for people; the commitment covers ops, params and wiring only.
        assert_eq!(model.commitment().unwrap(), relinked.commitment().unwrap());
    }

    /// State inputs leave every existing model file as it was: no `state` key is written for a
    /// graph without them, so the committed files re-serialize to the same JSON; a graph with them
    /// round-trips through its files, and its commitment covers the state inputs' shapes.
    #[test]
    fn state_inputs_are_backward_compatible_and_committed() {
        let json = std::fs::read_to_string(mlp_dir().join("model.json")).unwrap();
        let manifest: ModelManifest = serde_json::from_str(&json).unwrap();
        assert!(manifest.state.is_empty());
        let again = serde_json::to_value(&manifest).unwrap();
        assert_eq!(
            again,
            serde_json::from_str::<serde_json::Value>(&json).unwrap()
        );
        assert!(again.get("state").is_none());

        let step = crate::llama::random_model(&crate::llama::LlamaConfig::tiny(), 3, 2)
            .unwrap()
            .model;
        let dir = std::env::temp_dir().join(format!("opml-state-{}", std::process::id()));
        step.save(&dir).unwrap();
        let loaded = Model::load(&dir).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(loaded.manifest, step.manifest);
        assert_eq!(loaded.commitment().unwrap(), step.commitment().unwrap());
        let mut other = step.clone();
        other.manifest.state[0].shape[1] += 1;
        assert_ne!(other.state_root().unwrap(), step.state_root().unwrap());
        let mut hostile = step.clone();
        hostile.manifest.state[0].shape = vec![1 << 20, 1 << 20];
        let err = Model::new(hostile.manifest, hostile.weights).unwrap_err();
        assert!(err.to_string().contains("state input 0"), "{err}");
    }
}
