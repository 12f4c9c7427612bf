//! The long-running submitter and challenger bots (`opml submitter`, `opml challenger`).
//!
//! A bot polls the chain: new `Requested`, `ResultPosted` and `GameStarted` logs since its cursor,
//! then every open game of its own, then finality and withdrawals. Every decision is derived again
//! from the chain and its [`Store`] on each tick, so a tick that fails half-way (a dropped
//! connection, a malformed answer, a kill) is simply done again: the cursor advances only after
//! the logs it covers are recorded, a move is chosen from the game as the chain has it, and a
//! signed transaction is written down before it is broadcast and re-sent as the same bytes after a
//! restart ([`Outbox`]). Cached native runs let a restarted bot answer without re-running its
//! models; the VM run of a disputed node is recorded again from those cached inputs, once.

pub mod check;
pub mod config;
pub mod exporter;
mod keystore;
pub mod metrics;
pub mod outbox;
pub mod store;

pub use check::{check_config, Check};
pub use config::{
    parse_key, BotConfig, ConfigError, Endpoint, KeyError, DEFAULT_CONFIRMATIONS,
    DEFAULT_RESERVE_GAMES,
};
pub use exporter::{MetricsError, MetricsServer};
pub use keystore::PASSWORD_ENV;
pub use metrics::{BotInfo, BotMetrics, MetricsSnapshot};
pub use outbox::{Backoff, Outbox};
pub use store::{
    GameRecord, Identity, PendingTx, RequestRecord, ResultRecord, Store, StoreError, Verdict,
};

use crate::adversary::{ScriptedChallenger, ScriptedSubmitter};
use crate::attack::Attack;
use crate::client::{ClientError, GameClient, GameView, ResultStatus, Side};
use crate::graph_phase::GraphPhase;
use crate::party::{Challenger, ChallengerStrategy, DefenderStrategy, Move, PartyError, Submitter};
use crate::phase::PhaseError;
use crate::simulate::{describe, short, MoveRecord};
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::transports::layers::{RateLimitRetryPolicy, RetryPolicy};
use check::{load_model, read_chain_id, verify_deployment, Terms};
use opml_dnn::{Model, Tensor};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, error, info, warn};

/// Why a bot cannot start or go on.
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    /// The game, or a contract it is wired to, is not this build's (a look-alike deployment, e.g.
    /// with another Step verifier, would make an honest bot lose every game).
    #[error("refusing the game at {game}: {reason}")]
    ForeignDeployment {
        /// The game's address.
        game: Address,
        /// What differs.
        reason: String,
    },
    /// The configuration names another arity than the contract plays.
    #[error("the config says arity {config}, the contract at {game} plays {contract}")]
    ArityMismatch {
        /// The game's address.
        game: Address,
        /// The config's arity.
        config: u64,
        /// The contract's.
        contract: u64,
    },
    /// A bond of the contract exceeds the most the configuration lets the bot lock.
    #[error("the contract's {what} bond is {contract} wei, more than the config's `bond` of {config} wei")]
    BondTooLarge {
        /// Which bond (`result` or `game`).
        what: &'static str,
        /// The contract's bond.
        contract: U256,
        /// The config's `bond`.
        config: U256,
    },
    /// A file or folder the bot needs could not be made.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The cached run no longer gives what the bot posted or disputed (its model files changed):
    /// it stops rather than contradict its own claims.
    #[error(
        "game {game}: the run of request {request} is no longer what this bot {what} \
         (output {output}, trace root {trace_root}): did the model files change?"
    )]
    RunChanged {
        /// The game.
        game: u64,
        /// The request.
        request: u64,
        /// `posted` or `disputed`.
        what: &'static str,
        /// The output on chain.
        output: B256,
        /// The trace root on chain.
        trace_root: B256,
    },
    /// A model folder could not be loaded.
    #[error("model {path}: {source}")]
    Model {
        /// The folder.
        path: String,
        /// Why.
        source: opml_dnn::ModelError,
    },
    /// The chain failed or refused (a tick that fails this way is retried).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Its own computation failed.
    #[error(transparent)]
    Party(#[from] PartyError),
}

impl From<PhaseError> for BotError {
    fn from(e: PhaseError) -> Self {
        Self::Party(e.into())
    }
}

fn transport(what: &'static str) -> impl Fn(alloy::transports::TransportError) -> ClientError {
    move |e| ClientError::Chain {
        what,
        source: Box::new(e.into()),
    }
}

/// How long a bot waits for one answer of a JSON-RPC node before it treats the call as failed.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// Retries of one JSON-RPC call that failed in transport, before the failure reaches the tick
/// (which is then retried with exponential backoff).
pub const RPC_RETRIES: u32 = 6;

/// Which failed JSON-RPC calls a bot's transport retries: every failure of the transport itself
/// (connection dropped or refused, timeout, HTTP error status, a body that is not a JSON-RPC
/// answer) and rate limits; not an error the node answered (a revert, a refused transaction),
/// which is an answer. Each such failure is counted in `metrics`, when given.
#[derive(Debug, Clone, Default)]
pub struct TransportRetryPolicy {
    /// Where failures are counted (`opml_bot_rpc_errors_total`).
    pub metrics: Option<Arc<BotMetrics>>,
}

impl RetryPolicy for TransportRetryPolicy {
    fn should_retry(&self, error: &alloy::transports::TransportError) -> bool {
        let retry = RateLimitRetryPolicy::default().should_retry(error)
            || !matches!(error, alloy::transports::TransportError::ErrorResp(_));
        if retry {
            if let Some(metrics) = &self.metrics {
                metrics.rpc_error();
            }
            warn!("node call failed, retrying: {error}");
        }
        retry
    }

    fn backoff_hint(&self, error: &alloy::transports::TransportError) -> Option<Duration> {
        RateLimitRetryPolicy::default().backoff_hint(error)
    }
}

/// A provider without a wallet (the bot's [`Outbox`] signs) on the node at `url`: each call times
/// out after [`RPC_TIMEOUT`] instead of hanging on a node that accepted and never answered, and
/// is retried [`RPC_RETRIES`] times on a transport failure ([`TransportRetryPolicy`]).
pub fn http_provider(url: alloy::transports::http::reqwest::Url) -> DynProvider {
    http_provider_counting(url, None)
}

/// [`http_provider`] that counts every failed call in `metrics` (a bot's RPC errors).
pub fn http_provider_counting(
    url: alloy::transports::http::reqwest::Url,
    metrics: Option<Arc<BotMetrics>>,
) -> DynProvider {
    use alloy::transports::http::reqwest::Client;
    let http = Client::builder()
        .timeout(RPC_TIMEOUT)
        .build()
        .expect("a reqwest client with a timeout builds");
    let transport = alloy::transports::http::Http::with_client(http, url);
    let is_local = transport.guess_local();
    let retry = alloy::transports::layers::RetryBackoffLayer::new_with_policy(
        RPC_RETRIES,
        250,
        u64::MAX,
        TransportRetryPolicy { metrics },
    );
    let client = alloy::rpc::client::ClientBuilder::default()
        .layer(retry)
        .transport(transport, is_local);
    alloy::providers::ProviderBuilder::default()
        .connect_client(client)
        .erased()
}

/// Most blocks one log query spans: providers cap the range of `eth_getLogs`, so a bot far
/// behind the chain catches up in slices of this many blocks.
pub const LOG_RANGE: u64 = 5_000;

/// The block ranges (first, last, inclusive) whose logs a tick scans, in slices of at most
/// [`LOG_RANGE`] blocks: from `from` (its cursor) to the newest block with at least
/// `confirmations` blocks mined on top of it at `head`, none while there is no such block. A
/// log in a newer block could still vanish in a reorg shallower than `confirmations`, so the
/// bot does not act on it yet. A head that went backwards (a reorg, or a node behind the one
/// asked before) only scans less.
pub fn scan_slices(from: u64, head: u64, confirmations: u64) -> impl Iterator<Item = (u64, u64)> {
    let last = head.checked_sub(confirmations);
    let mut next = Some(from);
    std::iter::from_fn(move || {
        let (from, last) = (next?, last?);
        if from > last {
            return None;
        }
        let to = last.min(from.saturating_add(LOG_RANGE - 1));
        next = to.checked_add(1);
        Some((from, to))
    })
}

/// What one tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Transactions sent.
    pub transactions: u32,
    /// Games still open.
    pub open_games: usize,
    /// Results of its own (submitter) or disputed by it (challenger) still pending.
    pub pending_results: usize,
}

/// One transaction a bot sent, for whoever watches it (`opml demo` builds its transcript from them).
#[derive(Debug, Clone)]
pub struct BotEvent {
    /// The bot's account.
    pub account: Address,
    /// The game, for a game's transactions.
    pub game: Option<u64>,
    /// The result it concerns, where one does.
    pub result: Option<u64>,
    /// Wei paid out, for a withdrawal.
    pub withdrawn: U256,
    /// The transaction.
    pub record: MoveRecord,
}

/// A strategy of either side, as a bot holds it.
enum Strategy {
    Submitter(Box<dyn DefenderStrategy>),
    Challenger(Box<dyn ChallengerStrategy>),
}

impl Strategy {
    fn next_move(&mut self, game: &GameView) -> Result<Option<Move>, PartyError> {
        match self {
            Strategy::Submitter(s) => s.next_move(game),
            Strategy::Challenger(c) => c.next_move(game),
        }
    }

    fn refused(&mut self) {
        match self {
            Strategy::Submitter(s) => s.refused(),
            Strategy::Challenger(c) => c.refused(),
        }
    }
}

/// A running submitter or challenger.
pub struct Bot {
    role: Side,
    config: BotConfig,
    client: GameClient,
    store: Arc<Store>,
    account: Address,
    /// Loaded models by commitment.
    models: HashMap<B256, Arc<Model>>,
    /// The contract's bond for this role.
    bond: U256,
    /// The bond of each side of a game: a challenger's with its challenge, a submitter's with its
    /// first move in a game.
    game_bond: U256,
    /// Submitter: wei kept for defence that new results may not spend.
    reserve: U256,
    /// Blocks mined on top of a block before the bot acts on its logs.
    confirmations: u64,
    /// Games this run cannot play (its own computation failed), and why: reported once, and the
    /// other games go on.
    broken: HashMap<u64, String>,
    /// Strategies by game, rebuilt from the store after a restart.
    strategies: HashMap<u64, Strategy>,
    /// A scripted attack, set only by code ([`Bot::with_attack`]): never by a config file.
    attack: Option<Attack>,
    events: Option<UnboundedSender<BotEvent>>,
    /// What it counts for its operator.
    metrics: Arc<BotMetrics>,
}

impl Bot {
    /// Checks `config` against the chain behind `provider` (a provider without a wallet), opens
    /// the database and settles any transaction a previous run left in flight. A node that fails
    /// meanwhile is retried with backoff; a configuration that does not fit is an error.
    pub async fn start(
        role: Side,
        config: BotConfig,
        provider: DynProvider,
    ) -> Result<Self, BotError> {
        Self::start_with_metrics(role, config, provider, Arc::new(BotMetrics::new(role))).await
    }

    /// [`Bot::start`], counting into `metrics` (of the same role) from the start, so that an
    /// endpoint serving them can be up while the bot starts.
    pub async fn start_with_metrics(
        role: Side,
        config: BotConfig,
        provider: DynProvider,
        metrics: Arc<BotMetrics>,
    ) -> Result<Self, BotError> {
        debug_assert_eq!(metrics.role(), role, "metrics of another role");
        let mut backoff = Backoff::new(config.poll_interval, Duration::from_secs(10));
        loop {
            let started =
                Self::start_once(role, config.clone(), provider.clone(), metrics.clone()).await;
            match started {
                Err(BotError::Client(e)) if !e.is_rejection() => {
                    let wait = backoff.next_delay();
                    warn!("starting failed, retrying in {wait:?}: {e}");
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    async fn start_once(
        role: Side,
        config: BotConfig,
        provider: DynProvider,
        metrics: Arc<BotMetrics>,
    ) -> Result<Self, BotError> {
        let chain_id = read_chain_id(&provider).await?;
        metrics.set_info(BotInfo {
            account: config.signer.address(),
            game: config.game,
            chain_id,
        });
        opml_contracts::warn_if_dev_key(chain_id, config.signer.address());
        // Before anything else: a look-alike deployment (another Step verifier, say) could make an
        // honest bot lose every game it plays.
        verify_deployment(&config, &provider).await?;
        let Terms {
            bond,
            game_bond,
            reserve,
            ..
        } = Terms::read(role, &config, &provider).await?;
        let mut models = HashMap::new();
        for path in &config.models {
            let (commitment, model) = load_model(path)?;
            info!(model = %model.manifest.name, %commitment, "loaded");
            models.insert(commitment, Arc::new(model));
        }
        let account = config.signer.address();
        let identity = Identity {
            role,
            chain_id,
            game: config.game,
            account,
        };
        if let Some(dir) = config.db.parent() {
            std::fs::create_dir_all(dir).map_err(|source| BotError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let store = Arc::new(Store::open(&config.db, &identity)?);
        let outbox = Outbox::open(
            provider,
            config.signer.clone(),
            chain_id,
            store.clone(),
            config.poll_interval,
            metrics.clone(),
        )
        .await?
        .with_max_fee_per_gas(config.max_fee_per_gas);
        let confirmations = config.confirmations_on(chain_id);
        let client = GameClient::with_outbox(config.game, Arc::new(outbox)).await?;
        info!(
            %account,
            game = %config.game,
            chain_id,
            results = store.results()?.len(),
            games = store.games()?.len(),
            cursor = store.cursor()?,
            confirmations,
            max_fee_gwei = config.max_fee_per_gas.map(outbox::gwei),
            "{role:?} bot started"
        );
        Ok(Self {
            role,
            config,
            client,
            store,
            account,
            models,
            bond,
            game_bond,
            reserve,
            confirmations,
            broken: HashMap::new(),
            strategies: HashMap::new(),
            attack: None,
            events: None,
            metrics,
        })
    }

    /// Scripts this bot to lie with `attack` (one of its role's): for demonstrations and tests
    /// (`opml demo`'s faulty submitter, `opml adversary`), never reachable from a config file.
    pub fn with_attack(mut self, attack: Attack) -> Self {
        let ours = match self.role {
            Side::Submitter => attack.is_submitters(),
            Side::Challenger => attack.is_challengers(),
        };
        self.attack = ours.then_some(attack);
        self
    }

    /// The defender it plays over `view`: honest, or the scripted liar of its attack.
    fn defender(&self, view: GraphPhase) -> Box<dyn DefenderStrategy> {
        let steps = self.config.max_node_steps;
        match self.attack {
            Some(attack) => {
                Box::new(ScriptedSubmitter::with_view(view, attack).with_max_node_steps(steps))
            }
            None => Box::new(Submitter::with_view(view).with_max_node_steps(steps)),
        }
    }

    /// The challenger it plays over `view`: honest, or the scripted griefer of its attack.
    fn challenger(&self, view: GraphPhase) -> Box<dyn ChallengerStrategy> {
        let steps = self.config.max_node_steps;
        match self.attack {
            Some(attack) => {
                Box::new(ScriptedChallenger::with_view(view, attack).with_max_node_steps(steps))
            }
            None => Box::new(Challenger::with_view(view).with_max_node_steps(steps)),
        }
    }

    /// Reports every transaction it sends to `events`.
    pub fn with_events(mut self, events: UnboundedSender<BotEvent>) -> Self {
        self.events = Some(events);
        self
    }

    fn emit(&self, game: Option<u64>, result: Option<u64>, withdrawn: U256, record: MoveRecord) {
        if let Some(events) = &self.events {
            // A watcher that went away does not stop the bot.
            let _ = events.send(BotEvent {
                account: self.account,
                game,
                result,
                withdrawn,
                record,
            });
        }
    }

    /// Its account.
    pub fn account(&self) -> Address {
        self.account
    }

    /// Its database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// What it counts for its operator (shared with whoever serves them).
    pub fn metrics(&self) -> &Arc<BotMetrics> {
        &self.metrics
    }

    /// The games this run cannot play (its own computation failed), and why.
    pub fn broken_games(&self) -> &HashMap<u64, String> {
        &self.broken
    }

    /// Ticks every poll interval until `stop` completes. A tick that fails (the node unreachable,
    /// a malformed answer) is logged and retried with backoff; nothing it did half-way is lost.
    pub async fn run(mut self, stop: impl Future<Output = ()>) -> Result<(), BotError> {
        let started = Instant::now();
        let mut caught_up = false;
        let mut backoff = Backoff::new(self.config.poll_interval, Duration::from_secs(10));
        tokio::pin!(stop);
        loop {
            let wait = match self.tick().await {
                Ok(report) => {
                    if !caught_up {
                        caught_up = true;
                        info!(
                            ms = started.elapsed().as_millis() as u64,
                            open_games = report.open_games,
                            pending_results = report.pending_results,
                            "caught up with the chain"
                        );
                    }
                    backoff.reset();
                    self.config.poll_interval
                }
                Err(BotError::Client(e)) => {
                    let wait = backoff.next_delay();
                    warn!("tick failed, retrying in {wait:?}: {e}");
                    wait
                }
                Err(e) => return Err(e),
            };
            tokio::select! {
                _ = &mut stop => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One pass: new logs as deep as its confirmations (recorded, not acted on), then every open
    /// game, then finality and withdrawal, and only then new work (answering requests,
    /// challenging results), so that a bot short of money or of a working node still defends
    /// what it has at stake. A transaction held back by the fee cap is said in the log and tried
    /// again on the next tick; the rest of the tick goes on. Counted in its [metrics](Bot::metrics).
    pub async fn tick(&mut self) -> Result<TickReport, BotError> {
        let outcome = self.tick_once().await;
        match &outcome {
            Ok(report) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                self.metrics.tick_succeeded(now, report.open_games);
            }
            Err(_) => self.metrics.tick_failed(),
        }
        outcome
    }

    async fn tick_once(&mut self) -> Result<TickReport, BotError> {
        let mut report = TickReport::default();
        let head = self.client.block_number().await?;
        self.metrics.saw_block(head);
        // Nothing of this game is older than its deployment.
        let cursor = self
            .store
            .cursor()?
            .unwrap_or(self.config.from_block)
            .max(self.client.deployment_block());
        for (from, to) in scan_slices(cursor, head, self.confirmations) {
            match self.role {
                Side::Submitter => {
                    self.scan_requests(from, to).await?;
                    self.scan_rejections(from, to).await?;
                    self.scan_games(from, to).await?;
                }
                Side::Challenger => {
                    self.scan_games(from, to).await?;
                    self.scan_results(from, to).await?;
                }
            }
            self.store.set_cursor(to + 1)?;
        }
        self.play_games(&mut report).await?;
        self.settle_results(&mut report).await?;
        let credit = self.client.credit(self.account).await?;
        if !credit.is_zero() {
            let t = Instant::now();
            match self.client.withdraw().await {
                Ok(tx) => {
                    report.transactions += 1;
                    info!(wei = %credit, gas = tx.gas, "withdrew");
                    let detail = format!("{} ETH", alloy::primitives::utils::format_ether(credit));
                    self.emit(
                        None,
                        None,
                        credit,
                        MoveRecord::new(self.role, "withdraw", None, detail, tx.gas, t),
                    );
                }
                Err(e) if e.is_fee_capped() => warn!(wei = %credit, "{e}; withdrawing later"),
                Err(e) => return Err(e.into()),
            }
        }
        match self.role {
            Side::Submitter => self.answer_requests(&mut report).await?,
            Side::Challenger => self.challenge_results(&mut report).await?,
        }
        // For the balance gauge only: a failure here is no reason to fail the tick.
        if let Err(e) = self.balance().await {
            debug!("reading the balance for the metrics failed: {e}");
        }
        Ok(report)
    }

    /// The account's balance (also the balance gauge of its metrics).
    async fn balance(&self) -> Result<U256, BotError> {
        let balance = self.client.balance(self.account).await?;
        self.metrics.set_balance(balance);
        Ok(balance)
    }

    fn model(&self, commitment: &B256) -> Option<Arc<Model>> {
        self.models.get(commitment).cloned()
    }

    /// The request's input as its `Requested` log carries it (in the block the request
    /// records), decoded for `model`.
    async fn request_input(
        &self,
        request: u64,
        model: &Model,
    ) -> Result<Result<Tensor, String>, BotError> {
        let Some(data) = self.client.request_data(request).await? else {
            return Ok(Err(format!(
                "request {request} has no Requested log in the block it records"
            )));
        };
        let spec = &model.manifest.input;
        Ok(Tensor::from_le_bytes(spec.dtype, &spec.shape, &data)
            .map_err(|e| format!("request {request}: the input is not the model's: {e}")))
    }

    /// The view of request `request`'s run by `model` from the cache, else run natively and cached.
    async fn view(
        &self,
        request: u64,
        model: &Arc<Model>,
        input: Option<Tensor>,
    ) -> Result<Result<GraphPhase, String>, BotError> {
        if let Some(mut tensors) = self.store.view(request)? {
            if tensors.len() == model.manifest.nodes.len() + 1 {
                let input = tensors.remove(0);
                return Ok(Ok(GraphPhase::from_outputs(model.clone(), input, tensors)?));
            }
            warn!(
                request,
                "cached run has the wrong number of tensors; running again"
            );
        }
        let input = match input {
            Some(input) => input,
            None => match self.request_input(request, model).await? {
                Ok(input) => input,
                Err(reason) => return Ok(Err(reason)),
            },
        };
        // A scripted adversary's view is its lie.
        let view = match (self.role, self.attack) {
            (Side::Submitter, Some(attack)) => {
                ScriptedSubmitter::new(model.clone(), input, attack)?
                    .view()
                    .clone()
            }
            (Side::Challenger, Some(attack)) => {
                ScriptedChallenger::new(model.clone(), input, attack)?
                    .view()
                    .clone()
            }
            (_, None) => GraphPhase::honest(model.clone(), input)?,
        };
        let mut tensors = vec![view.input()];
        tensors.extend(view.outputs());
        self.store.put_view(request, &tensors)?;
        Ok(Ok(view))
    }

    /// The strategy for game `id` on result `result`, rebuilt from the cached run when needed.
    async fn strategy(&mut self, id: u64, result: u64) -> Result<Option<&mut Strategy>, BotError> {
        if !self.strategies.contains_key(&id) {
            let Some(record) = self.store.result(result)? else {
                warn!(
                    game = id,
                    result, "game on a result the bot has no record of"
                );
                return Ok(None);
            };
            let Some(model) = self.model(&record.model) else {
                return Ok(None);
            };
            let view = match self.view(record.request, &model, None).await? {
                Ok(view) => view,
                Err(reason) => {
                    warn!(game = id, "cannot play: {reason}");
                    return Ok(None);
                }
            };
            // A bot whose model files changed since it posted or challenged would contradict its
            // own earlier claims; it stops instead.
            let changed = |what| BotError::RunChanged {
                game: id,
                request: record.request,
                what,
                output: record.output,
                trace_root: record.trace_root,
            };
            let strategy = match self.role {
                Side::Submitter => {
                    let submitter = self.defender(view);
                    if B256::from(submitter.output()) != record.output
                        || B256::from(submitter.trace_root()) != record.trace_root
                    {
                        return Err(changed("posted"));
                    }
                    Strategy::Submitter(submitter)
                }
                Side::Challenger => {
                    let challenger = self.challenger(view);
                    if !challenger.disputes(record.output.0, record.trace_root.0) {
                        return Err(changed("disputed"));
                    }
                    Strategy::Challenger(challenger)
                }
            };
            self.strategies.insert(id, strategy);
        }
        Ok(self.strategies.get_mut(&id))
    }

    /// Plays every open game of the bot in rounds: reads all of them, chooses a move in each
    /// where it has one, sends those moves together (several transactions in flight, so that a
    /// flood of games costs each game one block per move, not one block per game), records what
    /// landed, and goes on while any move landed. An error of the bot's own computation in one
    /// game is reported once and leaves the others running.
    async fn play_games(&mut self, report: &mut TickReport) -> Result<(), BotError> {
        loop {
            let open: Vec<(u64, GameRecord)> = self
                .store
                .games()?
                .into_iter()
                .filter(|(id, g)| g.winner.is_none() && !self.broken.contains_key(id))
                .collect();
            let views =
                futures::future::join_all(open.iter().map(|(id, _)| self.client.view(*id))).await;
            let mut planned = Vec::new();
            let mut waiting = self.broken.len();
            let mut defence = U256::ZERO;
            let mut balance = None;
            for ((id, mut record), view) in open.into_iter().zip(views) {
                let view = view?;
                if view.is_over() {
                    self.game_over(id, &mut record, &view)?;
                    continue;
                }
                match self.choose(id, &record, &view).await {
                    Ok(Some(mv)) => {
                        // The defender's first move in a game carries its bond: moves that the
                        // balance cannot pay for wait, and the log says so.
                        if self.role == Side::Submitter
                            && !view.defended
                            && !matches!(mv, Move::Timeout)
                        {
                            let have = match balance {
                                Some(b) => b,
                                None => *balance.insert(self.balance().await?),
                            };
                            if have < defence + self.game_bond {
                                error!(
                                    game = id,
                                    balance = %have,
                                    defence_bond = %self.game_bond,
                                    clock_left = view.clock_left(Side::Submitter),
                                    "low funds: cannot post this game's defence bond; fund the account before the clock runs out"
                                );
                                waiting += 1;
                                continue;
                            }
                            defence += self.game_bond;
                        }
                        planned.push((id, record, view, mv));
                    }
                    Ok(None) => waiting += 1,
                    Err(BotError::Party(e)) => {
                        error!(game = id, "cannot play this game: {e}");
                        self.broken.insert(id, e.to_string());
                        waiting += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
            if planned.is_empty() {
                report.open_games += waiting;
                return Ok(());
            }
            let started = Instant::now();
            let sent = futures::future::join_all(
                planned
                    .iter()
                    .map(|(id, _, _, mv)| self.client.play(*id, mv)),
            )
            .await;
            let mut failure = None;
            let mut landed = 0;
            for ((id, mut record, view, mv), outcome) in planned.into_iter().zip(sent) {
                let name = mv.name();
                match outcome {
                    Ok(tx) => {
                        landed += 1;
                        record.moves += 1;
                        record.gas += tx.gas;
                        self.store.put_game(id, &record)?;
                        report.transactions += 1;
                        self.emit(
                            Some(id),
                            Some(record.result),
                            U256::ZERO,
                            MoveRecord::new(
                                self.role,
                                name,
                                Some(&view),
                                describe(&mv, Some(&view)),
                                tx.gas,
                                started,
                            ),
                        );
                        info!(
                            game = id,
                            phase = view.phase,
                            lo = view.lo,
                            hi = view.hi,
                            gas = tx.gas,
                            "{name}"
                        );
                    }
                    Err(e) if e.is_fee_capped() => {
                        // The game's clock runs while the move waits for cheaper gas.
                        error!(
                            game = id,
                            clock_left_s = view.clock_left(self.role),
                            "{e}: the move waits while this game's clock runs; raise \
                             max_fee_gwei if the clock is at risk"
                        );
                    }
                    Err(e) if e.is_rejection() => {
                        if self.attack.is_none() {
                            error!(game = id, "{name} refused, will look again: {e}");
                        } else {
                            warn!(game = id, "scripted {name} refused, stops moving: {e}");
                            if let Some(s) = self.strategies.get_mut(&id) {
                                s.refused();
                            }
                        }
                    }
                    // The node failed: the tick is tried again (what landed is recorded).
                    Err(e) => {
                        failure.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = failure {
                return Err(e.into());
            }
            if landed == 0 {
                report.open_games += waiting;
                return Ok(());
            }
        }
    }

    /// Records that game `id` is over.
    fn game_over(
        &mut self,
        id: u64,
        record: &mut GameRecord,
        view: &GameView,
    ) -> Result<(), BotError> {
        let winner = view.winner.expect("a finished game has a winner");
        record.winner = Some(winner);
        self.store.put_game(id, record)?;
        self.strategies.remove(&id);
        self.metrics.game_finished(winner == record.side);
        let outcome = if winner == record.side { "won" } else { "lost" };
        info!(
            game = id,
            result = record.result,
            ?winner,
            moves = record.moves,
            gas = record.gas,
            "game over: {outcome}"
        );
        Ok(())
    }

    /// The bot's move in game `id` as `view` shows it, if it has one. A game goes on after
    /// another game rejected its result: its own two bonds are still to be won (protocol
    /// section 12.4).
    async fn choose(
        &mut self,
        id: u64,
        record: &GameRecord,
        view: &GameView,
    ) -> Result<Option<Move>, BotError> {
        let Some(strategy) = self.strategy(id, record.result).await? else {
            return Ok(None);
        };
        Ok(strategy.next_move(view)?)
    }

    /// Records the games started since `from` that are the bot's: on its results (submitter) or
    /// opened by it (challenger; a challenge whose record a kill prevented).
    async fn scan_games(&mut self, from: u64, to: u64) -> Result<(), BotError> {
        let mine = (self.role == Side::Challenger).then_some(self.account);
        for event in self.client.games_between(from, to, mine).await? {
            if self.store.game(event.game)?.is_some() {
                continue;
            }
            let ours = match self.role {
                Side::Submitter => self
                    .store
                    .result(event.result)?
                    .is_some_and(|r| r.verdict == Verdict::Posted && r.submitter == self.account),
                Side::Challenger => true,
            };
            if !ours {
                continue;
            }
            if self.role == Side::Challenger {
                self.follow_result(event.result, Verdict::Disputed).await?;
            }
            info!(game = event.game, result = event.result, challenger = %event.challenger, "game started");
            self.store.put_game(
                event.game,
                &GameRecord {
                    result: event.result,
                    side: self.role,
                    winner: None,
                    moves: 0,
                    gas: 0,
                },
            )?;
        }
        Ok(())
    }

    /// Records result `id` as the chain has it, with `verdict`.
    async fn follow_result(&self, id: u64, verdict: Verdict) -> Result<ResultRecord, BotError> {
        let r = self.client.result_info(id).await?;
        let q = self.client.request_info(r.request).await?;
        let record = ResultRecord {
            request: r.request,
            model: q.model,
            submitter: r.submitter,
            output: r.output,
            trace_root: r.trace_root,
            deadline: r.deadline,
            status: r.status,
            verdict,
        };
        self.store.put_result(id, &record)?;
        Ok(record)
    }

    /// Submitter: records the new requests for its models as waiting for an answer.
    async fn scan_requests(&mut self, from: u64, to: u64) -> Result<(), BotError> {
        for event in self.client.requests_between(from, to).await? {
            let id = event.request;
            if self.model(&event.model).is_none() {
                debug!(request = id, model = %event.model, "not one of our models");
                continue;
            }
            if self.store.request(id)?.is_some() {
                continue;
            }
            if !self.config.serve.is_empty() && !self.config.serve.contains(&event.requester) {
                debug!(request = id, requester = %event.requester, "not a requester we serve");
                continue;
            }
            self.store.put_request(id, &RequestRecord::Waiting)?;
        }
        Ok(())
    }

    /// Submitter: a request whose result another submitter lost is open again; it waits for our
    /// answer. A result of our own that was rejected is an alarm.
    async fn scan_rejections(&mut self, from: u64, to: u64) -> Result<(), BotError> {
        for event in self.client.rejections_between(from, to).await? {
            let r = self.client.result_info(event.result).await?;
            if r.submitter == self.account {
                error!(
                    result = event.result,
                    request = r.request,
                    game = event.game,
                    "our result was rejected"
                );
                continue;
            }
            if let Some(RequestRecord::Skipped { .. }) = self.store.request(r.request)? {
                info!(
                    request = r.request,
                    result = event.result,
                    "another submitter's result was rejected: the request waits for our answer"
                );
                self.store.put_request(r.request, &RequestRecord::Waiting)?;
            }
        }
        Ok(())
    }

    /// Submitter: answers the waiting requests while its balance stays above the reserve it
    /// keeps for defending its games.
    async fn answer_requests(&mut self, report: &mut TickReport) -> Result<(), BotError> {
        for (id, record) in self.store.requests()? {
            if record != RequestRecord::Waiting {
                continue;
            }
            let stored = self.client.request_info(id).await?;
            if stored.result != 0 {
                let submitter = self.client.result_info(stored.result).await?.submitter;
                let record = if submitter == self.account {
                    self.follow_result(stored.result, Verdict::Posted).await?;
                    info!(
                        request = id,
                        result = stored.result,
                        "found our answer posted before the restart"
                    );
                    RequestRecord::Answered {
                        result: stored.result,
                    }
                } else {
                    RequestRecord::Skipped {
                        reason: format!("answered by {submitter} first"),
                    }
                };
                self.store.put_request(id, &record)?;
                continue;
            }
            let Some(model) = self.model(&stored.model) else {
                continue;
            };
            let view = match self.view(id, &model, None).await? {
                Ok(view) => view,
                Err(reason) => {
                    warn!(request = id, "skipped: {reason}");
                    self.store
                        .put_request(id, &RequestRecord::Skipped { reason })?;
                    continue;
                }
            };
            let balance = self.balance().await?;
            if balance < self.reserve + self.bond {
                warn!(
                    request = id,
                    balance = %balance,
                    reserve = %self.reserve,
                    result_bond = %self.bond,
                    "low funds: the balance is below the defence reserve plus a result bond; \
                     not taking new requests until the account is funded"
                );
                return Ok(());
            }
            let submitter = self.defender(view);
            let t = Instant::now();
            let (tx, result) = match self
                .client
                .submit_result(id, submitter.output(), submitter.trace_root(), self.bond)
                .await
            {
                Ok(posted) => posted,
                Err(e) if e.is_fee_capped() => {
                    warn!(request = id, "{e}; answering later");
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            };
            report.transactions += 1;
            self.metrics.result_posted();
            self.follow_result(result, Verdict::Posted).await?;
            self.store
                .put_request(id, &RequestRecord::Answered { result })?;
            info!(request = id, result, output = %B256::from(submitter.output()), gas = tx.gas, "posted a result");
            let detail = format!("request {id}: output {}", short(&submitter.output()));
            self.emit(
                None,
                Some(result),
                U256::ZERO,
                MoveRecord::new(self.role, "post_result", None, detail, tx.gas, t),
            );
        }
        Ok(())
    }

    /// Challenger: re-executes every new result of its models and records those that differ, to
    /// be challenged once the games it already plays have had their moves.
    async fn scan_results(&mut self, from: u64, to: u64) -> Result<(), BotError> {
        for event in self.client.results_between(from, to).await? {
            let id = event.result;
            if self.store.result(id)?.is_some() {
                continue;
            }
            let mut record = self.follow_result(id, Verdict::Ignored).await?;
            let Some(model) = self.model(&record.model) else {
                debug!(result = id, "not one of our models");
                continue;
            };
            let view = match self.view(record.request, &model, None).await? {
                Ok(view) => view,
                Err(reason) => {
                    warn!(result = id, "ignored: {reason}");
                    continue;
                }
            };
            let challenger = self.challenger(view);
            record.verdict = if challenger.disputes(event.output.0, event.traceRoot.0) {
                info!(
                    result = id,
                    request = record.request,
                    "re-executed: differs"
                );
                Verdict::Differs
            } else {
                info!(result = id, request = record.request, "re-executed: agrees");
                Verdict::Agrees
            };
            self.store.put_result(id, &record)?;
        }
        Ok(())
    }

    /// Challenger: challenges every result found different whose challenge has not landed, until
    /// it lands or the window closes; a failure (too little balance, a node error, a refusal) is
    /// said and tried again on the next tick.
    async fn challenge_results(&mut self, report: &mut TickReport) -> Result<(), BotError> {
        for (id, mut record) in self.store.results()? {
            if record.verdict != Verdict::Differs {
                continue;
            }
            let status = self.client.result_status(id).await?;
            let now = self.client.now().await?;
            if status != ResultStatus::Pending || now >= record.deadline {
                let level_error = status != ResultStatus::Rejected;
                if level_error {
                    error!(
                        result = id,
                        ?status,
                        "a result we found wrong is past its window unchallenged by us"
                    );
                } else {
                    info!(
                        result = id,
                        "rejected by another game before our challenge landed"
                    );
                }
                record.verdict = Verdict::Missed;
                record.status = status;
                self.store.put_result(id, &record)?;
                continue;
            }
            let balance = self.balance().await?;
            if balance < self.bond {
                error!(
                    result = id,
                    balance = %balance,
                    bond = %self.bond,
                    deadline = record.deadline,
                    "low funds: a wrong result cannot be challenged until the account is funded"
                );
                continue;
            }
            let Some(model) = self.model(&record.model) else {
                continue;
            };
            let view = match self.view(record.request, &model, None).await? {
                Ok(view) => view,
                Err(reason) => {
                    warn!(result = id, "cannot challenge: {reason}");
                    continue;
                }
            };
            let challenger = self.challenger(view);
            let t = Instant::now();
            let (tx, game) = match self.client.challenge(id, self.bond).await {
                Ok(ok) => ok,
                Err(e) if e.is_fee_capped() => {
                    // The window closes whatever gas costs.
                    error!(
                        result = id,
                        window_left_s = record.deadline.saturating_sub(now),
                        "{e}: the challenge waits while the result's window runs; raise \
                         max_fee_gwei if it is at risk"
                    );
                    continue;
                }
                Err(e) => {
                    warn!(result = id, "challenge failed, trying again next tick: {e}");
                    continue;
                }
            };
            report.transactions += 1;
            self.metrics.result_challenged();
            record.verdict = Verdict::Disputed;
            self.store.put_result(id, &record)?;
            self.store.put_game(
                game,
                &GameRecord {
                    result: id,
                    side: Side::Challenger,
                    winner: None,
                    moves: 0,
                    gas: tx.gas,
                },
            )?;
            self.strategies
                .insert(game, Strategy::Challenger(challenger));
            info!(result = id, game, gas = tx.gas, "challenged");
            let detail = format!("result {id}: output {} differs", short(&record.output.0));
            self.emit(
                Some(game),
                Some(id),
                U256::ZERO,
                MoveRecord::new(self.role, "challenge", None, detail, tx.gas, t),
            );
        }
        Ok(())
    }

    /// Follows the bot's pending results to finality: the submitter finalizes its own once the
    /// window has passed with no open game.
    async fn settle_results(&mut self, report: &mut TickReport) -> Result<(), BotError> {
        for (id, mut record) in self.store.results()? {
            let watched = match self.role {
                Side::Submitter => {
                    record.verdict == Verdict::Posted && record.submitter == self.account
                }
                Side::Challenger => record.verdict == Verdict::Disputed,
            };
            if !watched || record.status != ResultStatus::Pending {
                continue;
            }
            let mut status = self.client.result_status(id).await?;
            if status == ResultStatus::Pending && self.role == Side::Submitter {
                let now = self.client.now().await?;
                let wall = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                if now.max(wall) >= record.deadline {
                    let t = Instant::now();
                    match self.client.finalize(id).await {
                        Ok(tx) => {
                            report.transactions += 1;
                            status = ResultStatus::Final;
                            info!(result = id, gas = tx.gas, "finalized");
                            let detail = format!("result {id}");
                            self.emit(
                                None,
                                Some(id),
                                U256::ZERO,
                                MoveRecord::new(self.role, "finalize", None, detail, tx.gas, t),
                            );
                        }
                        Err(e) if e.is_rejection() => debug!(result = id, "not final yet: {e}"),
                        Err(e) if e.is_fee_capped() => {
                            warn!(result = id, "{e}; finalizing later")
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            if status != record.status {
                info!(result = id, ?status, "result settled");
                record.status = status;
                self.store.put_result(id, &record)?;
            } else {
                report.pending_results += 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_scanned_only_as_deep_as_the_confirmations() {
        let r = LOG_RANGE;
        // (cursor, head, confirmations) → the slices scanned.
        let cases: [((u64, u64, u64), &[(u64, u64)]); 10] = [
            ((0, 10, 0), &[(0, 10)]),
            ((5, 10, 2), &[(5, 8)]),
            // The block 2 deep is the newest scanned: a request in block 9 waits for block 11.
            ((9, 10, 2), &[]),
            ((9, 11, 2), &[(9, 9)]),
            // Already scanned up to the confirmed block.
            ((11, 10, 0), &[]),
            // Fewer blocks than confirmations: none is final.
            ((0, 2, 3), &[]),
            ((0, 3, 3), &[(0, 0)]),
            // A head that went back below the cursor scans nothing, and never earlier blocks.
            ((100, 50, 0), &[]),
            // Far behind: slices of LOG_RANGE, the last one ending at the confirmed block.
            ((1, 2 * r + 12, 12), &[(1, r), (r + 1, 2 * r)]),
            ((u64::MAX, u64::MAX, 0), &[(u64::MAX, u64::MAX)]),
        ];
        for ((from, head, confirmations), want) in cases {
            let got: Vec<_> = scan_slices(from, head, confirmations).collect();
            assert_eq!(
                got, want,
                "cursor {from}, head {head}, {confirmations} confirmations"
            );
        }
    }
}
