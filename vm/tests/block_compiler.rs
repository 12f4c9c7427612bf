//! The fast interpreter's compiled blocks against the interpreter alone: loops hot enough to be
//! compiled, run in stretches cut at arbitrary step counts, must reach the same state after every
//! stretch — same registers, memory, pc, step, status, output and console — including when the
//! compiled code has to hand an instruction back (faults, pages never written or not dirty since
//! the last hash, stores into the text).

mod common;

use common::*;
use opml_vm::{ecall, Fault, InputSlots, InputTensor, Machine, RunOutcome};
use proptest::prelude::*;

/// Loop counter of the test loops; the bodies never write it.
const COUNTER: u32 = 31;
/// A region no segment maps: loads read zero, stores create pages.
const UNMAPPED: u32 = 0x5000_0000;

/// `body` run `iterations` times: `body; addi x31, x31, -1; bne x31, x0, body; ecall`.
fn hot_loop(body: &[u32]) -> Vec<u32> {
    let back = -4 * (body.len() as i32 + 1);
    let mut code = body.to_vec();
    code.extend([
        i(-1, COUNTER, 0, COUNTER, OP_IMM),
        b(back, 0, COUNTER, 1),
        ECALL,
    ]);
    code
}

/// Runs `compiled` (blocks on) and `interpreted` (blocks off) through the same stretches and
/// checks that they agree after each; hashing the state after a stretch also makes every page
/// clean again, so compiled stores meet pages that are not dirty. Returns the compiled machine.
fn same_as_interpreter(mut compiled: Machine, stretches: &[u64], what: &str) -> Machine {
    let mut interpreted = compiled.clone();
    interpreted.set_block_compiler(false);
    for (n, &steps) in stretches.iter().enumerate() {
        let outcome = compiled.run(steps);
        assert_eq!(outcome, interpreted.run(steps), "{what}: stretch {n}");
        assert_eq!(
            compiled.step_count(),
            interpreted.step_count(),
            "{what}: steps after stretch {n}"
        );
        assert_eq!(
            compiled.state_hash(),
            interpreted.state_hash(),
            "{what}: state after stretch {n} (pc {:#x} vs {:#x}, registers {:x?} vs {:x?})",
            compiled.pc(),
            interpreted.pc(),
            compiled.registers(),
            interpreted.registers()
        );
        assert_eq!(compiled.stdout(), interpreted.stdout(), "{what}: stdout");
        assert_eq!(
            compiled.output().hash(),
            interpreted.output().hash(),
            "{what}: output"
        );
        if outcome != RunOutcome::StepLimit {
            break;
        }
    }
    compiled
}

/// Each case is a loop of 64 iterations whose body meets the named condition on a late iteration,
/// after its block was compiled; it must stop (or go on) exactly where the interpreter does.
#[test]
fn compiled_blocks_hand_back_what_they_cannot_finish() {
    // x8 = 1 on the last three iterations, else 0; x9 = x5 + x8 (an address that turns odd);
    // x10 = x5 * (1 - x8) (an address that turns 0).
    let late = [
        i(3, COUNTER, 3, 8, OP_IMM), // sltiu x8, x31, 3
        r(0, 8, 5, 0, 9, OP),        // add x9, x5, x8
        i(1, 8, 4, 11, OP_IMM),      // xori x11, x8, 1
        r(1, 11, 5, 0, 10, OP),      // mul x10, x5, x11
    ];
    let with = |access: u32| [&late[..], &[access]].concat();
    let cases: &[(&str, Vec<u32>, u32, Option<Fault>)] = &[
        (
            "lw turns misaligned",
            with(i(0, 9, 2, 7, LOAD)),
            DATA,
            Some(Fault::MisalignedAccess),
        ),
        (
            "lh turns misaligned",
            with(i(0, 9, 1, 7, LOAD)),
            DATA,
            Some(Fault::MisalignedAccess),
        ),
        (
            "sw turns misaligned",
            with(s(0, 6, 9, 2)),
            DATA,
            Some(Fault::MisalignedAccess),
        ),
        (
            "sh turns misaligned",
            with(s(0, 6, 9, 1)),
            DATA,
            Some(Fault::MisalignedAccess),
        ),
        (
            "lb turns to the guard page",
            with(i(0, 10, 0, 7, LOAD)),
            DATA,
            Some(Fault::UnmappedAccess),
        ),
        (
            "sb turns to the guard page",
            with(s(0, 6, 10, 0)),
            DATA,
            Some(Fault::UnmappedAccess),
        ),
        (
            "lbu at an offset that turns into the guard page",
            with(i(0x7ff, 10, 4, 7, LOAD)),
            DATA,
            Some(Fault::UnmappedAccess),
        ),
        (
            "lw from a page never written",
            with(i(8, 5, 2, 7, LOAD)),
            UNMAPPED,
            None,
        ),
        ("sw creates a page", with(s(8, 6, 5, 2)), UNMAPPED, None),
        (
            "sw to the same address each time",
            with(s(-4, 6, 5, 2)),
            DATA + 64,
            None,
        ),
        (
            "sw of the changing counter to one address",
            with(s(0, COUNTER, 5, 2)),
            DATA,
            None,
        ),
        (
            "sb of the changing counter to an address that turns odd",
            with(s(0, COUNTER, 9, 0)),
            DATA,
            None,
        ),
        ("ebreak stops the first iteration", with(EBREAK), DATA, None),
        ("ecall write in the loop", with(ECALL), DATA, None),
    ];
    for (name, body, x5, fault) in cases {
        let code = hot_loop(body);
        let regs = [
            (5, *x5),
            (6, 0xdead_beef),
            (COUNTER as usize, 64),
            (17, ecall::WRITE),
            (10, 1),
            (12, 4),
        ];
        let m = machine(&code, &[7; 256], &regs, InputSlots::default());
        // An iteration is 7 steps and the loop is compiled by its 16th: cutting at iteration
        // boundaries makes a compiled iteration the first to store after a hash made the pages
        // clean; the odd cuts land inside blocks.
        let end = same_as_interpreter(m, &[147, 7, 14, 5, 2, 70, 3, 10_000], name);
        if let Some(fault) = fault {
            assert_eq!(end.outcome(), RunOutcome::Faulted(*fault), "{name}");
        }
        if cfg!(target_arch = "x86_64") && !matches!(body.last(), Some(&EBREAK)) {
            assert!(end.compiled_blocks() > 0, "{name}: nothing was compiled");
        }
    }
}

/// Jumps, which the random loops leave out: each case is a loop around a `jal` or `jalr` whose
/// target lies inside the loop (or, for the last, an endless `jal` loop cut by the budget),
/// compared with the interpreter stretch by stretch.
#[test]
fn compiled_jumps_agree_with_the_interpreter() {
    let count = |reg| i(1, reg, 0, reg, OP_IMM); // addi reg, reg, 1
                                                 // auipc x9, 0: x9 = the pc of the first instruction, the base of the jalr cases.
    let here = u(0, 9, AUIPC);
    let cases: &[(&str, Vec<u32>)] = &[
        (
            "jal over one instruction, linking x1",
            hot_loop(&[j(8, 1), count(20), count(21)]),
        ),
        (
            "jal with rd = x0",
            hot_loop(&[j(8, 0), count(20), count(21)]),
        ),
        (
            "jal to the next instruction",
            hot_loop(&[count(20), j(4, 1), count(21)]),
        ),
        (
            "jalr with an odd offset: bit 0 of the target is cleared",
            hot_loop(&[here, i(13, 9, 0, 1, JALR), count(20), count(21)]),
        ),
        (
            "jalr linking into its own base register",
            hot_loop(&[here, i(12, 9, 0, 9, JALR), count(20), count(21)]),
        ),
        (
            "jalr with rd = x0",
            hot_loop(&[here, i(12, 9, 0, 0, JALR), count(20), count(21)]),
        ),
        (
            "jal back to its own block's start: endless, cut by the budget",
            vec![count(20), j(-4, 1)],
        ),
    ];
    for (name, code) in cases {
        let regs = [(COUNTER as usize, 64), (17, ecall::EXIT)];
        let m = machine(code, &[], &regs, InputSlots::default());
        let end = same_as_interpreter(m, &[147, 7, 14, 5, 2, 70, 3, 10_000], name);
        if cfg!(target_arch = "x86_64") {
            assert!(end.compiled_blocks() > 0, "{name}: nothing was compiled");
        }
    }
}

/// A compiled loop that stores into its own text: the store goes through the interpreter, the
/// blocks are thrown away, and the patched instruction runs from then on.
#[test]
fn a_loop_that_patches_itself() {
    // Once x31 < 10 each iteration stores x6, `addi x20, x20, 100`, over the loop's first
    // instruction; before that the store goes to DATA.
    let body = [
        i(1, 20, 0, 20, OP_IMM),      // addi x20, x20, 1 (patched)
        i(10, COUNTER, 3, 8, OP_IMM), // sltiu x8, x31, 10
        r(1, 13, 8, 0, 9, OP),        // mul x9, x8, x13 (x13 = CODE - DATA)
        r(0, 12, 9, 0, 9, OP),        // add x9, x9, x12 (x12 = DATA)
        s(0, 6, 9, 2),                // sw x6, 0(x9)
    ];
    let code = hot_loop(&body);
    let regs = [
        (6, i(100, 20, 0, 20, OP_IMM)),
        (12, DATA),
        (13, CODE.wrapping_sub(DATA)),
        (COUNTER as usize, 64),
        (17, ecall::EXIT),
    ];
    let m = machine(&code, &[0; 64], &regs, InputSlots::default());
    for stretches in [&[u64::MAX][..], &[100, 3, 250, 1, 1, 7, u64::MAX]] {
        let end = same_as_interpreter(m.clone(), stretches, "self-patching loop");
        assert!(matches!(end.outcome(), RunOutcome::Exited(_)));
        // +1 while x31 runs 64..=9 (the patch lands after the add of x31 = 9), +100 for 8..=1.
        assert_eq!(end.registers()[20], 56 + 8 * 100, "x20 after the patch");
    }
}

/// Instruction words for loop bodies: every class but jumps out of the loop, with registers that
/// avoid the counter, loads and stores through the base registers x5..x8 at mostly aligned offsets,
/// and short forward branches (which split the body into several blocks).
fn body_word() -> impl Strategy<Value = u32> {
    let rd = prop::sample::select(
        (0u32..31)
            .filter(|r| !(5..=8).contains(r))
            .collect::<Vec<_>>(),
    );
    let rs = 0u32..31;
    let base = 5u32..9;
    let offset = prop_oneof![
        8 => (-16i32..16).prop_map(|k| k * 4),
        1 => -64i32..64,
    ];
    prop_oneof![
        4 => (0u32..8, rd.clone(), rs.clone(), rs.clone(), prop::sample::select(vec![0u32, 1, 0x20]))
            .prop_map(|(f3, rd, rs1, rs2, f7)| r(f7, rs2, rs1, f3, rd, OP)),
        4 => (any::<i16>(), 0u32..8, rs.clone(), rd.clone())
            .prop_map(|(imm, f3, rs1, rd)| i(i32::from(imm) >> 4, rs1, f3, rd, OP_IMM)),
        3 => (offset.clone(), 0u32..6, base.clone(), rd.clone())
            .prop_map(|(imm, f3, rs1, rd)| i(imm, rs1, f3, rd, LOAD)),
        3 => (offset, 0u32..3, base, rs.clone())
            .prop_map(|(imm, f3, rs1, rs2)| s(imm, rs2, rs1, f3)),
        1 => (1i32..4, 0u32..8, rs.clone(), rs)
            .prop_map(|(k, f3, rs1, rs2)| b(k * 4, rs2, rs1, f3)),
        1 => (any::<u32>(), rd.clone()).prop_map(|(imm, rd)| u(imm, rd, LUI)),
        1 => (any::<u32>(), rd).prop_map(|(imm, rd)| u(imm, rd, AUIPC)),
        1 => Just(ECALL),
        1 => Just(EBREAK),
        1 => any::<u32>(),
    ]
}

/// Register values that hit the edge cases of division, shifts and comparisons.
fn register_value() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(u32::MAX),
        Just(0x8000_0000),
        Just(0x7fff_ffff),
        Just(31),
        Just(32),
        any::<u32>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random loop bodies from random states, run in random stretches: compiled blocks and the
    /// interpreter agree after every stretch.
    #[test]
    fn random_loops_agree_with_the_interpreter(
        body in prop::collection::vec(body_word(), 1..24),
        regs in prop::collection::vec(register_value(), 31),
        data in prop::collection::vec(any::<u8>(), 0..512),
        bases in (0usize..4, 0usize..4, 0usize..4, 0usize..4),
        stretches in prop::collection::vec(
            (prop_oneof![1u64..8, 8u64..200, 200u64..5_000], any::<bool>()),
            1..12,
        ),
        a7 in prop::sample::select(vec![ecall::WRITE, ecall::EXIT, ecall::READ_CHUNK, ecall::WRITE_CHUNK, 7]),
        hash_first in any::<bool>(),
    ) {
        let mut slots = InputSlots::default();
        slots.set(1, InputTensor::from_bytes(data.clone())).unwrap();
        let code = hot_loop(&body);
        let mut m = machine(&code, &data, &[], slots);
        for (k, &v) in regs.iter().enumerate() {
            m.set_register(k, v);
        }
        // Base registers: the data, a page never written, the text itself, or near the guard page.
        let places = [DATA + 128, UNMAPPED, CODE, 0x1000];
        for (reg, place) in [(5, bases.0), (6, bases.1), (7, bases.2), (8, bases.3)] {
            m.set_register(reg, places[place]);
        }
        m.set_register(COUNTER as usize, 40);
        m.set_register(17, a7);
        m.set_register(10, regs[10] % 3);
        m.set_register(11, regs[11] % 10);
        m.set_register(12, DATA + (regs[12] & 0x1e0));
        if hash_first {
            // Every page clean: the first compiled store to each goes through the interpreter.
            m.state_hash();
        }
        // Some stretches are whole iterations of a straight body, so that they end where a
        // compiled block starts.
        let iteration = code.len() as u64 - 1;
        let mut stretches: Vec<u64> = stretches
            .into_iter()
            .map(|(steps, whole)| if whole { (steps % 8 + 1) * iteration } else { steps })
            .collect();
        // Random words and stores into the text can make a loop that never ends: cap the run.
        stretches.push(20_000);
        same_as_interpreter(m, &stretches, "random loop");
    }
}
