//! The native executor: runs a model's graph and yields each node's output, its commitment and the
//! phase-2 trace (DESIGN decision 8), and re-executes any node in the VM for comparison.

use crate::graph::{Model, ModelError};
use crate::kernel::KernelRun;
use crate::tensor::{Tensor, TensorError};
use opml_vm::hash::{hash_pair, zero_hash};
use opml_vm::lanes::hash_blocks;
use opml_vm::Hash;
use std::sync::OnceLock;
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
        self.append(leaf);
        self.root()
    }

    /// Appends the next leaf without computing the root: one hash per carry, two on average.
    pub fn append(&mut self, leaf: Hash) {
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

/// The trace root after each leaf of `leaves` ([`trace_root`] of every non-empty prefix): the
/// tree's frontier after each leaf in one pass, then the roots from their frontiers.
pub fn prefix_roots(leaves: &[Hash]) -> Vec<Hash> {
    let mut tree = TraceTree::default();
    let frontiers: Vec<TraceTree> = leaves
        .iter()
        .map(|leaf| {
            tree.append(*leaf);
            tree.clone()
        })
        .collect();
    // Every root climbs its own path, all of them one level at a time (as `TraceTree::root`
    // does), each level's pairs hashed many at once.
    let mut nodes = vec![zero_hash(0); leaves.len()];
    let mut blocks = Vec::with_capacity(64 * leaves.len());
    for h in 0..TRACE_DEPTH {
        blocks.clear();
        let zero = zero_hash(h);
        for (node, frontier) in nodes.iter().zip(&frontiers) {
            let (left, right) = if (frontier.count >> h) & 1 == 1 {
                (&frontier.branch[h], node)
            } else {
                (node, &zero)
            };
            blocks.extend_from_slice(left);
            blocks.extend_from_slice(right);
        }
        nodes.clear();
        hash_blocks(&blocks, &mut nodes);
    }
    nodes
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

/// Output bytes from which [`Model::run`] hashes a node's commitment on another thread: below it,
/// hashing (a few microseconds) costs less than handing the job over.
const SPAWN_HASH_BYTES: usize = 8 << 10;

impl Model {
    /// Runs the graph natively on `input` and commits to every node's output.
    ///
    /// The ops run one after another on this thread; each large output's commitment is hashed
    /// on rayon's threads while the next nodes run, and the outputs are moved into the trace, never
    /// copied. The trace roots are computed at the end, in parallel. The result is that of a plain
    /// sequential loop, bit for bit.
    pub fn run(&self, input: &Tensor) -> Result<Trace, ModelError> {
        self.run_with_state(input, &[])
    }

    /// Runs a graph with state inputs (a decoder step's KV cache, [`crate::ModelManifest::state`])
    /// natively on `input` and `state`.
    pub fn run_with_state(&self, input: &Tensor, state: &[Tensor]) -> Result<Trace, ModelError> {
        self.check_input(input)?;
        self.check_state(state)?;
        let count = self.manifest.nodes.len();
        let outputs: Vec<OnceLock<Tensor>> = (0..count).map(|_| OnceLock::new()).collect();
        let commitments: Vec<OnceLock<Result<Hash, TensorError>>> =
            (0..count).map(|_| OnceLock::new()).collect();
        let mut times = Vec::with_capacity(count);
        rayon::in_place_scope(|scope| {
            for index in 0..count {
                let output = self.run_node(index, input, state, |j| {
                    outputs[j].get().expect("earlier outputs are set")
                })?;
                times.push(output.1);
                // Set once: `index` is visited once. The hash job reads it behind a shared borrow.
                let _ = outputs[index].set(output.0);
                let output = outputs[index].get().expect("set above");
                if output.byte_len() < SPAWN_HASH_BYTES {
                    let _ = commitments[index].set(output.commitment());
                    continue;
                }
                let commitments = &commitments;
                scope.spawn(move |_| {
                    let _ = commitments[index].set(output.commitment());
                });
            }
            Ok::<_, ModelError>(())
        })?;
        let leaves: Vec<Hash> = commitments
            .into_iter()
            .map(|c| c.into_inner().expect("every hash job ran"))
            .collect::<Result<_, _>>()?;
        let roots = prefix_roots(&leaves);
        Ok(Trace {
            nodes: outputs
                .into_iter()
                .zip(leaves.into_iter().zip(roots))
                .zip(times)
                .map(|((output, (commitment, trace_root)), time)| NodeResult {
                    output: output.into_inner().expect("every node ran"),
                    commitment,
                    trace_root,
                    time,
                })
                .collect(),
        })
    }

    /// Runs the graph natively on `input` and returns each node's output, committing to nothing:
    /// the cost of inference alone, which `opml bench dnn` holds [`Model::run`] against.
    pub fn run_plain(&self, input: &Tensor) -> Result<Vec<Tensor>, ModelError> {
        self.check_input(input)?;
        self.check_state(&[])?;
        let mut outputs: Vec<Tensor> = Vec::with_capacity(self.manifest.nodes.len());
        for index in 0..self.manifest.nodes.len() {
            let (output, _) = self.run_node(index, input, &[], |j| &outputs[j])?;
            outputs.push(output);
        }
        Ok(outputs)
    }

    /// Node `index` run natively on the request `input`, the `state` inputs and the earlier
    /// outputs given by `output`; its output and the time the op took.
    fn run_node<'a>(
        &'a self,
        index: usize,
        input: &'a Tensor,
        state: &'a [Tensor],
        output: impl Fn(usize) -> &'a Tensor,
    ) -> Result<(Tensor, Duration), ModelError> {
        let inputs = self.node_inputs_with(index, input, state, index, output)?;
        let node = &self.manifest.nodes[index];
        let start = Instant::now();
        let out = node.op.native(&inputs).map_err(|e| ModelError::Node {
            index,
            name: node.name.clone(),
            reason: e.to_string(),
        })?;
        Ok((out, start.elapsed()))
    }

    /// Checks that `input` has the type and shape the model takes.
    fn check_input(&self, input: &Tensor) -> Result<(), ModelError> {
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
        Ok(())
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
        for n in [0, 1, 2, 5, 64, 1000] {
            let roots = prefix_roots(&leaves[..n]);
            let mut tree = TraceTree::default();
            let want: Vec<Hash> = leaves[..n].iter().map(|l| tree.push(*l)).collect();
            assert_eq!(roots, want, "{n} leaves");
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
