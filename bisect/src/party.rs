//! The two honest strategies: what the submitter and the challenger do at each turn. They know
//! nothing of lies: the scripted adversaries of the tests and demonstrations wrap them
//! ([`crate::adversary`]).

use crate::attack::AttackSpecError;
use crate::client::{GameView, Side};
use crate::dissection::{honest_pick, interior_points};
use crate::graph_phase::{GraphPhase, NodeEvidence};
use crate::phase::{Phase, PhaseError};
use crate::step_phase::{FinalClaim, StepPhase};
use opml_dnn::{Model, Tensor};
use opml_vm::Hash;
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
            Move::OpenNode(_) => "open_node",
            Move::ProveStep(_) => "prove_step",
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
    /// Its scripted attack does not fit the model.
    #[error(transparent)]
    Attack(#[from] AttackSpecError),
}

/// What a defender does: posts a result and answers every game on it. The honest [`Submitter`]
/// and the scripted liars of [`crate::adversary`] play through it.
pub trait DefenderStrategy: Send {
    /// The output commitment it posts.
    fn output(&self) -> Hash;
    /// The trace root it posts.
    fn trace_root(&self) -> Hash;
    /// Its view of the run (what a bot caches and resumes from).
    fn view(&self) -> &GraphPhase;
    /// Its move in `game`, if it has one now.
    fn next_move(&mut self, game: &GameView) -> Result<Option<Move>, PartyError>;
    /// Told that the chain refused its last move. An honest move is never refused (a refusal
    /// means a bug or a foreign deployment, and the bot looks again); a scripted liar stops.
    fn refused(&mut self) {}
}

/// What a challenger does: decides which results to dispute and plays each game to its end.
pub trait ChallengerStrategy: Send {
    /// Whether it disputes a result with this output and trace root.
    fn disputes(&self, output: Hash, trace_root: Hash) -> bool;
    /// Its view of the run.
    fn view(&self) -> &GraphPhase;
    /// Its move in `game`, if it has one now.
    fn next_move(&mut self, game: &GameView) -> Result<Option<Move>, PartyError>;
    /// Told that the chain refused its last move (see [`DefenderStrategy::refused`]).
    fn refused(&mut self) {}
}

impl<T: DefenderStrategy + ?Sized> DefenderStrategy for Box<T> {
    fn output(&self) -> Hash {
        (**self).output()
    }
    fn trace_root(&self) -> Hash {
        (**self).trace_root()
    }
    fn view(&self) -> &GraphPhase {
        (**self).view()
    }
    fn next_move(&mut self, game: &GameView) -> Result<Option<Move>, PartyError> {
        (**self).next_move(game)
    }
    fn refused(&mut self) {
        (**self).refused()
    }
}

impl<T: ChallengerStrategy + ?Sized> ChallengerStrategy for Box<T> {
    fn disputes(&self, output: Hash, trace_root: Hash) -> bool {
        (**self).disputes(output, trace_root)
    }
    fn view(&self) -> &GraphPhase {
        (**self).view()
    }
    fn next_move(&mut self, game: &GameView) -> Result<Option<Move>, PartyError> {
        (**self).next_move(game)
    }
    fn refused(&mut self) {
        (**self).refused()
    }
}

/// The VM run of `node` kept in `slot` (one node's run per game), recorded from `view` when the
/// slot holds none or another node's.
fn recorded_run<'a>(
    slot: &'a mut Option<(u32, StepPhase)>,
    view: &GraphPhase,
    node: usize,
    max_steps: u64,
) -> Result<&'a mut StepPhase, PartyError> {
    if slot.as_ref().map(|s| s.0) != Some(node as u32) {
        *slot = Some((node as u32, view.step_phase(node, max_steps)?));
    }
    Ok(&mut slot.as_mut().expect("just set").1)
}

/// The defender's claims at the interior points of `game`'s disputed segment, from `states`.
pub(crate) fn interior_claims<P: Phase + ?Sized>(
    states: &mut P,
    game: &GameView,
) -> Result<Move, PartyError> {
    Ok(Move::Claims(
        interior_points(game.lo, game.hi, game.arity)
            .iter()
            .map(|p| states.claim(*p))
            .collect::<Result<_, _>>()?,
    ))
}

/// The honest submitter of a result: posts the true run's output and trace root and defends
/// every game on it with the true claims.
pub struct Submitter {
    view: GraphPhase,
    steps: Option<(u32, StepPhase)>,
    max_node_steps: u64,
}

impl Submitter {
    /// The submitter of `model` on `input`.
    pub fn new(model: Arc<Model>, input: Tensor) -> Result<Self, PartyError> {
        Ok(Self::with_view(GraphPhase::honest(model, input)?))
    }

    /// The submitter whose view of the run is `view`: how a bot resumes from the node outputs it
    /// cached (and how a scripted liar plays the graph phase of its lie).
    pub fn with_view(view: GraphPhase) -> Self {
        Self {
            view,
            steps: None,
            max_node_steps: MAX_NODE_STEPS,
        }
    }

    /// The same submitter, recording at most `steps` VM steps of a disputed node (a run that needs
    /// more is a [`PhaseError::Kernel`] of that game).
    pub fn with_max_node_steps(mut self, steps: u64) -> Self {
        self.max_node_steps = steps;
        self
    }

    /// Its view, to answer from.
    pub(crate) fn view_mut(&mut self) -> &mut GraphPhase {
        &mut self.view
    }

    /// The recorded VM run of `node` (kept for the game's phase 1).
    fn step_phase(&mut self, node: usize) -> Result<&mut StepPhase, PartyError> {
        recorded_run(&mut self.steps, &self.view, node, self.max_node_steps)
    }
}

impl DefenderStrategy for Submitter {
    fn output(&self) -> Hash {
        self.view.output_commitment()
    }

    fn trace_root(&self) -> Hash {
        self.view.trace_root()
    }

    fn view(&self) -> &GraphPhase {
        &self.view
    }

    fn next_move(&mut self, game: &GameView) -> Result<Option<Move>, PartyError> {
        if game.is_over() {
            return Ok(None);
        }
        if game.turn != Side::Submitter {
            return Ok(game.turn_expired().then_some(Move::Timeout));
        }
        Ok(Some(match game.phase {
            2 if game.hi - game.lo == 1 => {
                let node = game.lo as usize;
                let evidence = self.view.terminal(node as u64)?;
                let final_claim = self.step_phase(node)?.final_claim().clone();
                Move::OpenNode(Box::new(NodeOpening {
                    evidence,
                    final_claim,
                }))
            }
            2 => interior_claims(&mut self.view, game)?,
            1 if game.hi - game.lo > 1 => {
                interior_claims(self.step_phase(game.node as usize)?, game)?
            }
            _ => return Ok(None),
        }))
    }
}

/// The honest challenger of results: re-executes, disputes what differs from the true run, and
/// plays to the end.
pub struct Challenger {
    view: GraphPhase,
    steps: Option<(u32, StepPhase)>,
    max_node_steps: u64,
}

impl Challenger {
    /// The challenger of `model` results on `input`.
    pub fn new(model: Arc<Model>, input: Tensor) -> Result<Self, PartyError> {
        Ok(Self::with_view(GraphPhase::honest(model, input)?))
    }

    /// The challenger whose view of the run is `view` (a bot's cached run, or a griefer's
    /// corrupted one).
    pub fn with_view(view: GraphPhase) -> Self {
        Self {
            view,
            steps: None,
            max_node_steps: MAX_NODE_STEPS,
        }
    }

    /// The same challenger, recording at most `steps` VM steps of a disputed node (a run that
    /// needs more is a [`PhaseError::Kernel`] of that game).
    pub fn with_max_node_steps(mut self, steps: u64) -> Self {
        self.max_node_steps = steps;
        self
    }

    fn step_phase(&mut self, node: usize) -> Result<&mut StepPhase, PartyError> {
        recorded_run(&mut self.steps, &self.view, node, self.max_node_steps)
    }
}

impl ChallengerStrategy for Challenger {
    /// Whether the output or the trace root differs from its own run's.
    fn disputes(&self, output: Hash, trace_root: Hash) -> bool {
        output != self.view.output_commitment() || trace_root != self.view.trace_root()
    }

    fn view(&self) -> &GraphPhase {
        &self.view
    }

    fn next_move(&mut self, game: &GameView) -> Result<Option<Move>, PartyError> {
        if game.is_over() {
            return Ok(None);
        }
        if game.turn != Side::Challenger {
            return Ok(game.turn_expired().then_some(Move::Timeout));
        }
        if game.phase == 1 && game.hi - game.lo == 1 {
            let witness = self.step_phase(game.node as usize)?.terminal(game.lo)?;
            return Ok(Some(Move::ProveStep(witness)));
        }
        let Some(claims) = game.pending_claims.clone() else {
            return Ok(None);
        };
        let index = if game.phase == 2 {
            honest_pick(&mut self.view, game.lo, game.hi, game.arity, &claims)?
        } else {
            let steps = self.step_phase(game.node as usize)?;
            honest_pick(steps, game.lo, game.hi, game.arity, &claims)?
        };
        Ok(Some(Move::Pick { index, claims }))
    }
}
