//! `opml generate` and `opml bench llm`: greedy decoding by a LLaMA-shaped decoder with weights
//! from a seed (`opml_dnn::llama`), one graph per position with the KV cache as its state inputs,
//! and its figures: native time per token, the commitments' overhead, nodes per token and the
//! largest node's VM steps.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use opml_dnn::llama::{check_request, run_step, LlamaConfig};
use serde::Serialize;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Decoder shapes with weights from a seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Shape {
    /// dim 64, 2 layers, 4 heads, ffn 172, vocab 256, 64 positions (tests, milliseconds).
    Tiny,
}

impl Shape {
    fn config(self) -> LlamaConfig {
        match self {
            Self::Tiny => LlamaConfig::tiny(),
        }
    }
}

#[derive(Args)]
pub(crate) struct GenerateArgs {
    /// The decoder: a shape whose weights come from --seed (only `tiny` so far; the 7B and 13B
    /// shapes need memory-mapped weights, not built yet).
    #[arg(value_enum)]
    model: Shape,
    /// The prompt's token ids, comma-separated (each below the vocabulary's size).
    #[arg(long, value_delimiter = ',', required = true)]
    prompt_tokens: Vec<i32>,
    /// New tokens to generate (at least 1; prompt and new tokens must fit the decoder's positions).
    #[arg(long, default_value_t = 8)]
    tokens: usize,
    /// Seed of the weights.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// One decoding step of a generation.
#[derive(Serialize)]
struct StepRow {
    position: usize,
    /// The token the step took.
    token: i32,
    /// The token after it (the prompt's next one while the prompt lasts, else the step's output).
    next_token: i32,
    /// The token state after the step (protocol section 13).
    state_hash: String,
    /// The step's share of the generation's wall time.
    native_ms: f64,
}

#[derive(Serialize)]
struct GenerateReport {
    shape: String,
    seed: u64,
    prompt_tokens: Vec<i32>,
    generated_tokens: Vec<i32>,
    steps: Vec<StepRow>,
    ms_per_token: f64,
    wall_ms: f64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The name of a value-enum variant as clap spells it.
fn shape_name(shape: Shape) -> String {
    shape
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}

/// Greedy decoding with the KV cache, step by step, each step's token state kept.
pub(crate) fn generate(args: GenerateArgs) -> Result<ExitCode> {
    let config = args.model.config();
    let start = Instant::now();
    let generation =
        opml_dnn::llama::generate(&config, args.seed, &args.prompt_tokens, args.tokens)
            .context("generate")?;
    let wall = start.elapsed();
    let steps: Vec<StepRow> = generation
        .states
        .iter()
        .enumerate()
        .map(|(p, state)| StepRow {
            position: p,
            token: generation.tokens[p],
            next_token: generation.tokens[p + 1],
            state_hash: format!("0x{}", hex::encode(state)),
            native_ms: ms(wall) / generation.states.len() as f64,
        })
        .collect();
    let report = GenerateReport {
        shape: shape_name(args.model),
        seed: args.seed,
        prompt_tokens: args.prompt_tokens.clone(),
        generated_tokens: generation.generated().to_vec(),
        ms_per_token: ms(wall) / steps.len() as f64,
        steps,
        wall_ms: ms(wall),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let list = |t: &[i32]| t.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
        println!(
            "{} seed {}: prompt {} → generated {}",
            report.shape,
            report.seed,
            list(&report.prompt_tokens),
            list(&report.generated_tokens)
        );
        for s in &report.steps {
            println!(
                "  position {:>3}: token {:>6} → {:>6}  state {}",
                s.position, s.token, s.next_token, s.state_hash
            );
        }
        println!(
            "{} steps, {:.2} ms per step",
            report.steps.len(),
            report.ms_per_token
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub(crate) struct BenchLlmArgs {
    /// The decoder's shape (only `tiny` so far; the 7B and 13B shapes need memory-mapped
    /// weights, not built yet).
    #[arg(long, value_enum, default_value = "tiny")]
    shape: Shape,
    /// Tokens to generate after a one-token prompt (the positions timed).
    #[arg(long, default_value_t = 4)]
    tokens: usize,
    /// Seed of the weights.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct LlmBench {
    shape: String,
    dim: usize,
    layers: usize,
    heads: usize,
    ffn: usize,
    vocab: usize,
    tokens: usize,
    /// Nodes of the last step's graph (the count is the same at every position past 0).
    nodes_per_token: usize,
    /// Multiply-accumulates of one token at the last position.
    macs_per_token: u64,
    /// Native time per token, the commitments and trace tree included.
    native_ms_per_token: f64,
    /// Native time per token of the ops alone (plain inference).
    ops_ms_per_token: f64,
    gmacs: f64,
    /// Native time with commitments over the ops' time alone.
    commit_overhead: f64,
    /// The node of the last step with the most VM steps.
    largest_node: String,
    largest_node_vm_steps: u64,
    largest_node_vm_ms: f64,
    wall_ms: f64,
}

/// MACs of one token at `position` (attending to `position + 1` keys).
fn macs(c: &LlamaConfig, position: usize) -> u64 {
    let (dim, ffn, n) = (c.dim as u64, c.ffn as u64, position as u64 + 1);
    c.layers as u64 * (4 * dim * dim + 3 * dim * ffn + 2 * dim * n) + c.vocab as u64 * dim
}

/// Times a generation step by step, then runs every node of the last step in the VM to find the
/// largest.
pub(crate) fn bench_llm(args: BenchLlmArgs) -> Result<ExitCode> {
    let wall = Instant::now();
    let config = args.shape.config();
    let prompt = [1];
    let steps = check_request(&config, &prompt, args.tokens).context("bench llm")?;
    let (mut native, mut ops) = (Duration::ZERO, Duration::ZERO);
    let mut run = run_step(&config, args.seed, 0, prompt[0], &[])?;
    for position in 0..steps {
        if position > 0 {
            run = run_step(&config, args.seed, position, run.next, &run.cache)?;
        }
        native += run.time;
        ops += run.trace.nodes.iter().map(|n| n.time).sum::<Duration>();
    }
    // The state inputs of the last step: the cache of the step before it.
    let state = if steps > 1 {
        let mut before = run_step(&config, args.seed, 0, prompt[0], &[])?;
        for position in 1..steps - 1 {
            before = run_step(&config, args.seed, position, before.next, &before.cache)?;
        }
        before.cache
    } else {
        Vec::new()
    };
    let model = &run.step.model;
    let mut largest = (0, 0, Duration::ZERO);
    for index in 0..model.manifest.nodes.len() {
        let start = Instant::now();
        let vm = model
            .run_node_in_vm_with_state(index, &run.input, &state, &run.trace, u64::MAX)
            .with_context(|| format!("node {index} in the VM"))?;
        anyhow::ensure!(
            vm.commitment == run.trace.nodes[index].commitment,
            "node {index} ({}) differs in the VM",
            model.manifest.nodes[index].name
        );
        if vm.steps > largest.1 {
            largest = (index, vm.steps, start.elapsed());
        }
    }
    let per_token = |d: Duration| ms(d) / steps as f64;
    let macs_per_token = macs(&config, steps - 1);
    let report = LlmBench {
        shape: shape_name(args.shape),
        dim: config.dim,
        layers: config.layers,
        heads: config.heads,
        ffn: config.ffn,
        vocab: config.vocab,
        tokens: args.tokens,
        nodes_per_token: model.manifest.nodes.len(),
        macs_per_token,
        native_ms_per_token: per_token(native),
        ops_ms_per_token: per_token(ops),
        gmacs: macs_per_token as f64 / (per_token(native) * 1e6),
        commit_overhead: native.as_secs_f64() / ops.as_secs_f64().max(1e-9),
        largest_node: model.manifest.nodes[largest.0].name.clone(),
        largest_node_vm_steps: largest.1,
        largest_node_vm_ms: ms(largest.2),
        wall_ms: ms(wall.elapsed()),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} decoder (dim {}, {} layers, {} heads, ffn {}, vocab {}), {} tokens:",
            report.shape,
            report.dim,
            report.layers,
            report.heads,
            report.ffn,
            report.vocab,
            report.tokens
        );
        println!(
            "  native {:.3} ms/token ({:.3} ms of ops alone: commitments ×{:.2}), {:.2} GMAC/s",
            report.native_ms_per_token,
            report.ops_ms_per_token,
            report.commit_overhead,
            report.gmacs
        );
        println!(
            "  {} nodes per token; largest node {} takes {} VM steps ({:.1} ms in the VM)",
            report.nodes_per_token,
            report.largest_node,
            report.largest_node_vm_steps,
            report.largest_node_vm_ms
        );
    }
    Ok(ExitCode::SUCCESS)
}
