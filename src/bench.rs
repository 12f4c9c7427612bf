//! `opml vm bench`: the VM's figures, each printed beside a baseline measured in the same process.

use anyhow::{Context, Result};
use clap::Args;
use opml_vm::memory::Memory;
use opml_vm::{keccak256, verify_step, Checkpoints, RunOutcome};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Compute-heavy program for the interpreter speed (the int8 matrix multiply).
    #[arg(long, default_value = "target/riscv-programs/matmul.elf")]
    elf: PathBuf,
    /// Long-running program to prove a step deep into.
    #[arg(long, default_value = "target/riscv-programs/longrun.elf")]
    long_elf: PathBuf,
    /// The step of the long run to produce a witness for.
    #[arg(long, default_value_t = 1_000_000_000)]
    witness_step: u64,
    /// Steps between checkpoints of the long run.
    #[arg(long, default_value_t = 1 << 24)]
    checkpoint_interval: u64,
    /// MiB of memory to write before timing the Merkle root.
    #[arg(long, default_value_t = 64)]
    merkle_mib: usize,
    /// Repetitions of each timing (the best is reported).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Print the figures as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, Default)]
struct BenchReport {
    interpreter: Option<InterpreterFigures>,
    merkle: MerkleFigures,
    witness: Option<WitnessFigures>,
}

/// The interpreter's speed, compiled and interpreted, beside qemu-riscv32's.
#[derive(Serialize)]
pub(crate) struct InterpreterFigures {
    pub(crate) program: String,
    pub(crate) steps: u64,
    /// The fast-forward interpreter as `Machine::run` runs it: hot blocks compiled to native code.
    pub(crate) opml_ms: f64,
    pub(crate) opml_steps_per_second: f64,
    /// Blocks the run compiled (0 on hosts without a code generator).
    pub(crate) compiled_blocks: usize,
    /// The same run with every step interpreted.
    pub(crate) interpreted_ms: f64,
    pub(crate) interpreted_steps_per_second: f64,
    pub(crate) qemu_ms: Option<f64>,
    /// opml speed as a fraction of qemu-riscv32's (same program, same steps).
    pub(crate) fraction_of_qemu: Option<f64>,
    /// The interpreter alone as a fraction of qemu-riscv32's.
    pub(crate) interpreted_fraction_of_qemu: Option<f64>,
}

#[derive(Serialize, Default)]
struct MerkleFigures {
    mib_written: usize,
    pages: usize,
    root_ms: f64,
    keccak_same_bytes_ms: f64,
    root_over_keccak: f64,
    /// Root again after rewriting one page: the incremental cost.
    one_page_update_ms: f64,
}

/// The time to a witness deep in a long run, from checkpoints.
#[derive(Serialize)]
pub(crate) struct WitnessFigures {
    pub(crate) program: String,
    pub(crate) step: u64,
    pub(crate) checkpoint_interval: u64,
    pub(crate) checkpoints: usize,
    /// Memory the snapshots hold: snapshots × pages in use at the end × 4 KiB (an upper bound on
    /// their page data; their Merkle caches are not counted).
    pub(crate) snapshot_bytes: usize,
    pub(crate) record_ms: f64,
    pub(crate) record_steps_per_second: f64,
    pub(crate) witness_ms: f64,
    pub(crate) witness_bytes: usize,
    pub(crate) verified: bool,
}

fn best_of<T>(repeat: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = None::<(Duration, T)>;
    for _ in 0..repeat.max(1) {
        let start = Instant::now();
        let value = f();
        let elapsed = start.elapsed();
        if best.as_ref().is_none_or(|(b, _)| elapsed < *b) {
            best = Some((elapsed, value));
        }
    }
    best.expect("at least one run")
}

pub(crate) fn run(args: BenchArgs) -> Result<ExitCode> {
    // Built on first use; a program that is missing is an error, never a figure printed as null.
    let args = BenchArgs {
        elf: crate::vm::example_program(&args.elf)?,
        long_elf: crate::vm::example_program(&args.long_elf)?,
        ..args
    };
    let report = BenchReport {
        interpreter: Some(interpreter(&args.elf, args.repeat)?),
        merkle: merkle(&args),
        witness: Some(witness(
            &args.long_elf,
            args.witness_step,
            args.checkpoint_interval,
            args.repeat,
        )?),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `elf` to its end `repeat` times each with compiled blocks, interpreted, and under
/// qemu-riscv32 when installed; the best time of each.
pub(crate) fn interpreter(elf: &Path, repeat: usize) -> Result<InterpreterFigures> {
    let machine = crate::vm::load_machine(elf, &[])?;
    let timed_run = |compile_blocks: bool| {
        let (elapsed, mut end) = best_of(repeat, || {
            let mut m = machine.clone();
            m.set_block_compiler(compile_blocks);
            m.run(u64::MAX);
            m
        });
        anyhow::ensure!(
            matches!(end.outcome(), RunOutcome::Exited(_)),
            "{} did not exit: {:?}",
            elf.display(),
            end.outcome()
        );
        // Hashed after the timing: the figure is the run alone.
        let hash = end.state_hash();
        Ok((
            elapsed.as_secs_f64() * 1e3,
            end.step_count(),
            end.compiled_blocks(),
            hash,
        ))
    };
    let (opml_ms, steps, compiled_blocks, hash) = timed_run(true)?;
    let (interpreted_ms, interpreted_steps, _, interpreted_hash) = timed_run(false)?;
    anyhow::ensure!(
        (steps, hash) == (interpreted_steps, interpreted_hash),
        "compiled blocks and the interpreter disagree on {}",
        elf.display()
    );
    let qemu_ms = which_qemu().map(|qemu| {
        best_of(repeat, || {
            Command::new(&qemu)
                .arg(elf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.code())
        })
        .0
        .as_secs_f64()
            * 1e3
    });
    Ok(InterpreterFigures {
        program: elf.display().to_string(),
        steps,
        opml_ms,
        opml_steps_per_second: steps as f64 / (opml_ms / 1e3),
        compiled_blocks,
        interpreted_ms,
        interpreted_steps_per_second: steps as f64 / (interpreted_ms / 1e3),
        qemu_ms,
        fraction_of_qemu: qemu_ms.map(|q| q / opml_ms),
        interpreted_fraction_of_qemu: qemu_ms.map(|q| q / interpreted_ms),
    })
}

fn which_qemu() -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| PathBuf::from(dir).join("qemu-riscv32"))
        .find(|p| p.is_file())
}

fn merkle(args: &BenchArgs) -> MerkleFigures {
    let len = args.merkle_mib << 20;
    // Pseudo-random bytes (xorshift), so no page is all zeros.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let bytes: Vec<u8> = (0..len / 8)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect();
    let (root_time, (pages, mut memory)) = best_of(args.repeat, || {
        let mut memory = Memory::default();
        memory.write_bytes(0x1000_0000, &bytes);
        let start = Instant::now();
        memory.merkle_root();
        let t = start.elapsed();
        (t, (memory.pages_in_use(), memory))
    })
    .1;
    let (keccak_time, _) = best_of(args.repeat, || keccak256(&bytes));
    memory.write_bytes(0x1000_0000 + 4096 * 7, &[0xab; 4096]);
    let start = Instant::now();
    memory.merkle_root();
    let one_page = start.elapsed();
    MerkleFigures {
        mib_written: args.merkle_mib,
        pages,
        root_ms: root_time.as_secs_f64() * 1e3,
        keccak_same_bytes_ms: keccak_time.as_secs_f64() * 1e3,
        root_over_keccak: root_time.as_secs_f64() / keccak_time.as_secs_f64(),
        one_page_update_ms: one_page.as_secs_f64() * 1e3,
    }
}

/// Records checkpoints of `elf` every `interval` steps up to `step`, then proves step `step`
/// from them (`repeat` times, the best kept) and verifies the witness.
pub(crate) fn witness(
    elf: &Path,
    step: u64,
    interval: u64,
    repeat: usize,
) -> Result<WitnessFigures> {
    anyhow::ensure!(interval > 0, "the checkpoint interval must be positive");
    let machine =
        crate::vm::load_machine(elf, &[]).with_context(|| format!("loading {}", elf.display()))?;
    let start = Instant::now();
    let (checkpoints, end) = Checkpoints::record(machine, interval, step);
    let record = start.elapsed().as_secs_f64();
    anyhow::ensure!(
        end.step_count() >= step,
        "{} stops after {} steps, before step {}",
        elf.display(),
        end.step_count(),
        step
    );
    // Page data of the snapshots (the Merkle caches they carry are not counted).
    let snapshot_bytes = checkpoints.len() * end.memory().pages_in_use() * 4096;
    let (elapsed, proof) = best_of(repeat, || checkpoints.prove(step));
    let verified = verify_step(&proof.pre_state_hash, &proof.witness)
        .is_ok_and(|h| h == proof.post_state_hash);
    Ok(WitnessFigures {
        program: elf.display().to_string(),
        step,
        checkpoint_interval: interval,
        checkpoints: checkpoints.len(),
        snapshot_bytes,
        record_ms: record * 1e3,
        record_steps_per_second: step as f64 / record,
        witness_ms: elapsed.as_secs_f64() * 1e3,
        witness_bytes: proof.witness.len(),
        verified,
    })
}

fn print(report: &BenchReport) {
    if let Some(i) = &report.interpreter {
        println!("interpreter  {} ({} steps)", i.program, i.steps);
        let of_qemu = |f: Option<f64>| f.map(|f| format!("   = {f:.2} × qemu")).unwrap_or_default();
        println!(
            "  opml          {:>9.3} s   {:>8.1} M steps/s{}   ({} blocks compiled)",
            i.opml_ms / 1e3,
            i.opml_steps_per_second / 1e6,
            of_qemu(i.fraction_of_qemu),
            i.compiled_blocks
        );
        println!(
            "  interpreted   {:>9.3} s   {:>8.1} M steps/s{}   (no compiled blocks)",
            i.interpreted_ms / 1e3,
            i.interpreted_steps_per_second / 1e6,
            of_qemu(i.interpreted_fraction_of_qemu)
        );
        match i.qemu_ms.map(|ms| ms / 1e3) {
            Some(q) => println!(
                "  qemu-riscv32  {q:>9.3} s   {:>8.1} M steps/s",
                i.steps as f64 / q / 1e6
            ),
            None => println!("  qemu-riscv32  not installed"),
        }
    }
    let m = &report.merkle;
    println!(
        "merkle root after writing {} MiB ({} pages)",
        m.mib_written, m.pages
    );
    println!("  memory root   {:>9.3} s", m.root_ms / 1e3);
    println!(
        "  keccak(bytes) {:>9.3} s   root = {:.2} × plain keccak",
        m.keccak_same_bytes_ms / 1e3,
        m.root_over_keccak
    );
    println!("  1 page after  {:>9.3} ms", m.one_page_update_ms);
    if let Some(w) = &report.witness {
        println!("witness at step {} of {}", w.step, w.program);
        println!(
            "  record run    {:>9.3} s   {:>8.1} M steps/s, {} checkpoints every {} steps ({:.1} MiB)",
            w.record_ms / 1e3,
            w.record_steps_per_second / 1e6,
            w.checkpoints,
            w.checkpoint_interval,
            w.snapshot_bytes as f64 / f64::from(1 << 20)
        );
        println!(
            "  witness       {:>9.3} s   {} bytes, verified: {}",
            w.witness_ms / 1e3,
            w.witness_bytes,
            w.verified
        );
    }
}
