//! Scripted adversaries for tests and demonstrations: a lying submitter and a griefing challenger,
//! each wrapping the honest strategy of [`crate::party`] and departing from it where its
//! [`Attack`] says. Nothing in a bot's configuration file reaches this module: a bot lies only
//! when code asks for it ([`crate::Bot::with_attack`], `opml adversary`).

use crate::attack::{corrupted_view, redeclare, relabelled_view, Attack, LyingSteps};
use crate::client::{GameView, Side};
use crate::graph_phase::GraphPhase;
use crate::party::{
    interior_claims, Challenger, ChallengerStrategy, DefenderStrategy, Move, NodeOpening,
    PartyError, Submitter, MAX_NODE_STEPS,
};
use crate::phase::{Phase, PhaseError};
use opml_dnn::{Model, Tensor};
use opml_vm::{keccak256, Hash};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;

/// The defender of `model` on `input`: honest unless `attack` is one of the submitter's.
pub fn defender(
    model: Arc<Model>,
    input: Tensor,
    attack: Attack,
) -> Result<Box<dyn DefenderStrategy>, PartyError> {
    attack.node(model.manifest.nodes.len())?;
    Ok(if attack.is_submitters() {
        Box::new(ScriptedSubmitter::new(model, input, attack)?)
    } else {
        Box::new(Submitter::new(model, input)?)
    })
}

/// The challenger of `model` results on `input`: honest unless `attack` is one of the
/// challenger's.
pub fn challenger(
    model: Arc<Model>,
    input: Tensor,
    attack: Attack,
) -> Result<Box<dyn ChallengerStrategy>, PartyError> {
    Ok(if attack.is_challengers() {
        Box::new(ScriptedChallenger::new(model, input, attack)?)
    } else {
        Box::new(Challenger::new(model, input)?)
    })
}

/// A submitter that posts a scripted lie and defends it: its graph view is the lie (played by the
/// honest strategy over it), and at the disputed node it claims the VM run its attack scripts.
pub struct ScriptedSubmitter {
    inner: Submitter,
    attack: Attack,
    /// The lie about the disputed node's run, once it is disputed.
    lie: Option<(u32, LyingSteps)>,
    max_node_steps: u64,
    stalled: bool,
}

impl ScriptedSubmitter {
    /// The liar of `attack` (one of the submitter's) on `model` and `input`.
    pub fn new(model: Arc<Model>, input: Tensor, attack: Attack) -> Result<Self, PartyError> {
        let view = match attack {
            Attack::Node { node, .. }
            | Attack::StepCount { node, .. }
            | Attack::Boundary { node } => corrupted_view(model, input, node, true)?,
            Attack::Trace { node } => corrupted_view(model, input, node, false)?,
            Attack::Header { node } => relabelled_view(model, input, node, redeclare)?,
            _ => GraphPhase::honest(model, input)?,
        };
        Ok(Self::with_view(view, attack))
    }

    /// The liar whose view of the run (already corrupted by `attack`) is `view`: how a bot
    /// resumes from the node outputs it cached.
    pub fn with_view(view: GraphPhase, attack: Attack) -> Self {
        Self {
            inner: Submitter::with_view(view),
            attack,
            lie: None,
            max_node_steps: MAX_NODE_STEPS,
            stalled: false,
        }
    }

    /// The same liar, recording at most `steps` VM steps of a disputed node.
    pub fn with_max_node_steps(mut self, steps: u64) -> Self {
        self.inner = self.inner.with_max_node_steps(steps);
        self.max_node_steps = steps;
        self
    }

    /// Its lie about `node`'s VM run, if it lies about that node: the node's true output (by its
    /// own view's inputs) differs from the one it claimed, and its attack does not open it with
    /// the true final state (`boundary=K`, which the chain refuses).
    fn lie(&mut self, node: usize) -> Result<Option<&mut LyingSteps>, PartyError> {
        if self.lie.as_ref().map(|l| l.0) != Some(node as u32) {
            let view = self.inner.view();
            let claimed = &view.outputs()[node];
            let inputs = view
                .model()
                .node_inputs(node, view.input(), &view.outputs()[..node])
                .map_err(PhaseError::from)?;
            let truth = view.model().manifest.nodes[node]
                .op
                .native(&inputs)
                .map_err(|e| PhaseError::Kernel {
                    node,
                    reason: e.to_string(),
                })?;
            if truth == *claimed || matches!(self.attack, Attack::Boundary { .. }) {
                return Ok(None);
            }
            let honest = view.step_phase(node, self.max_node_steps)?;
            let t = honest.len();
            let (lie_from, steps) = match self.attack {
                Attack::Node {
                    lie_from: Some(n), ..
                } => (n, t),
                Attack::StepCount { delta, .. } => {
                    let steps = t.saturating_add_signed(delta).max(1);
                    (steps, steps)
                }
                _ => (t, t),
            };
            let claimed = claimed.clone();
            let lie = LyingSteps::new(honest, &claimed, lie_from, steps)?;
            self.lie = Some((node as u32, lie));
        }
        Ok(self.lie.as_mut().map(|l| &mut l.1))
    }
}

impl DefenderStrategy for ScriptedSubmitter {
    fn output(&self) -> Hash {
        let output = self.inner.output();
        if self.attack == Attack::Output {
            keccak256(&[&output[..], b"opml: a wrong output"].concat())
        } else {
            output
        }
    }

    fn trace_root(&self) -> Hash {
        self.inner.trace_root()
    }

    fn view(&self) -> &GraphPhase {
        self.inner.view()
    }

    fn next_move(&mut self, game: &GameView) -> Result<Option<Move>, PartyError> {
        if game.is_over() || game.turn != Side::Submitter {
            return self.inner.next_move(game);
        }
        if self.stalled {
            return Ok(None);
        }
        let node = match game.phase {
            2 if game.hi - game.lo == 1 => game.lo as usize,
            1 => game.node as usize,
            _ => return self.inner.next_move(game),
        };
        if self.lie(node)?.is_none() {
            return self.inner.next_move(game);
        }
        Ok(Some(if game.phase == 2 {
            let evidence = self.inner.view_mut().terminal(node as u64)?;
            let lie = self.lie(node)?.expect("it lies about this node");
            Move::OpenNode(Box::new(NodeOpening {
                evidence,
                final_claim: lie.final_claim().clone(),
            }))
        } else if game.hi - game.lo > 1 {
            let lie = self.lie(node)?.expect("it lies about this node");
            interior_claims(lie, game)?
        } else {
            return Ok(None);
        }))
    }

    /// A liar has nothing better to offer: it stops moving (and will lose on time).
    fn refused(&mut self) {
        self.stalled = true;
    }
}

/// A challenger that disputes by script: one that believes a node has another output (its view
/// is corrupted there), one that picks segments at random, or one that stops after some moves.
pub struct ScriptedChallenger {
    inner: Challenger,
    attack: Attack,
    moves: u32,
    rng: StdRng,
    stalled: bool,
}

impl ScriptedChallenger {
    /// The griefer of `attack` (one of the challenger's) on `model` results on `input`.
    pub fn new(model: Arc<Model>, input: Tensor, attack: Attack) -> Result<Self, PartyError> {
        let nodes = model.manifest.nodes.len();
        let view = match attack {
            Attack::Challenger { .. } => {
                let node = attack
                    .node(nodes)?
                    .expect("a challenger attack names a node");
                corrupted_view(model, input, node, true)?
            }
            _ => GraphPhase::honest(model, input)?,
        };
        Ok(Self::with_view(view, attack))
    }

    /// The griefer whose view of the run (already corrupted by `attack`) is `view`.
    pub fn with_view(view: GraphPhase, attack: Attack) -> Self {
        let seed = match attack {
            Attack::ChallengerRandom { seed } => seed,
            _ => 0,
        };
        Self {
            inner: Challenger::with_view(view),
            attack,
            moves: 0,
            rng: StdRng::seed_from_u64(seed),
            stalled: false,
        }
    }

    /// The same griefer, recording at most `steps` VM steps of a disputed node.
    pub fn with_max_node_steps(mut self, steps: u64) -> Self {
        self.inner = self.inner.with_max_node_steps(steps);
        self
    }
}

impl ChallengerStrategy for ScriptedChallenger {
    /// A random or stalling griefer disputes whatever it is told to; the one with a corrupted
    /// view disputes what differs from it.
    fn disputes(&self, output: Hash, trace_root: Hash) -> bool {
        matches!(
            self.attack,
            Attack::ChallengerRandom { .. } | Attack::ChallengerStalls { .. }
        ) || self.inner.disputes(output, trace_root)
    }

    fn view(&self) -> &GraphPhase {
        self.inner.view()
    }

    fn next_move(&mut self, game: &GameView) -> Result<Option<Move>, PartyError> {
        if game.is_over() || game.turn != Side::Challenger {
            return self.inner.next_move(game);
        }
        if self.stalled
            || matches!(self.attack, Attack::ChallengerStalls { after } if self.moves >= after)
        {
            return Ok(None);
        }
        let single_step = game.phase == 1 && game.hi - game.lo == 1;
        let mv = match (&self.attack, &game.pending_claims) {
            (Attack::ChallengerRandom { .. }, Some(claims)) if !single_step => Some(Move::Pick {
                index: self.rng.gen_range(0..=claims.len() as u64),
                claims: claims.clone(),
            }),
            _ => self.inner.next_move(game)?,
        };
        if mv.is_some() {
            self.moves += 1;
        }
        Ok(mv)
    }

    /// It has nothing better: it stops moving.
    fn refused(&mut self) {
        self.stalled = true;
    }
}
