//! The native executor: runs a model's graph and yields each node's output, its commitment and the
//! phase-2 trace (DESIGN decision 8), and re-executes any node in the VM for comparison.

use crate::graph::{Model, ModelError};
use crate::kernel::KernelRun;
use crate::tensor::Tensor;
use opml_vm::hash::{hash_pair, zero_hash};
use opml_vm::Hash;
use std::time::{Duration, Instant};

/// Depth of the phase-2 trace tree: a model has at most 2^16 nodes.
pub const TRACE_DEPTH: usize = 16;

/// One node's result.
#[derive(Debug, Clone)]
pub struct NodeResult {
    /// The output tensor.
    pub output: Tensor,
    /// Its commitment `O_i`.
    pub commitment: Hash,
    /// The trace root after this node: leaves `0..=i` hold `O_0..O_i`, the rest zero.
    pub trace_root: Hash,
    /// Time the op took natively.
    pub time: Duration,
}

/// A whole native run.
#[derive(Debug, Clone)]
pub struct Trace {
    /// Per node, in order.
    pub nodes: Vec<NodeResult>,
}

impl Trace {
    /// The model's output (the last node's).
    pub fn output(&self) -> &Tensor {
        &self.nodes.last().expect("a checked model has nodes").output
    }

    /// The trace root after the last node.
    pub fn root(&self) -> Hash {
        self.nodes
            .last()
            .expect("a checked model has nodes")
            .trace_root
    }

    /// The outputs, in node order (for `Model::node_inputs`).
    pub fn outputs(&self) -> Vec<Tensor> {
        self.nodes.iter().map(|n| n.output.clone()).collect()
    }
}

/// The root of the fixed-depth trace tree whose first leaves are `leaves` and the rest zero.
pub fn trace_root(leaves: &[Hash]) -> Hash {
    let mut level: Vec<Hash> = leaves.to_vec();
    for h in 0..TRACE_DEPTH {
        if level.len() % 2 == 1 {
            level.push(zero_hash(h));
        }
        level = level
            .chunks_exact(2)
            .map(|p| hash_pair(&p[0], &p[1]))
            .collect();
        if level.is_empty() {
            return zero_hash(TRACE_DEPTH);
        }
    }
    level[0]
}

/// The trace tree filled one leaf at a time: each [`TraceTree::push`] and [`TraceTree::root`] hashes
/// at most [`TRACE_DEPTH`] pairs, so a run's per-node trace roots cost O(nodes), not the O(nodes²)
/// of recomputing [`trace_root`] over every prefix. Holds the left siblings of the next leaf's path.
#[derive(Debug, Clone, Default)]
pub struct TraceTree {
    /// At level `h`, the root of the last complete left subtree, where the count's bit `h` is set.
    branch: [Hash; TRACE_DEPTH],
    /// Leaves pushed so far.
    count: usize,
}

impl TraceTree {
    /// Appends the next leaf; returns the new root (that of [`trace_root`] over all leaves pushed).
    pub fn push(&mut self, leaf: Hash) -> Hash {
        let (mut node, mut size) = (leaf, self.count);
        for h in 0..TRACE_DEPTH {
            if size & 1 == 0 {
                self.branch[h] = node;
                break;
            }
            node = pair(&self.branch[h], &node);
            size >>= 1;
        }
        self.count += 1;
        self.root()
    }

    /// The root over the leaves pushed so far, the rest zero.
    pub fn root(&self) -> Hash {
        let (mut node, mut size) = (zero_hash(0), self.count);
        for h in 0..TRACE_DEPTH {
            node = if size & 1 == 1 {
                pair(&self.branch[h], &node)
            } else {
                pair(&node, &zero_hash(h))
            };
            size >>= 1;
        }
        node
    }
}

/// `hash_pair`, counted in tests so that a test can hold the trace tree to a linear number of hashes.
fn pair(left: &Hash, right: &Hash) -> Hash {
    #[cfg(test)]
    tests::PAIRS.with(|c| c.set(c.get() + 1));
    hash_pair(left, right)
}

/// The siblings (bottom up) of leaf `index` in the trace tree whose first leaves are `leaves`: the
/// one path that proves leaf `index` both in the state before it is set (zero) and after.
pub fn trace_path(leaves: &[Hash], index: usize) -> [Hash; TRACE_DEPTH] {
    let mut path = [[0u8; 32]; TRACE_DEPTH];
    let mut level: Vec<Hash> = leaves.to_vec();
    for (h, sibling) in path.iter_mut().enumerate() {
        if level.len() % 2 == 1 {
            level.push(zero_hash(h));
        }
        *sibling = level
            .get((index >> h) ^ 1)
            .copied()
            .unwrap_or_else(|| zero_hash(h));
        level = level
            .chunks_exact(2)
            .map(|p| hash_pair(&p[0], &p[1]))
            .collect();
    }
    path
}

impl Model {
    /// Runs the graph natively on `input`.
    pub fn run(&self, input: &Tensor) -> Result<Trace, ModelError> {
        self.run_with_state(input, &[])
    }

    /// Runs a graph with state inputs (a decoder step's KV cache, [`crate::ModelManifest::state`])
    /// natively on `input` and `state`.
    pub fn run_with_state(&self, input: &Tensor, state: &[Tensor]) -> Result<Trace, ModelError> {
        self.check_state(state)?;
        let spec = &self.manifest.input;
        if input.dtype() != spec.dtype || input.shape() != spec.shape.as_slice() {
            return Err(ModelError::Node {
                index: 0,
                name: "input".into(),
                reason: format!(
                    "the model takes {:?} {:?}, got {:?} {:?}",
                    spec.dtype,
                    spec.shape,
                    input.dtype(),
                    input.shape()
                ),
            });
        }
        let mut outputs: Vec<Tensor> = Vec::with_capacity(self.manifest.nodes.len());
        let mut tree = TraceTree::default();
        let mut nodes = Vec::with_capacity(self.manifest.nodes.len());
        for (index, node) in self.manifest.nodes.iter().enumerate() {
            let inputs = self.node_inputs_with_state(index, input, state, &outputs)?;
            let start = Instant::now();
            let output = node.op.native(&inputs).map_err(|e| ModelError::Node {
                index,
                name: node.name.clone(),
                reason: e.to_string(),
            })?;
            let time = start.elapsed();
            let commitment = output.commitment()?;
            nodes.push(NodeResult {
                output: output.clone(),
                commitment,
                trace_root: tree.push(commitment),
                time,
            });
            outputs.push(output);
        }
        Ok(Trace { nodes })
    }

    /// Re-executes node `index` of a native run in the VM.
    pub fn run_node_in_vm(
        &self,
        index: usize,
        input: &Tensor,
        trace: &Trace,
        max_steps: u64,
    ) -> Result<KernelRun, ModelError> {
        self.run_node_in_vm_with_state(index, input, &[], trace, max_steps)
    }

    /// [`Model::run_node_in_vm`] of a graph with state inputs.
    pub fn run_node_in_vm_with_state(
        &self,
        index: usize,
        input: &Tensor,
        state: &[Tensor],
        trace: &Trace,
        max_steps: u64,
    ) -> Result<KernelRun, ModelError> {
        // Borrowed, not cloned: a loop over every node must not copy every output each time.
        let inputs =
            self.node_inputs_with(index, input, state, index.min(trace.nodes.len()), |j| {
                &trace.nodes[j].output
            })?;
        let node = &self.manifest.nodes[index];
        node.op
            .run_in_vm(&inputs, max_steps)
            .map_err(|e| ModelError::Node {
                index,
                name: node.name.clone(),
                reason: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// Pairs hashed by `pair` on this thread.
        pub(super) static PAIRS: Cell<usize> = const { Cell::new(0) };
    }

    /// The incremental tree gives the root of every prefix, and each push costs at most two paths
    /// of hashes, whatever the number of leaves before it (the old per-prefix recomputation did
    /// O(leaves) hashes per node, O(nodes²) per run).
    #[test]
    fn the_trace_tree_matches_trace_root_with_a_bounded_number_of_hashes() {
        let leaves: Vec<Hash> = (0..1000u32)
            .map(|k| opml_vm::keccak256(&k.to_be_bytes()))
            .collect();
        let mut tree = TraceTree::default();
        assert_eq!(tree.root(), trace_root(&[]));
        for (i, leaf) in leaves.iter().enumerate() {
            let before = PAIRS.with(Cell::get);
            let root = tree.push(*leaf);
            let hashes = PAIRS.with(Cell::get) - before;
            assert!(hashes <= 2 * TRACE_DEPTH, "push {i} hashed {hashes} pairs");
            if [0, 1, 2, 3, 7, 8, 511, 512, 999].contains(&i) {
                assert_eq!(root, trace_root(&leaves[..=i]), "after {} leaves", i + 1);
            }
        }
    }

    #[test]
    fn trace_roots_are_fixed_depth_roots() {
        let leaves: Vec<Hash> = (0..5u8).map(|k| [k + 1; 32]).collect();
        // Full tree by hand for 5 leaves at depth 16.
        let mut padded = leaves.clone();
        padded.resize(8, [0; 32]);
        let mut level = padded;
        while level.len() > 1 {
            level = level
                .chunks_exact(2)
                .map(|p| hash_pair(&p[0], &p[1]))
                .collect();
        }
        let mut root = level[0];
        for h in 3..TRACE_DEPTH {
            root = hash_pair(&root, &zero_hash(h));
        }
        assert_eq!(trace_root(&leaves), root);
        assert_eq!(trace_root(&[]), zero_hash(TRACE_DEPTH));
    }

    /// A path proves its leaf in the root with the leaf set and in the root before it was set.
    #[test]
    fn trace_paths_prove_a_leaf_and_its_absence() {
        let leaves: Vec<Hash> = (0..11u8).map(|k| [k + 1; 32]).collect();
        for index in [0usize, 1, 4, 7, 10] {
            let path = trace_path(&leaves[..=index], index);
            let root_with = |leaf: Hash| {
                path.iter().enumerate().fold(leaf, |node, (h, s)| {
                    if (index >> h) & 1 == 1 {
                        hash_pair(s, &node)
                    } else {
                        hash_pair(&node, s)
                    }
                })
            };
            assert_eq!(root_with(leaves[index]), trace_root(&leaves[..=index]));
            assert_eq!(root_with([0; 32]), trace_root(&leaves[..index]));
        }
    }
}
