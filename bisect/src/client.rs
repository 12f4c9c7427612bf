//! A `DisputeGame` contract as the parties see it, through any alloy provider (the embedded chain
//! or a JSON-RPC node).

use crate::bot::outbox::gwei;
use crate::bot::Outbox;
use crate::party::Move;
use alloy::contract::{CallBuilder, CallDecoder};
use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, Bytes, B256, U256};
use alloy::providers::{DynProvider, Provider};
use opml_contracts::bindings::DisputeGame::{self, DisputeGameErrors, DisputeGameInstance};
use opml_contracts::bindings::{NodeVm::NodeVmErrors, Step::StepErrors};
use opml_vm::Hash;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A side of a game.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The result's submitter, defender of every game on it.
    Submitter,
    /// The game's challenger.
    Challenger,
}

impl Side {
    fn from_code(code: u8) -> Self {
        if code == 0 {
            Side::Submitter
        } else {
            Side::Challenger
        }
    }

    /// Its name in lower case, as logs, files and metrics write it.
    pub fn name(self) -> &'static str {
        match self {
            Side::Submitter => "submitter",
            Side::Challenger => "challenger",
        }
    }

    /// The other side.
    pub fn other(self) -> Self {
        match self {
            Side::Submitter => Side::Challenger,
            Side::Challenger => Side::Submitter,
        }
    }
}

/// A result's status as the contract stores it (protocol section 12.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultStatus {
    /// No such result.
    None,
    /// Posted, within its window or disputed.
    Pending,
    /// Final: its window passed with every game won by the submitter.
    Final,
    /// Rejected: its submitter lost a game.
    Rejected,
}

impl ResultStatus {
    /// The status of the contract's code.
    pub fn from_code(code: u8) -> Self {
        match code {
            1 => Self::Pending,
            2 => Self::Final,
            3 => Self::Rejected,
            _ => Self::None,
        }
    }
}

/// A request as the contract stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestInfo {
    /// The model's commitment.
    pub model: B256,
    /// The input's tensor commitment.
    pub input: B256,
    /// Who asked.
    pub requester: Address,
    /// Its live (pending or final) result, 0 when none.
    pub result: u64,
    /// The block of its `Requested` log, which carries the input data.
    pub block: u64,
}

/// A result as the contract stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultInfo {
    /// The request it answers.
    pub request: u64,
    /// Who posted it.
    pub submitter: Address,
    /// Pending, final or rejected.
    pub status: ResultStatus,
    /// End of its challenge window (a timestamp).
    pub deadline: u64,
    /// The output commitment.
    pub output: B256,
    /// The phase-2 trace root.
    pub trace_root: B256,
}

/// A game as read from the chain: what a party needs to choose its move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GameView {
    /// The game id.
    pub id: u64,
    /// The disputed result.
    pub result: u64,
    /// 2 = graph nodes, 1 = VM steps, 0 = over.
    pub phase: u8,
    /// Whose move it is.
    pub turn: Side,
    /// The winner, once over.
    pub winner: Option<Side>,
    /// The disputed node (phase 1).
    pub node: u32,
    /// The disputed segment: agreed state `lo`, disputed state `hi`.
    pub lo: u64,
    /// See `lo`.
    pub hi: u64,
    /// The claim at `lo`.
    pub claim_lo: Hash,
    /// The claim at `hi`.
    pub claim_hi: Hash,
    /// The defender's interior claims of the segment, once posted (from the logs).
    pub pending_claims: Option<Vec<Hash>>,
    /// Seconds left on the submitter's and the challenger's clocks at the last move.
    pub clocks: [u64; 2],
    /// When the last move was made.
    pub last_move: u64,
    /// The chain's latest block timestamp.
    pub now: u64,
    /// The contract's arity.
    pub arity: u64,
    /// Whether the defender has posted its bond for this game (its first move carries it).
    pub defended: bool,
}

impl GameView {
    /// Whether the game is over.
    pub fn is_over(&self) -> bool {
        self.phase == 0
    }

    /// Seconds left to `side` now (only the side to move has a running clock).
    pub fn clock_left(&self, side: Side) -> u64 {
        let left = self.clocks[side as usize];
        if side == self.turn {
            left.saturating_sub(self.now.saturating_sub(self.last_move))
        } else {
            left
        }
    }

    /// Whether the side to move has run out of time, so that anyone may end the game.
    pub fn turn_expired(&self) -> bool {
        !self.is_over() && self.clock_left(self.turn) == 0
    }
}

/// One mined transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxOutcome {
    /// Its hash.
    pub hash: B256,
    /// Gas of the whole transaction.
    pub gas: u64,
}

/// Why a call to the game failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The contract refused the move (the revert, decoded where it is one of ours).
    #[error("{what} refused: {reason}")]
    Rejected {
        /// The move.
        what: &'static str,
        /// The decoded revert.
        reason: String,
    },
    /// The transaction was mined and failed without a decodable reason.
    #[error("{what}: transaction {hash} failed on chain")]
    Failed {
        /// The move.
        what: &'static str,
        /// The transaction.
        hash: B256,
    },
    /// The node or the transport failed.
    #[error("{what}: {source}")]
    Chain {
        /// The call.
        what: &'static str,
        /// What went wrong.
        source: Box<alloy::contract::Error>,
    },
    /// The node failed while the receipt was awaited.
    #[error("{what}: {source}")]
    Pending {
        /// The call.
        what: &'static str,
        /// What went wrong.
        source: alloy::providers::PendingTransactionError,
    },
    /// An answer that does not fit the contract (an event missing from a receipt, say).
    #[error("{0}")]
    Malformed(String),
    /// The contracts at an address are not the ones this build knows (a deployment check).
    #[error("{0}")]
    Foreign(String),
    /// The market asks more per gas than the bot's fee cap (`max_fee_gwei`): nothing was sent
    /// and no nonce used; the bot tries again on a later tick.
    #[error(
        "{what}: held back: the market asks a max fee of {} gwei per gas (base fee {} gwei, tip \
         {} gwei), above the cap of {} gwei",
        gwei(market.max_fee),
        gwei(market.base_fee),
        gwei(market.tip),
        gwei(*cap)
    )]
    FeeCapped {
        /// The move.
        what: &'static str,
        /// What the market asked.
        market: crate::bot::outbox::Market,
        /// The cap, in wei per gas.
        cap: u128,
    },
    /// The bot's database failed while a transaction was written down or settled.
    #[error(transparent)]
    Store(#[from] crate::bot::StoreError),
}

impl ClientError {
    pub(crate) fn from_call(what: &'static str, source: alloy::contract::Error) -> Self {
        let reason = if let Some(e) = source.as_decoded_interface_error::<DisputeGameErrors>() {
            Some(format!("{e:?}"))
        } else if let Some(e) = source.as_decoded_interface_error::<StepErrors>() {
            Some(format!("Step: {e:?}"))
        } else {
            source
                .as_decoded_interface_error::<NodeVmErrors>()
                .map(|e| format!("NodeVm: {e:?}"))
        };
        match reason {
            Some(reason) => Self::Rejected { what, reason },
            None => Self::Chain {
                what,
                source: Box::new(source),
            },
        }
    }

    /// Whether the contract refused the move (as opposed to the chain failing).
    pub fn is_rejection(&self) -> bool {
        matches!(self, Self::Rejected { .. })
    }

    /// Whether the move waits for the market to come down to the bot's fee cap (nothing sent).
    pub fn is_fee_capped(&self) -> bool {
        matches!(self, Self::FeeCapped { .. })
    }
}

/// Moves the chain's clock forward by `seconds` and mines a block (`evm_increaseTime`, `evm_mine`:
/// the embedded chain and Hardhat's node serve both), to let a stalled party's clock run out or a
/// challenge window pass.
pub async fn advance_time(provider: &DynProvider, seconds: u64) -> Result<(), ClientError> {
    let chain = |source: alloy::transports::TransportError| ClientError::Chain {
        what: "advance time",
        source: Box::new(source.into()),
    };
    let _: serde_json::Value = provider
        .raw_request("evm_increaseTime".into(), [seconds])
        .await
        .map_err(chain)?;
    // An empty list, not null: Hardhat refuses `"params": null`.
    let _: serde_json::Value = provider
        .raw_request("evm_mine".into(), serde_json::json!([]))
        .await
        .map_err(chain)?;
    Ok(())
}

/// A deployed `DisputeGame` reached by one party's provider (whose signer makes its moves), or
/// by a bot's [`Outbox`] (which signs, journals and re-sends them).
#[derive(Debug, Clone)]
pub struct GameClient {
    contract: DisputeGameInstance<DynProvider>,
    arity: u64,
    challenge_bond: U256,
    deployment_block: u64,
    outbox: Option<Arc<Outbox>>,
}

fn b256(h: &Hash) -> B256 {
    B256::from(*h)
}

fn b256s(hashes: &[Hash]) -> Vec<B256> {
    hashes.iter().map(b256).collect()
}

impl GameClient {
    /// The game contract at `address`; reads its arity, challenge bond and deployment block.
    pub async fn new(address: Address, provider: DynProvider) -> Result<Self, ClientError> {
        let contract = DisputeGame::new(address, provider);
        let arity = contract
            .arity()
            .call()
            .await
            .map_err(|e| ClientError::from_call("arity", e))?;
        let challenge_bond = contract
            .challengeBond()
            .call()
            .await
            .map_err(|e| ClientError::from_call("challenge bond", e))?;
        let deployment_block = contract
            .deploymentBlock()
            .call()
            .await
            .map_err(|e| ClientError::from_call("deployment block", e))?;
        Ok(Self {
            contract,
            arity,
            challenge_bond,
            deployment_block,
            outbox: None,
        })
    }

    /// The game contract at `address`, its moves sent through `outbox`.
    pub async fn with_outbox(address: Address, outbox: Arc<Outbox>) -> Result<Self, ClientError> {
        let mut client = Self::new(address, outbox.provider().clone()).await?;
        client.outbox = Some(outbox);
        Ok(client)
    }

    /// The contract.
    pub fn contract(&self) -> &DisputeGameInstance<DynProvider> {
        &self.contract
    }

    /// The contract's arity.
    pub fn arity(&self) -> u64 {
        self.arity
    }

    /// The block the contract was deployed in: where log queries start.
    pub fn deployment_block(&self) -> u64 {
        self.deployment_block
    }

    /// The bond of each side of a game: the challenger's with `challenge`, the defender's with
    /// its first move.
    pub fn challenge_bond(&self) -> U256 {
        self.challenge_bond
    }

    /// What the defender's next move in `game` carries: its bond if it has not posted it yet.
    async fn defence_value(&self, game: u64) -> Result<U256, ClientError> {
        let g = self
            .contract
            .game(game)
            .call()
            .await
            .map_err(|e| ClientError::from_call("read game", e))?;
        Ok(if g.defended {
            U256::ZERO
        } else {
            self.challenge_bond
        })
    }

    async fn send<D: CallDecoder>(
        &self,
        what: &'static str,
        call: CallBuilder<&DynProvider, D>,
    ) -> Result<(TxOutcome, alloy::rpc::types::TransactionReceipt), ClientError> {
        let receipt = match &self.outbox {
            Some(outbox) => outbox.send(what, call.into_transaction_request()).await?,
            None => call
                .send()
                .await
                .map_err(|e| ClientError::from_call(what, e))?
                .get_receipt()
                .await
                .map_err(|source| ClientError::Pending { what, source })?,
        };
        if !receipt.status() {
            return Err(ClientError::Failed {
                what,
                hash: receipt.transaction_hash,
            });
        }
        Ok((
            TxOutcome {
                hash: receipt.transaction_hash,
                gas: receipt.gas_used,
            },
            receipt,
        ))
    }

    fn event<E: alloy::sol_types::SolEvent>(
        receipt: &alloy::rpc::types::TransactionReceipt,
    ) -> Result<E, ClientError> {
        receipt
            .inner
            .logs()
            .iter()
            .find_map(|log| E::decode_log_data(log.data()).ok())
            .ok_or_else(|| {
                ClientError::Malformed(format!("no {} event in the receipt", E::SIGNATURE))
            })
    }

    /// Asks for `model` to be run on `data` (with the model's input header); returns the request id.
    pub async fn request(
        &self,
        model: Hash,
        header: &[u8],
        data: &[u8],
    ) -> Result<(TxOutcome, u64), ClientError> {
        let call = self.contract.requestInference(
            b256(&model),
            Bytes::copy_from_slice(header),
            Bytes::copy_from_slice(data),
        );
        let (tx, receipt) = self.send("request", call).await?;
        Ok((tx, Self::event::<DisputeGame::Requested>(&receipt)?.request))
    }

    /// Posts a result with the bond; returns the result id.
    pub async fn submit_result(
        &self,
        request: u64,
        output: Hash,
        trace_root: Hash,
        bond: U256,
    ) -> Result<(TxOutcome, u64), ClientError> {
        let call = self
            .contract
            .submitResult(request, b256(&output), b256(&trace_root))
            .value(bond);
        let (tx, receipt) = self.send("submit result", call).await?;
        Ok((
            tx,
            Self::event::<DisputeGame::ResultPosted>(&receipt)?.result,
        ))
    }

    /// Challenges a result with the bond; returns the game id.
    pub async fn challenge(
        &self,
        result: u64,
        bond: U256,
    ) -> Result<(TxOutcome, u64), ClientError> {
        let call = self.contract.challenge(result).value(bond);
        let (tx, receipt) = self.send("challenge", call).await?;
        Ok((tx, Self::event::<DisputeGame::GameStarted>(&receipt)?.game))
    }

    /// Makes a result final after its window.
    pub async fn finalize(&self, result: u64) -> Result<TxOutcome, ClientError> {
        Ok(self
            .send("finalize", self.contract.finalize(result))
            .await?
            .0)
    }

    /// Withdraws everything credited to this party.
    pub async fn withdraw(&self) -> Result<TxOutcome, ClientError> {
        Ok(self.send("withdraw", self.contract.withdraw()).await?.0)
    }

    /// Sends one game move; the defender's first move in a game carries its bond.
    pub async fn play(&self, game: u64, mv: &Move) -> Result<TxOutcome, ClientError> {
        let outcome = match mv {
            Move::Claims(claims) => {
                let value = self.defence_value(game).await?;
                self.send(
                    "claims",
                    self.contract.postClaims(game, b256s(claims)).value(value),
                )
                .await?
            }
            Move::Pick { index, claims } => {
                self.send("pick", self.contract.pick(game, *index, b256s(claims)))
                    .await?
            }
            Move::OpenNode(o) => {
                let e = &o.evidence;
                let opening = DisputeGame::NodeOpening {
                    kind: e.kind,
                    params: b256(&e.params),
                    tags: e.refs.iter().map(|r| r.0).collect(),
                    indices: e.refs.iter().map(|r| r.1).collect(),
                    nodePath: b256s(&e.node_path),
                    inputs: b256s(&e.inputs),
                    inputPaths: b256s(&e.input_paths),
                    output: b256(&e.output),
                    outputPath: b256s(&e.output_path),
                    finalState: Bytes::copy_from_slice(&o.final_claim.state.encode()),
                    accumulator: Bytes::from(o.final_claim.accumulator.encode()),
                    outputHeader: Bytes::copy_from_slice(&o.final_claim.header),
                };
                let value = self.defence_value(game).await?;
                self.send(
                    "open node",
                    self.contract.openNode(game, opening).value(value),
                )
                .await?
            }
            Move::ProveStep(witness) => {
                self.send(
                    "prove step",
                    self.contract
                        .proveStep(game, Bytes::copy_from_slice(witness)),
                )
                .await?
            }
            Move::Timeout => self.send("timeout", self.contract.timeout(game)).await?,
        };
        Ok(outcome.0)
    }

    /// The latest block's timestamp: the chain's clock.
    pub async fn now(&self) -> Result<u64, ClientError> {
        Ok(self
            .contract
            .provider()
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(|e| ClientError::Chain {
                what: "read block",
                source: Box::new(e.into()),
            })?
            .ok_or_else(|| ClientError::Malformed("no latest block".into()))?
            .header
            .timestamp)
    }

    /// The status of result `id`.
    pub async fn result_status(&self, id: u64) -> Result<ResultStatus, ClientError> {
        Ok(self.result_info(id).await?.status)
    }

    /// Request `id` as stored.
    pub async fn request_info(&self, id: u64) -> Result<RequestInfo, ClientError> {
        let r = self
            .contract
            .request(id)
            .call()
            .await
            .map_err(|e| ClientError::from_call("read request", e))?;
        Ok(RequestInfo {
            model: r.model,
            input: r.input,
            requester: r.requester,
            result: r.result,
            block: u64::from(r.blockNumber),
        })
    }

    /// Result `id` as stored.
    pub async fn result_info(&self, id: u64) -> Result<ResultInfo, ClientError> {
        let r = self
            .contract
            .result(id)
            .call()
            .await
            .map_err(|e| ClientError::from_call("read result", e))?;
        Ok(ResultInfo {
            request: r.request,
            submitter: r.submitter,
            status: ResultStatus::from_code(r.status),
            deadline: r.deadline,
            output: r.output,
            trace_root: r.traceRoot,
        })
    }

    /// The input data of request `id`, from its `Requested` log (in the block the request
    /// records); `None` when that block has no such log.
    pub async fn request_data(&self, id: u64) -> Result<Option<Bytes>, ClientError> {
        let block = self.request_info(id).await?.block;
        let logs = self
            .contract
            .Requested_filter()
            .topic1(U256::from(id))
            .from_block(block)
            .to_block(block)
            .query()
            .await
            .map_err(|e| ClientError::from_call("read Requested logs", e))?;
        Ok(logs.into_iter().last().map(|(event, _)| event.data))
    }

    /// The contract's result bond.
    pub async fn result_bond(&self) -> Result<U256, ClientError> {
        self.contract
            .resultBond()
            .call()
            .await
            .map_err(|e| ClientError::from_call("read result bond", e))
    }

    /// Wei credited to `account` and not yet withdrawn.
    pub async fn credit(&self, account: Address) -> Result<U256, ClientError> {
        self.contract
            .credit(account)
            .call()
            .await
            .map_err(|e| ClientError::from_call("read credit", e))
    }

    /// The balance of `account`.
    pub async fn balance(&self, account: Address) -> Result<U256, ClientError> {
        self.contract
            .provider()
            .get_balance(account)
            .await
            .map_err(|e| ClientError::Chain {
                what: "read balance",
                source: Box::new(e.into()),
            })
    }

    /// The chain's latest block number.
    pub async fn block_number(&self) -> Result<u64, ClientError> {
        self.contract
            .provider()
            .get_block_number()
            .await
            .map_err(|e| ClientError::Chain {
                what: "read block number",
                source: Box::new(e.into()),
            })
    }

    /// The `Requested` logs of blocks `from..=to`.
    pub async fn requests_between(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<DisputeGame::Requested>, ClientError> {
        let logs = self
            .contract
            .Requested_filter()
            .from_block(from)
            .to_block(to);
        Self::events(logs, "read Requested logs").await
    }

    /// The `ResultPosted` logs of blocks `from..=to`.
    pub async fn results_between(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<DisputeGame::ResultPosted>, ClientError> {
        let logs = self
            .contract
            .ResultPosted_filter()
            .from_block(from)
            .to_block(to);
        Self::events(logs, "read ResultPosted logs").await
    }

    /// The `ResultRejected` logs of blocks `from..=to`.
    pub async fn rejections_between(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<DisputeGame::ResultRejected>, ClientError> {
        let logs = self
            .contract
            .ResultRejected_filter()
            .from_block(from)
            .to_block(to);
        Self::events(logs, "read ResultRejected logs").await
    }

    /// The `GameStarted` logs of blocks `from..=to`, of games opened by `challenger` when given.
    pub async fn games_between(
        &self,
        from: u64,
        to: u64,
        challenger: Option<Address>,
    ) -> Result<Vec<DisputeGame::GameStarted>, ClientError> {
        let logs = self
            .contract
            .GameStarted_filter()
            .from_block(from)
            .to_block(to);
        let logs = match challenger {
            Some(c) => logs.topic3(c.into_word()),
            None => logs,
        };
        Self::events(logs, "read GameStarted logs").await
    }

    async fn events<E: alloy::sol_types::SolEvent>(
        filter: alloy::contract::Event<&DynProvider, E>,
        what: &'static str,
    ) -> Result<Vec<E>, ClientError> {
        Ok(filter
            .query()
            .await
            .map_err(|e| ClientError::from_call(what, e))?
            .into_iter()
            .map(|(event, _)| event)
            .collect())
    }

    /// Reads game `id`, with the pending claims from the logs and the chain's time.
    pub async fn view(&self, id: u64) -> Result<GameView, ClientError> {
        let g = self
            .contract
            .game(id)
            .call()
            .await
            .map_err(|e| ClientError::from_call("read game", e))?;
        if g.challenger == Address::ZERO {
            return Err(ClientError::Malformed(format!("there is no game {id}")));
        }
        let pending_claims = if g.claims == B256::ZERO || g.phase == 0 {
            None
        } else {
            // The game records the block of its last claims: one block to query, never a range
            // that a provider would refuse.
            let block = u64::from(g.claimsBlock);
            let logs = self
                .contract
                .ClaimsPosted_filter()
                .topic1(U256::from(id))
                .from_block(block)
                .to_block(block)
                .query()
                .await
                .map_err(|e| ClientError::from_call("read claims", e))?;
            let (event, _) = logs.last().ok_or_else(|| {
                ClientError::Malformed(format!("game {id} has claims but no ClaimsPosted log"))
            })?;
            let claims: Vec<Hash> = event.claims.iter().map(|c| c.0).collect();
            let mut packed = Vec::with_capacity(32 * claims.len());
            for c in &claims {
                packed.extend_from_slice(c);
            }
            if opml_vm::keccak256(&packed) != g.claims.0 {
                return Err(ClientError::Malformed(format!(
                    "game {id}: the last ClaimsPosted log does not match the stored claims"
                )));
            }
            Some(claims)
        };
        let now = self.now().await?;
        Ok(GameView {
            id,
            result: g.result,
            phase: g.phase,
            turn: Side::from_code(g.turn),
            winner: (g.phase == 0).then(|| Side::from_code(g.winner)),
            node: g.node,
            lo: g.lo,
            hi: g.hi,
            claim_lo: g.claimLo.0,
            claim_hi: g.claimHi.0,
            pending_claims,
            clocks: [g.submitterClock, g.challengerClock],
            last_move: g.lastMove,
            now,
            arity: self.arity,
            defended: g.defended,
        })
    }
}
