//! `opml dispute simulate`: a whole two-phase dispute between an honest party and a faulty one, on
//! the embedded chain or a JSON-RPC node, with its transcript.

use crate::onchain::{runtime, ChainArgs, ChainInfo};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use opml_bisect::simulate::{Accounts, Transcript};
use opml_bisect::{simulate, Attack, GameParams, SimulateOptions};
use opml_dnn::Model;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// Dispute games.
#[derive(Subcommand)]
pub(crate) enum DisputeCommand {
    /// Play a whole dispute about MODEL on INPUT between an honest party and a faulty one: deploy
    /// the contracts, register the model, post the request and the result, challenge, play every
    /// move (graph nodes, then the VM steps of one node, down to one step the chain executes) and
    /// print each move's phase, segment, gas and time, then the rounds, the gas per party, the
    /// winner and the bonds. Exit status 1 when the honest party did not win.
    Simulate(SimulateArgs),
}

#[derive(Args)]
pub(crate) struct SimulateArgs {
    /// Model directory (model.json and its weights), e.g. models/mnist-cnn.
    model: PathBuf,
    /// The input: a 28x28 PGM image (e.g. data/mnist/samples/digit-0-label-7.pgm), or for a BERT
    /// sentence encoder the text.
    input: String,
    /// Who lies and how: node=K (the submitter flips a value of node K's output), output (a wrong
    /// output with a true trace), step=K:N (node K corrupted, phase-1 claims false from VM step
    /// N), trace=K (true output, wrong trace leaf K), header=K (node K's true bytes declared as
    /// another dtype or shape), steps=K:+D (node K corrupted, claims T+D VM
    /// steps), boundary=K (node K corrupted, opened with the true VM final state), challenger[=K]
    /// (an honest result disputed by a challenger wrong about node K), challenger-random[=SEED],
    /// challenger-stall[=N], or none.
    #[arg(long, default_value = "node=1")]
    fault: Attack,
    /// Sub-segments per dissection move (2 = bisection).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(2..=64))]
    arity: u64,
    /// Seconds on each party's chess clock.
    #[arg(long, default_value_t = 1800)]
    clock: u64,
    /// Seconds a result may be challenged.
    #[arg(long, default_value_t = 3600)]
    window: u64,
    /// Print the transcript as one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    chain: ChainArgs,
}

/// `opml dispute simulate --json`: the chain it ran on, then the transcript.
#[derive(Serialize)]
struct SimulateReport {
    #[serde(flatten)]
    chain: ChainInfo,
    #[serde(flatten)]
    transcript: Transcript,
}

pub(crate) fn run(cmd: DisputeCommand) -> Result<ExitCode> {
    match cmd {
        DisputeCommand::Simulate(args) => simulate_cmd(args),
    }
}

/// Plays one whole dispute of the model in `model_dir` on `input` (as `opml dispute simulate`
/// takes them) on `chain` with `fault` and `params`; its transcript and what the chain is.
pub(crate) fn simulate_dispute(
    chain: &ChainArgs,
    model_dir: &Path,
    input: &str,
    fault: Attack,
    params: GameParams,
) -> Result<(Transcript, ChainInfo)> {
    let model = Arc::new(Model::load(model_dir)?);
    let input = crate::embed::model_input(&model, model_dir, input)?;
    let options = SimulateOptions {
        fault,
        params,
        model_uri: format!("file:{}", model_dir.display()),
    };
    runtime()?.block_on(async {
        let (providers, chain) = chain.providers(3).await?;
        let accounts = Accounts {
            deployer: providers[0].clone(),
            submitter: providers[1].clone(),
            challenger: providers[2].clone(),
        };
        let transcript = simulate(&accounts, model, input, &options)
            .await
            .context("simulating the dispute")?;
        anyhow::Ok((transcript, chain))
    })
}

fn simulate_cmd(args: SimulateArgs) -> Result<ExitCode> {
    let params = GameParams {
        arity: args.arity,
        clock: args.clock,
        challenge_window: args.window,
        ..GameParams::default()
    };
    let (transcript, chain) =
        simulate_dispute(&args.chain, &args.model, &args.input, args.fault, params)?;
    let honest_won = match args.fault {
        Attack::None => true,
        f if f.is_submitters() => transcript.winner == opml_bisect::Side::Challenger,
        _ => transcript.winner == opml_bisect::Side::Submitter,
    };
    if args.json {
        let report = SimulateReport { chain, transcript };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("on {}", chain.describe());
        print_transcript(&transcript);
    }
    Ok(if honest_won {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_MISMATCH)
    })
}

fn ether(wei: alloy::primitives::U256) -> String {
    alloy::primitives::utils::format_ether(wei)
}

fn print_transcript(t: &Transcript) {
    println!(
        "dispute of {} ({} nodes), fault {}, arity {}",
        t.model, t.nodes, t.fault, t.params.arity
    );
    println!(
        "{:>3}  {:<10}  {:<11}  {:>5}  {:>21}  {:>9}  {:>8}  detail",
        "#", "party", "move", "phase", "segment", "gas", "ms"
    );
    for (i, m) in t.moves.iter().enumerate() {
        let segment = m
            .segment
            .map(|[lo, hi]| format!("[{lo}, {hi}]"))
            .unwrap_or_default();
        println!(
            "{:>3}  {:<10}  {:<11}  {:>5}  {:>21}  {:>9}  {:>8.1}  {}{}",
            i + 1,
            format!("{:?}", m.party).to_lowercase(),
            m.action,
            m.phase.map(|p| p.to_string()).unwrap_or_default(),
            segment,
            m.gas,
            m.wall_ms,
            m.detail,
            m.refused
                .as_ref()
                .map(|r| format!("  REFUSED: {r}"))
                .unwrap_or_default()
        );
    }
    if let (Some(node), Some(steps)) = (t.disputed_node, t.node_steps) {
        println!("disputed node {node}: {steps} VM steps claimed");
    }
    println!(
        "rounds: {} (bound ceil(log_k nodes) + ceil(log_k steps) = {})",
        t.rounds, t.rounds_bound
    );
    println!(
        "gas: submitter {}, challenger {}; largest transaction {}",
        t.gas.submitter, t.gas.challenger, t.largest_tx
    );
    println!("winner: {:?} (result {:?})", t.winner, t.result);
    println!(
        "bonds: result {} ETH, each side of a game {} ETH; credited to submitter {} ETH, to challenger {} ETH; \
         burnt {} ETH; locked {} + owed {} = balance {} ETH",
        ether(t.bonds.result_bond),
        ether(t.bonds.challenge_bond),
        ether(t.bonds.submitter_credit),
        ether(t.bonds.challenger_credit),
        ether(t.bonds.burnt),
        ether(t.bonds.locked),
        ether(t.bonds.owed),
        ether(t.bonds.balance)
    );
    println!("wall time: {:.2} s", t.wall_ms / 1e3);
}
