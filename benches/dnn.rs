//! Criterion benchmarks of the DNN library, each beside its baseline: the MNIST CNN natively beside
//! its nodes re-executed in the VM, and the native int8 Linear beside a plain scalar loop.
//!
//! `opml bench dnn` prints the per-node table; these give the statistics.

#![allow(missing_docs)] // criterion_group! generates an undocumented function

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use opml_dnn::mnist::{quantize_image, read_pgm};
use opml_dnn::ops::Linear;
use opml_dnn::{DType, Model, Op, Tensor};
use std::hint::black_box;
use std::path::Path;

fn mnist(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = Model::load(&root.join("models/mnist-cnn")).expect("models/mnist-cnn");
    let input = quantize_image(
        &read_pgm(&root.join("data/mnist/samples/digit-0-label-7.pgm")).expect("sample"),
    );
    let trace = model.run(&input).expect("runs");
    let mut g = c.benchmark_group("mnist-cnn");
    g.sample_size(10);
    g.bench_function("native inference", |b| {
        b.iter(|| black_box(model.run(&input).expect("runs")))
    });
    g.bench_function("every node in the VM", |b| {
        b.iter(|| {
            for index in 0..trace.nodes.len() {
                black_box(
                    model
                        .run_node_in_vm(index, &input, &trace, u64::MAX)
                        .expect("runs"),
                );
            }
        })
    });
    g.finish();
}

fn matmul(c: &mut Criterion) {
    let (m, k, n) = (16usize, 784usize, 256usize);
    let bytes = |len: usize, seed: usize| -> Vec<u8> {
        (0..len).map(|i| ((i * 31 + seed) % 251) as u8).collect()
    };
    let x = Tensor::from_le_bytes(DType::I8, &[m, k], &bytes(m * k, 1)).unwrap();
    let w = Tensor::from_le_bytes(DType::I8, &[n, k], &bytes(n * k, 2)).unwrap();
    let b = Tensor::from_le_bytes(DType::I32, &[n], &vec![0; 4 * n]).unwrap();
    let sc: Vec<u8> = (0..n)
        .flat_map(|_| [1i32 << 30, 40].into_iter().flat_map(i32::to_le_bytes))
        .collect();
    let sc = Tensor::from_le_bytes(DType::I32, &[n, 2], &sc).unwrap();
    let op = Op::Linear(Linear { relu: false });
    let (xs, ws) = (bytes(m * k, 1), bytes(n * k, 2));
    let mut g = c.benchmark_group("int8 matmul 16x784x256");
    g.throughput(Throughput::Elements((m * k * n) as u64));
    g.bench_function("native executor", |bch| {
        bch.iter(|| black_box(op.native(&[&x, &w, &b, &sc]).unwrap()))
    });
    g.bench_function("plain scalar loop", |bch| {
        bch.iter(|| {
            let mut out = vec![0i32; m * n];
            for i in 0..m {
                for j in 0..n {
                    let mut acc = 0i32;
                    for kk in 0..k {
                        acc = black_box(acc.wrapping_add(
                            i32::from(xs[i * k + kk] as i8) * i32::from(ws[j * k + kk] as i8),
                        ));
                    }
                    out[i * n + j] = acc;
                }
            }
            black_box(out)
        })
    });
    g.finish();
}

criterion_group!(benches, mnist, matmul);
criterion_main!(benches);
