//! Phase 1: the VM steps of one node's kernel run.

use crate::phase::{Phase, PhaseError};
use opml_vm::witness::AccumulatorSnapshot;
use opml_vm::{Checkpoints, Hash, Machine, RunOutcome, VmState};

/// Steps between checkpoints: a claim costs at most this many steps from the nearest snapshot.
pub const CHECKPOINT_INTERVAL: u64 = 1 << 16;

/// A kernel run recorded with checkpoints, so that a claim at any step resumes from the nearest
/// snapshot and never re-runs from step 0.
#[derive(Debug, Clone)]
pub struct StepPhase {
    checkpoints: Checkpoints,
    steps: u64,
    final_claim: FinalClaim,
}

/// The final VM state a defender shows when it opens phase 1: the state, its output accumulator
/// and the output tensor's header, from which the chain recomputes `O_i`. Encoded (237, 868 and
/// the header's bytes) only when sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalClaim {
    /// The state (protocol section 2).
    pub state: VmState,
    /// The accumulator's preimage, whose hash is the state's `output_acc`.
    pub accumulator: AccumulatorSnapshot,
    /// The output tensor's header (protocol section 1.3), as its bytes.
    pub header: Vec<u8>,
}

impl FinalClaim {
    /// The claimed final state hash.
    pub fn state_hash(&self) -> Hash {
        opml_vm::keccak256(&self.state.encode())
    }
}

impl StepPhase {
    /// Runs `machine` (node `node`'s kernel at step 0) to its exit, at most `max_steps` steps,
    /// snapshotting every [`CHECKPOINT_INTERVAL`] steps. `header` is the output tensor's header.
    pub fn record(
        node: usize,
        machine: Machine,
        header: Vec<u8>,
        max_steps: u64,
    ) -> Result<Self, PhaseError> {
        let (checkpoints, mut last) = Checkpoints::record(machine, CHECKPOINT_INTERVAL, max_steps);
        let outcome = last.outcome();
        if outcome != RunOutcome::Exited(0) {
            return Err(PhaseError::Kernel {
                node,
                reason: format!("{outcome:?} after {} steps", last.step_count()),
            });
        }
        let state = last.state();
        Ok(Self {
            checkpoints,
            steps: state.step,
            final_claim: FinalClaim {
                state,
                accumulator: last.output().snapshot(),
                header,
            },
        })
    }

    /// The run's true final state.
    pub fn final_claim(&self) -> &FinalClaim {
        &self.final_claim
    }
}

impl Phase for StepPhase {
    /// The one-step witness (protocol section 4).
    type Terminal = Vec<u8>;

    fn name(&self) -> &'static str {
        "steps"
    }

    fn len(&self) -> u64 {
        self.steps
    }

    fn claim(&mut self, at: u64) -> Result<Hash, PhaseError> {
        Ok(self.checkpoints.state_hash_at(at))
    }

    fn terminal(&mut self, at: u64) -> Result<Vec<u8>, PhaseError> {
        Ok(self.checkpoints.prove(at).witness)
    }
}
