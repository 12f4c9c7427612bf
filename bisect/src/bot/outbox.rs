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
use alloy::providers::utils::{eip1559_default_estimator, Eip1559Estimator};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::TransportError;
use std::sync::{Arc, OnceLock};
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

/// The price of gas on the chain now, as the outbox reads it before it signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Market {
    /// The base fee of the latest block, in wei per gas: what any transaction pays now.
    pub base_fee: u128,
    /// The max fee per gas the estimate asks: room for the base fee to double, plus the tip.
    pub max_fee: u128,
    /// The priority fee per gas (tip) the estimate asks, from recent blocks.
    pub tip: u128,
}

impl Market {
    /// The market on the chain behind `provider` (one `eth_feeHistory`, as alloy's estimate).
    pub async fn read(provider: &DynProvider) -> Result<Self, ClientError> {
        let base_fee = Arc::new(OnceLock::new());
        let seen = base_fee.clone();
        let estimate = provider
            .estimate_eip1559_fees_with(Eip1559Estimator::new(move |base, rewards| {
                let _ = seen.set(base);
                eip1559_default_estimator(base, rewards)
            }))
            .await
            .map_err(|e| chain("estimate fees", e))?;
        Ok(Self {
            base_fee: base_fee.get().copied().unwrap_or(0),
            max_fee: estimate.max_fee_per_gas,
            tip: estimate.max_priority_fee_per_gas,
        })
    }
}

/// What the outbox does about a transaction's fees under the bot's cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pricing {
    /// Sign with this max fee and tip, in wei per gas.
    Send {
        /// `max_fee_per_gas`.
        max_fee: u128,
        /// `max_priority_fee_per_gas`.
        tip: u128,
    },
    /// The market asks more than the cap: sign nothing now (a new transaction uses no nonce; a
    /// waiting one stays as it was signed) and look again later.
    Wait,
}

/// The fees of a new transaction in `market` under the cap `cap` (wei per gas): the market's
/// estimate while it is within the cap; else the cap itself while it still pays the base fee
/// and tip of today (mined now, with less room for a rising base fee); else wait.
pub fn price(market: Market, cap: Option<u128>) -> Pricing {
    let estimate = Pricing::Send {
        max_fee: market.max_fee,
        tip: market.tip,
    };
    match cap {
        None => estimate,
        Some(cap) if market.max_fee <= cap => estimate,
        Some(cap) if market.base_fee.saturating_add(market.tip) <= cap => Pricing::Send {
            max_fee: cap,
            tip: market.tip,
        },
        Some(_) => Pricing::Wait,
    }
}

/// Whether and how to replace a waiting transaction that pays `old` (max fee, tip): `None` while
/// it pays what a new one would ([`price`]); else its fees bumped as nodes require
/// (+12.5 % each, and to the market) while that stays within the cap; else wait (a bump that would cross the cap
/// cannot be capped: nodes refuse a replacement that does not raise both fees by 10 %).
pub fn replacement_price(old: (u128, u128), market: Market, cap: Option<u128>) -> Option<Pricing> {
    let Pricing::Send { max_fee, tip } = price(market, cap) else {
        return Some(Pricing::Wait);
    };
    let (max_fee, tip) = bumped_fees(old, (max_fee, tip))?;
    Some(if cap.is_none_or(|cap| max_fee <= cap) {
        Pricing::Send { max_fee, tip }
    } else {
        Pricing::Wait
    })
}

/// `wei` per gas in gwei, as people write it (`200`, `1.5`).
pub fn gwei(wei: u128) -> String {
    let whole = wei / 1_000_000_000;
    let frac = wei % 1_000_000_000;
    if frac == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{}", format!("{frac:09}").trim_end_matches('0'))
    }
}

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
    /// The most wei per gas it offers.
    max_fee: Option<u128>,
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
            max_fee: None,
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

    /// Caps the max fee per gas of every transaction it signs or re-prices at `cap` wei (none
    /// when `None`): while the market asks more, [`Outbox::send`] sends nothing and answers
    /// [`ClientError::FeeCapped`], and a waiting transaction is not replaced.
    pub fn with_max_fee_per_gas(mut self, cap: Option<u128>) -> Self {
        self.max_fee = cap;
        self
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
    /// [`ClientError::Rejected`] and a market above the fee cap a [`ClientError::FeeCapped`]; in
    /// both cases nothing is sent and no nonce is used. Once written down, the transaction is
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
            let market = Market::read(&self.provider).await?;
            let Pricing::Send { max_fee, tip } = price(market, self.max_fee) else {
                return Err(ClientError::FeeCapped {
                    what,
                    market,
                    cap: self.max_fee.unwrap_or(u128::MAX),
                });
            };
            let envelope = tx
                .with_gas_limit(gas + gas / 5)
                .with_max_fee_per_gas(max_fee)
                .with_max_priority_fee_per_gas(tip)
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
    /// returns true; false when its fees still meet the market, or when a replacement would
    /// cross the fee cap (said in the log: it waits as signed).
    async fn reprice(&self, pending: &mut PendingTx) -> Result<bool, ClientError> {
        let market = Market::read(&self.provider).await?;
        let envelope = TxEnvelope::decode_2718(&mut pending.raw.as_ref())
            .map_err(|e| ClientError::Malformed(format!("{}: journal: {e}", pending.what)))?;
        let TxEnvelope::Eip1559(signed) = envelope else {
            return Ok(false);
        };
        let mut tx = signed.strip_signature();
        let old = (tx.max_fee_per_gas, tx.max_priority_fee_per_gas);
        let (max, tip) = match replacement_price(old, market, self.max_fee) {
            None => return Ok(false),
            Some(Pricing::Send { max_fee, tip }) => (max_fee, tip),
            Some(Pricing::Wait) => {
                warn!(
                    nonce = pending.nonce,
                    tx = %pending.hash,
                    "{}: priced out by the market (max fee {} gwei, base fee {} gwei), and a \
                     replacement would cross the cap of {} gwei: it waits as signed (max fee \
                     {} gwei)",
                    pending.what,
                    gwei(market.max_fee),
                    gwei(market.base_fee),
                    gwei(self.max_fee.unwrap_or(u128::MAX)),
                    gwei(old.0),
                );
                return Ok(false);
            }
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

    #[test]
    fn fees_never_cross_the_cap() {
        let gwei = 1_000_000_000u128;
        let market = |base: u128, tip: u128| Market {
            base_fee: base * gwei,
            max_fee: (2 * base + tip) * gwei,
            tip: tip * gwei,
        };
        let send = |max_fee: u128, tip: u128| Pricing::Send { max_fee, tip };
        // (market: base fee, tip in gwei), cap in gwei → a new transaction's fees.
        let cases = [
            ((10, 1), None, send(21 * gwei, gwei)),
            // Below the cap: the market's estimate.
            ((10, 1), Some(200), send(21 * gwei, gwei)),
            ((10, 1), Some(21), send(21 * gwei, gwei)),
            // The estimate crosses the cap, which still pays today's base fee and tip: capped.
            ((150, 2), Some(200), send(200 * gwei, 2 * gwei)),
            ((198, 2), Some(200), send(200 * gwei, 2 * gwei)),
            // The cap no longer pays the base fee and tip: nothing is sent.
            ((199, 2), Some(200), Pricing::Wait),
            ((1_000, 2), Some(200), Pricing::Wait),
        ];
        for ((base, tip), cap, want) in cases {
            let got = price(market(base, tip), cap.map(|c| c * gwei));
            assert_eq!(got, want, "base {base}, tip {tip}, cap {cap:?}");
            if let (Pricing::Send { max_fee, .. }, Some(cap)) = (got, cap) {
                assert!(max_fee <= cap * gwei);
            }
        }
        // (old max, old tip), (market: base fee, tip), cap, all in gwei → the replacement.
        let cases = [
            // Still what a new one would pay: no replacement, capped or not.
            ((21, 1), (10, 1), Some(200), None),
            ((200, 2), (150, 2), Some(200), None),
            // The market rose, within the cap: bumped as before.
            (
                (21, 1),
                (50, 1),
                Some(200),
                Some(send(101 * gwei, gwei * 9 / 8)),
            ),
            ((21, 1), (50, 1), None, Some(send(101 * gwei, gwei * 9 / 8))),
            // The market's estimate crosses the cap, which still pays the base fee and tip:
            // re-signed at the cap.
            (
                (120, 1),
                (150, 1),
                Some(200),
                Some(send(200 * gwei, gwei * 9 / 8)),
            ),
            // A bump of 12.5 % over an old max near the cap would cross it: wait as signed.
            ((190, 1), (120, 1), Some(200), Some(Pricing::Wait)),
            // The market is above the cap: wait as signed.
            ((21, 1), (500, 1), Some(200), Some(Pricing::Wait)),
            ((200, 2), (199, 2), Some(200), Some(Pricing::Wait)),
            // Without a cap the same market is followed.
            (
                (21, 1),
                (500, 1),
                None,
                Some(send(1_001 * gwei, gwei * 9 / 8)),
            ),
        ];
        for ((old_max, old_tip), (base, tip), cap, want) in cases {
            let old = (old_max * gwei, old_tip * gwei);
            let got = replacement_price(old, market(base, tip), cap.map(|c| c * gwei));
            assert_eq!(
                got, want,
                "old {old:?}, base {base}, tip {tip}, cap {cap:?}"
            );
            if let Some(Pricing::Send { max_fee, tip }) = got {
                assert!(cap.is_none_or(|c| max_fee <= c * gwei));
                // A valid replacement: both fees up by at least 10 %.
                assert!(max_fee * 10 >= old.0 * 11 && tip * 10 >= old.1 * 11);
            }
        }
    }

    #[test]
    fn gwei_reads_as_written() {
        let cases = [
            (0, "0"),
            (200_000_000_000, "200"),
            (1_500_000_000, "1.5"),
            (1, "0.000000001"),
            (1_000_000_001, "1.000000001"),
        ];
        for (wei, want) in cases {
            assert_eq!(gwei(wei), want);
        }
    }
}
