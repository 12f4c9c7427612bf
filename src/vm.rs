//! `opml vm …`: run programs, produce and verify witnesses, and the tour of the VM and the DNN.

use crate::{EXIT_FAULT, EXIT_MISMATCH, EXIT_STEP_LIMIT};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use opml_vm::{
    parse_elf, verify_step, Checkpoints, InputSlots, InputTensor, Machine, RunOutcome, StepProof,
};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Subcommand)]
pub(crate) enum VmCommand {
    /// Run a static RV32IM ELF: its stdout/stderr pass through, then the result is printed.
    ///
    /// Exit status: the program's exit code (low 8 bits) when it exits; 125 when it faults;
    /// 124 when --max-steps runs out first; 2 when the ELF or an input cannot be loaded.
    Run(RunArgs),
    /// Produce the one-step witness of step N of a program's run (from the state after N steps).
    Witness(WitnessArgs),
    /// Check a witness file written by `opml vm witness --out`: recompute the post-state hash from
    /// the pre-state hash and the witness alone. Exit status 1 when it does not match.
    VerifyWitness(VerifyArgs),
    /// Submit a program's step witnesses to the Step contract (embedded chain, or --rpc URL) and
    /// compare each returned post-state hash with the VM's; report gas by instruction class.
    ///
    /// Exit status 1 when any step disagrees.
    VerifyOnchain(crate::onchain::VerifyOnchainArgs),
    /// Measure the VM: interpreter speed against qemu-riscv32, Merkle root cost against plain keccak,
    /// and the time to a witness deep in a long run.
    Bench(crate::bench::BenchArgs),
    /// A tour of the two layers a dispute narrows through: run a program, checkpoint it, prove
    /// single steps and verify each in Rust and in the Step contract on the embedded chain; then run
    /// a real MNIST digit through the quantized CNN with every node re-checked in the VM.
    Tour(TourArgs),
}

#[derive(Args)]
pub(crate) struct ProgramArgs {
    /// Static ELF32 RV32IM executable (e.g. built with `riscv64-unknown-elf-gcc -march=rv32im -mabi=ilp32`).
    pub(crate) elf: PathBuf,
    /// Put a file's bytes in an input slot, read by the program with the read_chunk ecall: SLOT=FILE.
    #[arg(long = "input", value_name = "SLOT=FILE")]
    pub(crate) inputs: Vec<String>,
}

impl ProgramArgs {
    pub(crate) fn machine(&self) -> Result<Machine> {
        load_machine(&self.elf, &self.inputs)
    }
}

#[derive(Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    program: ProgramArgs,
    /// Stop after this many steps if the program has not exited.
    #[arg(long, default_value_t = u64::MAX)]
    max_steps: u64,
    /// Print one JSON object (program output included in it) instead of text.
    #[arg(long)]
    json: bool,
    /// Interpret every step instead of compiling hot blocks to native code (x86-64 hosts). The
    /// steps, states and hashes are the same; only the speed differs.
    #[arg(long)]
    interpret: bool,
}

#[derive(Args)]
pub(crate) struct WitnessArgs {
    #[command(flatten)]
    program: ProgramArgs,
    /// The step to prove: the witness takes the state after N steps to the state after N+1.
    #[arg(long)]
    step: u64,
    /// Print the witness as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Write the witness as JSON to this file (for `opml vm verify-witness`).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct VerifyArgs {
    /// A witness JSON file from `opml vm witness --out`.
    file: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct TourArgs {
    /// The program to run; defaults to the bundled `primes` example, which is built on first use
    /// (from the repository, with riscv64-unknown-elf-gcc) by `vm/tests/programs/build.sh`.
    #[arg(default_value = "target/riscv-programs/primes.elf")]
    elf: PathBuf,
    /// Steps between checkpoints of the run.
    #[arg(long, default_value_t = 100_000)]
    checkpoint_interval: u64,
    /// The EVM rules (hard fork) of the embedded chain that runs the Step contract: cancun,
    /// prague or osaka (see `opml bench gas --help`).
    #[arg(long, default_value = "osaka")]
    hardfork: opml_contracts::Hardfork,
    /// Print one JSON report (every check with its figures) instead of text; the program's own
    /// output is not shown.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(cmd: VmCommand) -> Result<ExitCode> {
    match cmd {
        VmCommand::Run(args) => run_program(args),
        VmCommand::Witness(args) => witness(args),
        VmCommand::VerifyWitness(args) => verify(args),
        VmCommand::VerifyOnchain(args) => crate::onchain::verify_onchain(args),
        VmCommand::Bench(args) => crate::bench::run(args),
        VmCommand::Tour(args) => tour(args),
    }
}

/// Where `opml vm tour` and `opml vm bench` expect the example programs, relative to the
/// repository's root (the working directory).
pub(crate) const EXAMPLE_PROGRAMS: &str = "target/riscv-programs";

/// The script that builds the example programs, relative to the repository's root.
const BUILD_SCRIPT: &str = "vm/tests/programs/build.sh";

/// `elf` itself if it exists; if it is a missing example program (under [`EXAMPLE_PROGRAMS`]),
/// builds the examples with [`BUILD_SCRIPT`] first, so that the defaults work on a fresh clone.
/// Fails with what is missing and what to do: outside the repository, or without the RISC-V
/// compiler (the script names the package).
pub(crate) fn example_program(elf: &Path) -> Result<PathBuf> {
    if elf.exists() {
        return Ok(elf.to_path_buf());
    }
    if elf.parent() != Some(Path::new(EXAMPLE_PROGRAMS)) {
        bail!("{} not found", elf.display());
    }
    if !Path::new(BUILD_SCRIPT).exists() {
        bail!(
            "{} not found, and {BUILD_SCRIPT} is not here to build it: run this from the opml \
             repository's root, or pass the path of an RV32IM ELF program",
            elf.display()
        );
    }
    eprintln!("building the example programs into {EXAMPLE_PROGRAMS}/ with {BUILD_SCRIPT}");
    let out = std::process::Command::new("bash")
        .arg(BUILD_SCRIPT)
        .arg(EXAMPLE_PROGRAMS)
        .stdout(std::process::Stdio::null())
        .output()
        .with_context(|| format!("running {BUILD_SCRIPT}"))?;
    if !out.status.success() {
        bail!(
            "{} not found, and {BUILD_SCRIPT} could not build it: {}",
            elf.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    if !elf.exists() {
        bail!("{BUILD_SCRIPT} ran but did not write {}", elf.display());
    }
    Ok(elf.to_path_buf())
}

/// Loads an ELF and its input files into a fresh machine.
pub(crate) fn load_machine(elf: &Path, inputs: &[String]) -> Result<Machine> {
    let bytes = std::fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
    let image = parse_elf(&bytes).with_context(|| format!("loading {}", elf.display()))?;
    let mut slots = InputSlots::default();
    for spec in inputs {
        let (slot, file) = spec
            .split_once('=')
            .with_context(|| format!("--input {spec}: expected SLOT=FILE"))?;
        let slot: usize = slot
            .parse()
            .with_context(|| format!("--input {spec}: bad slot number"))?;
        let data = std::fs::read(file).with_context(|| format!("reading input {file}"))?;
        slots
            .set(slot, InputTensor::from_bytes(data))
            .with_context(|| format!("--input {spec}"))?;
    }
    Ok(Machine::new(&image, slots))
}

#[derive(Serialize)]
struct RunReport {
    status: &'static str,
    exit_code: Option<u32>,
    fault: Option<opml_vm::Fault>,
    steps: u64,
    state_hash: String,
    output_chunks: u32,
    wall_ms: f64,
    steps_per_second: f64,
    /// What the program wrote (printed only as JSON, where it is always set).
    stdout: Option<String>,
    stderr: Option<String>,
    /// Bytes written to stdout and stderr beyond the first MiB of each kept in `stdout`/`stderr`.
    console_bytes_cut: Option<[u64; 2]>,
}

/// The name of a run's outcome in reports.
fn outcome_name(outcome: RunOutcome) -> &'static str {
    match outcome {
        RunOutcome::Exited(_) => "exited",
        RunOutcome::Faulted(_) => "faulted",
        RunOutcome::StepLimit => "step_limit",
    }
}

fn exit_status(outcome: RunOutcome) -> ExitCode {
    match outcome {
        RunOutcome::Exited(code) => ExitCode::from(code as u8),
        RunOutcome::Faulted(_) => ExitCode::from(EXIT_FAULT),
        RunOutcome::StepLimit => ExitCode::from(EXIT_STEP_LIMIT),
    }
}

fn run_program(args: RunArgs) -> Result<ExitCode> {
    let mut machine = args.program.machine()?;
    machine.set_console_echo(!args.json);
    machine.set_block_compiler(!args.interpret);
    tracing::debug!(elf = %args.program.elf.display(), "running");
    let start = Instant::now();
    let outcome = machine.run(args.max_steps);
    let elapsed = start.elapsed().as_secs_f64();
    let steps = machine.step_count();
    let report = RunReport {
        status: outcome_name(outcome),
        exit_code: match outcome {
            RunOutcome::Exited(code) => Some(code),
            _ => None,
        },
        fault: match outcome {
            RunOutcome::Faulted(f) => Some(f),
            _ => None,
        },
        steps,
        state_hash: format!("0x{}", hex::encode(machine.state_hash())),
        output_chunks: machine.output().count(),
        wall_ms: elapsed * 1e3,
        steps_per_second: steps as f64 / elapsed.max(1e-9),
        stdout: args
            .json
            .then(|| String::from_utf8_lossy(machine.stdout()).into_owned()),
        stderr: args
            .json
            .then(|| String::from_utf8_lossy(machine.stderr()).into_owned()),
        console_bytes_cut: args.json.then(|| machine.console_dropped()),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let result = match outcome {
            RunOutcome::Exited(code) => format!("exited with code {code}"),
            RunOutcome::Faulted(f) => format!("faulted: {f} at pc {:#010x}", machine.pc()),
            RunOutcome::StepLimit => format!("stopped at the step limit ({})", args.max_steps),
        };
        eprintln!("\n--- opml vm: {result}");
        eprintln!("steps:       {steps}");
        eprintln!("state hash:  {}", report.state_hash);
        eprintln!("output:      {} chunks", report.output_chunks);
        eprintln!(
            "speed:       {:.1} M steps/s ({elapsed:.3} s)",
            report.steps_per_second / 1e6
        );
    }
    Ok(exit_status(outcome))
}

fn witness(args: WitnessArgs) -> Result<ExitCode> {
    let mut machine = args.program.machine()?;
    let outcome = machine.run_to(args.step);
    if machine.step_count() < args.step {
        tracing::info!(
            stopped_at = machine.step_count(),
            ?outcome,
            "the program stops before that step; proving the padding step after its end"
        );
    }
    let proof = machine.prove_step();
    let json = serde_json::to_string_pretty(&proof)?;
    if let Some(path) = &args.out {
        std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{json}");
    } else {
        print_proof(&proof);
        if let Some(path) = &args.out {
            println!("written to:      {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_proof(proof: &StepProof) {
    println!("step:            {}", proof.step);
    println!("pc:              {:#010x}", proof.pre_state.pc);
    match proof.instruction_word {
        Some(word) => println!(
            "instruction:     {word:#010x} ({:?})",
            opml_vm::instruction::Instruction::decode(word).opcode
        ),
        None => println!("instruction:     none (the machine has stopped or cannot fetch)"),
    }
    println!("pre-state hash:  0x{}", hex::encode(proof.pre_state_hash));
    println!("post-state hash: 0x{}", hex::encode(proof.post_state_hash));
    println!("witness:         {} bytes", proof.witness.len());
}

#[derive(Serialize)]
struct VerifyReport {
    valid: bool,
    step: u64,
    computed_post_state_hash: Option<String>,
    claimed_post_state_hash: String,
    error: Option<String>,
}

fn verify(args: VerifyArgs) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let proof: StepProof = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a witness file", args.file.display()))?;
    let result = match proof.check_readable_fields() {
        Ok(()) => verify_step(&proof.pre_state_hash, &proof.witness).map_err(|e| e.to_string()),
        Err(reason) => Err(format!(
            "the file's readable fields disagree with its witness bytes: {reason}"
        )),
    };
    let report = VerifyReport {
        valid: matches!(&result, Ok(h) if *h == proof.post_state_hash),
        step: proof.step,
        computed_post_state_hash: result
            .as_ref()
            .ok()
            .map(|h| format!("0x{}", hex::encode(h))),
        claimed_post_state_hash: format!("0x{}", hex::encode(proof.post_state_hash)),
        error: result.as_ref().err().map(|e| e.to_string()),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if let Some(err) = &report.error {
        println!(
            "INVALID: step {}: the witness is rejected: {err}",
            proof.step
        );
    } else if report.valid {
        println!(
            "OK: step {} goes to {}",
            proof.step, report.claimed_post_state_hash
        );
    } else {
        println!(
            "MISMATCH: step {} goes to {}, but the file claims {}",
            proof.step,
            report.computed_post_state_hash.as_deref().unwrap_or("?"),
            report.claimed_post_state_hash
        );
    }
    Ok(if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_MISMATCH)
    })
}

/// Step 1 of the tour: the run in the fast interpreter.
#[derive(Serialize)]
struct TourRun {
    status: &'static str,
    exit_code: Option<u32>,
    steps: u64,
    wall_ms: f64,
    steps_per_second: f64,
    state_hash: String,
}

/// Step 2: checkpoints of the same run.
#[derive(Serialize)]
struct TourCheckpoints {
    interval: u64,
    count: usize,
    wall_ms: f64,
    /// Whether the recorded run ends in the fast run's final state.
    ok: bool,
}

/// Step 3: one step proven from the nearest checkpoint and verified from its hash alone.
#[derive(Serialize)]
struct TourProof {
    step: u64,
    pc: u32,
    /// The opcode executed, `null` when the machine has stopped.
    opcode: Option<String>,
    witness_bytes: usize,
    prove_ms: f64,
    post_state_hash: String,
    /// `verify_step`'s refusal, when it refused the witness.
    error: Option<String>,
    ok: bool,
}

/// Step 4: the same step in the Step contract.
#[derive(Serialize)]
struct TourOnchain {
    step: u64,
    class: &'static str,
    gas: u64,
    /// Whether the contract's post-state is the VM's.
    ok: bool,
}

/// Step 5: one node of the MNIST inference re-executed in the VM.
#[derive(Serialize)]
struct TourNode {
    index: usize,
    name: String,
    vm_steps: u64,
    vm_ms: f64,
    commitment: String,
    /// Whether the VM's output commitment is the native one.
    ok: bool,
}

/// Step 5: a real MNIST digit through the quantized CNN, natively and node by node in the VM.
#[derive(Serialize)]
struct TourMnist {
    model: String,
    digit: String,
    prediction: i32,
    native_ms: f64,
    trace_root: String,
    nodes: Vec<TourNode>,
}

/// `opml vm tour --json`: every check with its figures and whether it passed.
#[derive(Serialize)]
struct TourReport {
    program: String,
    #[serde(flatten)]
    chain: crate::onchain::ChainInfo,
    run: TourRun,
    checkpoints: TourCheckpoints,
    proofs: Vec<TourProof>,
    onchain: Vec<TourOnchain>,
    /// `null` when skipped (see `skipped`).
    mnist: Option<TourMnist>,
    /// The parts that did not run, each with the files it missed.
    skipped: Vec<String>,
    /// Whether every check that ran passed.
    ok: bool,
}

/// The main job for now: run a program, checkpoint it, prove steps across the run and verify each in
/// Rust and in the Step contract on the embedded chain; then an MNIST digit node by node in the VM.
/// Text as it goes, or one JSON report at the end (the program's own output is then not shown).
fn tour(args: TourArgs) -> Result<ExitCode> {
    let elf = example_program(&args.elf)?;
    let machine = load_machine(&elf, &[])?;
    let say = |text: String| {
        if !args.json {
            println!("{text}");
        }
    };
    say(format!("== opml vm tour: {}", args.elf.display()));
    say("-- 1. run natively in the fast interpreter (program output follows)".into());
    let mut fast = machine.clone();
    fast.set_console_echo(!args.json);
    let start = Instant::now();
    let outcome = fast.run(u64::MAX);
    let run_time = start.elapsed();
    let total = fast.step_count();
    let run = TourRun {
        status: outcome_name(outcome),
        exit_code: match outcome {
            RunOutcome::Exited(code) => Some(code),
            _ => None,
        },
        steps: total,
        wall_ms: run_time.as_secs_f64() * 1e3,
        steps_per_second: total as f64 / run_time.as_secs_f64().max(1e-9),
        state_hash: format!("0x{}", hex::encode(fast.state_hash())),
    };
    say(format!(
        "   {outcome:?} after {total} steps in {:.3} s ({:.1} M steps/s), final state {}",
        run.wall_ms / 1e3,
        run.steps_per_second / 1e6,
        run.state_hash
    ));

    say(format!(
        "-- 2. record checkpoints every {} steps",
        args.checkpoint_interval
    ));
    let start = Instant::now();
    let (checkpoints, mut end) = Checkpoints::record(machine, args.checkpoint_interval, u64::MAX);
    let recorded = TourCheckpoints {
        interval: args.checkpoint_interval,
        count: checkpoints.len(),
        wall_ms: start.elapsed().as_secs_f64() * 1e3,
        ok: end.state_hash() == fast.state_hash(),
    };
    say(format!(
        "   {} checkpoints in {:.3} s; final state agrees: {}",
        recorded.count,
        recorded.wall_ms / 1e3,
        recorded.ok
    ));

    say(
        "-- 3. prove single steps from the nearest checkpoint and verify each from its hash alone"
            .into(),
    );
    let picks = [
        0,
        1,
        total / 3,
        total / 2,
        total.saturating_sub(2),
        total.saturating_sub(1),
        total,
    ];
    let mut proofs = Vec::new();
    let mut proven = Vec::new();
    for step in picks {
        let start = Instant::now();
        let proof = checkpoints.prove(step);
        let prove_time = start.elapsed();
        let verified = verify_step(&proof.pre_state_hash, &proof.witness);
        let ok = matches!(&verified, Ok(h) if *h == proof.post_state_hash);
        let row = TourProof {
            step,
            pc: proof.pre_state.pc,
            opcode: proof
                .instruction_word
                .map(|w| format!("{:?}", opml_vm::instruction::Instruction::decode(w).opcode)),
            witness_bytes: proof.witness.len(),
            prove_ms: prove_time.as_secs_f64() * 1e3,
            post_state_hash: format!("0x{}", hex::encode(proof.post_state_hash)),
            error: verified.as_ref().err().map(|e| e.to_string()),
            ok,
        };
        say(format!(
            "   step {step:>10}  pc {:#010x}  {:<8} witness {:>5} B  proved in {:>7.2} ms  verify: {}",
            row.pc,
            row.opcode.as_deref().unwrap_or("(stopped)"),
            row.witness_bytes,
            row.prove_ms,
            match (&row.error, ok) {
                (Some(e), _) => format!("REJECTED ({e})"),
                (None, true) => "ok".to_string(),
                (None, false) => "MISMATCH".to_string(),
            }
        ));
        proven.push(row);
        proofs.push(proof);
    }

    let (submitted, chain) = crate::onchain::submit_on_embedded_chain(&proofs, args.hardfork)?;
    say(format!(
        "-- 4. execute the same steps in the Solidity Step contract on {}",
        chain.describe()
    ));
    let mut onchain = Vec::new();
    for (proof, (agrees, gas)) in proofs.iter().zip(submitted) {
        let row = TourOnchain {
            step: proof.step,
            class: proof.class().name(),
            gas,
            ok: agrees,
        };
        say(format!(
            "   step {:>10}  {:<11} gas {gas:>6}  contract: {}",
            row.step,
            row.class,
            if agrees {
                "same post-state"
            } else {
                "MISMATCH"
            }
        ));
        onchain.push(row);
    }
    let cnn = Path::new("models/mnist-cnn");
    let digit = Path::new("data/mnist/samples/digit-0-label-7.pgm");
    let missing: Vec<_> = [cnn, digit]
        .into_iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    let mut skipped = Vec::new();
    let mnist = if missing.is_empty() {
        Some(tour_mnist(cnn, digit, &say)?)
    } else {
        say(format!(
            "-- 5. MNIST: SKIPPED, {} not found here (run the tour from the repository's root)",
            missing.join(" and ")
        ));
        skipped.push(format!("mnist: {} not found", missing.join(" and ")));
        None
    };
    let ok = recorded.ok
        && proven.iter().all(|p| p.ok)
        && onchain.iter().all(|o| o.ok)
        && mnist.as_ref().is_none_or(|m| m.nodes.iter().all(|n| n.ok));
    say(format!(
        "== {}",
        match (ok, mnist.is_none()) {
            (true, false) =>
                "every check passed: witnesses in Rust and Solidity, MNIST nodes in the VM",
            (true, true) =>
                "the checks that ran passed: witnesses in Rust and Solidity; SKIPPED: MNIST nodes in the VM",
            (false, _) => "SOME CHECKS FAILED",
        }
    ));
    if args.json {
        let report = TourReport {
            program: args.elf.display().to_string(),
            chain,
            run,
            checkpoints: recorded,
            proofs: proven,
            onchain,
            mnist,
            skipped,
            ok,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_MISMATCH)
    })
}

/// Step 5 of the tour: a real MNIST digit through the quantized CNN, natively and node by node in
/// the VM, comparing output commitments.
fn tour_mnist(model_dir: &Path, digit: &Path, say: &dyn Fn(String)) -> Result<TourMnist> {
    use opml_dnn::mnist::{quantize_image, read_pgm};
    say(format!(
        "-- 5. MNIST: {} on {}, every node re-executed in the VM",
        model_dir.display(),
        digit.display()
    ));
    let model = opml_dnn::Model::load(model_dir)?;
    let input = quantize_image(&read_pgm(digit)?);
    let start = Instant::now();
    let trace = model.run(&input)?;
    let native_ms = start.elapsed().as_secs_f64() * 1e3;
    let prediction = trace.output().as_i32()?[[0]];
    let trace_root = format!("0x{}", hex::encode(trace.root()));
    say(format!(
        "   native: predicts {prediction} in {native_ms:.2} ms; trace root {trace_root}"
    ));
    let mut nodes = Vec::new();
    for (index, node) in trace.nodes.iter().enumerate() {
        let start = Instant::now();
        let run = model.run_node_in_vm(index, &input, &trace, u64::MAX)?;
        let row = TourNode {
            index,
            name: model.manifest.nodes[index].name.clone(),
            vm_steps: run.steps,
            vm_ms: start.elapsed().as_secs_f64() * 1e3,
            commitment: format!("0x{}", hex::encode(node.commitment)),
            ok: run.commitment == node.commitment,
        };
        say(format!(
            "   node {index} {:<9} {:>9} VM steps in {:>6.1} ms  commitment {}…  {}",
            row.name,
            row.vm_steps,
            row.vm_ms,
            &row.commitment[..18],
            if row.ok { "same in the VM" } else { "MISMATCH" }
        ));
        nodes.push(row);
    }
    Ok(TourMnist {
        model: model_dir.display().to_string(),
        digit: digit.display().to_string(),
        prediction,
        native_ms,
        trace_root,
        nodes,
    })
}
