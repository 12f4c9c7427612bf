//! `opml bench report`: the researchers' proof-cost report in one command. Every figure is measured
//! in the run (by the same code as `opml bench gas`, `opml vm verify-onchain`, `opml vm bench`,
//! `opml bench dnn` and `opml dispute simulate`), written as `report.md` with SVG plots and the gas
//! tables as `gas.json`, beside outside anchors with their sources (`anchors.rs`).

mod anchors;
mod cost;
mod plots;

use crate::bench::{InterpreterFigures, WitnessFigures};
use crate::model::DnnBench;
use crate::onchain::{runtime, submit, ChainArgs, ChainInfo, GasStats};
use crate::vm::{example_program, load_machine, EXAMPLE_PROGRAMS};
use anchors::{Compare, ANCHORS};
use anyhow::{bail, ensure, Context, Result};
use clap::Args;
use cost::{ComposedDispute, MoveCosts};
use opml_bisect::{Attack, GameParams, Side};
use opml_contracts::Hardfork;
use opml_vm::StepClass;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// The parts of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Section {
    /// Gas and witness bytes of every step of the example programs, by instruction class.
    StepGas,
    /// Dispute rounds and gas per party against graph size and node size, per arity.
    Dispute,
    /// Time to a witness deep in a long run against the checkpoint interval.
    Checkpoints,
    /// VM speed (compiled, interpreted, qemu-riscv32) and native against VM per op kind.
    Speed,
    /// Outside figures with their sources, beside this run's.
    Anchors,
}

const ALL_SECTIONS: [Section; 5] = [
    Section::StepGas,
    Section::Dispute,
    Section::Checkpoints,
    Section::Speed,
    Section::Anchors,
];

#[derive(Args)]
pub(crate) struct ReportArgs {
    /// Folder to write report.md, gas.json and the SVG plots into (created if missing).
    #[arg(long, default_value = "target/opml-report")]
    out: PathBuf,
    /// Smaller ranges (fewer programs, arities, steps and repetitions): under 5 minutes on two
    /// cores, against under 30 for the full report.
    #[arg(long)]
    quick: bool,
    /// Only these sections, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = ALL_SECTIONS)]
    only: Vec<Section>,
    /// The example programs (names in target/riscv-programs, built on first use) whose every
    /// step is measured on chain, comma-separated. Default: the quick set (hello, switch,
    /// selfmod, u64, arith, strings, isa), and with the full report primes as well.
    #[arg(long, value_delimiter = ',')]
    programs: Vec<String>,
    /// The EVM rules (hard fork) of the embedded chain: cancun, prague or osaka (see
    /// `opml bench gas --help`).
    #[arg(long, default_value = "osaka")]
    hardfork: Hardfork,
    /// Print where the files went and the headline figures as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Example programs that exit, with their steps (so the cost of a choice is known up front).
const PROGRAMS: [(&str, u64); 12] = [
    ("hello", 88),
    ("switch", 2_247),
    ("selfmod", 2_905),
    ("u64", 8_847),
    ("arith", 12_075),
    ("strings", 21_649),
    ("isa", 47_360),
    ("primes", 431_817),
    ("crc32", 1_193_375),
    ("sort", 1_236_234),
    ("matmul_test", 1_910_443),
    ("longrun", 2_253_604_299),
];
const QUICK_PROGRAMS: usize = 7;
const FULL_PROGRAMS: usize = 8;
/// Steps sent to one embedded chain before a fresh one takes over (each keeps its blocks in
/// memory: about 3 kB a step).
const STEPS_PER_CHAIN: usize = 100_000;
/// No step-by-step run on chain goes past this many steps.
const MAX_PROGRAM_STEPS: u64 = 5_000_000;

/// The model and digit of the measured disputes and the per-op figures.
const MODEL: &str = "models/mnist-cnn";
const DIGIT: &str = "data/mnist/samples/digit-0-label-7.pgm";
/// Every arity the composed tables cover.
const ARITIES: [u64; 6] = [2, 4, 8, 16, 32, 64];
const GRAPH_SIZES: [u64; 4] = [10, 100, 1_000, 10_000];
const STEP_SIZES: [u64; 7] = [
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
];
/// The other dimension, held fixed in each sweep.
const FIXED_STEPS: u64 = 1_000_000;
const FIXED_NODES: u64 = 100;

/// Which programs `args` asks for, checked against the known examples.
fn programs(args: &ReportArgs) -> Result<Vec<(&'static str, u64)>> {
    if args.programs.is_empty() {
        let n = if args.quick {
            QUICK_PROGRAMS
        } else {
            FULL_PROGRAMS
        };
        return Ok(PROGRAMS[..n].to_vec());
    }
    args.programs
        .iter()
        .map(|name| {
            let known = PROGRAMS.iter().find(|p| p.0 == name.as_str());
            match known {
                Some(&(n, steps)) if steps <= MAX_PROGRAM_STEPS => Ok((n, steps)),
                Some((n, steps)) => bail!(
                    "--programs {n}: {steps} steps is more than {MAX_PROGRAM_STEPS} to prove one by one"
                ),
                None => bail!(
                    "--programs {name:?}: not an example program; known: {}",
                    PROGRAMS
                        .iter()
                        .filter(|p| p.1 <= MAX_PROGRAM_STEPS)
                        .map(|p| p.0)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        })
        .collect()
}

fn program_path(name: &str) -> Result<PathBuf> {
    example_program(&Path::new(EXAMPLE_PROGRAMS).join(format!("{name}.elf")))
}

/// Section 1: every step of the programs, proven and run by the Step contract.
#[derive(Serialize, Default)]
struct StepGas {
    steps: usize,
    gas: Option<GasStats>,
    witness_bytes: Option<GasStats>,
    gas_by_class: BTreeMap<&'static str, GasStats>,
    witness_bytes_by_class: BTreeMap<&'static str, GasStats>,
    programs: Vec<ProgramGas>,
    #[serde(skip)]
    all_gas: Vec<u64>,
    #[serde(skip)]
    all_bytes: Vec<u64>,
}

/// One program's steps.
#[derive(Serialize)]
struct ProgramGas {
    program: String,
    steps: usize,
    gas: Option<GasStats>,
    witness_bytes: Option<GasStats>,
}

fn step_gas(names: &[(&str, u64)], hardfork: Hardfork) -> Result<StepGas> {
    let runtime = runtime()?;
    let deploy = || runtime.block_on(ChainArgs::embedded(hardfork).deploy_step());
    let (mut step_contract, _) = deploy()?;
    let mut on_this_chain = 0;
    let mut by_class: BTreeMap<StepClass, (Vec<u64>, Vec<u64>)> = BTreeMap::new();
    let mut out = StepGas::default();
    for &(name, _) in names {
        let path = program_path(name)?;
        let mut machine = load_machine(&path, &[])?;
        let (mut gas, mut bytes) = (Vec::new(), Vec::new());
        tracing::info!("{name}: every step on chain");
        loop {
            if on_this_chain == STEPS_PER_CHAIN {
                (step_contract, _) = deploy()?;
                on_this_chain = 0;
            }
            on_this_chain += 1;
            let proof = machine.prove_step();
            let (mismatch, g) = runtime.block_on(submit(&step_contract, &proof))?;
            if let Some(m) = mismatch {
                bail!(
                    "{name} step {}: the contract disagrees with the VM: {}",
                    proof.step,
                    m.contract
                );
            }
            let class = proof.class();
            let entry = by_class.entry(class).or_default();
            entry.0.push(g);
            entry.1.push(proof.witness.len() as u64);
            gas.push(g);
            bytes.push(proof.witness.len() as u64);
            // The first halted step (the state after exit, which a padded trace repeats) ends it.
            if class == StepClass::Halted {
                break;
            }
            ensure!(
                gas.len() as u64 <= MAX_PROGRAM_STEPS,
                "{name} runs past {MAX_PROGRAM_STEPS} steps"
            );
        }
        out.programs.push(ProgramGas {
            program: name.to_string(),
            steps: gas.len(),
            gas: GasStats::of(&gas),
            witness_bytes: GasStats::of(&bytes),
        });
        out.all_gas.extend(gas);
        out.all_bytes.extend(bytes);
    }
    out.steps = out.all_gas.len();
    out.gas = GasStats::of(&out.all_gas);
    out.witness_bytes = GasStats::of(&out.all_bytes);
    for (class, (gas, bytes)) in &by_class {
        if let (Some(g), Some(b)) = (GasStats::of(gas), GasStats::of(bytes)) {
            out.gas_by_class.insert(class.name(), g);
            out.witness_bytes_by_class.insert(class.name(), b);
        }
    }
    Ok(out)
}

/// One dispute played on the embedded chain, beside the same dispute composed from the costs.
#[derive(Serialize)]
struct MeasuredDispute {
    arity: u64,
    nodes: u64,
    node_steps: u64,
    rounds: u32,
    submitter_gas: u64,
    challenger_gas: u64,
    largest_tx: u64,
    composed: ComposedDispute,
}

/// Section 2: move costs measured in real disputes, composed over sizes.
#[derive(Serialize)]
struct DisputeCosts {
    model: String,
    fault: String,
    moves: MoveCosts,
    measured: Vec<MeasuredDispute>,
    /// Graph sizes at `FIXED_STEPS` steps per node, every arity.
    graph_sweep: Vec<ComposedDispute>,
    /// Node sizes at `FIXED_NODES` nodes, every arity.
    step_sweep: Vec<ComposedDispute>,
}

fn dispute(quick: bool, hardfork: Hardfork) -> Result<DisputeCosts> {
    let arities: &[u64] = if quick { &[2, 8, 64] } else { &ARITIES };
    let fault: Attack = "node=1".parse().context("the fault spec")?;
    let mut transcripts = Vec::new();
    for &arity in arities {
        tracing::info!("dispute of {MODEL} at arity {arity}");
        let params = GameParams {
            arity,
            ..GameParams::default()
        };
        let (t, _) = crate::dispute::simulate_dispute(
            &ChainArgs::embedded(hardfork),
            Path::new(MODEL),
            DIGIT,
            fault,
            params,
        )?;
        ensure!(
            t.winner == Side::Challenger && t.node_steps.is_some(),
            "the dispute at arity {arity} did not end in a proven step won by the challenger"
        );
        transcripts.push(t);
    }
    let moves = MoveCosts::measure(&transcripts)?;
    let measured = transcripts
        .iter()
        .map(|t| {
            let steps = t.node_steps.unwrap_or(1);
            MeasuredDispute {
                arity: t.params.arity,
                nodes: t.nodes as u64,
                node_steps: steps,
                rounds: t.rounds,
                submitter_gas: t.gas.submitter,
                challenger_gas: t.gas.challenger,
                largest_tx: t.largest_tx,
                composed: moves.compose(t.nodes as u64, steps, t.params.arity),
            }
        })
        .collect();
    let sweep = |sizes: &[u64], f: &dyn Fn(u64, u64) -> ComposedDispute| {
        sizes
            .iter()
            .flat_map(|&s| ARITIES.iter().map(move |&k| (s, k)))
            .map(|(s, k)| f(s, k))
            .collect::<Vec<_>>()
    };
    Ok(DisputeCosts {
        model: MODEL.to_string(),
        fault: fault.to_string(),
        graph_sweep: sweep(&GRAPH_SIZES, &|n, k| moves.compose(n, FIXED_STEPS, k)),
        step_sweep: sweep(&STEP_SIZES, &|s, k| moves.compose(FIXED_NODES, s, k)),
        moves,
        measured,
    })
}

/// Section 3: the long run's witness at one step, for each checkpoint interval.
fn checkpoints(quick: bool) -> Result<Vec<WitnessFigures>> {
    let (step, intervals, repeat): (u64, &[u32], usize) = if quick {
        (200_000_000, &[18, 20, 22, 24], 1)
    } else {
        (1_000_000_000, &[18, 20, 22, 24, 26], 3)
    };
    let elf = program_path("longrun")?;
    intervals
        .iter()
        .map(|&log| {
            tracing::info!("checkpoints every 2^{log} steps to step {step}");
            crate::bench::witness(&elf, step, 1 << log, repeat)
        })
        .collect()
}

/// One op kind's native time beside its VM run, summed over the model's nodes of that kind.
#[derive(Serialize)]
struct OpSpeed {
    op: &'static str,
    nodes: usize,
    native_ms: f64,
    vm_steps: u64,
    vm_ms: f64,
    vm_over_native: f64,
}

/// Section 4: the VM's speed and the model's ops natively and in the VM.
#[derive(Serialize)]
struct Speed {
    interpreter: InterpreterFigures,
    ops: Vec<OpSpeed>,
    #[serde(skip)]
    dnn: DnnBench,
}

fn speed(quick: bool) -> Result<Speed> {
    // The same program either way (qemu's start-up is lost in its 7·10^8 steps); fewer repeats.
    let (program, repeat, runs) = if quick {
        ("matmul", 1, 5)
    } else {
        ("matmul", 3, 50)
    };
    tracing::info!("VM speed on {program}");
    let interpreter = crate::bench::interpreter(&program_path(program)?, repeat)?;
    tracing::info!("native against VM per op on {MODEL}");
    let dnn = crate::model::measure_dnn(Path::new(MODEL), DIGIT, runs)?;
    let mut ops: BTreeMap<&'static str, OpSpeed> = BTreeMap::new();
    for n in &dnn.nodes {
        let o = ops.entry(n.op).or_insert(OpSpeed {
            op: n.op,
            nodes: 0,
            native_ms: 0.0,
            vm_steps: 0,
            vm_ms: 0.0,
            vm_over_native: 0.0,
        });
        o.nodes += 1;
        o.native_ms += n.native_ms;
        o.vm_steps += n.vm_steps;
        o.vm_ms += n.vm_ms;
    }
    let ops = ops
        .into_values()
        .map(|o| OpSpeed {
            vm_over_native: o.vm_ms / o.native_ms.max(1e-9),
            ..o
        })
        .collect();
    Ok(Speed {
        interpreter,
        ops,
        dnn,
    })
}

/// `gas.json`: every gas figure of the run and nothing timed, so that two runs compare equal.
#[derive(Serialize)]
struct GasTables<'a> {
    evm_rules: &'static str,
    step_gas: Option<&'a StepGas>,
    dispute: Option<&'a DisputeCosts>,
}

/// What `--json` prints.
#[derive(Serialize)]
struct ReportJson {
    out_dir: String,
    report: String,
    gas_tables: String,
    plots: Vec<String>,
    #[serde(flatten)]
    chain: ChainInfo,
    quick: bool,
    sections: Vec<Section>,
    step_gas: Option<GasStats>,
    witness_bytes: Option<GasStats>,
    /// The measured disputes of the model: arity, rounds and gas per party.
    disputes: Vec<DisputeHeadline>,
    /// The arity that costs the larger party least, for the largest graph and node sizes.
    optimal_arity: Option<u64>,
    wall_ms: f64,
}

#[derive(Serialize)]
struct DisputeHeadline {
    arity: u64,
    rounds: u32,
    submitter_gas: u64,
    challenger_gas: u64,
    largest_tx: u64,
}

/// `opml bench report`.
pub(crate) fn run(args: ReportArgs) -> Result<ExitCode> {
    let start = Instant::now();
    let mut sections = args.only.clone();
    sections.sort_unstable();
    sections.dedup();
    let has = |s: Section| sections.contains(&s);
    let programs = programs(&args)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let (_, chain) = runtime()?.block_on(ChainArgs::embedded(args.hardfork).providers(1))?;

    let step = if has(Section::StepGas) {
        Some(step_gas(&programs, args.hardfork)?)
    } else {
        None
    };
    let disputes = if has(Section::Dispute) {
        Some(dispute(args.quick, args.hardfork)?)
    } else {
        None
    };
    let checkpoints = if has(Section::Checkpoints) {
        Some(checkpoints(args.quick)?)
    } else {
        None
    };
    let speed = if has(Section::Speed) {
        Some(speed(args.quick)?)
    } else {
        None
    };

    let mut plots = Vec::new();
    let out = &args.out;
    let mut plot = |name: &str, draw: &dyn Fn(&Path) -> Result<()>| -> Result<String> {
        let path = out.join(name);
        draw(&path)?;
        plots.push(path.display().to_string());
        Ok(name.to_string())
    };
    let mut md = String::new();
    let w = &mut md;
    writeln!(w, "# opml proof-cost report\n")?;
    writeln!(
        w,
        "Written by `opml bench report{}` (opml {}) on {}. Every figure below is measured in \
         this run unless it says *composed* (arithmetic over measured moves) or sits in the \
         anchors table (outside figures with their sources). The gas tables are also in \
         `gas.json`.\n",
        if args.quick { " --quick" } else { "" },
        env!("CARGO_PKG_VERSION"),
        chain.describe(),
    )?;

    if let Some(s) = &step {
        let hist = plot("step-gas.svg", &|p| {
            plots::histogram(
                p,
                "gas of one step transaction, every step",
                "gas",
                &s.all_gas,
                40,
            )
        })?;
        let bytes = plot("witness-bytes.svg", &|p| {
            plots::histogram(
                p,
                "bytes of one step's witness, every step",
                "bytes",
                &s.all_bytes,
                40,
            )
        })?;
        write_step_gas(w, s, &chain, &hist, &bytes)?;
    }
    if let Some(d) = &disputes {
        let series = |rows: &[ComposedDispute], size: &dyn Fn(&ComposedDispute) -> u64| {
            ARITIES
                .iter()
                .map(|&k| {
                    (
                        format!("k = {k}"),
                        rows.iter()
                            .filter(|r| r.arity == k)
                            .map(|r| (size(r) as f64, r.max_party_gas() as f64 / 1e3))
                            .collect(),
                    )
                })
                .collect::<Vec<_>>()
        };
        let graph = plot("dispute-graph.svg", &|p| {
            plots::lines(
                p,
                &format!("gas of the larger party (composed), {FIXED_STEPS} steps per node"),
                "graph nodes",
                "k gas",
                &series(&d.graph_sweep, &|r| r.nodes),
            )
        })?;
        let steps = plot("dispute-steps.svg", &|p| {
            plots::lines(
                p,
                &format!("gas of the larger party (composed), {FIXED_NODES} graph nodes"),
                "VM steps of the disputed node",
                "k gas",
                &series(&d.step_sweep, &|r| r.node_steps),
            )
        })?;
        write_dispute(w, d, &graph, &steps)?;
    }
    if let Some(c) = &checkpoints {
        let curve = plot("checkpoints.svg", &|p| {
            plots::lines(
                p,
                "time to a witness against the memory of the checkpoints",
                "MiB of snapshots",
                "ms to the witness",
                &[(
                    "witness".to_string(),
                    c.iter()
                        .map(|f| (f.snapshot_bytes as f64 / (1 << 20) as f64, f.witness_ms))
                        .collect(),
                )],
            )
        })?;
        write_checkpoints(w, c, &curve)?;
    }
    if let Some(s) = &speed {
        let i = &s.interpreter;
        let mut rows = vec![
            ("compiled".to_string(), i.opml_steps_per_second / 1e6),
            (
                "interpreted".to_string(),
                i.interpreted_steps_per_second / 1e6,
            ),
        ];
        if let Some(q) = i.qemu_ms {
            rows.push(("qemu-riscv32".to_string(), i.steps as f64 / q * 1e3 / 1e6));
        }
        let vm = plot("vm-speed.svg", &|p| {
            plots::bars(p, "RV32IM steps per second", "M steps/s", &rows)
        })?;
        let ratio: Vec<_> = s
            .ops
            .iter()
            .map(|o| (o.op.to_string(), o.vm_over_native))
            .collect();
        let ops = plot("vm-over-native.svg", &|p| {
            plots::bars(p, "VM time over native time, per op kind", "×", &ratio)
        })?;
        write_speed(w, s, &vm, &ops)?;
    }
    if has(Section::Anchors) {
        write_anchors(w, step.as_ref(), disputes.as_ref())?;
    }

    let tables = GasTables {
        evm_rules: chain.evm_rules,
        step_gas: step.as_ref(),
        dispute: disputes.as_ref(),
    };
    let gas_path = args.out.join("gas.json");
    std::fs::write(&gas_path, serde_json::to_string_pretty(&tables)? + "\n")
        .with_context(|| format!("writing {}", gas_path.display()))?;
    let report_path = args.out.join("report.md");
    std::fs::write(&report_path, &md)
        .with_context(|| format!("writing {}", report_path.display()))?;

    let wall_ms = start.elapsed().as_secs_f64() * 1e3;
    if args.json {
        let report = ReportJson {
            out_dir: args.out.display().to_string(),
            report: report_path.display().to_string(),
            gas_tables: gas_path.display().to_string(),
            plots,
            chain,
            quick: args.quick,
            sections,
            step_gas: step.as_ref().and_then(|s| s.gas),
            witness_bytes: step.as_ref().and_then(|s| s.witness_bytes),
            disputes: disputes
                .iter()
                .flat_map(|d| &d.measured)
                .map(|m| DisputeHeadline {
                    arity: m.arity,
                    rounds: m.rounds,
                    submitter_gas: m.submitter_gas,
                    challenger_gas: m.challenger_gas,
                    largest_tx: m.largest_tx,
                })
                .collect(),
            optimal_arity: disputes.as_ref().map(|d| {
                d.moves
                    .optimal(GRAPH_SIZES[3], STEP_SIZES[6], &ARITIES)
                    .arity
            }),
            wall_ms,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "wrote {} ({} plots, gas tables in {}) in {:.1} s",
            report_path.display(),
            plots.len(),
            gas_path.display(),
            wall_ms / 1e3
        );
        for p in &plots {
            println!("  {p}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn stats_row(w: &mut String, name: &str, steps: usize, g: &GasStats, b: &GasStats) -> Result<()> {
    writeln!(
        w,
        "| {name} | {steps} | {} | {} | {} | {} | {} | {} | {} | {} |",
        g.min, g.median, g.p90, g.max, b.min, b.median, b.p90, b.max
    )?;
    Ok(())
}

fn write_step_gas(
    w: &mut String,
    s: &StepGas,
    chain: &ChainInfo,
    hist: &str,
    bytes: &str,
) -> Result<()> {
    writeln!(w, "## 1. One-step gas and witness bytes\n")?;
    writeln!(
        w,
        "Every step of {} example programs ({} steps, the halted step after each exit included), \
         proven by the VM and executed by the Step contract as a whole transaction (base cost and \
         calldata included) on {}. Measured.\n",
        s.programs.len(),
        s.steps,
        chain.describe()
    )?;
    let header = "| | steps | gas min | gas median | gas p90 | gas max | bytes min | bytes median | bytes p90 | bytes max |\n\
                  |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|";
    writeln!(w, "By instruction class:\n\n{header}")?;
    for (class, g) in &s.gas_by_class {
        if let Some(b) = s.witness_bytes_by_class.get(class) {
            stats_row(w, class, g.count, g, b)?;
        }
    }
    if let (Some(g), Some(b)) = (&s.gas, &s.witness_bytes) {
        stats_row(w, "**all**", g.count, g, b)?;
    }
    writeln!(w, "\nBy program:\n\n{header}")?;
    for p in &s.programs {
        if let (Some(g), Some(b)) = (&p.gas, &p.witness_bytes) {
            stats_row(w, &p.program, p.steps, g, b)?;
        }
    }
    writeln!(
        w,
        "\n![gas histogram]({hist})\n\n![witness bytes]({bytes})\n"
    )?;
    Ok(())
}

fn kgas(g: u64) -> String {
    format!("{:.0}k", g as f64 / 1e3)
}

fn write_sweep(
    w: &mut String,
    rows: &[ComposedDispute],
    what: &str,
    size: &dyn Fn(&ComposedDispute) -> u64,
    best: &dyn Fn(u64) -> ComposedDispute,
) -> Result<()> {
    write!(w, "| {what} |")?;
    for k in ARITIES {
        write!(w, " k = {k} |")?;
    }
    writeln!(w, " optimal k | largest tx at it |")?;
    writeln!(w, "|---:|{}---:|---:|", "---|".repeat(ARITIES.len()))?;
    let mut sizes: Vec<u64> = rows.iter().map(size).collect();
    sizes.dedup();
    for s in sizes {
        write!(w, "| {s} |")?;
        for r in rows.iter().filter(|r| size(r) == s) {
            write!(
                w,
                " {} rounds, {} / {} |",
                r.graph_rounds + r.step_rounds,
                kgas(r.gas(Side::Submitter)),
                kgas(r.gas(Side::Challenger))
            )?;
        }
        let b = best(s);
        writeln!(w, " {} | {} |", b.arity, kgas(b.largest_tx))?;
    }
    Ok(())
}

fn write_dispute(w: &mut String, d: &DisputeCosts, graph: &str, steps: &str) -> Result<()> {
    writeln!(w, "## 2. Dispute rounds and gas per party\n")?;
    writeln!(
        w,
        "**Measured:** whole disputes of `{}` (fault `{}`: the submitter lies about a node; the \
         challenger wins down to one proven step) played on the embedded chain at arities {:?}. \
         Each move kind's gas is taken from these moves: claims and picks fitted as \
         `base + per_claim × claims` (claims = min(k, segment) − 1), the one-off moves as their \
         median.\n",
        d.model, d.fault, d.moves.arities
    )?;
    writeln!(
        w,
        "| move | phase | gas (measured fit) | claims measured | max residual |\n|---|---|---|---|---:|"
    )?;
    let m = &d.moves;
    for (name, phase, f) in [
        ("claims", "graph", &m.graph_claims),
        ("pick", "graph", &m.graph_pick),
        ("claims", "steps", &m.step_claims),
        ("pick", "steps", &m.step_pick),
    ] {
        writeln!(
            w,
            "| {name} | {phase} | {:.0} + {:.0} × claims | {}..{} ({} moves) | {:.0} |",
            f.base,
            f.per_claim,
            f.claims_measured[0],
            f.claims_measured[1],
            f.moves,
            f.max_residual
        )?;
    }
    for (name, g) in [
        ("post_result", m.post_result),
        ("challenge", m.challenge),
        ("open_node", m.open_node),
        ("prove_step", m.prove_step),
    ] {
        writeln!(w, "| {name} | | {g} | | |")?;
    }
    writeln!(
        w,
        "\nThe measured disputes beside the same disputes composed from those costs (a check of \
         the composition):\n\n| k | nodes | node steps | rounds | submitter gas | challenger gas | \
         composed submitter | composed challenger | largest tx |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )?;
    for r in &d.measured {
        writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.arity,
            r.nodes,
            r.node_steps,
            r.rounds,
            r.submitter_gas,
            r.challenger_gas,
            r.composed.submitter_gas,
            r.composed.challenger_gas,
            r.largest_tx
        )?;
    }
    writeln!(
        w,
        "\n**Composed:** rounds are exact (`ceil(log_k nodes) + ceil(log_k steps)`, the \
         dissection arithmetic of `opml_bisect::dissection`); gas per party is the sum of the \
         measured move costs over those rounds (claims beyond those measured are extrapolated \
         along the fit). Cells: rounds, submitter / challenger gas. The optimal k minimizes the \
         larger party's gas.\n"
    )?;
    writeln!(
        w,
        "Against graph size, {FIXED_STEPS} VM steps in the disputed node:\n"
    )?;
    write_sweep(w, &d.graph_sweep, "graph nodes", &|r| r.nodes, &|n| {
        m.optimal(n, FIXED_STEPS, &ARITIES)
    })?;
    writeln!(w, "\nAgainst node size, {FIXED_NODES} graph nodes:\n")?;
    write_sweep(w, &d.step_sweep, "node steps", &|r| r.node_steps, &|s| {
        m.optimal(FIXED_NODES, s, &ARITIES)
    })?;
    writeln!(
        w,
        "\n![against graph size]({graph})\n\n![against node size]({steps})\n"
    )?;
    Ok(())
}

fn write_checkpoints(w: &mut String, c: &[WitnessFigures], curve: &str) -> Result<()> {
    writeln!(
        w,
        "## 3. Time to a witness against the checkpoint interval\n"
    )?;
    if let Some(f) = c.first() {
        writeln!(
            w,
            "The witness of step {} of `{}`, from checkpoints recorded along the run. Measured. \
             Snapshot memory counts the page data of every snapshot (an upper bound; Merkle \
             caches not counted).\n",
            f.step, f.program
        )?;
    }
    writeln!(
        w,
        "| interval | snapshots | snapshot MiB | record s | record M steps/s | witness ms | witness bytes | verified |\n\
         |---:|---:|---:|---:|---:|---:|---:|---|"
    )?;
    for f in c {
        writeln!(
            w,
            "| {} | {} | {:.1} | {:.2} | {:.0} | {:.1} | {} | {} |",
            f.checkpoint_interval,
            f.checkpoints,
            f.snapshot_bytes as f64 / (1 << 20) as f64,
            f.record_ms / 1e3,
            f.record_steps_per_second / 1e6,
            f.witness_ms,
            f.witness_bytes,
            f.verified
        )?;
    }
    writeln!(w, "\n![memory against time]({curve})\n")?;
    Ok(())
}

fn write_speed(w: &mut String, s: &Speed, vm: &str, ops: &str) -> Result<()> {
    let i = &s.interpreter;
    writeln!(w, "## 4. VM speed, and native against VM per op kind\n")?;
    writeln!(
        w,
        "`{}`, {} steps to its exit, best of the runs. Measured.\n\n| runner | s | M steps/s | \
         × qemu |\n|---|---:|---:|---:|",
        i.program, i.steps
    )?;
    let of_qemu = |f: Option<f64>| f.map(|f| format!("{f:.2}")).unwrap_or("-".into());
    writeln!(
        w,
        "| opml, hot blocks compiled ({} blocks) | {:.3} | {:.1} | {} |",
        i.compiled_blocks,
        i.opml_ms / 1e3,
        i.opml_steps_per_second / 1e6,
        of_qemu(i.fraction_of_qemu)
    )?;
    writeln!(
        w,
        "| opml, interpreted | {:.3} | {:.1} | {} |",
        i.interpreted_ms / 1e3,
        i.interpreted_steps_per_second / 1e6,
        of_qemu(i.interpreted_fraction_of_qemu)
    )?;
    match i.qemu_ms {
        Some(q) => writeln!(
            w,
            "| qemu-riscv32 | {:.3} | {:.1} | 1 |",
            q / 1e3,
            i.steps as f64 / q / 1e3
        )?,
        None => writeln!(w, "| qemu-riscv32 | not installed | | |")?,
    }
    writeln!(
        w,
        "\n`{}` on one digit: native executor (median of its runs) against each node run in the \
         VM (checked against the native output), summed per op kind. Measured.\n\n\
         | op | nodes | native ms | VM steps | VM ms | VM / native |\n|---|---:|---:|---:|---:|---:|",
        s.dnn.model
    )?;
    for o in &s.ops {
        writeln!(
            w,
            "| {} | {} | {:.3} | {} | {:.1} | {:.0} |",
            o.op, o.nodes, o.native_ms, o.vm_steps, o.vm_ms, o.vm_over_native
        )?;
    }
    writeln!(
        w,
        "| **model** | {} | {:.3} | {} | {:.1} | {:.0} |",
        s.dnn.nodes.len(),
        s.dnn.native_ms,
        s.dnn.vm_steps,
        s.dnn.vm_ms,
        s.dnn.vm_over_native
    )?;
    writeln!(w, "\n![VM speed]({vm})\n\n![VM over native]({ops})\n")?;
    Ok(())
}

fn write_anchors(
    w: &mut String,
    step: Option<&StepGas>,
    disputes: Option<&DisputeCosts>,
) -> Result<()> {
    writeln!(w, "## 5. Anchors\n")?;
    writeln!(
        w,
        "Outside figures, committed in `src/report/anchors.rs` with their sources; *estimate* \
         marks a figure not re-checked against its source. The last column is this run's \
         figure of the same kind, where a section measured it.\n\n\
         | system | what | figure | status | source | note | opml, this run |\n|---|---|---|---|---|---|---|"
    )?;
    let ours = |c: Compare| -> String {
        match c {
            Compare::StepGas => step
                .and_then(|s| s.gas)
                .map(|g| format!("median {} gas, max {}", g.median, g.max)),
            Compare::WitnessBytes => step
                .and_then(|s| s.witness_bytes)
                .map(|b| format!("whole witness: median {} bytes, max {}", b.median, b.max)),
            Compare::GameDepth => disputes.map(|d| {
                let (n, s) = (GRAPH_SIZES[3], STEP_SIZES[5]);
                let best = d.moves.optimal(n, s, &ARITIES);
                format!(
                    "{} rounds at k = 2, {} at k = {} ({n} nodes, {s} steps)",
                    cost::rounds(n, s, 2),
                    best.graph_rounds + best.step_rounds,
                    best.arity
                )
            }),
            Compare::Rule => None,
        }
        .unwrap_or_default()
    };
    for a in ANCHORS {
        writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} |",
            a.system,
            a.what,
            a.value,
            a.status.name(),
            a.source,
            a.note,
            ours(a.compare)
        )?;
    }
    writeln!(w)?;
    Ok(())
}
