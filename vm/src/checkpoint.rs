//! Checkpoints of a run, so that a bisection asking for the state or witness at any step resumes
//! from the nearest snapshot instead of re-running from step 0.

use crate::hash::Hash;
use crate::machine::Machine;
use crate::witness::StepProof;

/// A snapshot of the machine every `interval` steps of one run.
///
/// Each snapshot is hashed when it is taken, so the Merkle caches travel with it: resuming from a
/// snapshot and asking for a root re-hashes only the pages written since.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    interval: u64,
    /// `snapshots[i]` is the machine at step `i * interval` (or where it stopped, for the last one).
    snapshots: Vec<(Machine, Hash)>,
}

impl Checkpoints {
    /// Runs `machine` to `until` steps (or until it stops), snapshotting every `interval` steps.
    /// Returns the checkpoints and the machine at the end.
    pub fn record(mut machine: Machine, interval: u64, until: u64) -> (Self, Machine) {
        assert!(interval > 0, "checkpoint interval must be positive");
        let mut snapshots = Vec::new();
        loop {
            let hash = machine.state_hash();
            let at = machine.step_count();
            snapshots.push((machine.clone(), hash));
            let next = (at / interval + 1) * interval;
            if at >= until || machine.status() != crate::Status::Running {
                break;
            }
            machine.run_to(next.min(until));
        }
        (
            Self {
                interval,
                snapshots,
            },
            machine,
        )
    }

    /// The step interval between snapshots.
    pub fn interval(&self) -> u64 {
        self.interval
    }

    /// Number of snapshots held.
    pub fn len(&self) -> usize {
        self.snapshots.len()
    }

    /// Whether no snapshot is held (never true for a recorded run).
    pub fn is_empty(&self) -> bool {
        self.snapshots.is_empty()
    }

    /// The machine at `step`: the nearest snapshot at or before it, run forward. A step past the end
    /// of the run gives the final (stopped) machine.
    pub fn machine_at(&self, step: u64) -> Machine {
        let index = ((step / self.interval) as usize).min(self.snapshots.len() - 1);
        let mut machine = self.snapshots[index].0.clone();
        machine.run_to(step);
        machine
    }

    /// The state hash at `step`; free at snapshot steps.
    pub fn state_hash_at(&self, step: u64) -> Hash {
        let index = (step / self.interval) as usize;
        match self.snapshots.get(index) {
            Some((m, hash)) if m.step_count() == step => *hash,
            _ => self.machine_at(step).state_hash(),
        }
    }

    /// The witness of step `step` (from the state after `step` steps to the next).
    pub fn prove(&self, step: u64) -> StepProof {
        self.machine_at(step).prove_step()
    }
}
