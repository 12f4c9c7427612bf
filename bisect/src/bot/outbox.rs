//! Signs a bot's transactions with its own nonces, writes each down before broadcasting it, and
//! sees it mined through dropped connections and restarts.

use crate::bot::store::{PendingTx, Store};
use crate::client::ClientError;
use alloy::eips::Encodable2718;
use alloy::network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
use alloy::primitives::Address;
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::TransportError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tracing::{info, warn};

/// Exponential backoff between retries of a failing chain call.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// Starts at `first` and doubles up to `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            next: first,
            max,
        }
    }

    /// The wait before the next retry.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// After a success: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// How many receipt polls pass before a transaction is broadcast again.
const REBROADCAST_POLLS: u32 = 20;

/// The bot's sending side: one account, one transaction in flight at a time.
#[derive(Debug)]
pub struct Outbox {
    provider: DynProvider,
    wallet: EthereumWallet,
    account: Address,
    chain_id: u64,
    store: Arc<Store>,
    poll: Duration,
    nonce: Mutex<u64>,
}

fn chain(what: &'static str, e: TransportError) -> ClientError {
    ClientError::Chain {
        what,
        source: Box::new(e.into()),
    }
}

/// Whether a node's refusal of a raw transaction means that it has it already or mined it.
fn already_sent(e: &TransportError) -> bool {
    let message = e.to_string().to_lowercase();
    [
        "already known",
        "known transaction",
        "nonce too low",
        "already imported",
    ]
    .iter()
    .any(|m| message.contains(m))
}

impl Outbox {
    /// The outbox of `signer` on `provider` (a provider without a wallet: the outbox signs).
    /// First sees every transaction written down by an earlier run mined, then takes the
    /// account's nonce from the chain.
    pub async fn open(
        provider: DynProvider,
        signer: PrivateKeySigner,
        chain_id: u64,
        store: Arc<Store>,
        poll: Duration,
    ) -> Result<Self, ClientError> {
        let account = signer.address();
        let outbox = Self {
            provider,
            wallet: EthereumWallet::from(signer),
            account,
            chain_id,
            store,
            poll,
            nonce: Mutex::new(0),
        };
        for pending in outbox.store.outbox()? {
            info!(
                nonce = pending.nonce,
                tx = %pending.hash,
                "resuming {} sent before the restart",
                pending.what
            );
            match outbox.settle(&pending).await {
                Ok(receipt) => info!(
                    tx = %pending.hash,
                    ok = receipt.status(),
                    "{} mined in block {:?}",
                    pending.what,
                    receipt.block_number
                ),
                Err(e) => warn!("{}: {e}", pending.what),
            }
        }
        let next = outbox
            .provider
            .get_transaction_count(account)
            .latest()
            .await
            .map_err(|e| chain("read nonce", e))?;
        *outbox.nonce.lock().await = next;
        Ok(outbox)
    }

    /// The provider it reads and sends through.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// The account it signs for.
    pub fn account(&self) -> Address {
        self.account
    }

    /// Estimates, signs, writes down, broadcasts and waits for `tx`. A revert at estimation is a
    /// [`ClientError::Rejected`] and nothing is sent; once written down, the transaction is
    /// re-broadcast through any failure of the node until it is mined.
    pub async fn send(
        &self,
        what: &'static str,
        tx: TransactionRequest,
    ) -> Result<TransactionReceipt, ClientError> {
        let mut nonce = self.nonce.lock().await;
        let tx = tx
            .with_from(self.account)
            .with_nonce(*nonce)
            .with_chain_id(self.chain_id);
        let gas = self
            .provider
            .estimate_gas(tx.clone())
            .await
            .map_err(|e| ClientError::from_call(what, e.into()))?;
        let fees = self
            .provider
            .estimate_eip1559_fees()
            .await
            .map_err(|e| chain("estimate fees", e))?;
        let envelope = tx
            .with_gas_limit(gas + gas / 5)
            .with_max_fee_per_gas(fees.max_fee_per_gas)
            .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas)
            .build(&self.wallet)
            .await
            .map_err(|e| ClientError::Malformed(format!("{what}: signing: {e}")))?;
        let pending = PendingTx {
            nonce: *nonce,
            what: what.to_string(),
            hash: *envelope.tx_hash(),
            raw: envelope.encoded_2718().into(),
        };
        self.store.put_outbox(&pending)?;
        let receipt = self.settle(&pending).await;
        // Mined, or its nonce taken by another transaction: either way the next one is free.
        *nonce += 1;
        receipt
    }

    /// Broadcasts `pending` until a receipt shows it mined (then forgets it), retrying every
    /// failure of the node with backoff.
    async fn settle(&self, pending: &PendingTx) -> Result<TransactionReceipt, ClientError> {
        let mut backoff = Backoff::new(
            self.poll.min(Duration::from_millis(200)),
            Duration::from_secs(5),
        );
        let mut broadcast = true;
        let mut polls = 0u32;
        loop {
            if broadcast {
                match self.provider.send_raw_transaction(&pending.raw).await {
                    Ok(_) => broadcast = false,
                    Err(e) if already_sent(&e) => broadcast = false,
                    Err(e) => {
                        let wait = backoff.next_delay();
                        warn!(
                            tx = %pending.hash,
                            "{}: broadcasting failed ({e}); again in {wait:?}",
                            pending.what
                        );
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                }
            }
            match self.provider.get_transaction_receipt(pending.hash).await {
                Ok(Some(receipt)) => {
                    self.store.remove_outbox(pending.nonce)?;
                    return Ok(receipt);
                }
                Ok(None) => {
                    backoff.reset();
                    polls += 1;
                    if polls.is_multiple_of(REBROADCAST_POLLS) {
                        let used = self
                            .provider
                            .get_transaction_count(self.account)
                            .latest()
                            .await
                            .map_err(|e| chain("read nonce", e))?;
                        if used > pending.nonce {
                            self.store.remove_outbox(pending.nonce)?;
                            return Err(ClientError::Malformed(format!(
                                "{}: nonce {} was used by another transaction than {}",
                                pending.what, pending.nonce, pending.hash
                            )));
                        }
                        broadcast = true;
                    }
                    tokio::time::sleep(self.poll.min(Duration::from_millis(500))).await;
                }
                Err(e) => {
                    let wait = backoff.next_delay();
                    warn!(
                        tx = %pending.hash,
                        "{}: reading the receipt failed ({e}); again in {wait:?}",
                        pending.what
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let waits: Vec<u128> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(waits, [100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }
}
