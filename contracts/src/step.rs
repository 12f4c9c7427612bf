//! The deployed Step contract as the Rust side sees it: one step checked by `eth_call`, or sent as
//! a transaction whose receipt says what the step costs.

use alloy::primitives::{Address, Bytes, B256};
use alloy::providers::{DynProvider, Provider};

use crate::bindings::Step;

/// Why a step did not give a post-state hash.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The contract rejected the witness with one of its custom errors.
    #[error("the Step contract rejected the witness: {0:?}")]
    Rejected(Step::StepErrors),
    /// The step transaction was mined but failed without a custom error (out of gas, say).
    #[error("step transaction {0} failed on chain without a Step error")]
    Failed(B256),
    /// The node or the transport failed, or answered something that is not a step result.
    #[error("step call failed: {0}")]
    Chain(#[from] alloy::contract::Error),
    /// The transaction was sent but its receipt never came.
    #[error("step transaction failed: {0}")]
    Pending(#[from] alloy::providers::PendingTransactionError),
}

impl StepError {
    fn from_call(error: alloy::contract::Error) -> Self {
        match error.as_decoded_interface_error::<Step::StepErrors>() {
            Some(rejection) => Self::Rejected(rejection),
            None => Self::Chain(error),
        }
    }
}

/// What one step transaction cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepReceipt {
    /// The transaction's hash.
    pub transaction: B256,
    /// Gas of the whole transaction: base cost, calldata and execution.
    pub gas_used: u64,
}

/// A deployed Step contract reached through an alloy provider.
#[derive(Debug, Clone)]
pub struct OnchainStep {
    contract: Step::StepInstance<DynProvider>,
}

impl OnchainStep {
    /// Deploys a new Step contract from the provider's signer.
    pub async fn deploy(provider: DynProvider) -> Result<Self, StepError> {
        let contract = Step::deploy(provider).await?;
        Ok(Self { contract })
    }

    /// The Step contract already deployed at `address`.
    pub fn at(address: Address, provider: DynProvider) -> Self {
        Self {
            contract: Step::new(address, provider),
        }
    }

    /// Where the contract lives.
    pub fn address(&self) -> Address {
        *self.contract.address()
    }

    /// The post-state hash the contract computes for `witness` (an `eth_call`, no transaction).
    pub async fn step(&self, pre_state_hash: B256, witness: &[u8]) -> Result<B256, StepError> {
        self.contract
            .step(pre_state_hash, Bytes::copy_from_slice(witness))
            .call()
            .await
            .map_err(StepError::from_call)
    }

    /// Sends the step as a transaction and waits for its receipt, to measure what a step costs on
    /// chain. The gas limit is set by estimation, as a wallet would.
    pub async fn transact(
        &self,
        pre_state_hash: B256,
        witness: &[u8],
    ) -> Result<StepReceipt, StepError> {
        let call = self
            .contract
            .step(pre_state_hash, Bytes::copy_from_slice(witness));
        let pending = call.send().await.map_err(StepError::from_call)?;
        let receipt = pending.get_receipt().await?;
        if !receipt.status() {
            return Err(StepError::Failed(receipt.transaction_hash));
        }
        Ok(StepReceipt {
            transaction: receipt.transaction_hash,
            gas_used: receipt.gas_used,
        })
    }

    /// The provider the contract is reached through.
    pub fn provider(&self) -> &DynProvider {
        self.contract.provider()
    }
}

/// Makes sure `provider`'s node is reachable: its chain id (a cheap first call that turns a wrong
/// URL into a clear error before any transaction).
pub async fn chain_id(provider: &DynProvider) -> Result<u64, alloy::transports::TransportError> {
    provider.get_chain_id().await
}
