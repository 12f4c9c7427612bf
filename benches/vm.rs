//! Criterion benchmarks of the VM's hot paths, each beside its baseline: the interpreter on a tight
//! int8 multiply-accumulate loop with compiled blocks and without, the Merkle root of written memory beside plain keccak of the same
//! bytes, and one proven step beside one plain step.
//!
//! `opml vm bench` gives the whole-program figures (against qemu-riscv32); these isolate the parts.

#![allow(missing_docs)] // criterion_group! generates an undocumented function

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use opml_vm::encode::{b, i, r, LOAD, OP, OP_IMM};
use opml_vm::memory::Memory;
use opml_vm::{keccak256, ElfImage, InputSlots, Machine};
use std::hint::black_box;

const CODE: u32 = 0x1_0000;
const DATA: u32 = 0x2_0000;

/// An int8 dot-product loop over two 256-byte vectors, repeated forever: lb, lb, mul, add, addi, bne.
fn dot_product_machine() -> Machine {
    let program = [
        i(0, 0, 0, 10, OP_IMM),   // acc = 0
        i(0, 0, 0, 11, OP_IMM),   // k = 0
        i(256, 0, 0, 12, OP_IMM), // n = 256
        // loop:
        r(0, 11, 5, 0, 13, OP),  // x13 = a + k
        i(0, 13, 0, 14, LOAD),   // lb x14
        r(0, 11, 6, 0, 13, OP),  // x13 = b + k
        i(0, 13, 0, 15, LOAD),   // lb x15
        r(1, 15, 14, 0, 14, OP), // mul
        r(0, 14, 10, 0, 10, OP), // acc += x14
        i(1, 11, 0, 11, OP_IMM), // k += 1
        b(-28, 12, 11, 1),       // bne k, n, loop
        b(-36, 0, 0, 0),         // beq x0, x0, to k = 0 (forever)
    ];
    let data: Vec<u8> = (0..512).map(|k| (k * 37 % 251) as u8).collect();
    let image = ElfImage::from_words(CODE, &program, DATA, &data);
    let mut m = Machine::new(&image, InputSlots::default());
    m.set_register(5, DATA);
    m.set_register(6, DATA + 256);
    m
}

fn interpreter(c: &mut Criterion) {
    let mut group = c.benchmark_group("interpreter");
    const STEPS: u64 = 1_000_000;
    group.throughput(Throughput::Elements(STEPS));
    for (name, compile_blocks) in [
        ("int8 dot product, steps (compiled blocks)", true),
        ("int8 dot product, steps (interpreted only)", false),
    ] {
        let mut machine = dot_product_machine();
        machine.set_block_compiler(compile_blocks);
        group.bench_function(name, |bench| {
            bench.iter_batched_ref(
                || machine.clone(),
                |m| black_box(m.run(STEPS)),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();

    let mut group = c.benchmark_group("one step");
    let mut warm = dot_product_machine();
    warm.run(1000);
    warm.state_hash();
    group.bench_function("plain step", |bench| {
        bench.iter_batched_ref(
            || warm.clone(),
            |m| black_box(m.run(1)),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("proven step (witness + both state hashes)", |bench| {
        bench.iter_batched_ref(
            || warm.clone(),
            |m| black_box(m.prove_step()),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn merkle(c: &mut Criterion) {
    let mut group = c.benchmark_group("merkle");
    for mib in [1usize, 8] {
        let bytes: Vec<u8> = (0..mib << 20).map(|k| (k * 31 + k / 4096) as u8).collect();
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(format!("memory root after writing {mib} MiB"), |bench| {
            bench.iter_batched_ref(
                || {
                    let mut m = Memory::default();
                    m.write_bytes(0x1000_0000, &bytes);
                    m
                },
                |m| black_box(m.merkle_root()),
                BatchSize::LargeInput,
            )
        });
        group.bench_function(format!("plain keccak of {mib} MiB (baseline)"), |bench| {
            bench.iter(|| black_box(keccak256(&bytes)))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = interpreter, merkle
}
criterion_main!(benches);
