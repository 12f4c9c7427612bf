//! The two-phase dispute engine of opml (DESIGN decision 8, protocol section 12).
//!
//! A dispute is a k-ary dissection over a sequence of committed states. [`Phase`] is one such
//! sequence: the graph nodes of a model run ([`GraphPhase`], phase 2) or the VM steps of one node
//! ([`StepPhase`], phase 1). The honest [`Submitter`] and [`Challenger`] strategies read a game from
//! the chain ([`GameView`]) and answer with a [`Move`]; the scripted adversaries of the tests and
//! demonstrations ([`adversary`]) wrap them and play an [`Attack`]. [`GameClient`] carries moves to a `DisputeGame`
//! contract through any alloy provider, and [`simulate`] plays a whole dispute.

pub mod adversary;
pub mod attack;
pub mod bot;
pub mod client;
pub mod deploy;
pub mod dissection;
pub mod graph_phase;
pub mod party;
pub mod phase;
pub mod simulate;
pub mod step_phase;

pub use attack::Attack;
pub use bot::{Bot, BotConfig, BotError};
pub use client::{advance_time, ClientError, GameClient, GameView, ResultStatus, Side, TxOutcome};
pub use deploy::{Deployment, GameParams};
pub use graph_phase::{GraphPhase, NodeEvidence};
pub use party::{
    Challenger, ChallengerStrategy, DefenderStrategy, Move, NodeOpening, PartyError, Submitter,
    MAX_NODE_STEPS,
};
pub use phase::{Phase, PhaseError};
pub use simulate::{
    play_game, simulate, Accounts, MoveRecord, PlayedGame, SimulateError, SimulateOptions,
    Transcript,
};
pub use step_phase::{FinalClaim, StepPhase};
