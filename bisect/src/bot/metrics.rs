//! What a bot counts for its operator: atomics updated by the tick and the outbox (no lock, no
//! allocation per update), rendered in the Prometheus text format by [`render`] and served by
//! [`MetricsServer`](super::MetricsServer).

use crate::client::Side;
use alloy::primitives::{Address, U256};
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

/// Who the bot is, known once it has read the chain's id (the `opml_bot_info` metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BotInfo {
    /// Its account.
    pub account: Address,
    /// The `DisputeGame` contract.
    pub game: Address,
    /// The chain's id.
    pub chain_id: u64,
}

/// A bot's counters and gauges, shared between the bot, its outbox, its transport and whoever
/// serves them. Every update is one relaxed atomic operation.
#[derive(Debug)]
pub struct BotMetrics {
    role: Side,
    info: OnceLock<BotInfo>,
    up: AtomicBool,
    ticks: AtomicU64,
    tick_failures: AtomicU64,
    last_tick_unix: AtomicU64,
    last_block: AtomicU64,
    games_open: AtomicU64,
    games_won: AtomicU64,
    games_lost: AtomicU64,
    results_posted: AtomicU64,
    results_challenged: AtomicU64,
    /// The balance in wei as the bits of an f64.
    balance_wei: AtomicU64,
    pending_transactions: AtomicU64,
    transactions_sent: AtomicU64,
    transactions_replaced: AtomicU64,
    rpc_errors: AtomicU64,
}

/// The values of a [`BotMetrics`] at one moment, as plain numbers (what [`render`] prints).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricsSnapshot {
    /// The bot's role.
    pub role: Side,
    /// Who it is, once started.
    pub info: Option<BotInfo>,
    /// Whether its last tick succeeded (false while it starts and after a failed tick).
    pub up: bool,
    /// Ticks that succeeded.
    pub ticks: u64,
    /// Ticks that failed on the chain (retried with backoff).
    pub tick_failures: u64,
    /// Unix time of the last tick that succeeded (0 before the first).
    pub last_tick_unix: u64,
    /// The chain's latest block at its last tick.
    pub last_block: u64,
    /// Its games still open.
    pub games_open: u64,
    /// Games it finished as the winner.
    pub games_won: u64,
    /// Games it finished as the loser.
    pub games_lost: u64,
    /// Results it posted (submitter).
    pub results_posted: u64,
    /// Results it challenged (challenger).
    pub results_challenged: u64,
    /// Its account's balance in wei, as an f64 (about 16 significant digits).
    pub balance_wei: f64,
    /// Signed transactions it waits to see mined.
    pub pending_transactions: u64,
    /// Transactions it signed and sent (each nonce once).
    pub transactions_sent: u64,
    /// Replacements it signed with higher fees.
    pub transactions_replaced: u64,
    /// JSON-RPC calls that failed in transport or were rate-limited (each attempt).
    pub rpc_errors: u64,
}

const R: Ordering = Ordering::Relaxed;

impl BotMetrics {
    /// Zeroed metrics of a bot of `role`.
    pub fn new(role: Side) -> Self {
        Self {
            role,
            info: OnceLock::new(),
            up: AtomicBool::new(false),
            ticks: AtomicU64::new(0),
            tick_failures: AtomicU64::new(0),
            last_tick_unix: AtomicU64::new(0),
            last_block: AtomicU64::new(0),
            games_open: AtomicU64::new(0),
            games_won: AtomicU64::new(0),
            games_lost: AtomicU64::new(0),
            results_posted: AtomicU64::new(0),
            results_challenged: AtomicU64::new(0),
            balance_wei: AtomicU64::new(0f64.to_bits()),
            pending_transactions: AtomicU64::new(0),
            transactions_sent: AtomicU64::new(0),
            transactions_replaced: AtomicU64::new(0),
            rpc_errors: AtomicU64::new(0),
        }
    }

    /// The role it counts for.
    pub fn role(&self) -> Side {
        self.role
    }

    /// Records who the bot is (the first call wins: one process runs one bot).
    pub fn set_info(&self, info: BotInfo) {
        let _ = self.info.set(info);
    }

    /// A tick succeeded at unix time `now` with `open_games` games still open.
    pub fn tick_succeeded(&self, now: u64, open_games: usize) {
        self.ticks.fetch_add(1, R);
        self.last_tick_unix.store(now, R);
        self.games_open.store(open_games as u64, R);
        self.up.store(true, R);
    }

    /// A tick failed on the chain.
    pub fn tick_failed(&self) {
        self.tick_failures.fetch_add(1, R);
        self.up.store(false, R);
    }

    /// The chain's latest block.
    pub fn saw_block(&self, block: u64) {
        self.last_block.store(block, R);
    }

    /// A game of the bot's ended; `won` when the bot won it.
    pub fn game_finished(&self, won: bool) {
        let counter = if won {
            &self.games_won
        } else {
            &self.games_lost
        };
        counter.fetch_add(1, R);
    }

    /// The bot posted a result.
    pub fn result_posted(&self) {
        self.results_posted.fetch_add(1, R);
    }

    /// The bot challenged a result.
    pub fn result_challenged(&self) {
        self.results_challenged.fetch_add(1, R);
    }

    /// The account's balance, as the bot last read it.
    pub fn set_balance(&self, wei: U256) {
        self.balance_wei.store(f64::from(wei).to_bits(), R);
    }

    /// A signed transaction was written down and is to be broadcast; the returned guard counts it
    /// as pending until dropped (mined, or no longer awaited).
    pub fn transaction_sent(&self) -> PendingGuard<'_> {
        self.transactions_sent.fetch_add(1, R);
        self.pending()
    }

    /// A transaction signed by an earlier run is awaited again: pending until the guard drops.
    pub fn pending(&self) -> PendingGuard<'_> {
        self.pending_transactions.fetch_add(1, R);
        PendingGuard(self)
    }

    /// A waiting transaction was replaced by one with higher fees.
    pub fn transaction_replaced(&self) {
        self.transactions_replaced.fetch_add(1, R);
    }

    /// A JSON-RPC call failed in transport (or was rate-limited).
    pub fn rpc_error(&self) {
        self.rpc_errors.fetch_add(1, R);
    }

    /// Its values now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            role: self.role,
            info: self.info.get().copied(),
            up: self.up.load(R),
            ticks: self.ticks.load(R),
            tick_failures: self.tick_failures.load(R),
            last_tick_unix: self.last_tick_unix.load(R),
            last_block: self.last_block.load(R),
            games_open: self.games_open.load(R),
            games_won: self.games_won.load(R),
            games_lost: self.games_lost.load(R),
            results_posted: self.results_posted.load(R),
            results_challenged: self.results_challenged.load(R),
            balance_wei: f64::from_bits(self.balance_wei.load(R)),
            pending_transactions: self.pending_transactions.load(R),
            transactions_sent: self.transactions_sent.load(R),
            transactions_replaced: self.transactions_replaced.load(R),
            rpc_errors: self.rpc_errors.load(R),
        }
    }
}

/// Counts one transaction as pending while it lives (so that a send cancelled mid-way, or one
/// that ends in an error, stops counting).
#[derive(Debug)]
pub struct PendingGuard<'a>(&'a BotMetrics);

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.0.pending_transactions.fetch_sub(1, R);
    }
}

/// The content type of [`render`]'s text (Prometheus text exposition format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `s` in the Prometheus text format: `# HELP` and `# TYPE` lines, then one sample per metric,
/// every metric named `opml_bot_*` and labelled with the bot's role.
pub fn render(s: &MetricsSnapshot) -> String {
    let role = s.role.name();
    let mut out = String::with_capacity(4096);
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, f64)]| {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "# HELP opml_bot_{name} {help}");
        let _ = writeln!(out, "# TYPE opml_bot_{name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "opml_bot_{name}{{role=\"{role}\"{labels}}} {value}");
        }
    };
    if let Some(info) = s.info {
        let labels = format!(
            ",account=\"{}\",game=\"{}\",chain_id=\"{}\"",
            info.account, info.game, info.chain_id
        );
        metric(
            "info",
            "gauge",
            "The bot's account, DisputeGame contract and chain id (always 1).",
            &[(&labels, 1.0)],
        );
    }
    let up = if s.up { 1.0 } else { 0.0 };
    let n = |v: u64| v as f64;
    let table: [(&str, &str, &str, &[(&str, f64)]); 14] = [
        (
            "up",
            "gauge",
            "1 when the bot's last tick succeeded, 0 while it starts or after a failed tick.",
            &[("", up)],
        ),
        (
            "ticks_total",
            "counter",
            "Polls of the chain that succeeded.",
            &[("", n(s.ticks))],
        ),
        (
            "tick_failures_total",
            "counter",
            "Polls that failed on the chain (retried with backoff).",
            &[("", n(s.tick_failures))],
        ),
        (
            "last_tick_timestamp_seconds",
            "gauge",
            "Unix time of the last poll that succeeded (0 before the first).",
            &[("", n(s.last_tick_unix))],
        ),
        (
            "last_block",
            "gauge",
            "The chain's latest block number at the last poll.",
            &[("", n(s.last_block))],
        ),
        (
            "games_open",
            "gauge",
            "The bot's games not yet over.",
            &[("", n(s.games_open))],
        ),
        (
            "games_finished_total",
            "counter",
            "The bot's games that ended, by outcome, since it started.",
            &[
                (",outcome=\"won\"", n(s.games_won)),
                (",outcome=\"lost\"", n(s.games_lost)),
            ],
        ),
        (
            "results_posted_total",
            "counter",
            "Results the bot posted with a result bond (submitter).",
            &[("", n(s.results_posted))],
        ),
        (
            "results_challenged_total",
            "counter",
            "Results the bot challenged with a challenge bond (challenger).",
            &[("", n(s.results_challenged))],
        ),
        (
            "balance_wei",
            "gauge",
            "The account's balance in wei as last read, as a float64 (about 16 significant digits).",
            &[("", s.balance_wei)],
        ),
        (
            "pending_transactions",
            "gauge",
            "Signed transactions the bot waits to see mined.",
            &[("", n(s.pending_transactions))],
        ),
        (
            "transactions_sent_total",
            "counter",
            "Transactions the bot signed and sent (each nonce once).",
            &[("", n(s.transactions_sent))],
        ),
        (
            "transactions_replaced_total",
            "counter",
            "Replacements signed with higher fees for transactions the market priced out.",
            &[("", n(s.transactions_replaced))],
        ),
        (
            "rpc_errors_total",
            "counter",
            "JSON-RPC calls that failed in transport or were rate-limited (each attempt).",
            &[("", n(s.rpc_errors))],
        ),
    ];
    for (name, kind, help, samples) in table {
        metric(name, kind, help, samples);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn renders_every_metric_with_its_role_help_and_type() {
        let m = BotMetrics::new(Side::Challenger);
        m.set_info(BotInfo {
            account: Address::repeat_byte(0x11),
            game: Address::repeat_byte(0x22),
            chain_id: 31337,
        });
        m.saw_block(1234);
        m.tick_succeeded(1_700_000_000, 3);
        m.game_finished(true);
        m.game_finished(true);
        m.game_finished(false);
        m.result_challenged();
        m.set_balance(U256::from(10u128.pow(18)) * U256::from(3u8));
        let guard = m.transaction_sent();
        let _second = m.transaction_sent();
        drop(guard);
        m.transaction_replaced();
        m.rpc_error();
        m.rpc_error();
        m.tick_failed();
        let text = render(&m.snapshot());
        let want = [
            "opml_bot_info{role=\"challenger\",account=\"0x1111111111111111111111111111111111111111\",\
             game=\"0x2222222222222222222222222222222222222222\",chain_id=\"31337\"} 1",
            "opml_bot_up{role=\"challenger\"} 0",
            "opml_bot_ticks_total{role=\"challenger\"} 1",
            "opml_bot_tick_failures_total{role=\"challenger\"} 1",
            "opml_bot_last_tick_timestamp_seconds{role=\"challenger\"} 1700000000",
            "opml_bot_last_block{role=\"challenger\"} 1234",
            "opml_bot_games_open{role=\"challenger\"} 3",
            "opml_bot_games_finished_total{role=\"challenger\",outcome=\"won\"} 2",
            "opml_bot_games_finished_total{role=\"challenger\",outcome=\"lost\"} 1",
            "opml_bot_results_posted_total{role=\"challenger\"} 0",
            "opml_bot_results_challenged_total{role=\"challenger\"} 1",
            "opml_bot_balance_wei{role=\"challenger\"} 3000000000000000000",
            "opml_bot_pending_transactions{role=\"challenger\"} 1",
            "opml_bot_transactions_sent_total{role=\"challenger\"} 2",
            "opml_bot_transactions_replaced_total{role=\"challenger\"} 1",
            "opml_bot_rpc_errors_total{role=\"challenger\"} 2",
        ];
        assert_eq!(sample_lines(&text), want, "{text}");
        // Each metric has its HELP and TYPE, once, before its samples.
        for name in want.iter().map(|l| l.split('{').next().unwrap()) {
            let help = text.find(&format!("# HELP {name} ")).expect(name);
            let kind = text.find(&format!("# TYPE {name} ")).expect(name);
            let sample = text.find(&format!("{name}{{")).expect(name);
            assert!(help < kind && kind < sample, "{name}");
            assert_eq!(
                text.matches(&format!("# TYPE {name} ")).count(),
                1,
                "{name}"
            );
            let counter = text.contains(&format!("# TYPE {name} counter"));
            assert_eq!(counter, name.ends_with("_total"), "{name}");
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn info_appears_once_the_bot_knows_who_it_is() {
        let m = BotMetrics::new(Side::Submitter);
        let before = render(&m.snapshot());
        assert!(!before.contains("opml_bot_info"), "{before}");
        assert!(
            before.contains("opml_bot_up{role=\"submitter\"} 0"),
            "{before}"
        );
        let info = BotInfo {
            account: Address::repeat_byte(1),
            game: Address::repeat_byte(2),
            chain_id: 1,
        };
        m.set_info(info);
        // The first identity stays: one process runs one bot.
        m.set_info(BotInfo {
            chain_id: 5,
            ..info
        });
        assert_eq!(m.snapshot().info, Some(info));
        assert!(render(&m.snapshot()).contains("chain_id=\"1\"} 1\n"));
    }

    #[test]
    fn balances_render_as_floats_of_the_wei() {
        let cases: [(U256, &str); 4] = [
            (U256::ZERO, "0"),
            (U256::from(1u8), "1"),
            (
                U256::from(1_500_000_000_000_000_000u128),
                "1500000000000000000",
            ),
            // Beyond f64's exact range the value is rounded, not wrapped or saturated.
            (
                U256::MAX,
                "115792089237316200000000000000000000000000000000000000000000000000000000000000",
            ),
        ];
        for (wei, want) in cases {
            let m = BotMetrics::new(Side::Submitter);
            m.set_balance(wei);
            let line = format!("opml_bot_balance_wei{{role=\"submitter\"}} {want}\n");
            assert!(render(&m.snapshot()).contains(&line), "{wei}");
        }
    }
}
