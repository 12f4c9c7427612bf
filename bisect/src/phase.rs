//! What a dispute dissects: a sequence of committed states.

use opml_dnn::{ModelError, TensorError};
use opml_vm::Hash;

/// One phase of a dispute: states `0..=len()`, each with a commitment both sides can compute, and
/// the move that settles a single disputed transition.
///
/// Phase 2 (graph nodes) and phase 1 (VM steps) implement it; a third phase (tokens of an
/// autoregressive generation, batches) is one more implementation.
pub trait Phase {
    /// What settles one transition: the opening of the next phase, or a one-step proof.
    type Terminal;

    /// Short name for logs and transcripts.
    fn name(&self) -> &'static str;

    /// Number of transitions (the last state's index).
    fn len(&self) -> u64;

    /// Whether the phase has no transition at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The commitment of state `at`; states past the end repeat the last one.
    fn claim(&mut self, at: u64) -> Result<Hash, PhaseError>;

    /// The terminal move for the transition from state `at` to `at + 1`.
    fn terminal(&mut self, at: u64) -> Result<Self::Terminal, PhaseError>;
}

/// Why a phase could not answer.
#[derive(Debug, thiserror::Error)]
pub enum PhaseError {
    /// The model could not be run.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A tensor could not be encoded.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// A transition outside the phase.
    #[error("transition {at} is outside the phase (0..{len})")]
    OutOfRange {
        /// The transition asked for.
        at: u64,
        /// The phase's length.
        len: u64,
    },
    /// Node `node`'s kernel did not exit cleanly in the VM.
    #[error("node {node}'s kernel did not exit cleanly: {reason}")]
    Kernel {
        /// The node.
        node: usize,
        /// What happened.
        reason: String,
    },
}
