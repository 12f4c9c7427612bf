//! The dispute-cost model of `opml bench report`: the gas of each move kind measured in real
//! disputes, fitted against the number of claims a move carries, and composed over the rounds that
//! the dissection arithmetic gives for any graph size and node size.

use opml_bisect::dissection::{rounds_bound, split_points};
use opml_bisect::simulate::Transcript;
use opml_bisect::Side;
use serde::Serialize;
use std::collections::BTreeMap;

/// Graph phase (nodes) and step phase (VM steps), as the game numbers them.
const GRAPH: u8 = 2;
const STEPS: u8 = 1;

/// `gas = base + per_claim × claims`, least squares over measured moves.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct LinearFit {
    pub(crate) base: f64,
    pub(crate) per_claim: f64,
    /// Moves the fit was made from.
    pub(crate) moves: usize,
    /// The claim counts measured, smallest and largest: outside them the fit extrapolates.
    pub(crate) claims_measured: [u64; 2],
    /// The largest |measured − fitted| over those moves.
    pub(crate) max_residual: f64,
}

impl LinearFit {
    /// The fit of `(claims, gas)` points; `None` without any.
    pub(crate) fn of(points: &[(u64, u64)]) -> Option<Self> {
        let n = points.len() as f64;
        let (lo, hi) = (
            points.iter().map(|p| p.0).min()?,
            points.iter().map(|p| p.0).max()?,
        );
        let mx = points.iter().map(|p| p.0 as f64).sum::<f64>() / n;
        let my = points.iter().map(|p| p.1 as f64).sum::<f64>() / n;
        let sxx: f64 = points.iter().map(|p| (p.0 as f64 - mx).powi(2)).sum();
        let sxy: f64 = points
            .iter()
            .map(|p| (p.0 as f64 - mx) * (p.1 as f64 - my))
            .sum();
        // One claim count only: no slope can be measured; the mean is the figure.
        let per_claim = if sxx > 0.0 { sxy / sxx } else { 0.0 };
        let base = my - per_claim * mx;
        let max_residual = points
            .iter()
            .map(|p| (p.1 as f64 - (base + per_claim * p.0 as f64)).abs())
            .fold(0.0, f64::max);
        Some(Self {
            base,
            per_claim,
            moves: points.len(),
            claims_measured: [lo, hi],
            max_residual,
        })
    }

    /// The fitted gas of a move with `claims` claims.
    pub(crate) fn gas(&self, claims: u64) -> u64 {
        (self.base + self.per_claim * claims as f64)
            .round()
            .max(0.0) as u64
    }
}

/// The measured gas of every move kind, from real disputes on the embedded chain.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MoveCosts {
    /// The arities the disputes were played at.
    pub(crate) arities: Vec<u64>,
    pub(crate) post_result: u64,
    pub(crate) challenge: u64,
    pub(crate) open_node: u64,
    pub(crate) prove_step: u64,
    pub(crate) graph_claims: LinearFit,
    pub(crate) graph_pick: LinearFit,
    pub(crate) step_claims: LinearFit,
    pub(crate) step_pick: LinearFit,
}

fn median(mut v: Vec<u64>) -> Option<u64> {
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

impl MoveCosts {
    /// The move costs of `transcripts` (whole disputes that reached a proven step). Claims and
    /// picks are fitted against the claims of their round, `min(arity, segment) - 1`; the
    /// one-off moves take their median. Refused moves are left out.
    pub(crate) fn measure(transcripts: &[Transcript]) -> anyhow::Result<Self> {
        let mut fixed: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        let mut fitted: BTreeMap<(&str, u8), Vec<(u64, u64)>> = BTreeMap::new();
        for t in transcripts {
            for m in t.moves.iter().filter(|m| m.refused.is_none()) {
                match (m.action, m.phase, m.segment) {
                    (action @ ("claims" | "pick"), Some(phase), Some([lo, hi])) => {
                        let claims = t.params.arity.min(hi - lo).max(1) - 1;
                        fitted
                            .entry((action, phase))
                            .or_default()
                            .push((claims, m.gas));
                    }
                    (action, _, _) => fixed.entry(action).or_default().push(m.gas),
                }
            }
        }
        let one = |action: &'static str| {
            fixed
                .get(action)
                .and_then(|v| median(v.clone()))
                .ok_or_else(|| anyhow::anyhow!("no {action} move was measured in the disputes"))
        };
        let fit = |action: &'static str, phase: u8, name: &'static str| {
            fitted
                .get(&(action, phase))
                .and_then(|p| LinearFit::of(p))
                .ok_or_else(|| anyhow::anyhow!("no {name} move was measured in the disputes"))
        };
        let mut arities: Vec<u64> = transcripts.iter().map(|t| t.params.arity).collect();
        arities.sort_unstable();
        arities.dedup();
        Ok(Self {
            arities,
            post_result: one("post_result")?,
            challenge: one("challenge")?,
            open_node: one("open_node")?,
            prove_step: one("prove_step")?,
            graph_claims: fit("claims", GRAPH, "graph-phase claims")?,
            graph_pick: fit("pick", GRAPH, "graph-phase pick")?,
            step_claims: fit("claims", STEPS, "step-phase claims")?,
            step_pick: fit("pick", STEPS, "step-phase pick")?,
        })
    }
}

/// The claims of each round of dissecting `len` transitions at `arity`, down to one, on the
/// longest sub-segment each time (which takes exactly `ceil(log_arity len)` rounds).
pub(crate) fn round_claims(len: u64, arity: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut len = len;
    while len > 1 {
        let points = split_points(0, len, arity);
        out.push(points.len() as u64 - 2);
        len = points.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(1);
    }
    out
}

/// A whole dispute composed from measured move costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct ComposedDispute {
    pub(crate) nodes: u64,
    pub(crate) node_steps: u64,
    pub(crate) arity: u64,
    /// Graph-phase rounds, `ceil(log_k nodes)`.
    pub(crate) graph_rounds: u32,
    /// Step-phase rounds, `ceil(log_k steps)`.
    pub(crate) step_rounds: u32,
    /// The defender's gas: result, claims of both phases, the node opening.
    pub(crate) submitter_gas: u64,
    /// The challenger's gas: challenge, picks of both phases, the proven step.
    pub(crate) challenger_gas: u64,
    /// The largest single transaction.
    pub(crate) largest_tx: u64,
}

impl ComposedDispute {
    /// The larger party's gas: what the optimal arity minimizes.
    pub(crate) fn max_party_gas(&self) -> u64 {
        self.submitter_gas.max(self.challenger_gas)
    }

    /// The gas of `side`.
    pub(crate) fn gas(&self, side: Side) -> u64 {
        match side {
            Side::Submitter => self.submitter_gas,
            Side::Challenger => self.challenger_gas,
        }
    }
}

impl MoveCosts {
    /// A dispute over a graph of `nodes` nodes whose disputed node runs `node_steps` VM steps, at
    /// `arity`: the submitter defends, the challenger proves the last step.
    pub(crate) fn compose(&self, nodes: u64, node_steps: u64, arity: u64) -> ComposedDispute {
        let graph = round_claims(nodes, arity);
        let steps = round_claims(node_steps, arity);
        let mut submitter = vec![self.post_result, self.open_node];
        let mut challenger = vec![self.challenge, self.prove_step];
        for (rounds, claims, pick) in [
            (&graph, &self.graph_claims, &self.graph_pick),
            (&steps, &self.step_claims, &self.step_pick),
        ] {
            for &c in rounds {
                submitter.push(claims.gas(c));
                challenger.push(pick.gas(c));
            }
        }
        ComposedDispute {
            nodes,
            node_steps,
            arity,
            graph_rounds: graph.len() as u32,
            step_rounds: steps.len() as u32,
            submitter_gas: submitter.iter().sum(),
            challenger_gas: challenger.iter().sum(),
            largest_tx: submitter
                .iter()
                .chain(&challenger)
                .copied()
                .max()
                .unwrap_or(0),
        }
    }

    /// The arity among `arities` whose dispute costs the larger party least (ties: the smaller
    /// arity, for fewer bytes per transaction).
    pub(crate) fn optimal(&self, nodes: u64, node_steps: u64, arities: &[u64]) -> ComposedDispute {
        arities
            .iter()
            .map(|&k| self.compose(nodes, node_steps, k))
            .min_by_key(|d| (d.max_party_gas(), d.arity))
            .unwrap_or_else(|| self.compose(nodes, node_steps, 2))
    }
}

/// The exact rounds of a dispute, from the dissection arithmetic alone.
pub(crate) fn rounds(nodes: u64, node_steps: u64, arity: u64) -> u32 {
    rounds_bound(nodes, arity) + rounds_bound(node_steps, arity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_claims_take_exactly_the_bound() {
        let cases: [(u64, u64, &[u64]); 5] = [
            (8, 2, &[1, 1, 1]),
            (10, 4, &[3, 2]),
            (89_533, 64, &[63, 63, 21]),
            (1, 16, &[]),
            (1_000_000_000, 2, &[1; 30]),
        ];
        for (len, k, want) in cases {
            assert_eq!(round_claims(len, k), want, "len {len} k {k}");
        }
        for k in [2u64, 4, 8, 16, 32, 64] {
            for len in [10u64, 100, 1000, 10_000, 1000, 999_999, 1_000_000_000] {
                assert_eq!(
                    round_claims(len, k).len() as u32,
                    rounds_bound(len, k),
                    "len {len} k {k}"
                );
            }
        }
    }

    #[test]
    fn linear_fit_table() {
        let cases: [(&[(u64, u64)], f64, f64, f64); 3] = [
            (&[(1, 100), (3, 300)], 0.0, 100.0, 0.0),
            (&[(7, 500), (7, 700)], 600.0, 0.0, 100.0),
            (&[(1, 10), (2, 20), (3, 40)], -20.0 / 3.0, 15.0, 10.0 / 3.0),
        ];
        for (points, base, per_claim, residual) in cases {
            let f = LinearFit::of(points).unwrap();
            assert!((f.base - base).abs() < 1e-9, "{points:?}: {f:?}");
            assert!((f.per_claim - per_claim).abs() < 1e-9, "{points:?}: {f:?}");
            assert!(
                (f.max_residual - residual).abs() < 1e-9,
                "{points:?}: {f:?}"
            );
        }
        assert!(LinearFit::of(&[]).is_none());
    }

    fn costs() -> MoveCosts {
        let line = |base: f64, per_claim: f64| LinearFit {
            base,
            per_claim,
            moves: 2,
            claims_measured: [1, 63],
            max_residual: 0.0,
        };
        MoveCosts {
            arities: vec![2, 64],
            post_result: 1000,
            challenge: 2000,
            open_node: 5000,
            prove_step: 7000,
            graph_claims: line(100.0, 10.0),
            graph_pick: line(50.0, 1.0),
            step_claims: line(200.0, 20.0),
            step_pick: line(60.0, 2.0),
        }
    }

    #[test]
    fn compose_sums_each_round() {
        let c = costs();
        // 8 nodes, 4 steps, k = 2: 3 + 2 rounds of one claim each.
        let d = c.compose(8, 4, 2);
        assert_eq!((d.graph_rounds, d.step_rounds), (3, 2));
        assert_eq!(d.submitter_gas, 1000 + 5000 + 3 * 110 + 2 * 220);
        assert_eq!(d.challenger_gas, 2000 + 7000 + 3 * 51 + 2 * 62);
        assert_eq!(d.largest_tx, 7000);
        assert_eq!(rounds(8, 4, 2), 5);
        // k = 4 on 8 nodes: claims 3 then 1.
        let d = c.compose(8, 4, 4);
        assert_eq!(d.submitter_gas, 1000 + 5000 + 130 + 110 + 260);
    }

    #[test]
    fn optimal_arity_minimizes_the_larger_party() {
        let c = costs();
        let arities = [2u64, 4, 8, 16, 32, 64];
        let best = c.optimal(10_000, 1_000_000, &arities);
        for k in arities {
            assert!(best.max_party_gas() <= c.compose(10_000, 1_000_000, k).max_party_gas());
        }
    }
}
