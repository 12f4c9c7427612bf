//! The Solidity Step contract against the Rust VM, in revm, through an alloy provider on the embedded
//! chain: every instruction class on edge operands, every fault, the chunk ecalls, random states,
//! every step of real C programs, and tampered witnesses. Each witness comes from the machine's
//! proving path; the contract must return the machine's post-state hash, and for a rejected witness
//! it must revert with the same error (name and fields) that `verify_step` gives.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use alloy::primitives::{B256, U256};
use opml_contracts::bindings::Step::{self, StepErrors};
use opml_contracts::step::{OnchainStep, StepError};
use opml_contracts::{dev_signer, EmbeddedChain};
use opml_vm::encode::{
    b as branch, i, j as jal, r, s, u, AUIPC, ECALL, JALR, LOAD, LUI, OP, OP_IMM,
};
use opml_vm::hash::zero_hash;
use opml_vm::{
    ecall, parse_elf, verify_step, ElfImage, Hash, InputSlots, InputTensor, Machine, Status,
    StepProof, VerifyError,
};
use rand::{Rng, SeedableRng};

/// The generator of one randomized test, as the dnn op tests draw theirs: seeded from
/// `OPML_TEST_SEED` when set, else fresh, and the seed printed so that a failure replays.
fn test_rng(test: &str) -> (rand::rngs::StdRng, u64) {
    let seed = std::env::var("OPML_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("{test}: seed {seed} (replay with OPML_TEST_SEED={seed})");
    (rand::rngs::StdRng::seed_from_u64(seed), seed)
}

const CODE: u32 = 0x1_0000;
const DATA: u32 = 0x2_0000;
const MIN: u32 = 0x8000_0000;
const M1: u32 = u32::MAX;
/// Operands that sit on the edges of 32-bit arithmetic.
const EDGES: [u32; 10] = [
    0,
    1,
    2,
    31,
    32,
    0x7fff_ffff,
    MIN,
    M1,
    0x1234_5678,
    0xdead_beef,
];

/// A deployed Step contract on a fresh embedded chain, and the runtime its provider needs.
struct Judge {
    runtime: tokio::runtime::Runtime,
    step: OnchainStep,
}

impl Judge {
    fn new() -> Self {
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        let chain = EmbeddedChain::default();
        let step = runtime
            .block_on(OnchainStep::deploy(chain.provider(dev_signer(0))))
            .expect("deploy Step");
        Self { runtime, step }
    }

    fn onchain(&self, pre: &Hash, witness: &[u8]) -> Result<Hash, StepErrors> {
        match self
            .runtime
            .block_on(self.step.step(B256::from(*pre), witness))
        {
            Ok(post) => Ok(post.0),
            Err(StepError::Rejected(e)) => Err(e),
            Err(other) => panic!("the chain failed, not the witness: {other}"),
        }
    }

    /// Runs one witness through both verifiers and asserts that they agree; returns Rust's answer.
    fn agree(&self, what: &str, pre: &Hash, witness: &[u8]) -> Result<Hash, VerifyError> {
        let rust = verify_step(pre, witness);
        let solidity = self.onchain(pre, witness);
        match (&rust, &solidity) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{what}: post-state hashes differ"),
            (Err(r), Err(s)) => assert!(
                same_rejection(r, s),
                "{what}: Rust rejects with {r:?}, Solidity with {s:?}"
            ),
            _ => panic!("{what}: Rust gives {rust:?}, Solidity {solidity:?}"),
        }
        rust
    }

    /// Proves the machine's next step and checks that the contract computes its post-state.
    fn step(&self, what: &str, m: &mut Machine) -> StepProof {
        let proof = m.prove_step();
        let post = self
            .agree(what, &proof.pre_state_hash, &proof.witness)
            .unwrap_or_else(|e| panic!("{what}: step {} rejected: {e}", proof.step));
        assert_eq!(
            post, proof.post_state_hash,
            "{what}: contract disagrees with the machine"
        );
        proof
    }
}

/// Whether a Solidity custom error is the one `verify_step` gave, fields included.
fn same_rejection(rust: &VerifyError, solidity: &StepErrors) -> bool {
    let u = |n: usize| U256::from(n);
    match (rust, solidity) {
        (VerifyError::BadPreState { reason }, StepErrors::BadPreState(e)) => e.reason == *reason,
        (
            VerifyError::BadWitnessLength {
                what,
                offset,
                needed,
                len,
            },
            StepErrors::BadWitnessLength(e),
        ) => {
            e.what == *what
                && e.offset == u(*offset)
                && e.needed == u(*needed)
                && e.length == u(*len)
        }
        (VerifyError::BadInstructionProof { pc }, StepErrors::BadInstructionProof(e)) => {
            e.pc == *pc
        }
        (VerifyError::BadMemoryProof { addr }, StepErrors::BadMemoryProof(e)) => e.addr == *addr,
        (VerifyError::BadInputProof { slot, reason }, StepErrors::BadInputProof(e)) => {
            e.slot == *slot && e.reason == *reason
        }
        (VerifyError::BadChunkProof { slot, chunk }, StepErrors::BadChunkProof(e)) => {
            e.slot == *slot && e.chunk == *chunk
        }
        (VerifyError::BadAccumulator, StepErrors::BadAccumulator(_)) => true,
        _ => false,
    }
}

fn judge() -> &'static Judge {
    static JUDGE: OnceLock<Judge> = OnceLock::new();
    JUDGE.get_or_init(Judge::new)
}

fn image(code: &[u32], data: &[u8]) -> ElfImage {
    ElfImage::from_words(CODE, code, DATA, data)
}

fn machine(code: &[u32], data: &[u8], regs: &[(usize, u32)], inputs: InputSlots) -> Machine {
    let mut m = Machine::new(&image(code, data), inputs);
    for &(reg, value) in regs {
        m.set_register(reg, value);
    }
    m
}

/// 32 distinct bytes, so that every offset and width of a load reads something different.
fn pattern() -> Vec<u8> {
    (0..64u8)
        .map(|k| k.wrapping_mul(37).wrapping_add(0x81))
        .collect()
}

#[test]
fn register_and_immediate_ops_on_edge_operands() {
    let j = judge();
    let ops: &[(u32, u32)] = &[
        (0, 0),
        (0x20, 0),
        (0, 1),
        (0, 2),
        (0, 3),
        (0, 4),
        (0, 5),
        (0x20, 5),
        (0, 6),
        (0, 7),
        // M extension: mul, mulh, mulhsu, mulhu, div, divu, rem, remu.
        (1, 0),
        (1, 1),
        (1, 2),
        (1, 3),
        (1, 4),
        (1, 5),
        (1, 6),
        (1, 7),
        // Illegal funct7 values.
        (0x20, 1),
        (0x40, 0),
        (0x02, 0),
    ];
    for &(f7, f3) in ops {
        for a in EDGES {
            for b in EDGES {
                let mut m = machine(
                    &[r(f7, 6, 5, f3, 7, OP)],
                    &[],
                    &[(5, a), (6, b)],
                    InputSlots::default(),
                );
                j.step(&format!("op f7={f7:#x} f3={f3} a={a:#x} b={b:#x}"), &mut m);
            }
        }
    }
    let imms = [0, 1, -1, 31, 2047, -2048, 0x555, -0x556];
    for f3 in 0..8 {
        for imm in imms {
            for a in EDGES {
                // The shifts take their funct7 from imm[11:5]: legal for shamt < 32 and 0x400.
                let imm = match f3 {
                    1 => imm & 31,
                    5 => (imm & 31) | (imm & 0x400),
                    _ => imm,
                };
                let mut m = machine(
                    &[i(imm, 5, f3, 7, OP_IMM)],
                    &[],
                    &[(5, a)],
                    InputSlots::default(),
                );
                j.step(&format!("op-imm f3={f3} imm={imm} a={a:#x}"), &mut m);
            }
        }
    }
    for (f3, imm) in [(1, 0x420), (5, 0x7e0), (1, 0x7ff)] {
        let mut m = machine(
            &[i(imm, 5, f3, 7, OP_IMM)],
            &[],
            &[(5, 9)],
            InputSlots::default(),
        );
        j.step(&format!("illegal shift f3={f3} imm={imm:#x}"), &mut m);
    }
    for (word, what) in [
        (u(0xdead_b000, 7, LUI), "lui"),
        (u(0xfffff000, 7, AUIPC), "auipc"),
        (r(0, 6, 5, 0, 0, OP), "write to x0"),
        (0x0ff0_000f, "fence"),
        (0x0000_100f, "fence.i"),
        (0x0000_200f, "misc-mem f3=2"),
    ] {
        let mut m = machine(&[word], &[], &[(5, 3), (6, 4)], InputSlots::default());
        j.step(what, &mut m);
    }
}

#[test]
fn loads_and_stores_at_every_offset() {
    let j = judge();
    let data = pattern();
    for (f3, width) in [
        (0, 1),
        (1, 2),
        (2, 4),
        (4, 1),
        (5, 2),
        (3, 8),
        (6, 4),
        (7, 4),
    ] {
        for offset in 0..36i32 {
            let mut m = machine(
                &[i(offset, 5, f3, 7, LOAD)],
                &data,
                &[(5, DATA)],
                InputSlots::default(),
            );
            j.step(
                &format!("load f3={f3} (width {width}) at +{offset}"),
                &mut m,
            );
        }
    }
    for f3 in 0..4 {
        for offset in 0..36i32 {
            let mut m = machine(
                &[s(offset, 6, 5, f3)],
                &data,
                &[(5, DATA), (6, 0xa1b2_c3d4)],
                InputSlots::default(),
            );
            j.step(&format!("store f3={f3} at +{offset}"), &mut m);
        }
    }
    // Unmapped and wrapping addresses: the guard page faults; above it, fresh memory reads 0.
    for (base, imm) in [
        (0, 0),
        (0, 0xffc),
        (0xfff, 1),
        (0x1000, 0),
        (M1 - 3, 0),
        (M1, 1),
        (0x8000_0000, -4),
        (0x7fff_fffc, 4),
    ] {
        let mut m = machine(
            &[i(imm, 5, 2, 7, LOAD)],
            &[],
            &[(5, base)],
            InputSlots::default(),
        );
        j.step(&format!("lw at {base:#x}+{imm}"), &mut m);
        let mut m = machine(
            &[s(imm, 6, 5, 2)],
            &[],
            &[(5, base), (6, 7)],
            InputSlots::default(),
        );
        j.step(&format!("sw at {base:#x}+{imm}"), &mut m);
    }
}

#[test]
fn branches_jumps_and_fetch_faults() {
    let j = judge();
    for f3 in 0..8 {
        for a in EDGES {
            for b in [0, 1, M1, MIN, a] {
                let mut m = machine(
                    &[branch(16, 6, 5, f3)],
                    &[],
                    &[(5, a), (6, b)],
                    InputSlots::default(),
                );
                j.step(&format!("branch f3={f3} a={a:#x} b={b:#x}"), &mut m);
            }
        }
    }
    for (imm, what) in [
        (8, "jal forward"),
        (-8, "jal back"),
        (2, "jal misaligned"),
        (-0x10000, "jal into page 0"),
    ] {
        let mut m = machine(&[jal(imm, 1), 0, 0], &[], &[], InputSlots::default());
        j.step(what, &mut m);
        j.step(&format!("{what}, then fetch"), &mut m);
    }
    for (base, imm, f3) in [
        (CODE, 8, 0),
        (CODE + 1, 8, 0),
        (CODE, 2, 0),
        (CODE, -4, 0),
        (0, 0x800, 0),
        (CODE, 4, 1),
    ] {
        let mut m = machine(
            &[i(imm, 5, f3, 1, JALR), 0, 0, 0],
            &[],
            &[(5, base)],
            InputSlots::default(),
        );
        j.step(&format!("jalr {base:#x}+{imm} f3={f3}"), &mut m);
        j.step(&format!("jalr {base:#x}+{imm}, then fetch"), &mut m);
    }
    // An entry point in the guard page, off alignment, and in unmapped (zero) memory.
    for entry in [0x800, CODE + 2, 0x4000_0000] {
        let mut img = image(&[0], &[]);
        img.entry = entry;
        let mut m = Machine::new(&img, InputSlots::default());
        j.step(&format!("fetch at {entry:#x}"), &mut m);
    }
}

#[test]
fn illegal_words_and_system_instructions() {
    let j = judge();
    for word in [
        0x0000_0000,
        0xffff_ffff,
        0x0000_0001, // a compressed instruction
        0x0000_4501,
        0x0000_007f, // unknown major opcode
        0x0000_0057, // vector
        0x0010_0073, // ebreak
        0x1050_0073, // wfi
        0x3020_0073, // mret
        0x3400_9073, // csrrw
        0xc000_2573, // rdcycle
        0x0020_0073,
        0x0000_00f3, // ecall with rd != 0
        i(0, 5, 1, 7, JALR),
        branch(8, 6, 5, 2),
        branch(8, 6, 5, 3),
    ] {
        let mut m = machine(&[word], &[], &[(5, 3), (6, 4)], InputSlots::default());
        j.step(&format!("word {word:#010x}"), &mut m);
        j.step(&format!("word {word:#010x}, step after the fault"), &mut m);
    }
}

#[test]
fn ecalls_write_exit_and_unknown() {
    let j = judge();
    for (a7, a0) in [
        (ecall::WRITE, 1),
        (ecall::WRITE, 2),
        (ecall::WRITE, 0),
        (ecall::WRITE, 3),
        (ecall::EXIT, 0),
        (ecall::EXIT, 42),
        (ecall::EXIT_GROUP, M1),
        (0, 0),
        (63, 0),
        (ecall::READ_CHUNK + 2, 0),
        (M1, 0),
    ] {
        let mut m = machine(
            &[ECALL, ECALL],
            &pattern(),
            &[(17, a7), (10, a0), (11, DATA), (12, 5)],
            InputSlots::default(),
        );
        j.step(&format!("ecall {a7:#x} a0={a0}"), &mut m);
        j.step(&format!("ecall {a7:#x} a0={a0}, next step"), &mut m);
    }
}

fn tensor_inputs() -> InputSlots {
    let mut inputs = InputSlots::default();
    for (slot, len) in [(0usize, 100usize), (1, 32), (2, 1), (5, 1000), (15, 33)] {
        let bytes: Vec<u8> = (0..len).map(|k| (k * 7 + slot) as u8).collect();
        let header = (len as u32).to_be_bytes().to_vec();
        inputs
            .set(slot, InputTensor::new(header, bytes).expect("valid tensor"))
            .expect("valid slot");
    }
    inputs
}

#[test]
fn read_chunk_and_write_chunk() {
    let j = judge();
    let inputs = tensor_inputs();
    for (slot, chunk, dest) in [
        (0, 0, DATA),
        (0, 3, DATA + 32),
        (0, 4, DATA), // past the last chunk
        (1, 0, DATA),
        (2, 0, DATA),
        (5, 31, DATA),
        (5, 32, DATA),
        (15, 1, DATA),
        (3, 0, DATA),  // an empty slot
        (16, 0, DATA), // no such slot
        (M1, 0, DATA),
        (0, 0, DATA + 4), // misaligned destination
        (0, 0, 0x20),     // guard page
        (0, M1, DATA),
    ] {
        let mut m = machine(
            &[ECALL],
            &[],
            &[(17, ecall::READ_CHUNK), (10, slot), (11, chunk), (12, dest)],
            inputs.clone(),
        );
        j.step(
            &format!("read_chunk slot {slot} chunk {chunk} to {dest:#x}"),
            &mut m,
        );
    }
    // Seven appends climb the accumulator's frontier through heights 0, 1 and 2.
    let mut m = machine(
        &[ECALL, ECALL, ECALL, ECALL, ECALL, ECALL, ECALL],
        &pattern(),
        &[(17, ecall::WRITE_CHUNK), (10, DATA)],
        InputSlots::default(),
    );
    for k in 0..7 {
        j.step(&format!("write_chunk #{k}"), &mut m);
    }
    for src in [DATA + 16, 0, 0x0fe0, 0x5000_0000] {
        let mut m = machine(
            &[ECALL],
            &[],
            &[(17, ecall::WRITE_CHUNK), (10, src)],
            InputSlots::default(),
        );
        j.step(&format!("write_chunk from {src:#x}"), &mut m);
    }
}

/// An accumulator that is full: the witness is edited by hand (the machine cannot reach 2^27 - 1
/// chunks in a test), keeping the instruction proof, which proves against an unchanged memory root.
#[test]
fn write_chunk_to_a_full_accumulator_faults() {
    let j = judge();
    let mut m = machine(
        &[ECALL],
        &[],
        &[(17, ecall::WRITE_CHUNK), (10, DATA)],
        InputSlots::default(),
    );
    let proof = m.prove_step();
    let mut witness = proof.witness.clone();
    let acc_at = 237 + proof_at(&witness, 237).2;
    witness[acc_at..acc_at + 4].copy_from_slice(&((1u32 << 27) - 1).to_be_bytes());
    let acc_hash = opml_vm::keccak256(&witness[acc_at..acc_at + 868]);
    witness[205..237].copy_from_slice(&acc_hash);
    // The full accumulator faults before the memory proof is read: drop it.
    witness.truncate(acc_at + 868);
    let pre = opml_vm::keccak256(&witness[..237]);
    let post = j
        .agree("full accumulator", &pre, &witness)
        .expect("a fault is a valid step");
    let mut expected = witness[..237].to_vec();
    expected[160..168].copy_from_slice(&1u64.to_be_bytes());
    expected[168] = 2;
    expected[169..173].copy_from_slice(&8u32.to_be_bytes());
    assert_eq!(post, opml_vm::keccak256(&expected));
}

/// Random words biased to real opcodes, on random registers pointing into a data page.
#[test]
fn random_states() {
    let j = judge();
    let (mut rng, seed) = test_rng("random_states");
    let opcodes = [
        OP, OP_IMM, LOAD, 0x23, 0x63, LUI, AUIPC, 0x6f, JALR, 0x0f, 0x73,
    ];
    for case in 0..600 {
        let word = if rng.gen_bool(0.1) {
            rng.gen::<u32>()
        } else {
            (rng.gen::<u32>() & !0x7f) | opcodes[rng.gen_range(0..opcodes.len())]
        };
        let mut regs: Vec<(usize, u32)> = (1..32)
            .map(|r| {
                let v = match rng.gen_range(0..4) {
                    0 => EDGES[rng.gen_range(0..EDGES.len())],
                    1 => DATA + rng.gen_range(0..64),
                    _ => rng.gen(),
                };
                (r, v)
            })
            .collect();
        if rng.gen_bool(0.2) {
            let calls = [
                ecall::WRITE,
                ecall::EXIT,
                ecall::READ_CHUNK,
                ecall::WRITE_CHUNK,
            ];
            regs[16].1 = calls[rng.gen_range(0..calls.len())];
        }
        let mut m = machine(&[word, word], &pattern(), &regs, tensor_inputs());
        j.step(
            &format!("seed {seed} case {case}: word {word:#010x}"),
            &mut m,
        );
        if m.status() == Status::Running {
            j.step(&format!("seed {seed} case {case}: second step"), &mut m);
        }
    }
}

/// Builds the VM issue's C programs once per process.
fn programs() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("riscv-programs");
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../vm/tests/programs/build.sh");
        let status = Command::new(&script)
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        assert!(
            status.success(),
            "building the C programs failed (run scripts/setup.sh)"
        );
        out
    })
}

#[test]
fn every_step_of_real_programs() {
    let j = judge();
    for name in [
        "hello",
        "switch",
        "u64",
        "fault_ebreak",
        "fault_misaligned",
        "fault_null",
        "fault_ecall",
    ] {
        let path = programs().join(format!("{name}.elf"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let image = parse_elf(&bytes).expect("valid ELF");
        let mut m = Machine::new(&image, InputSlots::default());
        let mut steps = 0u64;
        while m.status() == Status::Running {
            j.step(&format!("{name} step {steps}"), &mut m);
            steps += 1;
            assert!(steps < 100_000, "{name} does not stop");
        }
        j.step(&format!("{name} after it stopped"), &mut m);
    }
}

/// Flipped bits anywhere, truncations, trailing bytes and wrong pre-states: both verifiers reject,
/// with the same error.
#[test]
fn tampered_witnesses_are_rejected_alike() {
    let j = judge();
    let inputs = tensor_inputs();
    let data = pattern();
    let mut bases: Vec<(&str, StepProof)> = Vec::new();
    let mut base = |what, code: &[u32], regs: &[(usize, u32)]| {
        let mut m = machine(code, &data, regs, inputs.clone());
        bases.push((what, m.prove_step()));
    };
    base("alu", &[r(0, 6, 5, 0, 7, OP)], &[(5, 1), (6, 2)]);
    base("load", &[i(4, 5, 2, 7, LOAD)], &[(5, DATA)]);
    base("store", &[s(4, 6, 5, 0)], &[(5, DATA), (6, 9)]);
    base(
        "read_chunk",
        &[ECALL],
        &[(17, ecall::READ_CHUNK), (10, 5), (11, 17), (12, DATA)],
    );
    base(
        "read_chunk empty",
        &[ECALL],
        &[(17, ecall::READ_CHUNK), (10, 3), (11, 0), (12, DATA)],
    );
    base(
        "write_chunk",
        &[ECALL],
        &[(17, ecall::WRITE_CHUNK), (10, DATA)],
    );
    base("exit", &[ECALL], &[(17, ecall::EXIT), (10, 3)]);
    let (mut rng, seed) = test_rng("tampered_witnesses_are_rejected_alike");
    for (what, proof) in &bases {
        let (pre, witness) = (proof.pre_state_hash, &proof.witness);
        j.agree(what, &pre, witness)
            .expect("the untouched witness is valid");
        let mut tampered = Vec::new();
        for _ in 0..60 {
            let bit = rng.gen_range(0..witness.len() * 8);
            let mut w = witness.clone();
            w[bit / 8] ^= 1 << (bit % 8);
            tampered.push((format!("bit {bit} flipped"), pre, w));
        }
        for len in [0, 1, 236, 237, 238, witness.len() - 1] {
            tampered.push((
                format!("cut to {len}"),
                pre,
                witness[..len.min(witness.len())].to_vec(),
            ));
        }
        let mut longer = witness.clone();
        longer.push(0);
        tampered.push(("a trailing byte".into(), pre, longer));
        let mut wrong = pre;
        wrong[31] ^= 1;
        tampered.push(("wrong pre-state hash".into(), wrong, witness.clone()));
        for (how, pre, w) in tampered {
            if w.len() == witness.len() && w == *witness && pre == proof.pre_state_hash {
                continue;
            }
            let result = j.agree(&format!("seed {seed}: {what}, {how}"), &pre, &w);
            assert!(
                result.is_err(),
                "seed {seed}: {what}, {how}: accepted as {result:?}"
            );
        }
    }
}

/// A memory proof `leaf ‖ mask ‖ siblings` at offset `at` of a witness: its mask, its whole path
/// (the left-out siblings put back as zero hashes) and its length.
fn proof_at(witness: &[u8], at: usize) -> (u32, Vec<Hash>, usize) {
    let mask = u32::from_be_bytes(witness[at + 32..at + 36].try_into().expect("4 bytes"));
    let mut given = witness[at + 36..].chunks_exact(32);
    let path: Vec<Hash> = (0..27)
        .map(|k| match (mask >> k) & 1 {
            1 => zero_hash(k),
            _ => given
                .next()
                .expect("a sibling")
                .try_into()
                .expect("32 bytes"),
        })
        .collect();
    let len = 36 + 32 * (27 - mask.count_ones() as usize);
    (mask, path, len)
}

/// The zero-hash table the contract substitutes for left-out siblings is the VM's.
#[test]
fn the_contracts_zero_hashes_are_the_vms() {
    let layout = include_str!("../src/VmLayout.sol");
    let table = layout
        .split("MEMORY_ZERO_HASHES =")
        .nth(1)
        .expect("VmLayout.sol defines MEMORY_ZERO_HASHES");
    let hashes: Vec<&str> = table
        .split(';')
        .next()
        .expect("a ; ends the table")
        .split('"')
        .skip(1)
        .step_by(2)
        .collect();
    assert_eq!(hashes.len(), 27);
    for (k, h) in hashes.iter().enumerate() {
        assert_eq!(*h, alloy::primitives::hex::encode(zero_hash(k)), "Z[{k}]");
    }
}

/// Masks of left-out zero siblings, honest and lying, in the instruction and the data proof:
/// both verifiers accept the same ones (a zero sibling may also be given in full) and reject the
/// others with the same error.
#[test]
fn sibling_masks_are_judged_alike() {
    let j = judge();
    let data = pattern();
    let mut bases: Vec<(&str, StepProof, usize)> = Vec::new();
    let mut base = |what, code: &[u32], regs: &[(usize, u32)], extra: usize| {
        let mut m = machine(code, &data, regs, InputSlots::default());
        bases.push((what, m.prove_step(), extra));
    };
    base("alu", &[r(0, 6, 5, 0, 7, OP)], &[(5, 1), (6, 2)], 0);
    base("load", &[i(4, 5, 2, 7, LOAD)], &[(5, DATA)], 0);
    base("store", &[s(4, 6, 5, 0)], &[(5, DATA), (6, 9)], 0);
    base(
        "store far",
        &[s(0, 6, 5, 0)],
        &[(5, 0x6000_0000), (6, 9)],
        0,
    );
    base(
        "write_chunk",
        &[ECALL],
        &[(17, ecall::WRITE_CHUNK), (10, DATA)],
        868,
    );
    for (what, proof, extra) in &bases {
        let (pre, w) = (proof.pre_state_hash, &proof.witness);
        let insn_len = proof_at(w, 237).2;
        let mut proofs = vec![("instruction", 237)];
        if w.len() > 237 + insn_len + extra {
            proofs.push(("data", 237 + insn_len + extra));
        }
        for (which, at) in proofs {
            let (mask, path, len) = proof_at(w, at);
            let given = |mask: u32| -> Vec<Hash> {
                (0..27)
                    .filter(|k| (mask >> k) & 1 == 0)
                    .map(|k| path[k])
                    .collect()
            };
            let with = |mask: u32, given: &[Hash]| {
                [
                    &w[..at + 32],
                    &mask.to_be_bytes()[..],
                    &given.concat(),
                    &w[at + len..],
                ]
                .concat()
            };
            let first_given = (0..27).find(|k| (mask >> k) & 1 == 0).expect("a sibling");
            let first_left = (0..27).find(|k| (mask >> k) & 1 == 1).expect("a zero");
            let honest = given(mask);
            let mut one_more = honest.clone();
            one_more.push(zero_hash(0));
            let cases: [(&str, Vec<u8>, bool); 9] = [
                ("the encoder's own mask", with(mask, &honest), true),
                ("every sibling given", with(0, &given(0)), true),
                ("mask bit 27", with(mask | 1 << 27, &honest), false),
                ("mask bit 31", with(mask | 1 << 31, &honest), false),
                (
                    "a non-zero sibling left out",
                    with(mask | 1 << first_given, &given(mask | 1 << first_given)),
                    false,
                ),
                (
                    "the mask marks a given sibling",
                    with(mask | 1 << first_given, &honest),
                    false,
                ),
                (
                    "the mask wants one sibling more",
                    with(mask & !(1 << first_left), &honest),
                    false,
                ),
                (
                    "one sibling more than the mask says",
                    with(mask, &one_more),
                    false,
                ),
                ("one sibling fewer", with(mask, &honest[1..]), false),
            ];
            for (how, bytes, valid) in cases {
                let label = format!("{what}, {which} proof: {how}");
                let result = j.agree(&label, &pre, &bytes);
                match valid {
                    true => assert_eq!(result, Ok(proof.post_state_hash), "{label}"),
                    false => assert!(result.is_err(), "{label}: accepted as {result:?}"),
                }
            }
        }
    }
}

/// A Step error decodes with its fields (a sanity check on the bindings themselves).
#[test]
fn a_short_witness_names_what_is_missing() {
    let j = judge();
    match j.onchain(&[0; 32], &[1, 2, 3]) {
        Err(StepErrors::BadWitnessLength(Step::BadWitnessLength {
            what,
            offset,
            needed,
            length,
        })) => {
            assert_eq!(what, "pre-state");
            assert_eq!(
                (offset, needed, length),
                (U256::ZERO, U256::from(237), U256::from(3))
            );
        }
        other => panic!("expected BadWitnessLength, got {other:?}"),
    }
}
