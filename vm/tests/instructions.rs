//! Every instruction on edge values, every fault, and the chunk ecalls: each case runs one step
//! through the proving path, checks the machine's result, and checks that `verify_step` computes the
//! same post-state hash from the witness alone. Random programs and states do the same at scale.

mod common;

use common::*;
use opml_vm::{ecall, verify_step, Fault, InputSlots, InputTensor, RunOutcome, Status};
use proptest::prelude::*;

const A: u32 = 5; // rs1 = x5
const B: u32 = 6; // rs2 = x6
const D: u32 = 7; // rd = x7
const MIN: u32 = 0x8000_0000;
const M1: u32 = u32::MAX; // -1

/// Runs `word` with x5 = `a`, x6 = `b` and returns x7 afterwards (checking the witness).
fn alu(word: u32, a: u32, b: u32) -> u32 {
    let mut m = machine(
        &[word],
        &[],
        &[(A as usize, a), (B as usize, b)],
        InputSlots::default(),
    );
    prove_and_verify(&mut m);
    assert_eq!(
        m.status(),
        Status::Running,
        "{word:#010x} stopped the machine"
    );
    assert_eq!(m.pc(), CODE + 4);
    let want = m.registers()[D as usize];
    assert_eq!(compiled(word, a, b), want, "{word:#010x}: compiled block");
    want
}

/// x7 after `word` ran with x5 = `a`, x6 = `b` in a loop long enough for the fast interpreter to
/// compile its block (on hosts with a code generator).
fn compiled(word: u32, a: u32, b_value: u32) -> u32 {
    let program = [
        word,
        i(-1, 31, 0, 31, OP_IMM), // addi x31, x31, -1
        b(-8, 0, 31, 1),          // bne x31, x0, -8
        ECALL,                    // exit
    ];
    let regs = [
        (A as usize, a),
        (B as usize, b_value),
        (31, 64),
        (17, ecall::EXIT),
    ];
    let mut m = machine(&program, &[], &regs, InputSlots::default());
    assert!(matches!(m.run(1_000), RunOutcome::Exited(_)));
    if cfg!(target_arch = "x86_64") {
        assert_eq!(
            m.compiled_blocks(),
            1,
            "{word:#010x}: the loop was compiled"
        );
    }
    m.registers()[D as usize]
}

#[test]
fn register_register_ops() {
    let op = |f7, f3| r(f7, B, A, f3, D, OP);
    let cases: &[(&str, u32, u32, u32, u32)] = &[
        ("add wraps", op(0, 0), M1, 1, 0),
        ("add", op(0, 0), 0x7fff_ffff, 1, MIN),
        ("sub", op(0x20, 0), 0, 1, M1),
        ("sub min", op(0x20, 0), MIN, 1, 0x7fff_ffff),
        ("sll by 31", op(0, 1), 1, 31, MIN),
        ("sll uses low 5 bits", op(0, 1), 1, 33, 2),
        ("slt signed", op(0, 2), M1, 0, 1),
        ("slt equal", op(0, 2), 5, 5, 0),
        ("sltu unsigned", op(0, 3), M1, 0, 0),
        ("sltu", op(0, 3), 0, M1, 1),
        ("xor", op(0, 4), 0xf0f0_f0f0, 0xffff_0000, 0x0f0f_f0f0),
        ("srl by 31", op(0, 5), MIN, 31, 1),
        ("sra by 31", op(0x20, 5), MIN, 31, M1),
        ("sra by 0", op(0x20, 5), MIN, 32, MIN),
        ("or", op(0, 6), 0xf000_000f, 0x0ff0_0000, 0xfff0_000f),
        ("and", op(0, 7), 0xf0f0_f0f0, 0x3c3c_3c3c, 0x3030_3030),
        ("mul low", op(1, 0), 0xffff_ffff, 0xffff_ffff, 1),
        ("mul", op(1, 0), 0x1234_5678, 0x10, 0x2345_6780),
        ("mulh -1*-1", op(1, 1), M1, M1, 0),
        ("mulh min*min", op(1, 1), MIN, MIN, 0x4000_0000),
        ("mulh min*-1", op(1, 1), MIN, M1, 0),
        ("mulhsu -1*max", op(1, 2), M1, M1, M1),
        ("mulhsu 2*max", op(1, 2), 2, M1, 1),
        ("mulhu max*max", op(1, 3), M1, M1, 0xffff_fffe),
        ("div", op(1, 4), (-7i32) as u32, 2, (-3i32) as u32),
        ("div by zero", op(1, 4), 42, 0, M1),
        ("div overflow", op(1, 4), MIN, M1, MIN),
        ("divu", op(1, 5), M1, 2, 0x7fff_ffff),
        ("divu by zero", op(1, 5), 42, 0, M1),
        ("rem", op(1, 6), (-7i32) as u32, 2, M1),
        ("rem by zero", op(1, 6), (-7i32) as u32, 0, (-7i32) as u32),
        ("rem overflow", op(1, 6), MIN, M1, 0),
        ("remu", op(1, 7), 7, 3, 1),
        ("remu by zero", op(1, 7), 7, 0, 7),
    ];
    for &(name, word, a, b, want) in cases {
        assert_eq!(alu(word, a, b), want, "{name}");
    }
}

#[test]
fn register_immediate_ops() {
    let cases: &[(&str, u32, u32, u32)] = &[
        ("addi -1", i(-1, A, 0, D, OP_IMM), 0, M1),
        (
            "addi -2048",
            i(-2048, A, 0, D, OP_IMM),
            0,
            (-2048i32) as u32,
        ),
        ("addi 2047", i(2047, A, 0, D, OP_IMM), M1, 2046),
        ("slti", i(0, A, 2, D, OP_IMM), M1, 1),
        ("sltiu -1 is max", i(-1, A, 3, D, OP_IMM), 5, 1),
        (
            "xori -1 is not",
            i(-1, A, 4, D, OP_IMM),
            0x0f0f_0f0f,
            0xf0f0_f0f0,
        ),
        ("ori", i(0x7ff, A, 6, D, OP_IMM), 0x1000, 0x17ff),
        (
            "andi sign-extended",
            i(-16, A, 7, D, OP_IMM),
            M1,
            0xffff_fff0,
        ),
        ("slli 31", i(31, A, 1, D, OP_IMM), 3, MIN),
        ("srli 31", i(31, A, 5, D, OP_IMM), M1, 1),
        ("srai 31", i(0x400 | 31, A, 5, D, OP_IMM), MIN, M1),
        ("srai 0", i(0x400, A, 5, D, OP_IMM), MIN, MIN),
        ("lui", u(0xfffff000, D, 0b0110111), 0, 0xffff_f000),
        ("auipc", u(0x1000, D, 0b0010111), 0, CODE + 0x1000),
        (
            "auipc wraps",
            u(0xffff_0000, D, 0b0010111),
            0,
            CODE.wrapping_add(0xffff_0000),
        ),
    ];
    for &(name, word, a, want) in cases {
        assert_eq!(alu(word, a, 0), want, "{name}");
    }
}

#[test]
fn writes_to_x0_are_discarded() {
    for word in [
        i(5, 0, 0, 0, OP_IMM),
        u(0x1000, 0, 0b0110111),
        j(8, 0),
        i(0, 0, 2, 0, LOAD),
    ] {
        let mut m = machine(&[word, 0, 0], &[1, 2, 3, 4], &[], InputSlots::default());
        m.set_register(0, 0);
        prove_and_verify(&mut m);
        assert_eq!(m.registers()[0], 0, "{word:#010x}");
    }
}

#[test]
fn loads_and_stores() {
    let data = [0x80, 0x7f, 0x00, 0x80, 0xff, 0xff, 0x34, 0x12];
    let base = [(A as usize, DATA)];
    let loads: &[(&str, u32, u32)] = &[
        ("lb sign", i(0, A, 0, D, LOAD), 0xffff_ff80),
        ("lb positive", i(1, A, 0, D, LOAD), 0x7f),
        ("lh sign", i(2, A, 1, D, LOAD), 0xffff_8000),
        ("lw", i(0, A, 2, D, LOAD), 0x8000_7f80),
        ("lw second word", i(4, A, 2, D, LOAD), 0x1234_ffff),
        ("lbu", i(0, A, 4, D, LOAD), 0x80),
        ("lhu", i(4, A, 5, D, LOAD), 0xffff),
        ("lbu of untouched memory", i(64, A, 4, D, LOAD), 0),
    ];
    for &(name, word, want) in loads {
        let mut m = machine(&[word], &data, &base, InputSlots::default());
        prove_and_verify(&mut m);
        assert_eq!(m.registers()[D as usize], want, "{name}");
    }
    let value = [(A as usize, DATA), (B as usize, 0xa1b2_c3d4)];
    let stores: &[(&str, u32, [u8; 8])] = &[
        (
            "sb",
            s(3, B, A, 0),
            [0x80, 0x7f, 0x00, 0xd4, 0xff, 0xff, 0x34, 0x12],
        ),
        (
            "sh",
            s(6, B, A, 1),
            [0x80, 0x7f, 0x00, 0x80, 0xff, 0xff, 0xd4, 0xc3],
        ),
        (
            "sw",
            s(4, B, A, 2),
            [0x80, 0x7f, 0x00, 0x80, 0xd4, 0xc3, 0xb2, 0xa1],
        ),
    ];
    for &(name, word, want) in stores {
        let mut m = machine(&[word], &data, &value, InputSlots::default());
        prove_and_verify(&mut m);
        assert_eq!(m.memory().read_bytes(DATA, 8), want, "{name}");
    }
}

#[test]
fn branches_and_jumps() {
    // (word, x5, x6, next pc, x7 afterwards)
    let cases: &[(&str, u32, u32, u32, u32, u32)] = &[
        ("beq taken", b(-8, B, A, 0), 1, 1, CODE - 8, 0),
        ("beq not taken", b(-8, B, A, 0), 1, 2, CODE + 4, 0),
        ("bne", b(4094, B, A, 1), 1, 2, CODE + 4094, 0),
        ("blt signed", b(16, B, A, 4), M1, 0, CODE + 16, 0),
        ("bge signed", b(16, B, A, 5), M1, 0, CODE + 4, 0),
        ("bltu", b(16, B, A, 6), M1, 0, CODE + 4, 0),
        ("bgeu", b(16, B, A, 7), M1, 0, CODE + 16, 0),
        ("jal", j(-4096, D), 0, 0, CODE - 4096, CODE + 4),
        (
            "jal far",
            j((1 << 20) - 2, D),
            0,
            0,
            CODE + (1 << 20) - 2,
            CODE + 4,
        ),
        (
            "jalr clears bit 0",
            i(3, A, 0, D, 0b1100111),
            0x3_0000,
            0,
            0x3_0002,
            CODE + 4,
        ),
        (
            "jalr rd = rs1",
            i(0, A, 0, A, 0b1100111),
            0x3_0000,
            0,
            0x3_0000,
            0,
        ),
    ];
    for &(name, word, a, bv, next, link) in cases {
        let mut m = machine(
            &[word],
            &[],
            &[(A as usize, a), (B as usize, bv)],
            InputSlots::default(),
        );
        prove_and_verify(&mut m);
        assert_eq!(m.pc(), next, "{name}: pc");
        if link != 0 {
            assert_eq!(m.registers()[D as usize], link, "{name}: link");
        }
    }
    let mut m = machine(
        &[i(0, A, 0, A, 0b1100111)],
        &[],
        &[(A as usize, 0x3_0000)],
        InputSlots::default(),
    );
    prove_and_verify(&mut m);
    assert_eq!(
        m.registers()[A as usize],
        CODE + 4,
        "jalr writes rd after reading rs1"
    );
}

/// Every fault: the step ends the run with the fault code and changes nothing else.
#[test]
fn faults() {
    let a7 = 17usize;
    let cases: &[(&str, u32, &[(usize, u32)], Fault)] = &[
        ("illegal zero word", 0, &[], Fault::IllegalInstruction),
        ("compressed", 0x0000_4501, &[], Fault::IllegalInstruction),
        ("csr", 0x3005_2573, &[], Fault::IllegalInstruction),
        ("ebreak", EBREAK, &[], Fault::Breakpoint),
        (
            "lw misaligned",
            i(2, A, 2, D, LOAD),
            &[(5, DATA)],
            Fault::MisalignedAccess,
        ),
        (
            "lh misaligned",
            i(1, A, 1, D, LOAD),
            &[(5, DATA)],
            Fault::MisalignedAccess,
        ),
        (
            "sw misaligned",
            s(1, B, A, 2),
            &[(5, DATA)],
            Fault::MisalignedAccess,
        ),
        ("lw null", i(0, 0, 2, D, LOAD), &[], Fault::UnmappedAccess),
        (
            "sb guard page end",
            s(-1, B, A, 0),
            &[(5, 0x1000)],
            Fault::UnmappedAccess,
        ),
        (
            "lw wraps to the top, misaligned",
            i(-4, A, 2, D, LOAD),
            &[(5, 2)],
            Fault::MisalignedAccess,
        ),
        (
            "lw wraps below zero",
            i(4, A, 2, D, LOAD),
            &[(5, u32::MAX - 3)],
            Fault::UnmappedAccess,
        ),
        ("unknown ecall", ECALL, &[(a7, 999)], Fault::UnknownEcall),
        (
            "read_chunk misaligned",
            ECALL,
            &[(a7, ecall::READ_CHUNK), (12, DATA + 4)],
            Fault::MisalignedAccess,
        ),
        (
            "read_chunk null",
            ECALL,
            &[(a7, ecall::READ_CHUNK), (12, 0)],
            Fault::UnmappedAccess,
        ),
        (
            "read_chunk slot 16",
            ECALL,
            &[(a7, ecall::READ_CHUNK), (10, 16), (12, DATA)],
            Fault::InputOutOfRange,
        ),
        (
            "read_chunk empty slot",
            ECALL,
            &[(a7, ecall::READ_CHUNK), (10, 1), (12, DATA)],
            Fault::InputOutOfRange,
        ),
        (
            "read_chunk past end",
            ECALL,
            &[(a7, ecall::READ_CHUNK), (11, 3), (12, DATA)],
            Fault::InputOutOfRange,
        ),
        (
            "write_chunk misaligned",
            ECALL,
            &[(a7, ecall::WRITE_CHUNK), (10, DATA + 16)],
            Fault::MisalignedAccess,
        ),
        (
            "write_chunk null",
            ECALL,
            &[(a7, ecall::WRITE_CHUNK), (10, 32)],
            Fault::UnmappedAccess,
        ),
    ];
    for &(name, word, regs, fault) in cases {
        let mut slots = InputSlots::default();
        slots.set(0, InputTensor::from_bytes(vec![7; 70])).unwrap();
        let mut m = machine(&[word], &[0; 64], regs, slots);
        let before = m.state();
        prove_and_verify(&mut m);
        assert_eq!(m.outcome(), RunOutcome::Faulted(fault), "{name}");
        let after = m.state();
        assert_eq!(
            (after.pc, after.regs, after.mem_root),
            (before.pc, before.regs, before.mem_root),
            "{name}"
        );
        assert_eq!(after.step, before.step + 1, "{name}");
        // A step after the end changes nothing, and its witness still verifies.
        let proof = prove_and_verify(&mut m);
        assert_eq!(
            proof.pre_state_hash, proof.post_state_hash,
            "{name}: padding step"
        );
    }
}

#[test]
fn fetch_faults() {
    let cases: &[(&str, u32, Fault)] = &[
        ("misaligned pc", CODE + 2, Fault::MisalignedFetch),
        ("pc in guard page", 0x800, Fault::UnmappedAccess),
        ("pc 0", 0, Fault::UnmappedAccess),
    ];
    for &(name, target, fault) in cases {
        let mut m = machine(
            &[i(0, A, 0, 0, 0b1100111)],
            &[],
            &[(A as usize, target)],
            InputSlots::default(),
        );
        prove_and_verify(&mut m);
        assert_eq!(
            m.status(),
            Status::Running,
            "{name}: the jump itself is fine"
        );
        prove_and_verify(&mut m);
        assert_eq!(m.outcome(), RunOutcome::Faulted(fault), "{name}");
    }
}

#[test]
fn write_and_exit_ecalls() {
    let a7 = 17usize;
    let mut m = machine(
        &[ECALL],
        b"hi!\n",
        &[(a7, ecall::WRITE), (10, 1), (11, DATA), (12, 4)],
        InputSlots::default(),
    );
    prove_and_verify(&mut m);
    assert_eq!((m.stdout(), m.registers()[10]), (&b"hi!\n"[..], 4));
    let mut m = machine(
        &[ECALL],
        b"err",
        &[(a7, ecall::WRITE), (10, 2), (11, DATA), (12, 3)],
        InputSlots::default(),
    );
    prove_and_verify(&mut m);
    assert_eq!(m.stderr(), b"err");
    let mut m = machine(
        &[ECALL],
        b"x",
        &[(a7, ecall::WRITE), (10, 3), (11, DATA), (12, 1)],
        InputSlots::default(),
    );
    prove_and_verify(&mut m);
    assert_eq!(m.registers()[10], (-9i32) as u32, "EBADF");
    for number in [ecall::EXIT, ecall::EXIT_GROUP] {
        let mut m = machine(
            &[ECALL],
            &[],
            &[(a7, number), (10, 0xdead)],
            InputSlots::default(),
        );
        prove_and_verify(&mut m);
        assert_eq!((m.outcome(), m.pc()), (RunOutcome::Exited(0xdead), CODE));
    }
}

/// A program that copies every chunk of slot 3 to the output: the output's data root must equal the
/// input tensor's data root, and every step's witness must verify.
#[test]
fn chunk_copy_program_round_trips_a_tensor() {
    for len in [1usize, 31, 32, 33, 95, 256, 1000] {
        let data: Vec<u8> = (0..len).map(|k| (k * 13 + 1) as u8).collect();
        let mut slots = InputSlots::default();
        slots.set(3, InputTensor::from_bytes(data.clone())).unwrap();
        let chunks = len.div_ceil(32) as i32;
        // x10 = slot, x11 = chunk index, x12 = buffer, x9 = chunk count
        let program = [
            i(3, 0, 0, 20, OP_IMM),     // x20 = 3
            i(chunks, 0, 0, 9, OP_IMM), // x9 = chunks
            i(0, 0, 0, 11, OP_IMM),     // x11 = 0
            // loop:
            i(0, 20, 0, 10, OP_IMM),             // a0 = 3
            u(ecall::READ_CHUNK, 17, 0b0110111), // a7 = READ_CHUNK
            ECALL,
            i(0, 12, 0, 10, OP_IMM), // a0 = buffer
            i(1, 17, 0, 17, OP_IMM), // a7 = WRITE_CHUNK
            ECALL,
            i(1, 11, 0, 11, OP_IMM), // x11 += 1
            b(-28, 9, 11, 4),        // blt x11, x9, loop
            i(0, 0, 0, 10, OP_IMM),  // a0 = 0
            i(93, 0, 0, 17, OP_IMM), // a7 = exit
            ECALL,
        ];
        let mut m = machine(&program, &[], &[(12, DATA)], slots);
        while m.status() == Status::Running {
            prove_and_verify(&mut m);
        }
        assert_eq!(m.outcome(), RunOutcome::Exited(0), "len {len}");
        let out = m.output().snapshot();
        assert_eq!(out.count as usize, len.div_ceil(32));
        assert_eq!(out.data_root(), opml_vm::data_root(&data), "len {len}");
    }
}

#[test]
fn tampered_witnesses_are_rejected() {
    let mut slots = InputSlots::default();
    slots.set(0, InputTensor::from_bytes(vec![9; 100])).unwrap();
    let a7 = 17usize;
    let steps: &[(&str, u32, &[(usize, u32)])] = &[
        ("addi", i(1, A, 0, D, OP_IMM), &[]),
        ("lw", i(0, A, 2, D, LOAD), &[(5, DATA)]),
        ("sw", s(0, B, A, 2), &[(5, DATA), (6, 77)]),
        (
            "read_chunk",
            ECALL,
            &[(a7, ecall::READ_CHUNK), (11, 2), (12, DATA)],
        ),
        (
            "write_chunk",
            ECALL,
            &[(a7, ecall::WRITE_CHUNK), (10, DATA)],
        ),
    ];
    for &(name, word, regs) in steps {
        let mut m = machine(&[word], &[5; 64], regs, slots.clone());
        let proof = prove_and_verify(&mut m);
        for bit in (0..proof.witness.len() * 8).step_by(7) {
            let mut w = proof.witness.clone();
            w[bit / 8] ^= 1 << (bit % 8);
            if let Ok(post) = verify_step(&proof.pre_state_hash, &w) {
                panic!("{name}: flipping bit {bit} gave a valid-looking post-state {post:02x?}");
            }
        }
        let mut longer = proof.witness.clone();
        longer.push(0);
        assert!(
            verify_step(&proof.pre_state_hash, &longer).is_err(),
            "{name}: trailing byte"
        );
        let shorter = &proof.witness[..proof.witness.len() - 1];
        assert!(
            verify_step(&proof.pre_state_hash, shorter).is_err(),
            "{name}: truncated"
        );
        assert!(
            verify_step(&[0; 32], &proof.witness).is_err(),
            "{name}: wrong pre-state hash"
        );
    }
}

/// Instruction words drawn to hit every class with mostly-valid encodings.
fn word_strategy() -> impl Strategy<Value = u32> {
    let reg = 0u32..32;
    prop_oneof![
        (
            0u32..8,
            reg.clone(),
            reg.clone(),
            reg.clone(),
            prop::sample::select(vec![0u32, 1, 0x20])
        )
            .prop_map(|(f3, rd, rs1, rs2, f7)| r(f7, rs2, rs1, f3, rd, OP)),
        (any::<i16>(), 0u32..8, reg.clone(), reg.clone()).prop_map(|(imm, f3, rs1, rd)| i(
            i32::from(imm) >> 4,
            rs1,
            f3,
            rd,
            OP_IMM
        )),
        (-64i32..64, 0u32..6, 5u32..8, reg.clone())
            .prop_map(|(imm, f3, rs1, rd)| i(imm, rs1, f3, rd, LOAD)),
        (-64i32..64, 0u32..3, 5u32..8, reg.clone())
            .prop_map(|(imm, f3, rs1, rs2)| s(imm, rs2, rs1, f3)),
        (-8i32..8, 0u32..8, reg.clone(), reg.clone()).prop_map(|(imm, f3, rs1, rs2)| b(
            imm * 4,
            rs2,
            rs1,
            f3
        )),
        (-8i32..8, reg.clone()).prop_map(|(imm, rd)| j(imm * 4, rd)),
        (any::<u32>(), reg.clone()).prop_map(|(imm, rd)| u(imm, rd, 0b0110111)),
        (any::<u32>(), reg).prop_map(|(imm, rd)| u(imm, rd, 0b0010111)),
        Just(ECALL),
        Just(EBREAK),
        any::<u32>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random programs from random register states: every step's witness verifies to the machine's
    /// own post-state.
    #[test]
    fn verify_step_agrees_with_the_machine_on_random_programs(
        code in prop::collection::vec(word_strategy(), 1..48),
        regs in prop::collection::vec(any::<u32>(), 32),
        data in prop::collection::vec(any::<u8>(), 0..256),
        a7 in prop::sample::select(vec![64u32, 93, ecall::READ_CHUNK, ecall::WRITE_CHUNK, 7]),
    ) {
        let mut slots = InputSlots::default();
        slots.set(1, InputTensor::from_bytes(data.clone())).unwrap();
        let mut m = machine(&code, &data, &[], slots);
        for (k, &v) in regs.iter().enumerate() {
            m.set_register(k, v);
        }
        // Some registers point into the data region so that memory instructions hit it.
        m.set_register(5, DATA + 64);
        m.set_register(6, DATA + (regs[6] & 0xfc));
        m.set_register(7, DATA);
        m.set_register(17, a7);
        m.set_register(10, regs[10] % 3);
        m.set_register(11, regs[11] % 10);
        m.set_register(12, DATA + (regs[12] & 0x1e0));
        for _ in 0..64 {
            prove_and_verify(&mut m);
        }
    }
}

/// A store into the text segment changes what executes, in the fast interpreter (whose pre-decoded
/// table must follow the store) as in the proving path.
#[test]
fn self_modifying_code() {
    let program = [
        s(8, B, A, 2),         // sw x6, 8(x5): overwrite the word at CODE + 8
        i(0, 0, 0, 0, OP_IMM), // nop
        0,                     // illegal until overwritten with `addi x10, x0, 42`
        ECALL,                 // exit(a0)
    ];
    let regs = [
        (A as usize, CODE),
        (B as usize, i(42, 0, 0, 10, OP_IMM)),
        (17, ecall::EXIT),
    ];
    let mut fast = machine(&program, &[], &regs, InputSlots::default());
    assert_eq!(fast.run(100), RunOutcome::Exited(42));
    let mut proving = machine(&program, &[], &regs, InputSlots::default());
    while proving.status() == Status::Running {
        prove_and_verify(&mut proving);
    }
    assert_eq!(proving.outcome(), RunOutcome::Exited(42));
    assert_eq!(proving.state_hash(), fast.state_hash());
}
