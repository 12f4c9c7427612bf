//! A whole dispute between an honest party and a faulty one, played through a chain: deploy,
//! register, request, post, challenge, every move to the end, finalize; with a transcript.

use crate::adversary;
use crate::client::{advance_time, ClientError, GameClient, GameView, ResultStatus, Side};
use crate::deploy::{Deployment, GameParams};
use crate::dissection::rounds_bound;
use crate::party::{ChallengerStrategy, DefenderStrategy, Move, PartyError};
use crate::Attack;
use alloy::primitives::U256;
use alloy::providers::{DynProvider, Provider};
use opml_dnn::{Model, Tensor};
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// The faulty party and its fault.
    pub fault: Attack,
    /// The game's parameters (arity, bonds, window, clock).
    pub params: GameParams,
    /// Where the model's files are, as registered.
    pub model_uri: String,
}

/// The accounts of a simulation: each provider signs as its party.
#[derive(Debug, Clone)]
pub struct Accounts {
    /// Deploys the contracts and posts the request.
    pub deployer: DynProvider,
    /// Registers the model and posts and defends the result.
    pub submitter: DynProvider,
    /// Challenges.
    pub challenger: DynProvider,
}

/// One transaction of the transcript.
#[derive(Debug, Clone, Serialize)]
pub struct MoveRecord {
    /// Who sent it.
    pub party: Side,
    /// What it was: post_result, challenge, claims, pick, open_node, prove_step, timeout, finalize.
    pub action: &'static str,
    /// The game's phase when it was sent (2 nodes, 1 steps); `None` outside a game in play.
    pub phase: Option<u8>,
    /// The disputed segment when it was sent; `None` outside a game in play.
    pub segment: Option<[u64; 2]>,
    /// What it said, for a person.
    pub detail: String,
    /// Gas of the whole transaction (0 when refused).
    pub gas: u64,
    /// Wall time from deciding the move to its receipt, in milliseconds.
    pub wall_ms: f64,
    /// The contract's refusal, when it refused the move.
    pub refused: Option<String>,
}

/// Gas per party.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PartyGas {
    /// The submitter's transactions.
    pub submitter: u64,
    /// The challenger's transactions.
    pub challenger: u64,
}

/// Where the bonds went.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Bonds {
    /// The result bond (wei).
    #[serde(serialize_with = "opml_contracts::json::wei")]
    pub result_bond: U256,
    /// The bond of each side of a game (wei): the challenger's, and the defender's.
    #[serde(serialize_with = "opml_contracts::json::wei")]
    pub challenge_bond: U256,
    /// Credited to the submitter at the end.
    #[serde(serialize_with = "opml_contracts::json::wei")]
    pub submitter_credit: U256,
    /// Credited to the challenger at the end.
    #[serde(serialize_with = "opml_contracts::json::wei")]
    pub challenger_credit: U256,
    /// Still locked in the contract.
    #[serde(serialize_with = "opml_contracts::json::wei")]
    pub locked: U256,
    /// Credited, not yet withdrawn.
    #[serde(serialize_with = "opml_contracts::json::wei")]
    pub owed: U256,
    /// Burnt: the bond of a rejected result (protocol section 12.4).
    #[serde(serialize_with = "opml_contracts::json::wei")]
    pub burnt: U256,
    /// The contract's balance (always `locked + owed`).
    #[serde(serialize_with = "opml_contracts::json::wei")]
    pub balance: U256,
}

/// The outcome of a simulated dispute.
#[derive(Debug, Clone, Serialize)]
pub struct Transcript {
    /// The model's name.
    pub model: String,
    /// The fault spec.
    pub fault: String,
    /// The game parameters.
    pub params: GameParams,
    /// Graph nodes of the model.
    pub nodes: usize,
    /// The node phase 1 ran on, if the game got there.
    pub disputed_node: Option<u32>,
    /// The VM steps claimed for that node.
    pub node_steps: Option<u64>,
    /// Every transaction.
    pub moves: Vec<MoveRecord>,
    /// Dissection rounds played (one pick each).
    pub rounds: u32,
    /// `ceil(log_k nodes) + ceil(log_k steps)` (the second term when phase 1 was reached).
    pub rounds_bound: u32,
    /// Total gas per party.
    pub gas: PartyGas,
    /// The largest single transaction's gas.
    pub largest_tx: u64,
    /// Who won: the submitter when its result stands.
    pub winner: Side,
    /// Whether the result ended final or rejected.
    pub result: ResultStatus,
    /// The bonds.
    pub bonds: Bonds,
    /// Wall time of the whole simulation, deployment included, in milliseconds.
    pub wall_ms: f64,
}

/// Why a simulation did not finish.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// A chain call failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A party could not compute its move.
    #[error(transparent)]
    Party(#[from] PartyError),
    /// The contract's books do not add up.
    #[error("the game's balance does not add up: {0}")]
    Accounting(String),
    /// Neither side could move and no clock was running.
    #[error("the game is stuck: {0}")]
    Stuck(String),
}

impl MoveRecord {
    /// A transaction sent at `start` by `party`, in the state `view` of its game (if any; a game
    /// that is over, phase 0, has no phase or segment either).
    pub fn new(
        party: Side,
        action: &'static str,
        view: Option<&GameView>,
        detail: String,
        gas: u64,
        start: Instant,
    ) -> Self {
        Self {
            party,
            action,
            phase: view.map(|v| v.phase).filter(|p| *p != 0),
            segment: view.filter(|v| v.phase != 0).map(|v| [v.lo, v.hi]),
            detail,
            gas,
            wall_ms: start.elapsed().as_secs_f64() * 1e3,
            refused: None,
        }
    }
}

/// The first bytes of a hash, for people.
pub fn short(h: &[u8; 32]) -> String {
    format!("0x{}…", hex::encode(&h[..4]))
}

/// What a move says, for a person.
pub(crate) fn describe(mv: &Move, view: Option<&GameView>) -> String {
    match mv {
        Move::Claims(claims) => format!(
            "claims [{}]",
            claims.iter().map(short).collect::<Vec<_>>().join(", ")
        ),
        Move::Pick { index, .. } => format!("sub-segment {index}"),
        Move::OpenNode(o) => format!(
            "node {}: output {} after {} VM steps",
            o.evidence.node,
            short(&o.evidence.output),
            o.final_claim.state.step
        ),
        Move::ProveStep(w) => format!(
            "step {} ({} bytes of witness)",
            view.map_or(0, |v| v.lo),
            w.len()
        ),
        Move::Timeout => format!(
            "the {:?}'s clock ran out",
            view.map_or(Side::Submitter, |v| v.turn)
        ),
    }
}

/// Plays one whole dispute of `model` on `input` through `accounts`' chain (which must serve
/// `evm_increaseTime` and `evm_mine`, as the embedded chain and Hardhat's node do).
pub async fn simulate(
    accounts: &Accounts,
    model: Arc<Model>,
    input: Tensor,
    options: &SimulateOptions,
) -> Result<Transcript, SimulateError> {
    let start = Instant::now();
    let params = options.params;
    let deployment = Deployment::deploy(&accounts.deployer, &params).await?;
    let (_, commitment) = deployment
        .register_model(&accounts.submitter, &model, &options.model_uri)
        .await?;
    let requester = GameClient::new(deployment.game, accounts.deployer.clone()).await?;
    let defender = GameClient::new(deployment.game, accounts.submitter.clone()).await?;
    let attacker = GameClient::new(deployment.game, accounts.challenger.clone()).await?;
    let spec = &model.manifest.input;
    let header = opml_dnn::tensor::header(spec.dtype, &spec.shape)
        .map_err(|e| ClientError::Malformed(e.to_string()))?;
    let (_, request) = requester
        .request(commitment, &header, &input.to_le_bytes())
        .await?;

    let mut submitter = adversary::defender(model.clone(), input.clone(), options.fault)?;
    let mut challenger = adversary::challenger(model.clone(), input, options.fault)?;
    let mut moves = Vec::new();
    let mut record = |m: MoveRecord| moves.push(m);

    let t = Instant::now();
    let (tx, result) = defender
        .submit_result(
            request,
            submitter.output(),
            submitter.trace_root(),
            params.result_bond,
        )
        .await?;
    record(MoveRecord::new(
        Side::Submitter,
        "post_result",
        None,
        format!(
            "output {}, trace root {}",
            short(&submitter.output()),
            short(&submitter.trace_root())
        ),
        tx.gas,
        t,
    ));

    let mut game_id = None;
    let mut disputed_node = None;
    let mut node_steps = None;
    if challenger.disputes(submitter.output(), submitter.trace_root()) {
        let t = Instant::now();
        let (tx, game) = attacker.challenge(result, params.challenge_bond).await?;
        game_id = Some(game);
        record(MoveRecord::new(
            Side::Challenger,
            "challenge",
            None,
            format!("result {result}: game {game}"),
            tx.gas,
            t,
        ));
        let played = play_game(
            &accounts.deployer,
            game,
            (&defender, submitter.as_mut()),
            (&attacker, challenger.as_mut()),
            &mut record,
        )
        .await?;
        disputed_node = played.node;
        node_steps = played.steps;
    }

    // Past the window, a result that stands becomes final.
    let contract = defender.contract();
    let posted = contract
        .result(result)
        .call()
        .await
        .map_err(|source| ClientError::Chain {
            what: "read result",
            source: Box::new(source),
        })?;
    let now = defender.now().await?;
    if ResultStatus::from_code(posted.status) == ResultStatus::Pending {
        if now < posted.deadline {
            advance_time(&accounts.deployer, posted.deadline - now).await?;
        }
        let t = Instant::now();
        let tx = defender.finalize(result).await?;
        record(MoveRecord::new(
            Side::Submitter,
            "finalize",
            None,
            format!("result {result} is final"),
            tx.gas,
            t,
        ));
    }
    let status = defender.result_status(result).await?;
    let read = |what: &'static str| {
        move |source| ClientError::Chain {
            what,
            source: Box::new(source),
        }
    };
    let credit = |who| async move {
        contract
            .credit(who)
            .call()
            .await
            .map_err(read("read credit"))
    };
    let challenger_address = match game_id {
        Some(id) => {
            contract
                .game(id)
                .call()
                .await
                .map_err(read("read game"))?
                .challenger
        }
        None => alloy::primitives::Address::ZERO,
    };
    let bonds = Bonds {
        result_bond: params.result_bond,
        challenge_bond: params.challenge_bond,
        submitter_credit: credit(posted.submitter).await?,
        challenger_credit: credit(challenger_address).await?,
        locked: contract
            .locked()
            .call()
            .await
            .map_err(read("read locked"))?,
        owed: contract.owed().call().await.map_err(read("read owed"))?,
        burnt: contract.burnt().call().await.map_err(read("read burnt"))?,
        balance: contract
            .provider()
            .get_balance(deployment.game)
            .await
            .map_err(|e| read("read balance")(e.into()))?,
    };
    if bonds.balance != bonds.locked + bonds.owed {
        return Err(SimulateError::Accounting(format!(
            "balance {} != locked {} + owed {}",
            bonds.balance, bonds.locked, bonds.owed
        )));
    }

    let mut gas = PartyGas::default();
    for m in &moves {
        match m.party {
            Side::Submitter => gas.submitter += m.gas,
            Side::Challenger => gas.challenger += m.gas,
        }
    }
    let rounds = moves
        .iter()
        .filter(|m| m.action == "pick" && m.refused.is_none())
        .count() as u32;
    let nodes = model.manifest.nodes.len();
    Ok(Transcript {
        model: model.manifest.name.clone(),
        fault: options.fault.to_string(),
        params,
        nodes,
        disputed_node,
        node_steps,
        rounds,
        rounds_bound: rounds_bound(nodes as u64, params.arity)
            + node_steps.map_or(0, |t| rounds_bound(t, params.arity)),
        gas,
        largest_tx: moves.iter().map(|m| m.gas).max().unwrap_or(0),
        winner: if status == ResultStatus::Final {
            Side::Submitter
        } else {
            Side::Challenger
        },
        result: status,
        moves,
        bonds,
        wall_ms: start.elapsed().as_secs_f64() * 1e3,
    })
}

/// What a game that was played to its end reached.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlayedGame {
    /// The node phase 1 ran on, if the game got there.
    pub node: Option<u32>,
    /// The VM steps claimed for that node.
    pub steps: Option<u64>,
}

/// Plays game `game` to its end between `defender` and `attacker`, each through its own client;
/// `record` gets every transaction. A side that does not move has its clock run out (the chain's
/// time is moved through `time`), and the other side ends the game.
pub async fn play_game(
    time: &DynProvider,
    game: u64,
    defender: (&GameClient, &mut dyn DefenderStrategy),
    attacker: (&GameClient, &mut dyn ChallengerStrategy),
    record: &mut impl FnMut(MoveRecord),
) -> Result<PlayedGame, SimulateError> {
    let (defender, submitter) = defender;
    let (attacker, challenger) = attacker;
    let mut played = PlayedGame::default();
    let mut idle = 0;
    loop {
        let view = defender.view(game).await?;
        if view.is_over() {
            break;
        }
        if view.phase == 1 && played.node.is_none() {
            played.node = Some(view.node);
            played.steps = Some(view.hi);
        }
        let t = Instant::now();
        let mut moved = false;
        for side in [Side::Submitter, Side::Challenger] {
            let mv = match side {
                Side::Submitter => submitter.next_move(&view)?,
                Side::Challenger => challenger.next_move(&view)?,
            };
            let Some(mv) = mv else { continue };
            let client = if side == Side::Submitter {
                defender
            } else {
                attacker
            };
            let detail = describe(&mv, Some(&view));
            match client.play(game, &mv).await {
                Ok(tx) => record(MoveRecord::new(
                    side,
                    mv.name(),
                    Some(&view),
                    detail,
                    tx.gas,
                    t,
                )),
                Err(e) if e.is_rejection() => {
                    tracing::warn!("{side:?}'s {} refused: {e}", mv.name());
                    let mut refused = MoveRecord::new(side, mv.name(), Some(&view), detail, 0, t);
                    refused.refused = Some(e.to_string());
                    record(refused);
                    match side {
                        Side::Submitter => submitter.refused(),
                        Side::Challenger => challenger.refused(),
                    }
                }
                Err(e) => return Err(e.into()),
            }
            tracing::debug!(
                "{side:?} {} in phase {} on [{}, {}]",
                mv.name(),
                view.phase,
                view.lo,
                view.hi
            );
            moved = true;
            break;
        }
        if moved {
            idle = 0;
            continue;
        }
        // The side to move does not move: let its clock run out.
        idle += 1;
        if idle > 2 {
            return Err(SimulateError::Stuck(format!(
                "nobody moves in game {game} at phase {} [{}, {}]",
                view.phase, view.lo, view.hi
            )));
        }
        advance_time(time, view.clock_left(view.turn) + 1).await?;
    }
    Ok(played)
}
