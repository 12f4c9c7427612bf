//! The embedded chain: revm in-process, answering Ethereum JSON-RPC as an alloy transport.
//!
//! Code above it holds an ordinary alloy [`Provider`] and cannot tell this chain from a node reached
//! over HTTP: requests arrive as serialized JSON-RPC, answers leave as JSON-RPC, signed raw
//! transactions are decoded and their signers recovered, reverts come back as error code 3 with the
//! revert data, as geth and Hardhat answer. Every transaction is mined at once in its own block
//! (Hardhat's automine); `evm_increaseTime`, `evm_setNextBlockTimestamp` and `evm_mine` move the
//! clock as on a Hardhat node, so tests that move time run unchanged against both.
//!
//! The chain keeps only the latest state: a call at an older block is an error, not a silent answer
//! from the wrong state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context as TaskContext, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use alloy::consensus::proofs::{calculate_receipt_root, calculate_transaction_root};
use alloy::consensus::transaction::{Recovered, SignerRecoverable};
use alloy::consensus::{
    Header, Receipt, ReceiptEnvelope, ReceiptWithBloom, Transaction as _, TxEnvelope, TxType,
};
use alloy::eips::eip2718::Decodable2718;
use alloy::network::EthereumWallet;
use alloy::primitives::{Address, Bloom, Bytes, TxKind, B256, U256, U64};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::client::RpcClient;
use alloy::rpc::json_rpc::{
    ErrorPayload, RequestPacket, Response, ResponsePacket, ResponsePayload, SerializedRequest,
};
use alloy::rpc::types::eth::{
    Block, BlockNumberOrTag, BlockTransactions, FeeHistory, Filter, FilterBlockOption,
    Header as RpcHeader, Log as RpcLog, Transaction as RpcTransaction, TransactionReceipt,
    TransactionRequest,
};
use alloy::signers::local::{coins_bip39::English, MnemonicBuilder, PrivateKeySigner};
use alloy::transports::{TransportError, TransportFut};
use revm::context::result::{EVMError, ExecutionResult, InvalidTransaction};
use revm::context::{BlockEnv, CfgEnv, TxEnv};
use revm::database::{CacheDB, EmptyDB};
use revm::database_interface::WrapDatabaseRef;
use revm::primitives::hardfork::SpecId;
use revm::state::AccountInfo;
use revm::{Context, DatabaseCommit, ExecuteEvm, MainBuilder, MainContext};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// The development mnemonic whose first accounts the embedded chain funds: the one Hardhat's and
/// Anvil's nodes use, so the same keys work against those nodes. Never hold real funds with it.
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// How the embedded chain starts.
#[derive(Debug, Clone)]
pub struct ChainConfig {
    /// EIP-155 chain id (31337, as Hardhat and Anvil).
    pub chain_id: u64,
    /// How many accounts of [`DEV_MNEMONIC`] get `dev_balance`.
    pub dev_accounts: u32,
    /// Balance of each dev account, in wei.
    pub dev_balance: U256,
    /// Gas limit of every block.
    pub block_gas_limit: u64,
    /// Base fee of every block, in wei (constant: blocks hold one transaction each).
    pub base_fee: u64,
    /// The hard fork whose rules (gas schedule included) the chain follows.
    pub spec: SpecId,
    /// Timestamp of the genesis block; `None` takes the wall clock.
    pub genesis_timestamp: Option<u64>,
}

impl Default for ChainConfig {
    fn default() -> Self {
        Self {
            chain_id: 31337,
            dev_accounts: 10,
            dev_balance: U256::from(10_000u64) * U256::from(10u64).pow(U256::from(18u64)),
            block_gas_limit: 30_000_000,
            base_fee: 1_000_000_000,
            spec: SpecId::OSAKA,
            genesis_timestamp: None,
        }
    }
}

/// The priority fee the chain suggests (`eth_maxPriorityFeePerGas`).
const SUGGESTED_TIP: u128 = 1_000_000_000;

/// The signer of dev account `index` of [`DEV_MNEMONIC`] (path m/44'/60'/0'/0/index).
pub fn dev_signer(index: u32) -> PrivateKeySigner {
    try_dev_signer(index).expect("a dev account below 2^31")
}

/// The signer of dev account `index`, or `None` past the last non-hardened child (2^31 - 1).
pub fn try_dev_signer(index: u32) -> Option<PrivateKeySigner> {
    MnemonicBuilder::<English>::default()
        .phrase(DEV_MNEMONIC)
        .index(index)
        .and_then(|b| b.build())
        .ok()
}

/// Chain ids of development chains, where the public [`DEV_MNEMONIC`] keys are expected: 31337
/// (Hardhat, Anvil, and the embedded chain's default) and 1337 (Ganache, `geth --dev`).
pub const DEV_CHAIN_IDS: [u64; 2] = [31337, 1337];

/// How many [`DEV_MNEMONIC`] accounts count as dev keys (Hardhat's node funds 20).
pub const DEV_KEY_ACCOUNTS: u32 = 20;

/// Whether `chain_id` is a development chain's ([`DEV_CHAIN_IDS`]).
pub fn is_dev_chain(chain_id: u64) -> bool {
    DEV_CHAIN_IDS.contains(&chain_id)
}

/// Whether `account` is one of the first [`DEV_KEY_ACCOUNTS`] accounts of [`DEV_MNEMONIC`], whose
/// keys everyone knows (however the key was given: `dev:N` or its hex).
pub fn is_dev_account(account: Address) -> bool {
    static DEV: std::sync::OnceLock<Vec<Address>> = std::sync::OnceLock::new();
    DEV.get_or_init(|| {
        (0..DEV_KEY_ACCOUNTS)
            .map(|i| dev_signer(i).address())
            .collect()
    })
    .contains(&account)
}

/// Logs a loud warning, and returns true, when `account` is a dev account about to sign on a chain
/// that is not a dev chain: anyone can take what that account holds there.
pub fn warn_if_dev_key(chain_id: u64, account: Address) -> bool {
    let risky = !is_dev_chain(chain_id) && is_dev_account(account);
    if risky {
        tracing::warn!(
            %account,
            chain_id,
            "SIGNING WITH A PUBLIC DEV KEY on chain {chain_id}, which is not a development chain \
             (31337, 1337): anyone can spend this account's funds; give a key of your own \
             (key = \"env:VAR\", --private-key-env VAR)"
        );
    }
    risky
}

/// An in-process Ethereum chain (revm) behind a JSON-RPC transport. Cheap to clone: clones share
/// one chain.
#[derive(Clone)]
pub struct EmbeddedChain {
    inner: Arc<Mutex<ChainState>>,
}

impl std::fmt::Debug for EmbeddedChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("EmbeddedChain")
            .field("chain_id", &state.config.chain_id)
            .field("block_number", &(state.blocks.len() - 1))
            .finish()
    }
}

impl Default for EmbeddedChain {
    fn default() -> Self {
        Self::new(ChainConfig::default())
    }
}

impl EmbeddedChain {
    /// A new chain at its genesis block with the dev accounts funded.
    pub fn new(config: ChainConfig) -> Self {
        let mut db = CacheDB::new(EmptyDB::default());
        let mut accounts = Vec::new();
        for index in 0..config.dev_accounts {
            let address = dev_signer(index).address();
            db.insert_account_info(
                address,
                AccountInfo {
                    balance: config.dev_balance,
                    ..Default::default()
                },
            );
            accounts.push(address);
        }
        let timestamp = config.genesis_timestamp.unwrap_or_else(wall_clock);
        let genesis = Header {
            number: 0,
            timestamp,
            gas_limit: config.block_gas_limit,
            base_fee_per_gas: Some(config.base_fee),
            ..Default::default()
        };
        let genesis = MinedBlock {
            hash: genesis.hash_slow(),
            header: genesis,
            transactions: Vec::new(),
        };
        let state = ChainState {
            config,
            db,
            accounts,
            blocks: vec![genesis],
            transactions: HashMap::new(),
            logs: Vec::new(),
            started: Instant::now(),
            time_offset: 0,
            time_floor: 0,
            next_timestamp: None,
        };
        Self {
            inner: Arc::new(Mutex::new(state)),
        }
    }

    /// The addresses of the funded dev accounts, in mnemonic order.
    pub fn dev_accounts(&self) -> Vec<Address> {
        self.lock().accounts.clone()
    }

    /// An alloy RPC client whose transport is this chain.
    pub fn client(&self) -> RpcClient {
        RpcClient::new(self.clone(), true)
    }

    /// An alloy provider on this chain that signs with `signer` (nonce, gas and chain id filled
    /// in, as for any node).
    pub fn provider(&self, signer: PrivateKeySigner) -> DynProvider {
        ProviderBuilder::new()
            .wallet(EthereumWallet::from(signer))
            .connect_client(self.client())
            .erased()
    }

    fn lock(&self) -> MutexGuard<'_, ChainState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn answer(&self, request: &SerializedRequest) -> Response {
        let params = request
            .params()
            .map(|raw| serde_json::from_str::<Value>(raw.get()))
            .transpose();
        let payload = match params {
            Err(e) => Err(RpcFailure::invalid_params(format!(
                "params are not JSON: {e}"
            ))),
            Ok(params) => {
                let params = match params {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(items)) => items,
                    Some(other) => vec![other],
                };
                self.lock().dispatch(request.method(), Params(params))
            }
        };
        let payload = match payload {
            Ok(value) => {
                let raw = serde_json::value::to_raw_value(&value)
                    .expect("a serde_json::Value always serializes");
                ResponsePayload::Success(raw)
            }
            Err(failure) => {
                tracing::debug!(method = request.method(), error = %failure.message, "rpc error");
                ResponsePayload::Failure(failure.into_payload())
            }
        };
        Response {
            id: request.id().clone(),
            payload,
        }
    }
}

impl tower::Service<RequestPacket> for EmbeddedChain {
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, packet: RequestPacket) -> Self::Future {
        let chain = self.clone();
        Box::pin(async move {
            Ok(match packet {
                RequestPacket::Single(request) => ResponsePacket::Single(chain.answer(&request)),
                RequestPacket::Batch(requests) => {
                    ResponsePacket::Batch(requests.iter().map(|r| chain.answer(r)).collect())
                }
            })
        })
    }
}

fn wall_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A JSON-RPC error answer.
struct RpcFailure {
    code: i64,
    message: String,
    data: Option<Value>,
}

impl RpcFailure {
    fn invalid_params(message: impl Into<String>) -> Self {
        Self {
            code: -32602,
            message: message.into(),
            data: None,
        }
    }

    fn server(message: impl Into<String>) -> Self {
        Self {
            code: -32000,
            message: message.into(),
            data: None,
        }
    }

    /// A revert, as geth answers it: code 3 and the revert data.
    fn revert(output: &Bytes) -> Self {
        Self {
            code: 3,
            message: "execution reverted".into(),
            data: Some(json!(output)),
        }
    }

    fn into_payload(self) -> ErrorPayload {
        ErrorPayload {
            code: self.code,
            message: self.message.into(),
            data: self
                .data
                .map(|d| serde_json::value::to_raw_value(&d).expect("JSON value serializes")),
        }
    }
}

/// The positional parameters of one request.
struct Params(Vec<Value>);

impl Params {
    fn get<T: DeserializeOwned>(&self, index: usize, what: &str) -> Result<T, RpcFailure> {
        let value = self
            .0
            .get(index)
            .cloned()
            .ok_or_else(|| RpcFailure::invalid_params(format!("missing parameter {what}")))?;
        serde_json::from_value(value)
            .map_err(|e| RpcFailure::invalid_params(format!("bad parameter {what}: {e}")))
    }

    fn get_or<T: DeserializeOwned>(
        &self,
        index: usize,
        what: &str,
        default: T,
    ) -> Result<T, RpcFailure> {
        match self.0.get(index) {
            None | Some(Value::Null) => Ok(default),
            Some(_) => self.get(index, what),
        }
    }
}

struct MinedBlock {
    hash: B256,
    header: Header,
    transactions: Vec<B256>,
}

struct MinedTransaction {
    transaction: Recovered<TxEnvelope>,
    block_number: u64,
    receipt: ReceiptEnvelope,
    gas_used: u64,
    effective_gas_price: u128,
    contract_address: Option<Address>,
    /// Index of this transaction's first log in the chain's log list.
    first_log: usize,
}

struct StoredLog {
    log: alloy::primitives::Log,
    block_number: u64,
    transaction_hash: B256,
    log_index: u64,
}

struct ChainState {
    config: ChainConfig,
    db: CacheDB<EmptyDB>,
    accounts: Vec<Address>,
    blocks: Vec<MinedBlock>,
    transactions: HashMap<B256, MinedTransaction>,
    logs: Vec<StoredLog>,
    /// When the chain started: its clock runs from the genesis timestamp at wall-clock speed.
    started: Instant,
    /// Seconds added to the clock by `evm_increaseTime`.
    time_offset: u64,
    /// No later block is earlier than this (the latest block's time plus each increase).
    time_floor: u64,
    /// The timestamp `evm_setNextBlockTimestamp` asked for.
    next_timestamp: Option<u64>,
}

type RpcResult = Result<Value, RpcFailure>;

fn to_json<T: serde::Serialize>(value: T) -> RpcResult {
    serde_json::to_value(value)
        .map_err(|e| RpcFailure::server(format!("cannot encode answer: {e}")))
}

impl ChainState {
    fn dispatch(&mut self, method: &str, params: Params) -> RpcResult {
        match method {
            "web3_clientVersion" => to_json(concat!("opml-embedded/", env!("CARGO_PKG_VERSION"))),
            "net_version" => to_json(self.config.chain_id.to_string()),
            "eth_chainId" => to_json(U64::from(self.config.chain_id)),
            "eth_blockNumber" => to_json(U64::from(self.latest())),
            "eth_accounts" => to_json(&self.accounts),
            "eth_syncing" => to_json(false),
            "eth_gasPrice" => to_json(U256::from(u128::from(self.config.base_fee) + SUGGESTED_TIP)),
            "eth_maxPriorityFeePerGas" => to_json(U256::from(SUGGESTED_TIP)),
            "eth_feeHistory" => self.fee_history(&params),
            "eth_getBalance" => {
                let address: Address = params.get(0, "address")?;
                self.check_latest(&params, 1)?;
                to_json(self.account(address).balance)
            }
            "eth_getTransactionCount" => {
                let address: Address = params.get(0, "address")?;
                self.check_latest(&params, 1)?;
                to_json(U64::from(self.account(address).nonce))
            }
            "eth_getCode" => {
                let address: Address = params.get(0, "address")?;
                self.check_latest(&params, 1)?;
                let code = self
                    .account(address)
                    .code
                    .map(|c| c.original_bytes())
                    .unwrap_or_default();
                to_json(code)
            }
            "eth_getStorageAt" => {
                let address: Address = params.get(0, "address")?;
                let slot: U256 = params.get(1, "slot")?;
                self.check_latest(&params, 2)?;
                let value =
                    revm::DatabaseRef::storage_ref(&self.db, address, slot).unwrap_or_default();
                to_json(B256::from(value))
            }
            "eth_getBlockByNumber" => {
                let tag: BlockNumberOrTag = params.get(0, "block")?;
                let full: bool = params.get_or(1, "full", false)?;
                match self.resolve(tag) {
                    Some(n) => self.block_json(n, full),
                    None => Ok(Value::Null),
                }
            }
            "eth_getBlockByHash" => {
                let hash: B256 = params.get(0, "block hash")?;
                let full: bool = params.get_or(1, "full", false)?;
                match self.blocks.iter().position(|b| b.hash == hash) {
                    Some(n) => self.block_json(n as u64, full),
                    None => Ok(Value::Null),
                }
            }
            "eth_call" => {
                let request: TransactionRequest = params.get(0, "transaction")?;
                self.check_latest(&params, 1)?;
                let result = self.simulate(&request, None)?;
                match result {
                    ExecutionResult::Success { output, .. } => to_json(output.into_data()),
                    ExecutionResult::Revert { output, .. } => Err(RpcFailure::revert(&output)),
                    ExecutionResult::Halt { reason, .. } => {
                        Err(RpcFailure::server(format!("execution halted: {reason:?}")))
                    }
                }
            }
            "eth_estimateGas" => {
                let request: TransactionRequest = params.get(0, "transaction")?;
                self.check_latest(&params, 1)?;
                to_json(U64::from(self.estimate_gas(&request)?))
            }
            "eth_sendRawTransaction" => {
                let raw: Bytes = params.get(0, "raw transaction")?;
                to_json(self.mine_transaction(&raw)?)
            }
            "eth_getTransactionReceipt" => {
                let hash: B256 = params.get(0, "transaction hash")?;
                match self.transactions.get(&hash) {
                    Some(mined) => to_json(self.receipt(hash, mined)),
                    None => Ok(Value::Null),
                }
            }
            "eth_getTransactionByHash" => {
                let hash: B256 = params.get(0, "transaction hash")?;
                match self.transactions.get(&hash) {
                    Some(mined) => to_json(self.rpc_transaction(mined)),
                    None => Ok(Value::Null),
                }
            }
            "eth_getLogs" => {
                let filter: Filter = params.get(0, "filter")?;
                to_json(self.logs(&filter)?)
            }
            "evm_increaseTime" => {
                let seconds: U64 = params.get(0, "seconds")?;
                let seconds = seconds.to::<u64>();
                self.time_offset += seconds;
                self.time_floor = self.time_floor.max(self.latest_header().timestamp) + seconds;
                to_json(self.time_offset)
            }
            "evm_setNextBlockTimestamp" => {
                let timestamp: U64 = params.get(0, "timestamp")?;
                let timestamp = timestamp.to::<u64>();
                if timestamp <= self.latest_header().timestamp {
                    return Err(RpcFailure::server(format!(
                        "timestamp {timestamp} is not after the latest block's {}",
                        self.latest_header().timestamp
                    )));
                }
                self.next_timestamp = Some(timestamp);
                to_json(U64::from(timestamp))
            }
            "evm_mine" => {
                if let Some(timestamp) = params.get_or::<Option<U64>>(0, "timestamp", None)? {
                    self.next_timestamp = Some(timestamp.to::<u64>());
                }
                let timestamp = self.next_block_timestamp();
                self.seal_block(timestamp, Vec::new(), 0, Vec::new());
                to_json("0x0")
            }
            other => Err(RpcFailure {
                code: -32601,
                message: format!("the embedded chain does not serve method {other}"),
                data: None,
            }),
        }
    }

    fn latest(&self) -> u64 {
        (self.blocks.len() - 1) as u64
    }

    fn latest_header(&self) -> &Header {
        &self.blocks[self.blocks.len() - 1].header
    }

    fn resolve(&self, tag: BlockNumberOrTag) -> Option<u64> {
        let n = match tag {
            BlockNumberOrTag::Number(n) => n,
            BlockNumberOrTag::Earliest => 0,
            _ => self.latest(),
        };
        (n <= self.latest()).then_some(n)
    }

    /// Fails unless the block parameter at `index` (absent, a tag, or a number) names the latest
    /// state, the only one the chain keeps.
    fn check_latest(&self, params: &Params, index: usize) -> Result<(), RpcFailure> {
        let Some(value) = params.0.get(index).filter(|v| !v.is_null()) else {
            return Ok(());
        };
        // A block hash object ({"blockHash": ...}) or a tag/number.
        if let Ok(tag) = serde_json::from_value::<BlockNumberOrTag>(value.clone()) {
            match tag {
                BlockNumberOrTag::Number(n) if n != self.latest() => {
                    return Err(RpcFailure::server(format!(
                        "the embedded chain keeps only the latest state (block {}), not block {n}",
                        self.latest()
                    )))
                }
                BlockNumberOrTag::Earliest if self.latest() != 0 => {
                    return Err(RpcFailure::server(
                        "the embedded chain keeps only the latest state",
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn account(&self, address: Address) -> AccountInfo {
        revm::DatabaseRef::basic_ref(&self.db, address)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    fn fee_history(&self, params: &Params) -> RpcResult {
        let count: U64 = params.get(0, "block count")?;
        let newest: BlockNumberOrTag = params.get(1, "newest block")?;
        let percentiles: Vec<f64> = params.get_or(2, "reward percentiles", Vec::new())?;
        let newest = self
            .resolve(newest)
            .ok_or_else(|| RpcFailure::invalid_params("newest block is not mined yet"))?;
        let count = count.to::<u64>().clamp(1, newest + 1);
        let oldest = newest + 1 - count;
        let history = FeeHistory {
            oldest_block: oldest,
            base_fee_per_gas: vec![u128::from(self.config.base_fee); count as usize + 1],
            gas_used_ratio: (oldest..=newest)
                .map(|n| {
                    let h = &self.blocks[n as usize].header;
                    h.gas_used as f64 / h.gas_limit as f64
                })
                .collect(),
            base_fee_per_blob_gas: vec![1; count as usize + 1],
            blob_gas_used_ratio: vec![0.0; count as usize],
            reward: (!percentiles.is_empty())
                .then(|| vec![vec![SUGGESTED_TIP; percentiles.len()]; count as usize]),
        };
        to_json(history)
    }

    fn block_env(&self, number: u64, timestamp: u64) -> BlockEnv {
        BlockEnv {
            number: U256::from(number),
            timestamp: U256::from(timestamp),
            gas_limit: self.config.block_gas_limit,
            basefee: self.config.base_fee,
            prevrandao: Some(B256::ZERO),
            ..Default::default()
        }
    }

    fn cfg_env(&self) -> CfgEnv {
        let mut cfg = CfgEnv::new_with_spec(self.config.spec);
        cfg.chain_id = self.config.chain_id;
        cfg
    }

    /// Runs `request` on the latest state without committing (eth_call, eth_estimateGas).
    fn simulate(
        &self,
        request: &TransactionRequest,
        gas_limit: Option<u64>,
    ) -> Result<ExecutionResult, RpcFailure> {
        let from = request.from.unwrap_or_default();
        let gas_limit = gas_limit
            .or(request.gas)
            .unwrap_or(self.config.block_gas_limit)
            .min(self.tx_gas_cap());
        let tx = TxEnv {
            caller: from,
            gas_limit,
            gas_price: 0,
            kind: request.to.unwrap_or(TxKind::Create),
            value: request.value.unwrap_or_default(),
            data: request.input.input().cloned().unwrap_or_default(),
            nonce: self.account(from).nonce,
            chain_id: Some(self.config.chain_id),
            ..Default::default()
        };
        let mut cfg = self.cfg_env();
        cfg.disable_base_fee = true;
        cfg.disable_nonce_check = true;
        let latest = self.latest_header();
        let block = self.block_env(latest.number + 1, self.peek_next_timestamp());
        let mut evm = Context::mainnet()
            .with_db(WrapDatabaseRef(&self.db))
            .with_cfg(cfg)
            .with_block(block)
            .build_mainnet();
        evm.transact(tx)
            .map(|r| r.result)
            .map_err(|e| RpcFailure::server(evm_error_message(&e)))
    }

    /// The largest gas a transaction may ask for under the chain's rules.
    fn tx_gas_cap(&self) -> u64 {
        // EIP-7825 (Osaka) caps a transaction at 2^24 gas.
        if self.config.spec >= SpecId::OSAKA {
            self.config.block_gas_limit.min(1 << 24)
        } else {
            self.config.block_gas_limit
        }
    }

    /// The least gas limit with which `request` succeeds: the gas it used at the cap, raised by
    /// bisection when a lower limit changes the outcome (the 63/64 rule of nested calls).
    fn estimate_gas(&self, request: &TransactionRequest) -> Result<u64, RpcFailure> {
        let cap = self.tx_gas_cap();
        let result = self.simulate(request, Some(cap))?;
        match &result {
            ExecutionResult::Success { .. } => {}
            ExecutionResult::Revert { output, .. } => return Err(RpcFailure::revert(output)),
            ExecutionResult::Halt { reason, .. } => {
                return Err(RpcFailure::server(format!(
                    "gas estimation failed: execution halted ({reason:?})"
                )))
            }
        }
        let used = result.tx_gas_used();
        let succeeds = |limit: u64| {
            self.simulate(request, Some(limit))
                .map(|r| r.is_success())
                .unwrap_or(false)
        };
        if succeeds(used) {
            return Ok(used);
        }
        let (mut low, mut high) = (used, cap);
        while high - low > 1 {
            let mid = low + (high - low) / 2;
            if succeeds(mid) {
                high = mid;
            } else {
                low = mid;
            }
        }
        Ok(high)
    }

    /// The timestamp the next block will get (`eth_call` runs in it too).
    fn peek_next_timestamp(&self) -> u64 {
        let after = self.latest_header().timestamp + 1;
        match self.next_timestamp {
            Some(t) => t.max(after),
            None => {
                let clock = self.blocks[0].header.timestamp
                    + self.started.elapsed().as_secs()
                    + self.time_offset;
                clock.max(after).max(self.time_floor)
            }
        }
    }

    fn next_block_timestamp(&mut self) -> u64 {
        let t = self.peek_next_timestamp();
        self.next_timestamp = None;
        t
    }

    /// Decodes, checks and executes a signed transaction in a new block; returns its hash.
    fn mine_transaction(&mut self, raw: &[u8]) -> Result<B256, RpcFailure> {
        let envelope = TxEnvelope::decode_2718(&mut &raw[..])
            .map_err(|e| RpcFailure::invalid_params(format!("cannot decode transaction: {e}")))?;
        let hash = *envelope.tx_hash();
        if self.transactions.contains_key(&hash) {
            return Err(RpcFailure::server(format!(
                "transaction {hash} already known"
            )));
        }
        if envelope.tx_type() == TxType::Eip4844 {
            return Err(RpcFailure::server(
                "the embedded chain does not take blob transactions",
            ));
        }
        if let Some(chain_id) = envelope.chain_id() {
            if chain_id != self.config.chain_id {
                return Err(RpcFailure::server(format!(
                    "transaction is for chain {chain_id}, this chain is {}",
                    self.config.chain_id
                )));
            }
        }
        let caller = envelope
            .recover_signer()
            .map_err(|e| RpcFailure::invalid_params(format!("cannot recover the signer: {e}")))?;
        let base_fee = u128::from(self.config.base_fee);
        let effective_gas_price = envelope.effective_gas_price(Some(self.config.base_fee));
        let tx = TxEnv {
            tx_type: envelope.tx_type() as u8,
            caller,
            gas_limit: envelope.gas_limit(),
            gas_price: envelope.max_fee_per_gas(),
            kind: envelope.kind(),
            value: envelope.value(),
            data: envelope.input().clone(),
            nonce: envelope.nonce(),
            chain_id: envelope.chain_id(),
            access_list: envelope.access_list().cloned().unwrap_or_default(),
            gas_priority_fee: envelope.max_priority_fee_per_gas(),
            ..Default::default()
        };
        if tx.gas_price < base_fee {
            return Err(RpcFailure::server(format!(
                "max fee per gas {} is below the base fee {base_fee}",
                tx.gas_price
            )));
        }
        let timestamp = self.next_block_timestamp();
        let number = self.latest() + 1;
        let block = self.block_env(number, timestamp);
        let outcome = {
            let mut evm = Context::mainnet()
                .with_db(WrapDatabaseRef(&self.db))
                .with_cfg(self.cfg_env())
                .with_block(block)
                .build_mainnet();
            evm.transact(tx)
        };
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(e) => {
                // Not mined: put the timestamp back for the next block.
                self.next_timestamp.get_or_insert(timestamp);
                return Err(RpcFailure::server(evm_error_message(&e)));
            }
        };
        self.db.commit(outcome.state);
        let result = outcome.result;
        let gas_used = result.tx_gas_used();
        let contract_address = result.created_address();
        let logs = result.logs().to_vec();
        let receipt = Receipt {
            status: result.is_success().into(),
            cumulative_gas_used: gas_used,
            logs: logs.clone(),
        };
        let receipt = ReceiptWithBloom::from(receipt);
        let receipt = match envelope.tx_type() {
            TxType::Legacy => ReceiptEnvelope::Legacy(receipt),
            TxType::Eip2930 => ReceiptEnvelope::Eip2930(receipt),
            TxType::Eip1559 => ReceiptEnvelope::Eip1559(receipt),
            TxType::Eip7702 => ReceiptEnvelope::Eip7702(receipt),
            TxType::Eip4844 => ReceiptEnvelope::Eip4844(receipt),
        };
        tracing::debug!(%hash, %caller, gas_used, success = result.is_success(), block = number, "mined");
        let first_log = self.logs.len();
        for (k, log) in logs.into_iter().enumerate() {
            self.logs.push(StoredLog {
                log,
                block_number: number,
                transaction_hash: hash,
                log_index: k as u64,
            });
        }
        let transaction = Recovered::new_unchecked(envelope, caller);
        self.seal_block(
            timestamp,
            vec![transaction.inner().clone()],
            gas_used,
            vec![receipt.clone()],
        );
        self.transactions.insert(
            hash,
            MinedTransaction {
                transaction,
                block_number: number,
                receipt,
                gas_used,
                effective_gas_price,
                contract_address,
                first_log,
            },
        );
        Ok(hash)
    }

    /// Appends a block holding `transactions` (zero or one).
    fn seal_block(
        &mut self,
        timestamp: u64,
        transactions: Vec<TxEnvelope>,
        gas_used: u64,
        receipts: Vec<ReceiptEnvelope>,
    ) {
        let parent = &self.blocks[self.blocks.len() - 1];
        let mut logs_bloom = Bloom::ZERO;
        for r in &receipts {
            logs_bloom.accrue_bloom(r.logs_bloom());
        }
        let header = Header {
            parent_hash: parent.hash,
            number: parent.header.number + 1,
            timestamp,
            gas_limit: self.config.block_gas_limit,
            gas_used,
            base_fee_per_gas: Some(self.config.base_fee),
            transactions_root: calculate_transaction_root(&transactions),
            receipts_root: calculate_receipt_root(&receipts),
            logs_bloom,
            mix_hash: B256::ZERO,
            ..Default::default()
        };
        self.blocks.push(MinedBlock {
            hash: header.hash_slow(),
            header,
            transactions: transactions.iter().map(|t| *t.tx_hash()).collect(),
        });
    }

    fn block_json(&self, number: u64, full: bool) -> RpcResult {
        let block = &self.blocks[number as usize];
        let transactions = if full {
            BlockTransactions::Full(
                block
                    .transactions
                    .iter()
                    .map(|h| self.rpc_transaction(&self.transactions[h]))
                    .collect(),
            )
        } else {
            BlockTransactions::Hashes(block.transactions.clone())
        };
        let rpc = Block {
            header: RpcHeader {
                hash: block.hash,
                inner: block.header.clone(),
                total_difficulty: Some(U256::ZERO),
                size: None,
            },
            uncles: Vec::new(),
            transactions,
            withdrawals: None,
        };
        to_json(rpc)
    }

    fn rpc_transaction(&self, mined: &MinedTransaction) -> RpcTransaction {
        let block = &self.blocks[mined.block_number as usize];
        RpcTransaction {
            inner: mined.transaction.clone(),
            block_hash: Some(block.hash),
            block_number: Some(mined.block_number),
            transaction_index: Some(0),
            effective_gas_price: Some(mined.effective_gas_price),
            block_timestamp: Some(block.header.timestamp),
        }
    }

    fn rpc_log(&self, stored: &StoredLog) -> RpcLog {
        let block = &self.blocks[stored.block_number as usize];
        RpcLog {
            inner: stored.log.clone(),
            block_hash: Some(block.hash),
            block_number: Some(stored.block_number),
            block_timestamp: Some(block.header.timestamp),
            transaction_hash: Some(stored.transaction_hash),
            transaction_index: Some(0),
            log_index: Some(stored.log_index),
            removed: false,
        }
    }

    fn receipt(&self, hash: B256, mined: &MinedTransaction) -> TransactionReceipt {
        let block = &self.blocks[mined.block_number as usize];
        let logs = mined.receipt.logs().len();
        let mut rpc_logs = self.logs[mined.first_log..mined.first_log + logs]
            .iter()
            .map(|l| self.rpc_log(l));
        let inner = mined
            .receipt
            .clone()
            .map_logs(|_| rpc_logs.next().expect("one stored log per receipt log"));
        TransactionReceipt {
            inner,
            transaction_hash: hash,
            transaction_index: Some(0),
            block_hash: Some(block.hash),
            block_number: Some(mined.block_number),
            gas_used: mined.gas_used,
            effective_gas_price: mined.effective_gas_price,
            blob_gas_used: None,
            blob_gas_price: None,
            from: mined.transaction.signer(),
            to: mined.transaction.to(),
            contract_address: mined.contract_address,
        }
    }

    fn logs(&self, filter: &Filter) -> Result<Vec<RpcLog>, RpcFailure> {
        let (from, to) = match filter.block_option {
            FilterBlockOption::Range {
                from_block,
                to_block,
            } => {
                let resolve = |tag: Option<BlockNumberOrTag>| match tag {
                    None => self.latest(),
                    Some(BlockNumberOrTag::Number(n)) => n,
                    Some(BlockNumberOrTag::Earliest) => 0,
                    Some(_) => self.latest(),
                };
                (resolve(from_block), resolve(to_block))
            }
            FilterBlockOption::AtBlockHash(hash) => {
                let n = self
                    .blocks
                    .iter()
                    .position(|b| b.hash == hash)
                    .ok_or_else(|| RpcFailure::server(format!("unknown block {hash}")))?;
                (n as u64, n as u64)
            }
        };
        Ok(self
            .logs
            .iter()
            .filter(|l| (from..=to).contains(&l.block_number))
            .filter(|l| {
                filter.matches_address(l.log.address) && filter.matches_topics(l.log.topics())
            })
            .map(|l| self.rpc_log(l))
            .collect())
    }
}

fn evm_error_message<E: std::fmt::Debug>(error: &EVMError<E, InvalidTransaction>) -> String {
    match error {
        EVMError::Transaction(invalid) => format!("invalid transaction: {invalid}"),
        other => format!("evm error: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::ChainProbe;
    use alloy::network::TransactionBuilder;
    use alloy::primitives::utils::parse_ether;
    use alloy::rpc::types::eth::TransactionRequest;
    use alloy::sol_types::SolEvent;

    #[test]
    fn warns_of_dev_keys_off_dev_chains_only() {
        let dev = dev_signer(3).address();
        let own = PrivateKeySigner::from_bytes(&B256::repeat_byte(7))
            .unwrap()
            .address();
        let cases = [
            (31337, dev, false),
            (1337, dev, false),
            (ChainConfig::default().chain_id, dev, false),
            (1, dev, true),
            (11155111, dev_signer(DEV_KEY_ACCOUNTS - 1).address(), true),
            (1, own, false),
            (31337, own, false),
        ];
        for (chain_id, account, want) in cases {
            assert_eq!(
                warn_if_dev_key(chain_id, account),
                want,
                "{chain_id} {account}"
            );
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    fn chain() -> EmbeddedChain {
        EmbeddedChain::new(ChainConfig {
            genesis_timestamp: Some(1_700_000_000),
            ..ChainConfig::default()
        })
    }

    #[test]
    fn dev_accounts_are_hardhats() {
        // The first two accounts of Hardhat's and Anvil's default mnemonic.
        let accounts = chain().dev_accounts();
        assert_eq!(accounts.len(), 10);
        assert_eq!(
            accounts[0].to_string(),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
        assert_eq!(
            accounts[1].to_string(),
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
        );
    }

    #[test]
    fn deploy_call_transact_events_and_receipts() {
        let rt = runtime();
        let chain = chain();
        let provider = chain.provider(dev_signer(0));
        rt.block_on(async {
            assert_eq!(provider.get_chain_id().await.unwrap(), 31337);
            let probe = ChainProbe::deploy(provider.clone()).await.unwrap();
            let code = provider.get_code_at(*probe.address()).await.unwrap();
            assert!(!code.is_empty());
            assert_eq!(provider.get_block_number().await.unwrap(), 1);

            let receipt = probe
                .poke(U256::from(7))
                .send()
                .await
                .unwrap()
                .get_receipt()
                .await
                .unwrap();
            assert!(receipt.status());
            assert!(receipt.gas_used > 21_000);
            assert_eq!(receipt.block_number, Some(2));
            let block = provider
                .get_block_by_number(BlockNumberOrTag::Number(2))
                .await
                .unwrap()
                .expect("block 2");
            assert_eq!(block.header.hash, receipt.block_hash.unwrap());
            assert_eq!(
                block.transactions.hashes().collect::<Vec<_>>(),
                vec![receipt.transaction_hash]
            );
            let logs = receipt.inner.logs();
            assert_eq!(logs.len(), 1);
            let event = ChainProbe::Poked::decode_log_data(logs[0].data()).unwrap();
            assert_eq!(event.from, chain.dev_accounts()[0]);
            assert_eq!(event.value, U256::from(7));
            assert_eq!(event.timestamp, U256::from(block.header.timestamp));
            assert_eq!(probe.total().call().await.unwrap(), U256::from(7));

            // eth_getLogs by event and indexed topic, and by a topic that matches nothing.
            probe
                .poke(U256::from(9))
                .send()
                .await
                .unwrap()
                .get_receipt()
                .await
                .unwrap();
            let filter = Filter::new()
                .address(*probe.address())
                .event_signature(ChainProbe::Poked::SIGNATURE_HASH)
                .from_block(0);
            assert_eq!(provider.get_logs(&filter).await.unwrap().len(), 2);
            let nine = filter.clone().topic2(B256::from(U256::from(9)));
            let found = provider.get_logs(&nine).await.unwrap();
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].block_number, Some(3));
            assert!(provider
                .get_logs(&filter.topic2(B256::ZERO))
                .await
                .unwrap()
                .is_empty());

            let tx = provider
                .get_transaction_by_hash(receipt.transaction_hash)
                .await
                .unwrap()
                .expect("mined transaction");
            assert_eq!(tx.inner.signer(), chain.dev_accounts()[0]);
        });
    }

    #[test]
    fn reverts_carry_their_custom_error() {
        let rt = runtime();
        let chain = chain();
        let provider = chain.provider(dev_signer(0));
        rt.block_on(async {
            let probe = ChainProbe::deploy(provider.clone()).await.unwrap();
            let err = probe.poke(U256::from(5000)).call().await.unwrap_err();
            let decoded = err.as_decoded_interface_error::<ChainProbe::ChainProbeErrors>();
            assert_eq!(
                decoded,
                Some(ChainProbe::ChainProbeErrors::TooLarge(
                    ChainProbe::TooLarge {
                        value: U256::from(5000),
                        limit: U256::from(1000)
                    }
                ))
            );
            // Sent with a fixed gas limit (no estimation), the reverting transaction is mined
            // with status 0, as on any node.
            let receipt = probe
                .poke(U256::from(5000))
                .gas(100_000)
                .send()
                .await
                .unwrap()
                .get_receipt()
                .await
                .unwrap();
            assert!(!receipt.status());
            assert_eq!(probe.total().call().await.unwrap(), U256::ZERO);
        });
    }

    #[test]
    fn value_transfers_pay_for_gas() {
        let rt = runtime();
        let chain = chain();
        let provider = chain.provider(dev_signer(0));
        let [from, to] = [chain.dev_accounts()[0], chain.dev_accounts()[1]];
        rt.block_on(async {
            let before = provider.get_balance(from).await.unwrap();
            let value = parse_ether("1.5").unwrap();
            let tx = TransactionRequest::default().with_to(to).with_value(value);
            let receipt = provider
                .send_transaction(tx)
                .await
                .unwrap()
                .get_receipt()
                .await
                .unwrap();
            assert_eq!(receipt.gas_used, 21_000);
            let fee = U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price);
            assert_eq!(
                provider.get_balance(from).await.unwrap(),
                before - value - fee
            );
            assert_eq!(
                provider.get_balance(to).await.unwrap(),
                ChainConfig::default().dev_balance + value
            );
            assert_eq!(provider.get_transaction_count(from).await.unwrap(), 1);
        });
    }

    #[test]
    fn time_moves_as_on_a_hardhat_node() {
        let rt = runtime();
        let chain = chain();
        let provider = chain.provider(dev_signer(0));
        rt.block_on(async {
            let probe = ChainProbe::deploy(provider.clone()).await.unwrap();
            let mined = |n| {
                let provider = provider.clone();
                async move {
                    provider
                        .get_block_by_number(n)
                        .await
                        .unwrap()
                        .expect("a mined block")
                }
            };
            let t0 = mined(BlockNumberOrTag::Latest).await.header.timestamp;
            // A call runs in the next block, which is later than the latest.
            let pending: U256 = probe.timestamp().call().await.unwrap();
            assert!(pending.to::<u64>() > t0);
            let _: Value = provider
                .raw_request("evm_increaseTime".into(), (3600,))
                .await
                .unwrap();
            let _: Value = provider.raw_request("evm_mine".into(), ()).await.unwrap();
            let latest = mined(BlockNumberOrTag::Latest).await;
            assert!(latest.header.timestamp >= t0 + 3600);
            let target = latest.header.timestamp + 100;
            let _: Value = provider
                .raw_request("evm_setNextBlockTimestamp".into(), (target,))
                .await
                .unwrap();
            let receipt = probe
                .poke(U256::from(1))
                .send()
                .await
                .unwrap()
                .get_receipt()
                .await
                .unwrap();
            let block = mined(BlockNumberOrTag::Number(receipt.block_number.unwrap())).await;
            assert_eq!(block.header.timestamp, target);
            assert_eq!(block.header.parent_hash, latest.header.hash);
        });
    }

    #[test]
    fn bad_requests_get_clear_errors_and_change_nothing() {
        let rt = runtime();
        let chain = chain();
        let provider = chain.provider(dev_signer(0));
        rt.block_on(async {
            let probe = ChainProbe::deploy(provider.clone()).await.unwrap();
            let height = provider.get_block_number().await.unwrap();
            let cases: &[(&str, Value, &str)] = &[
                (
                    "eth_sendRawTransaction",
                    json!(["0x1234"]),
                    "cannot decode transaction",
                ),
                (
                    "eth_getBalance",
                    json!(["not an address"]),
                    "bad parameter address",
                ),
                ("eth_getBalance", json!([]), "missing parameter address"),
                (
                    "eth_frobnicate",
                    json!([]),
                    "does not serve method eth_frobnicate",
                ),
                (
                    "eth_getBalance",
                    json!([chain.dev_accounts()[0], "0x0"]),
                    "keeps only the latest state",
                ),
            ];
            for (method, params, want) in cases {
                let err = provider
                    .raw_request::<_, Value>((*method).into(), params.clone())
                    .await
                    .unwrap_err();
                assert!(err.to_string().contains(want), "{method}: {err}");
            }
            // A transaction signed for another chain and one with a stale nonce are refused.
            let signer = dev_signer(0);
            let sign = |nonce: u64, chain_id: u64| {
                use alloy::consensus::{SignableTransaction, TxEip1559};
                use alloy::eips::eip2718::Encodable2718;
                use alloy::signers::SignerSync;
                let tx = TxEip1559 {
                    chain_id,
                    nonce,
                    gas_limit: 100_000,
                    max_fee_per_gas: 10_000_000_000,
                    max_priority_fee_per_gas: 1,
                    to: TxKind::Call(*probe.address()),
                    ..Default::default()
                };
                let sig = signer.sign_hash_sync(&tx.signature_hash()).unwrap();
                TxEnvelope::from(tx.into_signed(sig)).encoded_2718()
            };
            for (raw, want) in [(sign(1, 1), "for chain 1"), (sign(0, 31337), "nonce")] {
                let err = provider.send_raw_transaction(&raw).await.unwrap_err();
                assert!(err.to_string().to_lowercase().contains(want), "{err}");
            }
            assert_eq!(provider.get_block_number().await.unwrap(), height);
        });
    }
}
