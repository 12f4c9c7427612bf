//! Whole C programs, built with Debian's `riscv64-unknown-elf-gcc`, run in the VM and in
//! `qemu-riscv32`: same stdout, same stderr, same exit code. Programs that end in a fault are checked
//! against the documented fault instead. Every step of the smaller programs is also proven and
//! checked with `verify_step`.

mod common;

use opml_vm::{parse_elf, Checkpoints, Fault, InputSlots, Machine, RunOutcome, Status};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Builds the programs once per test process, into the target directory.
fn programs() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("riscv-programs");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/programs/build.sh");
        let status = Command::new(&script)
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        assert!(status.success(), "building the C programs failed (is gcc-riscv64-unknown-elf installed? run scripts/setup.sh)");
        out
    })
}

fn machine(name: &str) -> Machine {
    let path = programs().join(format!("{name}.elf"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Machine::new(
        &parse_elf(&bytes).expect("the cross compiler's output loads"),
        InputSlots::default(),
    )
}

/// Runs `name` in qemu-riscv32 and in the VM and compares what a user would see.
fn same_as_qemu(name: &str) {
    let path = programs().join(format!("{name}.elf"));
    let qemu = Command::new("qemu-riscv32")
        .arg(&path)
        .output()
        .expect("qemu-riscv32 is missing: run scripts/setup.sh (Debian's qemu-user)");
    let mut m = machine(name);
    let outcome = m.run(5_000_000_000);
    assert_eq!(
        String::from_utf8_lossy(m.stdout()),
        String::from_utf8_lossy(&qemu.stdout),
        "{name}: stdout"
    );
    assert_eq!(
        String::from_utf8_lossy(m.stderr()),
        String::from_utf8_lossy(&qemu.stderr),
        "{name}: stderr"
    );
    let code = qemu.status.code().expect("qemu exited normally");
    assert_eq!(
        outcome,
        RunOutcome::Exited(code as u32),
        "{name}: exit code"
    );
}

macro_rules! against_qemu {
    ($($test:ident => $program:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            same_as_qemu($program);
        }
    )*};
}

against_qemu! {
    hello => "hello",
    primes_and_fibonacci => "primes",
    quicksort_with_function_pointers => "sort",
    alu_and_m_extension_edge_cases => "arith",
    u64_arithmetic_through_libgcc => "u64",
    crc32_over_data_and_bss => "crc32",
    switch_jump_table_and_stderr => "switch",
    byte_copies_at_every_alignment => "strings",
    int8_matrix_multiply => "matmul_test",
    single_instructions_via_inline_asm => "isa",
    self_modifying_code => "selfmod",
}

#[test]
fn faulting_programs_end_with_their_documented_fault() {
    let cases = [
        ("fault_ebreak", Fault::Breakpoint, ""),
        ("fault_null", Fault::UnmappedAccess, ""),
        ("fault_store", Fault::UnmappedAccess, "before\n"),
        ("fault_misaligned", Fault::MisalignedAccess, ""),
        ("fault_ecall", Fault::UnknownEcall, ""),
        ("fault_jump", Fault::MisalignedFetch, ""),
        ("fault_illegal", Fault::IllegalInstruction, "before\n"),
        ("fault_compressed", Fault::IllegalInstruction, ""),
    ];
    for (name, fault, stdout) in cases {
        let mut m = machine(name);
        assert_eq!(m.run(1_000_000), RunOutcome::Faulted(fault), "{name}");
        assert_eq!(
            String::from_utf8_lossy(m.stdout()),
            stdout,
            "{name}: output before the fault"
        );
        let steps = m.step_count();
        assert_eq!(
            m.run(10),
            RunOutcome::Faulted(fault),
            "{name}: stays faulted"
        );
        assert_eq!(m.step_count(), steps, "{name}: no step after the fault");
    }
}

/// Every step of real programs, proven and checked by `verify_step`, ends in the state the fast
/// interpreter reaches.
#[test]
fn every_step_of_real_programs_verifies() {
    for (name, max) in [
        ("hello", 10_000),
        ("fault_misaligned", 10_000),
        ("switch", 50_000),
        ("strings", 60_000),
        ("fault_illegal", 10_000),
    ] {
        let mut proving = machine(name);
        while proving.status() == Status::Running {
            assert!(
                proving.step_count() < max,
                "{name} runs longer than {max} steps"
            );
            common::prove_and_verify(&mut proving);
        }
        let mut fast = machine(name);
        fast.run(u64::MAX);
        assert_eq!(proving.step_count(), fast.step_count(), "{name}");
        assert_eq!(
            proving.state_hash(),
            fast.state_hash(),
            "{name}: final state"
        );
        assert_eq!(proving.stdout(), fast.stdout(), "{name}");
    }
}

/// Compiled blocks and the interpreter alone reach the same state at every cut of every program's
/// run (each cut also hashes the state, which makes all pages clean again).
#[test]
fn compiled_blocks_take_the_interpreters_steps_in_real_programs() {
    let stretches = [1, 999, 7, 50_000, 3, 1_000_000, 12_345, u64::MAX];
    for name in [
        "hello",
        "primes",
        "sort",
        "arith",
        "u64",
        "crc32",
        "switch",
        "strings",
        "matmul_test",
        "isa",
        "selfmod",
        "fault_store",
        "fault_misaligned",
        "fault_jump",
    ] {
        let mut compiled = machine(name);
        let mut interpreted = machine(name);
        interpreted.set_block_compiler(false);
        for steps in stretches {
            let outcome = compiled.run(steps);
            assert_eq!(outcome, interpreted.run(steps), "{name}");
            assert_eq!(compiled.step_count(), interpreted.step_count(), "{name}");
            assert_eq!(compiled.state_hash(), interpreted.state_hash(), "{name}");
            assert_eq!(compiled.stdout(), interpreted.stdout(), "{name}");
            if outcome != RunOutcome::StepLimit {
                break;
            }
        }
        assert_ne!(compiled.status(), Status::Running, "{name} ran to its end");
        if cfg!(target_arch = "x86_64") && name == "matmul_test" {
            assert!(compiled.compiled_blocks() > 0, "{name}: nothing compiled");
        }
    }
}

/// A witness from a checkpoint equals the witness of a machine run from step 0, at every kind of
/// position: on a snapshot, between snapshots, the last step, and past the end.
#[test]
fn checkpoints_resume_to_the_same_states() {
    let (checkpoints, mut end) = Checkpoints::record(machine("primes"), 10_000, u64::MAX);
    let total = end.step_count();
    assert_eq!(
        checkpoints.len() as u64,
        total / 10_000 + 1 + u64::from(total % 10_000 != 0)
    );
    for step in [
        0,
        1,
        9_999,
        10_000,
        10_001,
        total / 2,
        total - 1,
        total,
        total + 5,
    ] {
        let mut from_zero = machine("primes");
        from_zero.run_to(step);
        let want = from_zero.prove_step();
        assert_eq!(checkpoints.prove(step), want, "step {step}");
        assert_eq!(
            checkpoints.state_hash_at(step),
            want.pre_state_hash,
            "step {step}"
        );
    }
    assert_eq!(checkpoints.state_hash_at(total), end.state_hash());
}
