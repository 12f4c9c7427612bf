//! Phase 2: the model's graph nodes, run natively.

use crate::phase::{Phase, PhaseError};
use crate::step_phase::StepPhase;
use opml_dnn::executor::{prefix_roots, trace_path, trace_root, TRACE_DEPTH};
use opml_dnn::{Model, Tensor};
use opml_vm::{Hash, InputTensor};
use std::sync::Arc;

/// One party's view of a model run: the node outputs it believes in and the trace it claims.
///
/// State `i` is the trace root over the first `i` output commitments (state 0 is the empty trace,
/// state `N` the posted trace root). The outputs are cached, so every claim is a lookup.
#[derive(Debug, Clone)]
pub struct GraphPhase {
    model: Arc<Model>,
    input: Tensor,
    input_commitment: Hash,
    /// The outputs the VM phase of a node reads (its inputs are earlier nodes' outputs).
    outputs: Vec<Tensor>,
    /// The trace leaves: the outputs' commitments.
    leaves: Vec<Hash>,
    /// `roots[i]` = trace state `i`.
    roots: Vec<Hash>,
    node_leaves: Vec<Hash>,
    weight_commitments: Vec<Hash>,
}

/// Everything of phase 2 that opens node `node`'s VM game: the node as committed in the model, its
/// input commitments with their proofs, and its output `O_i` with its path in the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEvidence {
    /// The node index `i`.
    pub node: usize,
    /// Its op kind code.
    pub kind: u8,
    /// Commitment of its params vector (kernel slot 0).
    pub params: Hash,
    /// Per input: tag (0 request input, 1 weight, 2 node) and index.
    pub refs: Vec<(u8, u32)>,
    /// Path of the node leaf in the model's nodes root.
    pub node_path: Vec<Hash>,
    /// Per input: its tensor commitment.
    pub inputs: Vec<Hash>,
    /// The weight and node inputs' paths, concatenated in input order.
    pub input_paths: Vec<Hash>,
    /// `O_i`.
    pub output: Hash,
    /// Path of leaf `i` in trace states `i` and `i + 1`.
    pub output_path: [Hash; TRACE_DEPTH],
}

/// Refuses graphs with state inputs (a decoder step's KV cache): their inputs come from a token
/// state, which the token phase (protocol section 13, not built yet) proves, so this phase alone
/// would have no commitment to check them against (input tag 3).
fn no_state_inputs(model: &Model) -> Result<(), PhaseError> {
    if model.manifest.state.is_empty() {
        return Ok(());
    }
    Err(PhaseError::Model(opml_dnn::ModelError::State {
        reason: format!(
            "the graph takes {} state inputs; disputes over them need the token phase \
             (protocol section 13), which is not built yet",
            model.manifest.state.len()
        ),
    }))
}

impl GraphPhase {
    /// The honest view: the model run natively on `input`, its outputs' commitments and trace
    /// roots taken from the run (hashed there while the nodes ran), never hashed again.
    pub fn honest(model: Arc<Model>, input: Tensor) -> Result<Self, PhaseError> {
        no_state_inputs(&model)?;
        let trace = model.run(&input)?;
        let count = trace.nodes.len();
        let (mut outputs, mut leaves) = (Vec::with_capacity(count), Vec::with_capacity(count));
        let mut roots = Vec::with_capacity(count + 1);
        roots.push(trace_root(&[]));
        for node in trace.nodes {
            outputs.push(node.output);
            leaves.push(node.commitment);
            roots.push(node.trace_root);
        }
        Self::from_parts(model, input, outputs, leaves, roots)
    }

    /// A view from given node outputs: its trace leaves are their commitments.
    pub fn from_outputs(
        model: Arc<Model>,
        input: Tensor,
        outputs: Vec<Tensor>,
    ) -> Result<Self, PhaseError> {
        no_state_inputs(&model)?;
        let leaves: Vec<Hash> = outputs
            .iter()
            .map(Tensor::commitment)
            .collect::<Result<_, _>>()?;
        let roots = std::iter::once(trace_root(&[]))
            .chain(prefix_roots(&leaves))
            .collect();
        Self::from_parts(model, input, outputs, leaves, roots)
    }

    /// A view from outputs, their commitments and the trace roots over them (`roots[i]` over the
    /// first `i` leaves).
    fn from_parts(
        model: Arc<Model>,
        input: Tensor,
        outputs: Vec<Tensor>,
        leaves: Vec<Hash>,
        roots: Vec<Hash>,
    ) -> Result<Self, PhaseError> {
        Ok(Self {
            input_commitment: input.commitment()?,
            node_leaves: model.node_leaves()?,
            weight_commitments: model.weight_commitments()?,
            model,
            input,
            outputs,
            leaves,
            roots,
        })
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// The request input.
    pub fn input(&self) -> &Tensor {
        &self.input
    }

    /// The node outputs of this view.
    pub fn outputs(&self) -> &[Tensor] {
        &self.outputs
    }

    /// The output commitment this view posts: the last trace leaf.
    pub fn output_commitment(&self) -> Hash {
        *self.leaves.last().expect("a checked model has nodes")
    }

    /// The trace root this view posts.
    pub fn trace_root(&self) -> Hash {
        *self.roots.last().expect("roots has N + 1 entries")
    }

    /// Node `node`'s kernel run in the VM on this view's outputs, recorded with checkpoints.
    pub fn step_phase(&self, node: usize, max_steps: u64) -> Result<StepPhase, PhaseError> {
        let inputs = self
            .model
            .node_inputs(node, &self.input, &self.outputs[..node])?;
        let (machine, header) = self.model.manifest.nodes[node]
            .op
            .machine(&inputs)
            .map_err(|e| PhaseError::Kernel {
                node,
                reason: e.to_string(),
            })?;
        StepPhase::record(node, machine, header, max_steps)
    }
}

impl Phase for GraphPhase {
    type Terminal = NodeEvidence;

    fn name(&self) -> &'static str {
        "nodes"
    }

    fn len(&self) -> u64 {
        self.leaves.len() as u64
    }

    fn claim(&mut self, at: u64) -> Result<Hash, PhaseError> {
        Ok(self.roots[(at as usize).min(self.leaves.len())])
    }

    fn terminal(&mut self, at: u64) -> Result<NodeEvidence, PhaseError> {
        let node = at as usize;
        if node >= self.leaves.len() {
            return Err(PhaseError::OutOfRange {
                at,
                len: self.len(),
            });
        }
        let op = &self.model.manifest.nodes[node].op;
        let inputs = self
            .model
            .node_inputs(node, &self.input, &self.outputs[..node])?;
        let params = op
            .params(&inputs)
            .map_err(|e| PhaseError::Kernel {
                node,
                reason: e.to_string(),
            })?
            .commitment()?;
        let refs = self.model.input_refs(node);
        let weights = InputTensor::from_bytes(self.weight_commitments.concat());
        let mut input_commitments = Vec::with_capacity(refs.len());
        let mut input_paths = Vec::new();
        for &(tag, index) in &refs {
            match tag {
                0 => input_commitments.push(self.input_commitment),
                1 => {
                    input_commitments.push(self.weight_commitments[index as usize]);
                    input_paths.extend(weights.chunk_path(index));
                }
                _ => {
                    input_commitments.push(self.leaves[index as usize]);
                    input_paths.extend(trace_path(&self.leaves[..node], index as usize));
                }
            }
        }
        Ok(NodeEvidence {
            node,
            kind: op.kind() as u8,
            params,
            refs,
            node_path: InputTensor::from_bytes(self.node_leaves.concat()).chunk_path(node as u32),
            inputs: input_commitments,
            input_paths,
            output: self.leaves[node],
            output_path: trace_path(&self.leaves[..=node], node),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opml_dnn::llama::{random_model, LlamaConfig};

    /// A decoder step with a KV cache is refused by phase 2 alone with an error that names the token
    /// phase, rather than treating its state inputs as node outputs (tag 3 read as tag 2).
    #[test]
    fn graphs_with_state_inputs_are_refused() {
        let config = LlamaConfig::tiny();
        let token = Tensor::I32(ndarray::Array1::from(vec![1]).into_dyn());
        for (position, refused) in [(0, false), (1, true)] {
            let model = Arc::new(random_model(&config, 1, position).unwrap().model);
            let result = GraphPhase::honest(model.clone(), token.clone());
            assert_eq!(result.is_err(), refused, "position {position}");
            if refused {
                let outputs = vec![token.clone(); model.manifest.nodes.len()];
                for err in [
                    result.err().unwrap(),
                    GraphPhase::from_outputs(model, token.clone(), outputs)
                        .err()
                        .unwrap(),
                ] {
                    assert!(err.to_string().contains("token phase"), "{err}");
                }
            }
        }
    }
}
