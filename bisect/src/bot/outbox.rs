//! Signs a bot's transactions with its own nonces, writes each down before broadcasting it, and
//! sees it mined through dropped connections and restarts.

use crate::bot::metrics::BotMetrics;
use crate::bot::store::{PendingTx, Store};
use crate::client::ClientError;
use alloy::consensus::TxEnvelope;
use alloy::eips::{Decodable2718, Encodable2718};
use alloy::network::{
    Ethereum, EthereumWallet, NetworkTransactionBuilder, NetworkWallet, TransactionBuilder,
};
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

/// How many receipt polls pass before a transaction is broadcast again and its fees are compared
/// with the market's.
const REBROADCAST_POLLS: u32 = 20;

/// A replacement raises both fees to at least this many eighths of the old ones (+12.5 %): nodes
/// refuse a replacement that does not raise both by 10 % (geth's and Hardhat's price bump).
const BUMP_EIGHTHS: u128 = 9;

/// The bot's sending side: one account, several transactions in flight. Nonces are handed out
/// in order under a lock that is held only while a transaction is estimated, signed, written down
/// and first broadcast; waiting for it to be mined happens outside, so that a bot with many games
/// sends a move in each of them in the same block.
#[derive(Debug)]
pub struct Outbox {
    provider: DynProvider,
    wallet: EthereumWallet,
    account: Address,
    chain_id: u64,
    store: Arc<Store>,
    poll: Duration,
    nonce: Mutex<u64>,
    metrics: Arc<BotMetrics>,
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

/// The fees of a replacement of a transaction that pays `old` while the market asks `market`:
/// `None` while the old fees still meet the market; else each fee raised by at least 12.5 % and
/// to at least the market's.
fn bumped_fees(old: (u128, u128), market: (u128, u128)) -> Option<(u128, u128)> {
    let (old_max, old_tip) = old;
    let (market_max, market_tip) = market;
    if old_max >= market_max && old_tip >= market_tip {
        return None;
    }
    let raise = |fee: u128| fee.saturating_mul(BUMP_EIGHTHS).div_ceil(8).max(fee + 1);
    let tip = raise(old_tip).max(market_tip);
    let max = raise(old_max).max(market_max).max(tip);
    Some((max, tip))
}

impl Outbox {
    /// The outbox of `signer` on `provider` (a provider without a wallet: the outbox signs).
    /// First sees every transaction written down by an earlier run mined, then takes the
    /// account's nonce from the chain. Transactions sent, replaced and pending are counted in
    /// `metrics`.
    pub async fn open(
        provider: DynProvider,
        signer: PrivateKeySigner,
        chain_id: u64,
        store: Arc<Store>,
        poll: Duration,
        metrics: Arc<BotMetrics>,
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
            metrics,
        };
        let resumed = outbox.store.outbox()?;
        for pending in &resumed {
            info!(
                nonce = pending.nonce,
                tx = %pending.hash,
                "resuming {} sent before the restart",
                pending.what
            );
        }
        // In nonce order, all at once: a later one cannot be mined before an earlier one.
        let settled = futures::future::join_all(resumed.into_iter().map(|pending| async {
            let _pending = outbox.metrics.pending();
            outbox.settle(pending).await
        }))
        .await;
        for outcome in settled {
            match outcome {
                Ok(receipt) => info!(
                    tx = %receipt.transaction_hash,
                    ok = receipt.status(),
                    "mined in block {:?}",
                    receipt.block_number
                ),
                Err(e) => warn!("{e}"),
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
    /// re-broadcast through any failure of the node, and re-priced while the market's fees
    /// exceed its own, until it (or one of its replacements) is mined. Calls may overlap: each
    /// waits for its own transaction only.
    pub async fn send(
        &self,
        what: &'static str,
        tx: TransactionRequest,
    ) -> Result<TransactionReceipt, ClientError> {
        let (pending, _counted) = {
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
                replaced: Vec::new(),
            };
            self.store.put_outbox(&pending)?;
            let counted = self.metrics.transaction_sent();
            // Written down: the nonce is this transaction's (or a replacement's) from now on.
            *nonce += 1;
            // Broadcast under the lock, so that nodes see the nonces in order; a failure here is
            // retried by `settle`.
            if let Err(e) = self.provider.send_raw_transaction(&pending.raw).await {
                if !already_sent(&e) {
                    warn!(tx = %pending.hash, "{what}: broadcasting failed ({e}); will retry");
                }
            }
            (pending, counted)
        };
        self.settle(pending).await
    }

    /// The receipt of whichever of `pending`'s versions was mined, if one was.
    async fn receipt(
        &self,
        pending: &PendingTx,
    ) -> Result<Option<TransactionReceipt>, TransportError> {
        for hash in std::iter::once(&pending.hash).chain(pending.replaced.iter().rev()) {
            if let Some(receipt) = self.provider.get_transaction_receipt(*hash).await? {
                return Ok(Some(receipt));
            }
        }
        Ok(None)
    }

    /// Re-signs `pending` with higher fees when the market's exceed its own (a rise of the base
    /// fee leaves a transaction unmined forever otherwise), writes the replacement down and
    /// returns true; false when its fees still meet the market.
    async fn reprice(&self, pending: &mut PendingTx) -> Result<bool, ClientError> {
        let market = self
            .provider
            .estimate_eip1559_fees()
            .await
            .map_err(|e| chain("estimate fees", e))?;
        let envelope = TxEnvelope::decode_2718(&mut pending.raw.as_ref())
            .map_err(|e| ClientError::Malformed(format!("{}: journal: {e}", pending.what)))?;
        let TxEnvelope::Eip1559(signed) = envelope else {
            return Ok(false);
        };
        let mut tx = signed.strip_signature();
        let Some((max, tip)) = bumped_fees(
            (tx.max_fee_per_gas, tx.max_priority_fee_per_gas),
            (market.max_fee_per_gas, market.max_priority_fee_per_gas),
        ) else {
            return Ok(false);
        };
        tx.max_fee_per_gas = max;
        tx.max_priority_fee_per_gas = tip;
        let envelope =
            NetworkWallet::<Ethereum>::sign_transaction_from(&self.wallet, self.account, tx.into())
                .await
                .map_err(|e| ClientError::Malformed(format!("{}: signing: {e}", pending.what)))?;
        info!(
            nonce = pending.nonce,
            old = %pending.hash,
            new = %envelope.tx_hash(),
            max_fee_per_gas = max,
            max_priority_fee_per_gas = tip,
            "{}: priced out by the market; re-sent with higher fees",
            pending.what
        );
        pending.replaced.push(pending.hash);
        pending.hash = *envelope.tx_hash();
        pending.raw = envelope.encoded_2718().into();
        self.store.put_outbox(pending)?;
        self.metrics.transaction_replaced();
        Ok(true)
    }

    /// Broadcasts `pending` until a receipt shows it (or a replacement) mined, then forgets it;
    /// retries every failure of the node with backoff and re-prices it when the market's fees
    /// rise above its own.
    async fn settle(&self, mut pending: PendingTx) -> Result<TransactionReceipt, ClientError> {
        let mut backoff = Backoff::new(
            self.poll.min(Duration::from_millis(200)),
            Duration::from_secs(5),
        );
        let mut broadcast = false;
        let mut polls = 0u32;
        loop {
            if broadcast {
                match self.provider.send_raw_transaction(&pending.raw).await {
                    Ok(_) => broadcast = false,
                    Err(e) if already_sent(&e) => broadcast = false,
                    Err(e) => {
                        // A node refuses a transaction whose fees are below its floor: re-price
                        // before trying the same bytes again.
                        if self.reprice(&mut pending).await.unwrap_or(false) {
                            continue;
                        }
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
            match self.receipt(&pending).await {
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
                            // Mined between the two reads, or its nonce taken by another.
                            if let Ok(Some(receipt)) = self.receipt(&pending).await {
                                self.store.remove_outbox(pending.nonce)?;
                                return Ok(receipt);
                            }
                            self.store.remove_outbox(pending.nonce)?;
                            return Err(ClientError::Malformed(format!(
                                "{}: nonce {} was used by another transaction than {}",
                                pending.what, pending.nonce, pending.hash
                            )));
                        }
                        self.reprice(&mut pending).await?;
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

    #[test]
    fn a_replacement_raises_both_fees_past_the_nodes_bump_and_the_market() {
        let gwei = 1_000_000_000u128;
        // (old max, old tip), (market max, market tip) → the replacement's, or none.
        let cases = [
            ((2 * gwei, gwei), (2 * gwei, gwei), None),
            ((3 * gwei, 2 * gwei), (2 * gwei, gwei), None),
            // The base fee rose: the max fee follows the market, the tip rises by 12.5 %.
            (
                (2 * gwei, gwei),
                (200 * gwei, gwei),
                Some((200 * gwei, gwei * 9 / 8)),
            ),
            // A small rise still bumps both by 12.5 %, the replacement rule of the nodes.
            (
                (8 * gwei, gwei),
                (8 * gwei + 1, gwei),
                Some((9 * gwei, gwei * 9 / 8)),
            ),
            // A tip above the old max fee lifts the max fee with it.
            ((gwei, gwei), (gwei, 3 * gwei), Some((3 * gwei, 3 * gwei))),
            // Fees of 0 and 1 wei still rise.
            ((0, 0), (1, 0), Some((1, 1))),
        ];
        for (old, market, want) in cases {
            let got = bumped_fees(old, market);
            assert_eq!(got, want, "old {old:?}, market {market:?}");
            if let Some((max, tip)) = got {
                assert!(max * 10 >= old.0 * 11 && tip * 10 >= old.1 * 11 || old.1 == 0);
                assert!(tip <= max);
            }
        }
    }
}
