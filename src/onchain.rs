//! `opml vm verify-onchain` and `opml bench gas`: the VM's witnesses submitted to the Step contract,
//! on the embedded chain or a JSON-RPC node, with what each step costs.

use crate::vm::ProgramArgs;
use crate::EXIT_MISMATCH;
use alloy::primitives::B256;
use alloy::providers::DynProvider;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use opml_contracts::step::{OnchainStep, StepError};
use opml_contracts::{
    dev_signer, probe_hardfork, warn_if_dev_key, ChainConfig, EmbeddedChain, Hardfork,
};
use opml_vm::encode::{b as branch, i, j as jal, r, s, u, ECALL, LOAD, LUI, OP, OP_IMM};
use opml_vm::{ecall, ElfImage, InputSlots, InputTensor, Machine, Status, StepClass};
use serde::Serialize;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

/// Where the Step contract runs.
#[derive(Args)]
pub(crate) struct ChainArgs {
    /// A JSON-RPC node (e.g. http://127.0.0.1:8545 for `npx hardhat node`) instead of the embedded
    /// chain. Transactions are signed with the dev accounts of the Hardhat/Anvil test mnemonic
    /// (account 0 deploys; the dispute commands give each party its own account) unless the
    /// command takes a key of your own (`opml deploy|request --private-key-env VAR` or
    /// `--keystore PATH`).
    #[arg(long, value_name = "URL")]
    rpc: Option<String>,
    /// The EVM rules (hard fork) of the embedded chain: cancun, prague or osaka. Gas depends on
    /// them: from prague on, EIP-7623's calldata floor prices a step's witness (a one-leaf step
    /// costs about 63-66k gas, against about 48k under cancun, the fork of Hardhat's node). A node
    /// follows its own rules, which opml probes and reports.
    #[arg(long, default_value = "osaka", conflicts_with = "rpc")]
    hardfork: Hardfork,
}

/// The chain a command ran on, as its reports name it (flattened into their JSON).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ChainInfo {
    /// `embedded`, or the node's URL.
    pub(crate) chain: String,
    /// The chain's EIP-155 id.
    pub(crate) chain_id: u64,
    /// The hard fork whose rules (gas schedule included) the chain follows: the embedded chain's
    /// `--hardfork`, or what a node's answers show (`before_cancun` when it predates cancun,
    /// `unknown` when the probe failed).
    pub(crate) evm_rules: &'static str,
    /// Whether `evm_rules` was probed from a node rather than set for the embedded chain.
    pub(crate) evm_rules_probed: bool,
}

impl ChainInfo {
    /// One line for text reports: the chain, its id and its EVM rules, and whose rules they are.
    pub(crate) fn describe(&self) -> String {
        let rules = self
            .evm_rules
            .parse::<Hardfork>()
            .map_or(self.evm_rules, Hardfork::describe);
        if self.evm_rules_probed {
            format!(
                "{} (chain id {}), EVM rules {rules}: the node's own, as its answers show",
                self.chain, self.chain_id
            )
        } else {
            format!(
                "the {} chain (chain id {}), EVM rules {rules}",
                self.chain, self.chain_id
            )
        }
    }
}

impl ChainArgs {
    /// The embedded chain under `hardfork`'s rules.
    pub(crate) fn embedded(hardfork: Hardfork) -> Self {
        Self {
            rpc: None,
            hardfork,
        }
    }

    /// Whether no node was named (the embedded chain, private to this process).
    pub(crate) fn is_embedded(&self) -> bool {
        self.rpc.is_none()
    }

    /// Providers signing as dev accounts `0..accounts` of the Hardhat/Anvil test mnemonic, all on
    /// the same chain (checked to be reachable), and what the chain is, for reports.
    pub(crate) async fn providers(&self, accounts: u32) -> Result<(Vec<DynProvider>, ChainInfo)> {
        self.providers_for((0..accounts).map(dev_signer).collect())
            .await
    }

    /// Providers signing as each of `signers`, all on the same chain (checked to be reachable), and
    /// what the chain is, for reports. Warns loudly of a public dev key on a chain that is not a
    /// development chain.
    pub(crate) async fn providers_for(
        &self,
        signers: Vec<PrivateKeySigner>,
    ) -> Result<(Vec<DynProvider>, ChainInfo)> {
        let accounts: Vec<_> = signers.iter().map(|s| s.address()).collect();
        let (providers, name): (Vec<DynProvider>, String) = match &self.rpc {
            None => {
                let chain = EmbeddedChain::new(ChainConfig {
                    spec: self.hardfork.spec(),
                    ..ChainConfig::default()
                });
                (
                    signers.into_iter().map(|s| chain.provider(s)).collect(),
                    "embedded".to_string(),
                )
            }
            Some(url) => {
                let url: alloy::transports::http::reqwest::Url = url
                    .parse()
                    .with_context(|| format!("--rpc {url}: not a URL"))?;
                (
                    signers
                        .into_iter()
                        .map(|s| {
                            alloy::providers::Provider::erased(
                                alloy::providers::ProviderBuilder::new()
                                    .wallet(alloy::network::EthereumWallet::from(s))
                                    .connect_http(url.clone()),
                            )
                        })
                        .collect(),
                    url.to_string(),
                )
            }
        };
        let chain_id = opml_contracts::step::chain_id(&providers[0])
            .await
            .with_context(|| format!("reaching the chain ({name})"))?;
        for account in accounts {
            warn_if_dev_key(chain_id, account);
        }
        let evm_rules = match &self.rpc {
            None => self.hardfork.name(),
            // The rules only label the report: a node that cannot be probed still runs the command.
            Some(_) => match probe_hardfork(&providers[0]).await {
                Ok(fork) => fork.map_or("before_cancun", Hardfork::name),
                Err(e) => {
                    tracing::warn!("could not probe the EVM rules of {name}: {e}");
                    "unknown"
                }
            },
        };
        let info = ChainInfo {
            chain: name,
            chain_id,
            evm_rules,
            evm_rules_probed: self.rpc.is_some(),
        };
        Ok((providers, info))
    }

    /// Deploys a Step contract where asked; returns it and what the chain is, for reports.
    pub(crate) async fn deploy_step(&self) -> Result<(OnchainStep, ChainInfo)> {
        let (mut providers, name) = self.providers(1).await?;
        let step = OnchainStep::deploy(providers.remove(0))
            .await
            .context("deploying the Step contract")?;
        Ok((step, name))
    }
}

#[derive(Args)]
pub(crate) struct VerifyOnchainArgs {
    #[command(flatten)]
    program: ProgramArgs,
    /// Which steps: `all`, one step `N`, or the half-open range `A..B` (the step from the state
    /// after A steps, up to but not including B).
    #[arg(long, default_value = "all")]
    steps: String,
    #[command(flatten)]
    chain: ChainArgs,
    /// Print one JSON report instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct GasArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// Print one JSON report instead of text.
    #[arg(long)]
    json: bool,
}

/// min / median / 90th percentile / max of a set of gas figures (or of witness sizes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct GasStats {
    pub(crate) count: usize,
    pub(crate) min: u64,
    pub(crate) median: u64,
    /// The value at rank ceil(0.9 × count) (nearest rank).
    pub(crate) p90: u64,
    pub(crate) max: u64,
}

impl GasStats {
    /// The distribution of `values`; `None` when there are none.
    pub(crate) fn of(values: &[u64]) -> Option<Self> {
        let mut v = values.to_vec();
        v.sort_unstable();
        let p90 = *v.get((v.len() * 9).div_ceil(10).max(1) - 1)?;
        Some(Self {
            count: v.len(),
            min: *v.first()?,
            median: v[v.len() / 2],
            p90,
            max: *v.last()?,
        })
    }
}

/// Gas of step transactions, by class.
#[derive(Default)]
struct GasBook {
    all: Vec<u64>,
    by_class: BTreeMap<StepClass, Vec<u64>>,
}

impl GasBook {
    fn add(&mut self, class: StepClass, gas: u64) {
        self.all.push(gas);
        self.by_class.entry(class).or_default().push(gas);
    }

    fn classes(&self) -> BTreeMap<&'static str, GasStats> {
        StepClass::ALL
            .iter()
            .filter_map(|c| Some((c.name(), GasStats::of(self.by_class.get(c)?)?)))
            .collect()
    }

    fn print(&self) {
        if let Some(all) = GasStats::of(&self.all) {
            println!(
                "gas per step transaction (base cost and calldata included): min {}  median {}  max {}",
                all.min, all.median, all.max
            );
        }
        println!(
            "  {:<12} {:>6} {:>8} {:>8} {:>8}",
            "class", "steps", "min", "median", "max"
        );
        for (name, st) in self.classes() {
            println!(
                "  {name:<12} {:>6} {:>8} {:>8} {:>8}",
                st.count, st.min, st.median, st.max
            );
        }
    }
}

/// One step where the contract and the VM disagree.
#[derive(Serialize)]
pub(crate) struct Mismatch {
    step: u64,
    vm_post_state_hash: String,
    /// What the contract did instead.
    pub(crate) contract: String,
}

#[derive(Serialize)]
struct VerifyOnchainReport {
    program: String,
    #[serde(flatten)]
    chain: ChainInfo,
    #[serde(serialize_with = "opml_contracts::json::checksummed")]
    step_contract: alloy::primitives::Address,
    first_step: u64,
    end_step: u64,
    checked: u64,
    matched: u64,
    mismatches: Vec<Mismatch>,
    gas: Option<GasStats>,
    gas_by_class: BTreeMap<&'static str, GasStats>,
    wall_ms: f64,
}

/// Parses `--steps`: `all` (None for the end), `N`, or `A..B`.
fn parse_steps(spec: &str) -> Result<(u64, Option<u64>)> {
    if spec == "all" {
        return Ok((0, None));
    }
    if let Some((a, b)) = spec.split_once("..") {
        let a: u64 = a
            .parse()
            .with_context(|| format!("--steps {spec}: bad start"))?;
        let b: u64 = b
            .parse()
            .with_context(|| format!("--steps {spec}: bad end"))?;
        if b <= a {
            bail!("--steps {spec}: the range is empty");
        }
        return Ok((a, Some(b)));
    }
    let n: u64 = spec
        .parse()
        .with_context(|| format!("--steps {spec}: expected all, N or A..B"))?;
    Ok((n, Some(n + 1)))
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Submits one proven step: checks the contract's post-state against the VM's (eth_call) and
/// measures the step as a transaction. Returns the mismatch, if any, and the gas.
pub(crate) async fn submit(
    step: &OnchainStep,
    proof: &opml_vm::StepProof,
) -> Result<(Option<Mismatch>, u64)> {
    let pre = B256::from(proof.pre_state_hash);
    let onchain = step.step(pre, &proof.witness).await;
    let mismatch = match onchain {
        Ok(post) if post.0 == proof.post_state_hash => None,
        Ok(post) => Some(format!("returned {post}")),
        Err(StepError::Rejected(e)) => Some(format!("reverted with {e:?}")),
        Err(e) => return Err(e).context(format!("step {}", proof.step)),
    };
    let gas = step
        .transact(pre, &proof.witness)
        .await
        .map(|r| r.gas_used)
        .or_else(|e| match e {
            // A rejected witness is already a mismatch; its transaction reverts at estimation.
            StepError::Rejected(_) if mismatch.is_some() => Ok(0),
            e => Err(e),
        })
        .with_context(|| format!("step {} as a transaction", proof.step))?;
    let mismatch = mismatch.map(|contract| Mismatch {
        step: proof.step,
        vm_post_state_hash: B256::from(proof.post_state_hash).to_string(),
        contract,
    });
    Ok((mismatch, gas))
}

pub(crate) fn verify_onchain(args: VerifyOnchainArgs) -> Result<ExitCode> {
    let (first, end) = parse_steps(&args.steps)?;
    let mut machine = args.program.machine()?;
    let runtime = runtime()?;
    let (step_contract, chain) = runtime.block_on(args.chain.deploy_step())?;
    let start = Instant::now();
    // The end of `all` is the step after the program stops (one halted step is checked too).
    let end = match end {
        Some(end) => end,
        None => {
            let mut probe = machine.clone();
            probe.run(u64::MAX);
            probe.step_count() + 1
        }
    };
    machine.run_to(first);
    if machine.step_count() < first {
        tracing::info!(
            stopped_at = machine.step_count(),
            "the program stops before step {first}; checking halted steps"
        );
    }
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(end - first)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} steps  {per_sec}  eta {eta}")
            .expect("valid template"),
    );
    let mut book = GasBook::default();
    let mut mismatches = Vec::new();
    let mut checked = 0u64;
    for index in first..end {
        // A stopped machine stays at its last step count; prove its (unchanging) next step.
        let mut proof = machine.prove_step();
        proof.step = proof.step.max(index);
        let (mismatch, gas) = runtime.block_on(submit(&step_contract, &proof))?;
        if let Some(m) = mismatch {
            tracing::error!(step = m.step, contract = %m.contract, "the contract disagrees with the VM");
            mismatches.push(m);
        } else {
            book.add(proof.class(), gas);
        }
        checked += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let report = VerifyOnchainReport {
        program: args.program.elf.display().to_string(),
        chain,
        step_contract: step_contract.address(),
        first_step: first,
        end_step: end,
        checked,
        matched: checked - mismatches.len() as u64,
        gas: GasStats::of(&book.all),
        gas_by_class: book.classes(),
        mismatches,
        wall_ms: start.elapsed().as_secs_f64() * 1e3,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{}: steps {first}..{end} on {} (Step at {}): {} checked, {} matched, {} mismatched in {:.1} s",
            report.program,
            report.chain.describe(),
            report.step_contract,
            report.checked,
            report.matched,
            report.mismatches.len(),
            report.wall_ms / 1e3
        );
        book.print();
        for m in &report.mismatches {
            println!(
                "MISMATCH at step {}: VM {}, contract {}",
                m.step, m.vm_post_state_hash, m.contract
            );
        }
    }
    Ok(if report.mismatches.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_MISMATCH)
    })
}

/// Deploys a Step contract on a fresh embedded chain under `hardfork`'s rules and submits
/// `proofs`; for each, whether the contract's post-state equals the VM's, and the gas of its
/// transaction; and what the chain is.
pub(crate) fn submit_on_embedded_chain(
    proofs: &[opml_vm::StepProof],
    hardfork: Hardfork,
) -> Result<(Vec<(bool, u64)>, ChainInfo)> {
    let runtime = runtime()?;
    let (step, chain) = runtime.block_on(ChainArgs::embedded(hardfork).deploy_step())?;
    let results = proofs
        .iter()
        .map(|p| {
            let (mismatch, gas) = runtime.block_on(submit(&step, p))?;
            Ok((mismatch.is_none(), gas))
        })
        .collect::<Result<_>>()?;
    Ok((results, chain))
}

const CODE: u32 = 0x1_0000;
const DATA: u32 = 0x2_0000;

/// A machine on one instruction word (repeated `n` times) with registers set.
fn one_word(word: u32, n: usize, regs: &[(usize, u32)], inputs: &InputSlots) -> Machine {
    let data: Vec<u8> = (0..4096u32).map(|k| (k * 37 + 11) as u8).collect();
    let image = ElfImage::from_words(CODE, &vec![word; n], DATA, &data);
    let mut m = Machine::new(&image, inputs.clone());
    for &(reg, value) in regs {
        m.set_register(reg, value);
    }
    m
}

/// The steps of the gas report: each class on several operands, in memories of realistic shape
/// (code, data and a stack far apart).
fn gas_suite() -> Result<Vec<(String, Machine)>> {
    let mut inputs = InputSlots::default();
    let image: Vec<u8> = (0..784u32).map(|k| (k % 251) as u8).collect();
    inputs.set(0, InputTensor::from_bytes(image))?;
    let stack = 0x7fff_f000;
    let operands = [
        (1, 2),
        (0xffff_ffff, 7),
        (0x8000_0000, 0xffff_ffff),
        (12345, 0),
    ];
    let mut suite = Vec::new();
    for (a, b) in operands {
        let regs = [(5, a), (6, b), (2, stack)];
        suite.push((
            "add".into(),
            one_word(r(0, 6, 5, 0, 7, OP), 1, &regs, &inputs),
        ));
        suite.push((
            "xori".into(),
            one_word(i(-1, 5, 4, 7, OP_IMM), 1, &regs, &inputs),
        ));
        suite.push((
            "lui".into(),
            one_word(u(0xabcd_e000, 7, LUI), 1, &regs, &inputs),
        ));
        suite.push((
            "mul".into(),
            one_word(r(1, 6, 5, 0, 7, OP), 1, &regs, &inputs),
        ));
        suite.push((
            "divu".into(),
            one_word(r(1, 6, 5, 5, 7, OP), 1, &regs, &inputs),
        ));
        suite.push((
            "beq".into(),
            one_word(branch(8, 6, 5, 0), 1, &regs, &inputs),
        ));
        suite.push(("jal".into(), one_word(jal(8, 1), 1, &regs, &inputs)));
    }
    for offset in [0, 4, 60, 2048] {
        let regs = [(5, DATA), (2, stack), (6, 0xdead_beef)];
        suite.push((
            "lw".into(),
            one_word(i(offset, 5, 2, 7, LOAD), 1, &regs, &inputs),
        ));
        suite.push((
            "lbu".into(),
            one_word(i(offset + 1, 5, 4, 7, LOAD), 1, &regs, &inputs),
        ));
        suite.push(("sw".into(), one_word(s(offset, 6, 5, 2), 1, &regs, &inputs)));
        suite.push((
            "sw stack".into(),
            one_word(s(-offset - 4, 6, 2, 2), 1, &regs, &inputs),
        ));
    }
    for chunk in [0, 5, 24] {
        let regs = [
            (17, ecall::READ_CHUNK),
            (10, 0),
            (11, chunk),
            (12, DATA + 64),
        ];
        suite.push(("read_chunk".into(), one_word(ECALL, 1, &regs, &inputs)));
    }
    // Appends 1..=4 climb the accumulator frontier to different heights.
    let regs = [(17, ecall::WRITE_CHUNK), (10, DATA)];
    let mut m = one_word(ECALL, 4, &regs, &inputs);
    for _ in 0..4 {
        suite.push(("write_chunk".into(), m.clone()));
        m.run(1);
    }
    for code in [0, 1] {
        let regs = [(17, ecall::EXIT), (10, code)];
        suite.push(("exit".into(), one_word(ECALL, 1, &regs, &inputs)));
    }
    let regs = [(17, ecall::WRITE), (10, 1), (11, DATA), (12, 5)];
    suite.push(("write".into(), one_word(ECALL, 1, &regs, &inputs)));
    suite.push(("illegal".into(), one_word(0, 1, &[], &inputs)));
    let mut halted = one_word(ECALL, 1, &[(17, ecall::EXIT)], &inputs);
    halted.run(1);
    debug_assert_eq!(halted.status(), Status::Exited);
    suite.push(("after exit".into(), halted));
    Ok(suite)
}

#[derive(Serialize)]
struct GasReport {
    #[serde(flatten)]
    chain: ChainInfo,
    steps: usize,
    gas: Option<GasStats>,
    gas_by_class: BTreeMap<&'static str, GasStats>,
    target_median: u64,
}

/// `opml bench gas`: what one step costs on chain, by instruction class, as whole transactions.
pub(crate) fn bench_gas(args: GasArgs) -> Result<ExitCode> {
    let runtime = runtime()?;
    let (step_contract, chain) = runtime.block_on(args.chain.deploy_step())?;
    let mut book = GasBook::default();
    let suite = gas_suite()?;
    for (what, mut machine) in suite.iter().cloned() {
        let proof = machine.prove_step();
        let (mismatch, gas) = runtime.block_on(submit(&step_contract, &proof))?;
        if let Some(m) = mismatch {
            bail!("{what}: the contract disagrees with the VM: {}", m.contract);
        }
        book.add(proof.class(), gas);
    }
    let report = GasReport {
        chain,
        steps: suite.len(),
        gas: GasStats::of(&book.all),
        gas_by_class: book.classes(),
        target_median: 100_000,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "Step contract gas on {}, {} steps (whole transactions):",
            report.chain.describe(),
            report.steps
        );
        book.print();
        println!(
            "for scale: asterisc's RISC-V step ~176k gas (median of its tests), Cartesi's step ~103k; target: median under 100k"
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::GasStats;

    #[test]
    fn stats_take_nearest_ranks() {
        let cases: [(&[u64], Option<(u64, u64, u64, u64)>); 5] = [
            (&[], None),
            (&[7], Some((7, 7, 7, 7))),
            (&[3, 1, 2], Some((1, 2, 3, 3))),
            (
                &[10, 20, 30, 40, 50, 60, 70, 80, 90, 100],
                Some((10, 60, 90, 100)),
            ),
            (&[5; 11], Some((5, 5, 5, 5))),
        ];
        for (values, want) in cases {
            let got = GasStats::of(values).map(|s| (s.min, s.median, s.p90, s.max));
            assert_eq!(got, want, "{values:?}");
        }
    }
}
