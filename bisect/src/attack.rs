//! Scripted attacks: how a lying submitter or a griefing challenger departs from the truth (the
//! `--fault SPEC` of `opml dispute simulate`, `opml demo` and `opml adversary`), and the lies
//! themselves (corrupted views, forged headers, made-up VM traces). [`crate::adversary`] plays
//! them.

use crate::graph_phase::GraphPhase;
use crate::phase::{Phase, PhaseError};
use crate::step_phase::{FinalClaim, StepPhase};
use opml_dnn::{DType, Model, Tensor};
use opml_vm::{keccak256, Hash, OutputAccumulator};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// One party's scripted attack in a dispute (`--fault SPEC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attack {
    /// `none`: both parties honest; nobody disputes.
    None,
    /// `node=K` / `step=K:N`: the submitter flips a value of node K's output and runs the later
    /// nodes on it. In phase 1 its claims leave the true VM trace at step N (default: only the
    /// final state is false).
    Node {
        /// The corrupted node.
        node: usize,
        /// First VM step whose claim is false.
        lie_from: Option<u64>,
    },
    /// `output`: the true trace, but a wrong output commitment.
    Output,
    /// `trace=K`: the true output, but trace leaf K is the commitment of a corrupted tensor.
    Trace {
        /// The node whose leaf is wrong.
        node: usize,
    },
    /// `header=K`: node K's true bytes re-declared as another dtype or shape in its trace leaf
    /// (for the last node, in the posted output too): a forged header over the true data root.
    Header {
        /// The node whose output header is forged.
        node: usize,
    },
    /// `steps=K:+D` / `steps=K:-D`: node K corrupted, and the final VM state claimed after
    /// `T + D` steps instead of the kernel's `T`.
    StepCount {
        /// The corrupted node.
        node: usize,
        /// Steps added to the true count.
        delta: i64,
    },
    /// `boundary=K`: node K corrupted; at the phase boundary it opens node K with its true VM
    /// final state, which does not end on the output it claimed (the chain refuses; it stalls).
    Boundary {
        /// The corrupted node.
        node: usize,
    },
    /// `challenger[=K]`: an honest result, disputed by a challenger that believes node K
    /// (default: the middle node) has another output.
    Challenger {
        /// The node the challenger gets wrong; `None` for the middle one.
        node: Option<usize>,
    },
    /// `challenger-random[=SEED]`: an honest result, disputed by a challenger picking segments at
    /// random.
    ChallengerRandom {
        /// The seed of its choices.
        seed: u64,
    },
    /// `challenger-stall[=N]`: an honest result, disputed by a challenger that stops after N moves.
    ChallengerStalls {
        /// Moves it makes before stalling.
        after: u32,
    },
}

/// A fault spec that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("bad fault spec `{spec}`: {reason} (expected none, node=K, output, step=K:N, trace=K, header=K, steps=K:+D, boundary=K, challenger[=K], challenger-random[=SEED] or challenger-stall[=N])")]
pub struct AttackSpecError {
    spec: String,
    reason: String,
}

impl FromStr for Attack {
    type Err = AttackSpecError;

    fn from_str(spec: &str) -> Result<Self, AttackSpecError> {
        let fail = |reason: &str| AttackSpecError {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (name, value) = match spec.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (spec.trim(), None),
        };
        let number = |v: Option<&str>| -> Result<u64, AttackSpecError> {
            v.ok_or_else(|| fail("needs a value"))?
                .parse()
                .map_err(|_| fail("not a number"))
        };
        let pair = |v: Option<&str>| -> Result<(usize, String), AttackSpecError> {
            let (k, rest) = v
                .ok_or_else(|| fail("needs K:N"))?
                .split_once(':')
                .ok_or_else(|| fail("needs K:N"))?;
            Ok((
                k.parse().map_err(|_| fail("K is not a number"))?,
                rest.to_string(),
            ))
        };
        Ok(match name {
            "none" if value.is_none() => Attack::None,
            "output" if value.is_none() => Attack::Output,
            "node" => Attack::Node {
                node: number(value)? as usize,
                lie_from: None,
            },
            "step" => {
                let (node, n) = pair(value)?;
                Attack::Node {
                    node,
                    lie_from: Some(n.parse().map_err(|_| fail("N is not a number"))?),
                }
            }
            "trace" => Attack::Trace {
                node: number(value)? as usize,
            },
            "header" => Attack::Header {
                node: number(value)? as usize,
            },
            "steps" => {
                let (node, d) = pair(value)?;
                let delta: i64 = d
                    .trim_start_matches('+')
                    .parse()
                    .map_err(|_| fail("D is not a number"))?;
                if delta == 0 {
                    return Err(fail("D must not be 0"));
                }
                Attack::StepCount { node, delta }
            }
            "boundary" => Attack::Boundary {
                node: number(value)? as usize,
            },
            "challenger" => Attack::Challenger {
                node: value
                    .map(|_| number(value))
                    .transpose()?
                    .map(|n| n as usize),
            },
            "challenger-random" => Attack::ChallengerRandom {
                seed: value.map(|_| number(value)).transpose()?.unwrap_or(1),
            },
            "challenger-stall" => Attack::ChallengerStalls {
                after: value.map(|_| number(value)).transpose()?.unwrap_or(3) as u32,
            },
            _ => return Err(fail("unknown fault")),
        })
    }
}

impl fmt::Display for Attack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attack::None => write!(f, "none"),
            Attack::Node {
                node,
                lie_from: None,
            } => write!(f, "node={node}"),
            Attack::Node {
                node,
                lie_from: Some(n),
            } => write!(f, "step={node}:{n}"),
            Attack::Output => write!(f, "output"),
            Attack::Trace { node } => write!(f, "trace={node}"),
            Attack::Header { node } => write!(f, "header={node}"),
            Attack::StepCount { node, delta } => write!(f, "steps={node}:{delta:+}"),
            Attack::Boundary { node } => write!(f, "boundary={node}"),
            Attack::Challenger { node: None } => write!(f, "challenger"),
            Attack::Challenger { node: Some(k) } => write!(f, "challenger={k}"),
            Attack::ChallengerRandom { seed } => write!(f, "challenger-random={seed}"),
            Attack::ChallengerStalls { after } => write!(f, "challenger-stall={after}"),
        }
    }
}

impl Attack {
    /// Whether a challenger is the attacker (the result is honest).
    pub fn is_challengers(&self) -> bool {
        matches!(
            self,
            Attack::Challenger { .. }
                | Attack::ChallengerRandom { .. }
                | Attack::ChallengerStalls { .. }
        )
    }

    /// Whether the submitter is the attacker (else the result is honest).
    pub fn is_submitters(&self) -> bool {
        matches!(
            self,
            Attack::Node { .. }
                | Attack::Output
                | Attack::Trace { .. }
                | Attack::Header { .. }
                | Attack::StepCount { .. }
                | Attack::Boundary { .. }
        )
    }

    /// The node a fault names, checked against the model's node count.
    pub fn node(&self, nodes: usize) -> Result<Option<usize>, AttackSpecError> {
        let node = match *self {
            Attack::Node { node, .. }
            | Attack::Trace { node }
            | Attack::Header { node }
            | Attack::StepCount { node, .. }
            | Attack::Boundary { node } => Some(node),
            Attack::Challenger { node } => Some(node.unwrap_or(nodes / 2)),
            _ => None,
        };
        match node {
            Some(k) if k >= nodes => Err(AttackSpecError {
                spec: self.to_string(),
                reason: format!("the model has nodes 0..{}", nodes - 1),
            }),
            other => Ok(other),
        }
    }
}

/// `t` with one value changed: the low bit of its first byte flipped.
pub fn corrupt(t: &Tensor) -> Result<Tensor, PhaseError> {
    let mut bytes = t.to_le_bytes();
    bytes[0] ^= 1;
    Ok(Tensor::from_le_bytes(t.dtype(), t.shape(), &bytes)?)
}

/// `t`'s bytes re-declared as another tensor of the same byte length: flat int8 (`[1, n]` when it
/// already is flat int8). Its data root is `t`'s; only the header differs.
pub fn redeclare(t: &Tensor) -> Result<Tensor, PhaseError> {
    let bytes = t.to_le_bytes();
    let shape = if t.dtype() == DType::I8 && t.shape() == [bytes.len()] {
        vec![1, bytes.len()]
    } else {
        vec![bytes.len()]
    };
    Ok(Tensor::from_le_bytes(DType::I8, &shape, &bytes)?)
}

/// A view whose trace leaf `node` alone is `replace` of the true output: the other leaves, the
/// later nodes' outputs included, stay true.
pub fn relabelled_view(
    model: Arc<Model>,
    input: Tensor,
    node: usize,
    replace: fn(&Tensor) -> Result<Tensor, PhaseError>,
) -> Result<GraphPhase, PhaseError> {
    let mut outputs = model.run(&input)?.outputs();
    outputs[node] = replace(&outputs[node])?;
    GraphPhase::from_outputs(model, input, outputs)
}

/// A view in which node `node`'s output is corrupted; with `propagate` the later nodes run on the
/// corrupted output (a consistent lie), else the trace alone carries it.
pub fn corrupted_view(
    model: Arc<Model>,
    input: Tensor,
    node: usize,
    propagate: bool,
) -> Result<GraphPhase, PhaseError> {
    if !propagate {
        return relabelled_view(model, input, node, corrupt);
    }
    let truth = model.run(&input)?.outputs();
    let mut outputs: Vec<Tensor> = Vec::with_capacity(truth.len());
    for (index, true_output) in truth.iter().enumerate() {
        let out = if index < node {
            true_output.clone()
        } else {
            let inputs = model.node_inputs(index, &input, &outputs)?;
            let out = model.manifest.nodes[index]
                .op
                .native(&inputs)
                .map_err(|e| PhaseError::Kernel {
                    node: index,
                    reason: e.to_string(),
                })?;
            if index == node {
                corrupt(&out)?
            } else {
                out
            }
        };
        outputs.push(out);
    }
    GraphPhase::from_outputs(model, input, outputs)
}

/// A defender's phase-1 claims for a node whose output it lies about: the true VM trace up to step
/// `lie_from`, made-up hashes after it, and a fabricated final state after `steps` steps whose
/// accumulator finishes on the claimed output's bytes, declared with the claimed output's header.
#[derive(Debug, Clone)]
pub struct LyingSteps {
    honest: StepPhase,
    lie_from: u64,
    steps: u64,
    fabricated: FinalClaim,
}

impl LyingSteps {
    /// Lies about `honest`'s run so that it ends on `claimed` (the output tensor the defender
    /// claims); the lie starts at step `lie_from` and the claimed run takes `steps`.
    pub fn new(
        honest: StepPhase,
        claimed: &Tensor,
        lie_from: u64,
        steps: u64,
    ) -> Result<Self, PhaseError> {
        let mut state = honest.final_claim().state.clone();
        let header = claimed.header()?;
        let mut acc = OutputAccumulator::from_output(&claimed.to_le_bytes())
            .expect("an output that fit before");
        let snapshot = acc.snapshot();
        state.output_acc = snapshot.hash();
        state.step = steps;
        let fabricated = FinalClaim {
            state,
            accumulator: snapshot,
            header,
        };
        Ok(Self {
            lie_from: lie_from.min(steps),
            honest,
            steps,
            fabricated,
        })
    }

    /// The fabricated final state.
    pub fn final_claim(&self) -> &FinalClaim {
        &self.fabricated
    }
}

impl Phase for LyingSteps {
    type Terminal = Vec<u8>;

    fn name(&self) -> &'static str {
        "steps"
    }

    fn len(&self) -> u64 {
        self.steps
    }

    fn claim(&mut self, at: u64) -> Result<Hash, PhaseError> {
        if at >= self.steps {
            Ok(self.fabricated.state_hash())
        } else if at >= self.lie_from {
            let truth = self.honest.claim(at)?;
            Ok(keccak256(&[&truth[..], b"opml: a made-up state"].concat()))
        } else {
            self.honest.claim(at)
        }
    }

    fn terminal(&mut self, at: u64) -> Result<Vec<u8>, PhaseError> {
        self.honest.terminal(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_round_trip() {
        let cases = [
            ("none", Attack::None),
            (
                "node=3",
                Attack::Node {
                    node: 3,
                    lie_from: None,
                },
            ),
            (
                "step=2:1000",
                Attack::Node {
                    node: 2,
                    lie_from: Some(1000),
                },
            ),
            ("output", Attack::Output),
            ("trace=1", Attack::Trace { node: 1 }),
            ("header=7", Attack::Header { node: 7 }),
            ("steps=4:+7", Attack::StepCount { node: 4, delta: 7 }),
            ("steps=4:-7", Attack::StepCount { node: 4, delta: -7 }),
            ("boundary=0", Attack::Boundary { node: 0 }),
            ("challenger", Attack::Challenger { node: None }),
            ("challenger=2", Attack::Challenger { node: Some(2) }),
            ("challenger-random=9", Attack::ChallengerRandom { seed: 9 }),
            ("challenger-stall=4", Attack::ChallengerStalls { after: 4 }),
        ];
        for (spec, fault) in cases {
            assert_eq!(spec.parse::<Attack>().unwrap(), fault, "{spec}");
            assert_eq!(
                fault.to_string().parse::<Attack>().unwrap(),
                fault,
                "{spec}"
            );
        }
        assert_eq!(
            "steps=4:7".parse::<Attack>().unwrap().to_string(),
            "steps=4:+7"
        );
        for bad in [
            "",
            "node",
            "node=x",
            "step=3",
            "step=a:1",
            "steps=1:0",
            "output=2",
            "flip",
        ] {
            let err = bad.parse::<Attack>().unwrap_err().to_string();
            assert!(err.contains(&format!("`{bad}`")), "{bad}: {err}");
        }
    }
}
