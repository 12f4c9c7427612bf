//! The two strategies: what the submitter and the challenger do at each turn, honest or scripted
//! by a [`Fault`].

use crate::client::{GameView, Side};
use crate::dissection::{honest_pick, interior_points};
use crate::fault::{corrupted_view, redeclare, relabelled_view, FaultSpecError, LyingSteps};
use crate::graph_phase::{GraphPhase, NodeEvidence};
use crate::phase::{Phase, PhaseError};
use crate::step_phase::{FinalClaim, StepPhase};
use crate::Fault;
use opml_dnn::{Model, Tensor};
use opml_vm::{keccak256, Hash};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;

/// Most VM steps a node's kernel may take (a party's default budget for recording one node's run).
pub const MAX_NODE_STEPS: u64 = 1 << 32;

/// One move of a game.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Move {
    /// The defender's interior claims of the disputed segment.
    Claims(Vec<Hash>),
    /// The challenger's choice of sub-segment, with the claims it was chosen from.
    Pick {
        /// The sub-segment.
        index: u64,
        /// The defender's claims, as logged.
        claims: Vec<Hash>,
    },
    /// The defender opens phase 1 at the disputed node.
    OpenNode(Box<NodeOpening>),
    /// Either side settles the single disputed step with its witness.
    ProveStep(Vec<u8>),
    /// The side to move has run out of clock.
    Timeout,
}

impl Move {
    /// Short name for logs and transcripts.
    pub fn name(&self) -> &'static str {
        match self {
            Move::Claims(_) => "claims",
            Move::Pick { .. } => "pick",
            Move::OpenNode(_) => "open-node",
            Move::ProveStep(_) => "prove-step",
            Move::Timeout => "timeout",
        }
    }
}

/// What opens phase 1: the node evidence of phase 2 and the claimed final VM state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeOpening {
    /// The node, its inputs and its output in the trace.
    pub evidence: NodeEvidence,
    /// The final VM state that ends on the output.
    pub final_claim: FinalClaim,
}

/// Why a party could not decide its move.
#[derive(Debug, thiserror::Error)]
pub enum PartyError {
    /// Its own computation failed.
    #[error(transparent)]
    Phase(#[from] PhaseError),
    /// Its fault does not fit the model.
    #[error(transparent)]
    Fault(#[from] FaultSpecError),
}

/// The defender's claims in phase 1: its true VM run, or a lie about it.
enum StepClaims {
    Honest(StepPhase),
    Lying(Box<LyingSteps>),
}

impl StepClaims {
    fn phase(&mut self) -> &mut dyn Phase<Terminal = Vec<u8>> {
        match self {
            StepClaims::Honest(p) => p,
            StepClaims::Lying(p) => p.as_mut(),
        }
    }

    fn final_claim(&self) -> &FinalClaim {
        match self {
            StepClaims::Honest(p) => p.final_claim(),
            StepClaims::Lying(p) => p.final_claim(),
        }
    }
}

/// The submitter of a result: posts its view's output and trace, and defends every game on it.
pub struct Submitter {
    view: GraphPhase,
    fault: Fault,
    steps: Option<(u32, StepClaims)>,
    max_node_steps: u64,
    stalled: bool,
}

impl Submitter {
    /// The submitter of `model` on `input`, honest unless `fault` is one of the submitter's.
    pub fn new(model: Arc<Model>, input: Tensor, fault: Fault) -> Result<Self, PartyError> {
        fault.node(model.manifest.nodes.len())?;
        let view = match fault {
            Fault::Node { node, .. } | Fault::StepCount { node, .. } | Fault::Boundary { node } => {
                corrupted_view(model, input, node, true)?
            }
            Fault::Trace { node } => corrupted_view(model, input, node, false)?,
            Fault::Header { node } => relabelled_view(model, input, node, redeclare)?,
            _ => GraphPhase::honest(model, input)?,
        };
        Ok(Self::with_view(view, fault))
    }

    /// The submitter whose view of the run (honest or already corrupted by `fault`) is `view`:
    /// how a bot resumes from the node outputs it cached.
    pub fn with_view(view: GraphPhase, fault: Fault) -> Self {
        Self {
            view,
            fault,
            steps: None,
            max_node_steps: MAX_NODE_STEPS,
            stalled: false,
        }
    }

    /// The same submitter, recording at most `steps` VM steps of a disputed node (a run that needs
    /// more is a [`PhaseError::Kernel`] of that game).
    pub fn with_max_node_steps(mut self, steps: u64) -> Self {
        self.max_node_steps = steps;
        self
    }

    /// The output commitment it posts.
    pub fn output(&self) -> Hash {
        let output = self.view.output_commitment();
        if self.fault == Fault::Output {
            keccak256(&[&output[..], b"opml: a wrong output"].concat())
        } else {
            output
        }
    }

    /// The trace root it posts.
    pub fn trace_root(&self) -> Hash {
        self.view.trace_root()
    }

    /// Its view of the run.
    pub fn view(&self) -> &GraphPhase {
        &self.view
    }

    /// Told that the chain refused its last move: a liar has nothing better to offer, so it stops
    /// moving (and will lose on time).
    pub fn refused(&mut self) {
        self.stalled = true;
    }

    /// Its move in `game`, if it has one now.
    pub fn next_move(&mut self, game: &GameView) -> Result<Option<Move>, PartyError> {
        if game.is_over() {
            return Ok(None);
        }
        if game.turn != Side::Submitter {
            return Ok(game.turn_expired().then_some(Move::Timeout));
        }
        if self.stalled {
            return Ok(None);
        }
        let points = interior_points(game.lo, game.hi, game.arity);
        Ok(Some(match game.phase {
            2 if game.hi - game.lo == 1 => self.open(game.lo as usize)?,
            2 => Move::Claims(
                points
                    .iter()
                    .map(|p| self.view.claim(*p))
                    .collect::<Result<_, _>>()?,
            ),
            1 if game.hi - game.lo > 1 => {
                let steps = self.step_claims(game.node as usize)?.phase();
                Move::Claims(
                    points
                        .iter()
                        .map(|p| steps.claim(*p))
                        .collect::<Result<_, _>>()?,
                )
            }
            _ => return Ok(None),
        }))
    }

    fn open(&mut self, node: usize) -> Result<Move, PartyError> {
        let evidence = self.view.terminal(node as u64)?;
        let final_claim = self.step_claims(node)?.final_claim().clone();
        Ok(Move::OpenNode(Box::new(NodeOpening {
            evidence,
            final_claim,
        })))
    }

    /// Its phase-1 claims for `node`: the true run where that ends on the output it claimed, else
    /// the lie its fault scripts.
    fn step_claims(&mut self, node: usize) -> Result<&mut StepClaims, PartyError> {
        if self.steps.as_ref().map(|s| s.0) != Some(node as u32) {
            let honest = self.view.step_phase(node, self.max_node_steps)?;
            let claimed = &self.view.outputs()[node];
            let inputs = self
                .view
                .model()
                .node_inputs(node, self.view.input(), &self.view.outputs()[..node])
                .map_err(PhaseError::from)?;
            let truth = self.view.model().manifest.nodes[node]
                .op
                .native(&inputs)
                .map_err(|e| PhaseError::Kernel {
                    node,
                    reason: e.to_string(),
                })?;
            let claims = if truth == *claimed || matches!(self.fault, Fault::Boundary { .. }) {
                StepClaims::Honest(honest)
            } else {
                let t = honest.len();
                let (lie_from, steps) = match self.fault {
                    Fault::Node {
                        lie_from: Some(n), ..
                    } => (n, t),
                    Fault::StepCount { delta, .. } => {
                        let steps = t.saturating_add_signed(delta).max(1);
                        (steps, steps)
                    }
                    _ => (t, t),
                };
                StepClaims::Lying(Box::new(LyingSteps::new(honest, claimed, lie_from, steps)?))
            };
            self.steps = Some((node as u32, claims));
        }
        Ok(&mut self.steps.as_mut().expect("just set").1)
    }
}

/// A challenger of results: re-executes, disputes what differs from its view, and plays to the end.
pub struct Challenger {
    view: GraphPhase,
    fault: Fault,
    steps: Option<(u32, StepPhase)>,
    max_node_steps: u64,
    moves: u32,
    rng: StdRng,
    stalled: bool,
}

impl Challenger {
    /// A challenger of `model` results on `input`, honest unless `fault` is one of the challenger's.
    pub fn new(model: Arc<Model>, input: Tensor, fault: Fault) -> Result<Self, PartyError> {
        let nodes = model.manifest.nodes.len();
        let view = match fault {
            Fault::Challenger { .. } => {
                let node = fault.node(nodes)?.expect("a challenger fault names a node");
                corrupted_view(model, input, node, true)?
            }
            _ => GraphPhase::honest(model, input)?,
        };
        Ok(Self::with_view(view, fault))
    }

    /// The challenger whose view of the run (honest or already corrupted by `fault`) is `view`.
    pub fn with_view(view: GraphPhase, fault: Fault) -> Self {
        let seed = match fault {
            Fault::ChallengerRandom { seed } => seed,
            _ => 0,
        };
        Self {
            view,
            fault,
            steps: None,
            max_node_steps: MAX_NODE_STEPS,
            moves: 0,
            rng: StdRng::seed_from_u64(seed),
            stalled: false,
        }
    }

    /// The same challenger, recording at most `steps` VM steps of a disputed node (a run that
    /// needs more is a [`PhaseError::Kernel`] of that game).
    pub fn with_max_node_steps(mut self, steps: u64) -> Self {
        self.max_node_steps = steps;
        self
    }

    /// Its view of the run.
    pub fn view(&self) -> &GraphPhase {
        &self.view
    }

    /// Whether it disputes a result with this output and trace root: whether either differs from
    /// its own (a scripted challenger disputes whatever it is told to).
    pub fn disputes(&self, output: Hash, trace_root: Hash) -> bool {
        matches!(
            self.fault,
            Fault::ChallengerRandom { .. } | Fault::ChallengerStalls { .. }
        ) || output != self.view.output_commitment()
            || trace_root != self.view.trace_root()
    }

    /// Told that the chain refused its last move: it has nothing better, so it stops moving.
    pub fn refused(&mut self) {
        self.stalled = true;
    }

    /// Its move in `game`, if it has one now.
    pub fn next_move(&mut self, game: &GameView) -> Result<Option<Move>, PartyError> {
        if game.is_over() {
            return Ok(None);
        }
        if game.turn != Side::Challenger {
            return Ok(game.turn_expired().then_some(Move::Timeout));
        }
        if self.stalled
            || matches!(self.fault, Fault::ChallengerStalls { after } if self.moves >= after)
        {
            return Ok(None);
        }
        let mv = if game.phase == 1 && game.hi - game.lo == 1 {
            Move::ProveStep(self.step_phase(game.node as usize)?.terminal(game.lo)?)
        } else {
            let Some(claims) = game.pending_claims.clone() else {
                return Ok(None);
            };
            let index = if let Fault::ChallengerRandom { .. } = self.fault {
                self.rng.gen_range(0..=claims.len() as u64)
            } else if game.phase == 2 {
                honest_pick(&mut self.view, game.lo, game.hi, game.arity, &claims)?
            } else {
                let steps = self.step_phase(game.node as usize)?;
                honest_pick(steps, game.lo, game.hi, game.arity, &claims)?
            };
            Move::Pick { index, claims }
        };
        self.moves += 1;
        Ok(Some(mv))
    }

    fn step_phase(&mut self, node: usize) -> Result<&mut StepPhase, PartyError> {
        if self.steps.as_ref().map(|s| s.0) != Some(node as u32) {
            self.steps = Some((
                node as u32,
                self.view.step_phase(node, self.max_node_steps)?,
            ));
        }
        Ok(&mut self.steps.as_mut().expect("just set").1)
    }
}
