//! `opml bench gemm`: G MAC/s of the native executor's int8 GEMM kernel against the scalar
//! reference loop, on the same shape, thread count and process.

use anyhow::{bail, ensure, Context, Result};
use clap::Args;
use opml_dnn::gemm::{gemm_i8, Kernel};
use serde::Serialize;
use std::process::ExitCode;
use std::time::Instant;

/// The most elements of `a`, `b` and the output together (about 6 GiB with the int32 output), so
/// that a mistyped size fails at once instead of exhausting memory.
const MAX_ELEMENTS: usize = 1 << 30;

#[derive(Args)]
pub(crate) struct BenchGemmArgs {
    /// Rows of the activations `a [m, k]` (1 for a matrix-vector product).
    #[arg(long, default_value_t = 1)]
    m: usize,
    /// Inner dimension, the length of every dot product.
    #[arg(long, default_value_t = 4096)]
    k: usize,
    /// Rows of the weights `b [n, k]`, the output columns.
    #[arg(long, default_value_t = 4096)]
    n: usize,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Force a kernel: scalar, avx2 or avx512_vnni (default: the best this CPU has, as the
    /// executor picks it).
    #[arg(long)]
    kernel: Option<String>,
    /// Timed runs of each side; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct GemmBench {
    m: usize,
    k: usize,
    n: usize,
    threads: usize,
    /// The kernel measured, e.g. `avx512_vnni`.
    kernel: &'static str,
    runs: usize,
    /// Median time of one product by `kernel`.
    gemm_ms: f64,
    /// Median time of one product by the scalar reference.
    reference_ms: f64,
    gmacs: f64,
    reference_gmacs: f64,
    speedup: f64,
}

/// Deterministic int8 values spread over the whole range.
fn values(len: usize, seed: u64) -> Vec<i8> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 56) as u8 as i8
        })
        .collect()
}

/// Median seconds of `runs` calls of `f`.
fn median_secs(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut v: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub(crate) fn bench_gemm(args: BenchGemmArgs) -> Result<ExitCode> {
    let (m, k, n) = (args.m, args.k, args.n);
    ensure!(
        m > 0 && k > 0 && n > 0,
        "--m, --k and --n must be at least 1"
    );
    let elements = m
        .checked_mul(k)
        .zip(n.checked_mul(k))
        .zip(m.checked_mul(n))
        .and_then(|((a, b), c)| a.checked_add(b)?.checked_add(c));
    match elements {
        Some(e) if e <= MAX_ELEMENTS => {}
        _ => bail!("--m {m} --k {k} --n {n}: operands and output exceed {MAX_ELEMENTS} elements"),
    }
    let kernel = match &args.kernel {
        None => Kernel::detect(),
        Some(name) => {
            let kernel = Kernel::from_name(name).with_context(|| {
                format!("--kernel {name}: not one of scalar, avx2, avx512_vnni")
            })?;
            ensure!(kernel.available(), "--kernel {name}: this CPU lacks it");
            kernel
        }
    };
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(t) = args.threads {
        ensure!(t > 0, "--threads must be at least 1");
        pool = pool.num_threads(t);
    }
    let pool = pool.build().context("starting the worker threads")?;
    let runs = args.runs.max(1);
    let (a, b) = (values(m * k, 1), values(n * k, 2));
    let report = pool.install(|| -> Result<GemmBench> {
        let want = gemm_i8(Kernel::Scalar, &a, &b, m, k, n);
        ensure!(
            gemm_i8(kernel, &a, &b, m, k, n) == want,
            "the {} kernel disagrees with the scalar reference",
            kernel.name()
        );
        tracing::info!(kernel = kernel.name(), m, k, n, "timing");
        let fast = median_secs(runs, || {
            std::hint::black_box(gemm_i8(kernel, &a, &b, m, k, n));
        });
        let slow = median_secs(runs, || {
            std::hint::black_box(gemm_i8(Kernel::Scalar, &a, &b, m, k, n));
        });
        let macs = (m * k * n) as f64;
        Ok(GemmBench {
            m,
            k,
            n,
            threads: rayon::current_num_threads(),
            kernel: kernel.name(),
            runs,
            gemm_ms: fast * 1e3,
            reference_ms: slow * 1e3,
            gmacs: macs / fast / 1e9,
            reference_gmacs: macs / slow / 1e9,
            speedup: slow / fast,
        })
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "int8 GEMM {m}x{k}x{n}, {} threads, median of {runs}: {} {:.3} ms = {:.2} G MAC/s; scalar reference {:.3} ms = {:.2} G MAC/s ({:.1}x)",
        report.threads,
        report.kernel,
        report.gemm_ms,
        report.gmacs,
        report.reference_ms,
        report.reference_gmacs,
        report.speedup
    );
    Ok(ExitCode::SUCCESS)
}
