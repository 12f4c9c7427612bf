//! The two-phase dispute engine of opml (DESIGN decision 8, protocol section 12).
//!
//! A dispute is a k-ary dissection over a sequence of committed states. [`Phase`] is one such
//! sequence: the graph nodes of a model run ([`GraphPhase`], phase 2) or the VM steps of one node
//! ([`StepPhase`], phase 1). The [`Submitter`] and [`Challenger`] strategies read a game from the
//! chain ([`GameView`]) and answer with a [`Move`]; their faults ([`Fault`]) script the adversaries
//! of the tests and of `opml dispute simulate`. [`GameClient`] carries moves to a `DisputeGame`
//! contract through any alloy provider, and [`simulate`] plays a whole dispute.

pub mod bot;
pub mod client;
pub mod deploy;
pub mod dissection;
pub mod fault;
pub mod graph_phase;
pub mod party;
pub mod phase;
pub mod simulate;
pub mod step_phase;

pub use bot::{Bot, BotConfig, BotError};
pub use client::{advance_time, ClientError, GameClient, GameView, ResultStatus, Side, TxOutcome};
pub use deploy::{Deployment, GameParams};
pub use fault::Fault;
pub use graph_phase::{GraphPhase, NodeEvidence};
pub use party::{Challenger, Move, NodeOpening, PartyError, Submitter, MAX_NODE_STEPS};
pub use phase::{Phase, PhaseError};
pub use simulate::{
    play_game, simulate, Accounts, MoveRecord, PlayedGame, SimulateError, SimulateOptions,
    Transcript,
};
pub use step_phase::{FinalClaim, StepPhase};
