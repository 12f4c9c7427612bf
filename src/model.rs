//! `opml model …` and `opml infer`: quantize, inspect and evaluate integer models; run inference with
//! per-node commitments and re-check nodes in the VM.

use crate::EXIT_MISMATCH;
use alloy::primitives::B256;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use opml_dnn::float::FloatModel;
use opml_dnn::mnist::{float_image, quantize_image, Dataset};
use opml_dnn::{DType, Model, Tensor, TensorRef};
use rayon::prelude::*;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Subcommand)]
pub(crate) enum ModelCommand {
    /// Quantize an f32 model into an integer model directory (model.json + weights.safetensors):
    /// an MNIST model (float.json + safetensors, as scripts/mnist/train.py writes, or an .onnx
    /// file of Conv, Gemm or MatMul+Add, Relu, MaxPool, Flatten/Reshape nodes) calibrated on the
    /// first images of a labelled split, or a BERT sentence encoder (a Hugging Face folder with
    /// config.json, model.safetensors and tokenizer.json, e.g. .cache/minilm/all-MiniLM-L6-v2
    /// from scripts/minilm/fetch.sh) calibrated on a text file of sentences, one per line.
    Import(ImportArgs),
    /// Print a model's nodes, weights and commitment.
    Info(InfoArgs),
    /// Accuracy of the integer model and of its f32 source on a labelled split.
    Eval(EvalArgs),
}

#[derive(Args)]
pub(crate) struct ImportArgs {
    /// The f32 model: a float.json file or the directory holding it, an .onnx file (one chain
    /// of Conv, Gemm, MatMul+Add, Relu, MaxPool, Flatten, Reshape nodes; other ops are named
    /// errors), or a BERT folder.
    float: PathBuf,
    /// Labelled images to calibrate on (e.g. data/mnist/train.safetensors; never the test split),
    /// or for a BERT model sentences, one per line (e.g. data/sentences/calibration.txt).
    #[arg(long)]
    calibration: PathBuf,
    /// BERT: the tokens of every request (longer texts are cut, shorter ones padded).
    #[arg(long, default_value_t = 64)]
    tokens: usize,
    /// How many calibration images to use.
    #[arg(long, default_value_t = 1000)]
    samples: usize,
    /// Directory to write model.json and weights.safetensors into.
    #[arg(long)]
    out: PathBuf,
    /// Print one JSON report (the model written, its commitment, and the integer and f32
    /// accuracy on the calibration images) instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct InfoArgs {
    /// Model directory or model.json.
    model: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct EvalArgs {
    /// Model directory or model.json.
    model: PathBuf,
    /// Labelled split (e.g. data/mnist/test.safetensors), or for a BERT sentence encoder
    /// sentences, one per line (e.g. data/sentences/test.txt).
    data: PathBuf,
    /// The f32 source model (defaults to the one recorded in model.json).
    #[arg(long)]
    float: Option<PathBuf>,
    /// Print JSON (keys `accuracy` and `float_accuracy`, fractions in 0..1; for a sentence
    /// encoder `min_cosine` and `mean_cosine` of the integer to the f32 embeddings).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct InferArgs {
    /// Model directory or model.json.
    model: PathBuf,
    /// The input: a 28x28 binary PGM digit (e.g. data/mnist/samples/*.pgm), or for a BERT
    /// sentence encoder the text.
    input: String,
    /// Re-execute nodes in the VM and compare their output commitments with the native ones.
    #[arg(long)]
    check_vm: bool,
    /// With --check-vm, only this node.
    #[arg(long)]
    node: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(cmd: ModelCommand) -> Result<ExitCode> {
    match cmd {
        ModelCommand::Import(a) => import(a),
        ModelCommand::Info(a) => info(a),
        ModelCommand::Eval(a) => eval(a),
    }
}

/// `opml model import --json`.
#[derive(Serialize)]
struct ImportReport {
    /// The folder written.
    out: String,
    name: String,
    commitment: String,
    nodes: usize,
    weights: usize,
    calibration: String,
    /// Calibration images used.
    samples: usize,
    /// Accuracy of the integer model on the calibration images (a fraction in 0..1): a check that
    /// quantizing kept the model, not a held-out figure (that is `opml model eval`'s).
    accuracy: f64,
    /// The f32 source's accuracy on the same images.
    float_accuracy: f64,
    /// Time to quantize and write the model.
    wall_ms: f64,
}

fn import(args: ImportArgs) -> Result<ExitCode> {
    if args.float.join("config.json").is_file() {
        return crate::embed::import_bert(
            &args.float,
            &args.calibration,
            args.samples,
            args.tokens,
            &args.out,
            args.json,
        );
    }
    let float = FloatModel::load(&args.float)?;
    let data = Dataset::load(&args.calibration)?;
    let n = calibration_count(&args, &data)?;
    let calibration: Vec<_> = (0..n).map(|i| float_image(data.image(i))).collect();
    let start = Instant::now();
    let model = opml_dnn::quantize::quantize(&float, &calibration)?;
    model.save(&args.out)?;
    let wall_ms = start.elapsed().as_secs_f64() * 1e3;
    let (accuracy, float_accuracy) = accuracies(&model, &float, &data, n, &ProgressBar::hidden())?;
    let report = ImportReport {
        out: args.out.display().to_string(),
        name: model.manifest.name.clone(),
        commitment: B256::from(model.commitment()?).to_string(),
        nodes: model.manifest.nodes.len(),
        weights: model.weights.len(),
        calibration: args.calibration.display().to_string(),
        samples: n,
        accuracy,
        float_accuracy,
        wall_ms,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}: {} nodes, {} weight tensors, calibrated on {n} images of {} in {:.2} s",
        report.out,
        report.nodes,
        report.weights,
        report.calibration,
        report.wall_ms / 1e3
    );
    println!(
        "on those images: integer accuracy {:.2}%, f32 accuracy {:.2}%",
        100.0 * report.accuracy,
        100.0 * report.float_accuracy
    );
    println!("model commitment {}", report.commitment);
    Ok(ExitCode::SUCCESS)
}

/// How many images of `data` to calibrate on. Refuses what would quietly write a useless or
/// dishonest model: no images at all (every activation scale would be a guess) and a split its file
/// marks as held out (the accuracy later measured on it would no longer mean anything).
fn calibration_count(args: &ImportArgs, data: &Dataset) -> Result<usize> {
    let path = args.calibration.display();
    if data.split.as_deref() == Some("test") {
        bail!(
            "{path} is the held-out test split; calibrate on the training split \
             (e.g. --calibration data/mnist/train.safetensors) so that its accuracy stays meaningful"
        );
    }
    if args.samples == 0 {
        bail!("--samples 0: calibration needs at least one image (the usual is 1000)");
    }
    if data.is_empty() {
        bail!("{path} holds no images to calibrate on");
    }
    Ok(args.samples.min(data.len()))
}

#[derive(Serialize)]
struct NodeInfo {
    index: usize,
    name: String,
    op: serde_json::Value,
    inputs: Vec<TensorRef>,
    output_dtype: DType,
    output_shape: Vec<usize>,
}

#[derive(Serialize)]
struct WeightInfo {
    name: String,
    dtype: DType,
    shape: Vec<usize>,
    commitment: String,
}

#[derive(Serialize)]
struct ModelInfo {
    name: String,
    commitment: String,
    input_shape: Vec<usize>,
    /// The VM steps the quantizer estimated for the largest node (null where it did not).
    largest_node_steps: Option<u64>,
    nodes: Vec<NodeInfo>,
    weights: Vec<WeightInfo>,
    /// Memory root of the kernel image of each op kind the model uses.
    kernel_roots: std::collections::BTreeMap<&'static str, String>,
}

fn info(args: InfoArgs) -> Result<ExitCode> {
    let model = Model::load(&args.model)?;
    let zero = quantize_image(&[0; 784]);
    let zero = if zero.shape() == model.manifest.input.shape.as_slice() {
        zero
    } else {
        Tensor::from_le_bytes(
            model.manifest.input.dtype,
            &model.manifest.input.shape,
            &vec![
                0;
                model.manifest.input.shape.iter().product::<usize>()
                    * model.manifest.input.dtype.size()
            ],
        )?
    };
    let trace = model.run(&zero)?;
    let nodes = model
        .manifest
        .nodes
        .iter()
        .zip(&trace.nodes)
        .enumerate()
        .map(|(index, (n, r))| NodeInfo {
            index,
            name: n.name.clone(),
            op: serde_json::to_value(&n.op).unwrap_or_default(),
            inputs: n.inputs.clone(),
            output_dtype: r.output.dtype(),
            output_shape: r.output.shape().to_vec(),
        })
        .collect();
    let weights = model
        .weights
        .iter()
        .map(|(name, t)| {
            Ok(WeightInfo {
                name: name.clone(),
                dtype: t.dtype(),
                shape: t.shape().to_vec(),
                commitment: B256::from(t.commitment()?).to_string(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let report = ModelInfo {
        name: model.manifest.name.clone(),
        commitment: B256::from(model.commitment()?).to_string(),
        input_shape: model.manifest.input.shape.clone(),
        largest_node_steps: model.manifest.provenance["largest_node_steps"].as_u64(),
        kernel_roots: model
            .manifest
            .nodes
            .iter()
            .map(|n| {
                (
                    n.op.kind().name(),
                    B256::from(n.op.kind().kernel_root()).to_string(),
                )
            })
            .collect(),
        nodes,
        weights,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} (commitment {})", report.name, report.commitment);
    println!(
        "input: {:?} {:?}",
        model.manifest.input.dtype, report.input_shape
    );
    if let Some(steps) = report.largest_node_steps {
        println!("largest node: about {steps} VM steps");
    }
    for n in &report.nodes {
        println!(
            "  node {:>2} {:<10} {:<60} -> {:?} {:?}",
            n.index,
            n.name,
            n.op.to_string(),
            n.output_dtype,
            n.output_shape
        );
    }
    for w in &report.weights {
        println!(
            "  weight {:<14} {:?} {:?} {}",
            w.name, w.dtype, w.shape, w.commitment
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct EvalReport {
    model: String,
    data: String,
    count: usize,
    accuracy: f64,
    float_accuracy: f64,
    wall_ms: f64,
}

fn prediction(model: &Model, pixels: &[u8]) -> Result<usize> {
    let trace = model.run(&quantize_image(pixels))?;
    Ok(argmax_of(trace.output()))
}

fn argmax_of(t: &Tensor) -> usize {
    match t {
        Tensor::I32(a) if a.len() == 1 => a.iter().next().copied().unwrap_or(0) as usize,
        Tensor::I8(a) => a
            .iter()
            .enumerate()
            .max_by_key(|(k, v)| (**v, std::cmp::Reverse(*k)))
            .map_or(0, |(k, _)| k),
        other => other.to_le_bytes().first().copied().unwrap_or(0) as usize,
    }
}

/// The accuracy of the integer `model` and of its f32 source `float` on the first `count` images
/// of `data` (fractions in 0..1; 0 for no images), in parallel, ticking `bar` once an image.
fn accuracies(
    model: &Model,
    float: &FloatModel,
    data: &Dataset,
    count: usize,
    bar: &ProgressBar,
) -> Result<(f64, f64)> {
    let results: Vec<(bool, bool)> = (0..count)
        .into_par_iter()
        .map(|i| {
            let label = usize::from(data.labels[i]);
            let int = prediction(model, data.image(i))?;
            let logits = float
                .forward(float_image(data.image(i)))?
                .pop()
                .context("no layers")?
                .1;
            let fl = logits
                .iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (k, &v)| {
                    if v > best.1 {
                        (k, v)
                    } else {
                        best
                    }
                })
                .0;
            bar.inc(1);
            Ok((int == label, fl == label))
        })
        .collect::<Result<_>>()?;
    let n = results.len().max(1) as f64;
    Ok((
        results.iter().filter(|r| r.0).count() as f64 / n,
        results.iter().filter(|r| r.1).count() as f64 / n,
    ))
}

fn eval(args: EvalArgs) -> Result<ExitCode> {
    let model = Model::load(&args.model)?;
    if crate::embed::is_bert(&model) {
        return crate::embed::eval_bert(
            &args.model,
            &model,
            &args.data,
            args.float.as_deref(),
            args.json,
        );
    }
    let float_path = match args.float {
        Some(p) => p,
        None => PathBuf::from(
            model.manifest.provenance["float_model"]
                .as_str()
                .context("model.json records no float model; pass --float")?,
        ),
    };
    let float = FloatModel::load(&float_path)?;
    let data = Dataset::load(&args.data)?;
    let start = Instant::now();
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(data.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images  eta {eta}")
            .expect("valid template"),
    );
    let (accuracy, float_accuracy) = accuracies(&model, &float, &data, data.len(), &bar)?;
    bar.finish_and_clear();
    let report = EvalReport {
        model: args.model.display().to_string(),
        data: args.data.display().to_string(),
        count: data.len(),
        accuracy,
        float_accuracy,
        wall_ms: start.elapsed().as_secs_f64() * 1e3,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} on {} ({} images): integer accuracy {:.2}%, f32 accuracy {:.2}% ({:+.2} points) in {:.1} s",
            report.model,
            report.data,
            report.count,
            100.0 * report.accuracy,
            100.0 * report.float_accuracy,
            100.0 * (report.accuracy - report.float_accuracy),
            report.wall_ms / 1e3
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct InferNode {
    index: usize,
    name: String,
    commitment: String,
    trace_root: String,
    native_ms: f64,
    vm_steps: Option<u64>,
    vm_commitment_matches: Option<bool>,
}

#[derive(Serialize)]
struct InferReport {
    prediction: usize,
    output_commitment: String,
    trace_root: String,
    nodes: Vec<InferNode>,
    native_ms: f64,
}

pub(crate) fn infer(args: InferArgs) -> Result<ExitCode> {
    let model = Model::load(&args.model)?;
    let input = crate::embed::model_input(&model, &args.model, &args.input)?;
    let start = Instant::now();
    let trace = model.run(&input)?;
    let native_ms = start.elapsed().as_secs_f64() * 1e3;
    if let Some(i) = args.node {
        if i >= trace.nodes.len() {
            bail!("--node {i}: the model has {} nodes", trace.nodes.len());
        }
    }
    let mut all_match = true;
    let mut nodes = Vec::new();
    for (index, r) in trace.nodes.iter().enumerate() {
        let check = args.check_vm && args.node.is_none_or(|n| n == index);
        let (steps, matches) = if check {
            let run = model.run_node_in_vm(index, &input, &trace, u64::MAX)?;
            let ok = run.commitment == r.commitment && run.output == r.output;
            all_match &= ok;
            (Some(run.steps), Some(ok))
        } else {
            (None, None)
        };
        nodes.push(InferNode {
            index,
            name: model.manifest.nodes[index].name.clone(),
            commitment: B256::from(r.commitment).to_string(),
            trace_root: B256::from(r.trace_root).to_string(),
            native_ms: r.time.as_secs_f64() * 1e3,
            vm_steps: steps,
            vm_commitment_matches: matches,
        });
    }
    let report = InferReport {
        prediction: argmax_of(trace.output()),
        output_commitment: B256::from(trace.nodes.last().expect("nodes").commitment).to_string(),
        trace_root: B256::from(trace.root()).to_string(),
        nodes,
        native_ms,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("prediction: {}", report.prediction);
        println!(
            "output commitment {}  trace root {}  native {:.3} ms",
            report.output_commitment, report.trace_root, report.native_ms
        );
        for n in &report.nodes {
            let vm = match (n.vm_steps, n.vm_commitment_matches) {
                (Some(steps), Some(true)) => format!("VM {steps} steps, same commitment"),
                (Some(steps), Some(false)) => format!("VM {steps} steps, MISMATCH"),
                _ => String::new(),
            };
            println!(
                "  node {:>2} {:<10} {} {:>9.1} us  {vm}",
                n.index,
                n.name,
                n.commitment,
                n.native_ms * 1e3
            );
        }
    }
    Ok(if all_match {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_MISMATCH)
    })
}

#[derive(Args)]
pub(crate) struct BenchDnnArgs {
    /// Model directory.
    #[arg(default_value = "models/mnist-cnn")]
    model: PathBuf,
    /// The input: a digit (PGM), or for a BERT sentence encoder the text.
    #[arg(long, default_value = "data/mnist/samples/digit-0-label-7.pgm")]
    input: String,
    /// Native runs to take the median of.
    #[arg(long, default_value_t = 50)]
    runs: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// One node's native time beside its VM run.
#[derive(Serialize)]
pub(crate) struct NodeBench {
    pub(crate) name: String,
    pub(crate) op: &'static str,
    /// Median native time of the node.
    pub(crate) native_ms: f64,
    pub(crate) vm_steps: u64,
    pub(crate) vm_ms: f64,
    pub(crate) vm_over_native: f64,
}

/// int8 matmul throughput of the native executor against a scalar loop.
#[derive(Serialize)]
pub(crate) struct MatmulBench {
    shape: [usize; 3],
    native_gmacs: f64,
    scalar_gmacs: f64,
    speedup: f64,
}

/// `opml bench dnn`: a model's native time beside its VM run, node by node.
#[derive(Serialize)]
pub(crate) struct DnnBench {
    pub(crate) model: String,
    /// Median native time of one whole inference, every node's output committed (`committed_ms`).
    pub(crate) native_ms: f64,
    /// Median time of the same inference committing to nothing (`Model::run_plain`).
    pub(crate) plain_ms: f64,
    /// Median time of the inference with every node's output commitment and the trace roots, as
    /// a submitter runs it (`Model::run`).
    pub(crate) committed_ms: f64,
    /// `committed_ms / plain_ms`: what committing adds to answering a request.
    pub(crate) commitment_overhead: f64,
    /// Median time of hashing every node output's commitment one after another on one thread:
    /// the work that `committed_ms` overlaps with the ops.
    pub(crate) hash_ms: f64,
    pub(crate) vm_steps: u64,
    pub(crate) vm_ms: f64,
    pub(crate) vm_over_native: f64,
    pub(crate) nodes: Vec<NodeBench>,
    pub(crate) matmul: MatmulBench,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// int8 matmul of the native executor (the Linear op) against a plain scalar loop, same shapes.
fn bench_matmul() -> Result<MatmulBench> {
    use opml_dnn::{ops::Linear, Op};
    let (m, k, n) = (64usize, 1024usize, 512usize);
    let bytes = |len: usize, seed: usize| -> Vec<u8> {
        (0..len)
            .map(|i| ((i * 31 + seed * 17) % 251) as u8)
            .collect()
    };
    let x = Tensor::from_le_bytes(opml_dnn::DType::I8, &[m, k], &bytes(m * k, 1))?;
    let w = Tensor::from_le_bytes(opml_dnn::DType::I8, &[n, k], &bytes(n * k, 2))?;
    let b = Tensor::from_le_bytes(opml_dnn::DType::I32, &[n], &vec![0; 4 * n])?;
    let sc: Vec<u8> = (0..n)
        .flat_map(|_| [1i32 << 30, 40].into_iter().flat_map(i32::to_le_bytes))
        .collect();
    let sc = Tensor::from_le_bytes(opml_dnn::DType::I32, &[n, 2], &sc)?;
    let op = Op::Linear(Linear { relu: false });
    let macs = (m * k * n) as f64;
    let native = median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(op.native(&[&x, &w, &b, &sc]).expect("valid shapes"));
                t.elapsed().as_secs_f64()
            })
            .collect(),
    );
    let (xs, ws) = (
        x.as_i8()?.as_slice().expect("standard").to_vec(),
        w.as_i8()?.as_slice().expect("standard").to_vec(),
    );
    let scalar = median(
        (0..3)
            .map(|_| {
                let t = Instant::now();
                let mut out = vec![0i32; m * n];
                for i in 0..m {
                    for j in 0..n {
                        let mut acc = 0i32;
                        for kk in 0..k {
                            // One multiply-add at a time, as a plain loop without SIMD would.
                            acc = std::hint::black_box(acc.wrapping_add(
                                i32::from(xs[i * k + kk]) * i32::from(ws[j * k + kk]),
                            ));
                        }
                        out[i * n + j] = acc;
                    }
                }
                std::hint::black_box(out);
                t.elapsed().as_secs_f64()
            })
            .collect(),
    );
    Ok(MatmulBench {
        shape: [m, k, n],
        native_gmacs: macs / native / 1e9,
        scalar_gmacs: macs / scalar / 1e9,
        speedup: scalar / native,
    })
}

pub(crate) fn bench_dnn(args: BenchDnnArgs) -> Result<ExitCode> {
    let runs = args.runs.max(1);
    let report = measure_dnn(&args.model, &args.input, runs)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}: native {:.1} us per inference (median of {runs}); VM {} steps in {:.1} ms ({:.0}x native)",
        report.model,
        report.native_ms * 1e3,
        report.vm_steps,
        report.vm_ms,
        report.vm_over_native
    );
    println!(
        "  plain {:.1} us, with every node's output committed {:.1} us ({:.2}x); the commitments alone {:.1} us on one thread",
        report.plain_ms * 1e3,
        report.committed_ms * 1e3,
        report.commitment_overhead,
        report.hash_ms * 1e3
    );
    let mut by_kind: Vec<(&str, f64)> = Vec::new();
    for n in &report.nodes {
        match by_kind.iter_mut().find(|(op, _)| *op == n.op) {
            Some((_, ms)) => *ms += n.native_ms,
            None => by_kind.push((n.op, n.native_ms)),
        }
    }
    by_kind.sort_by(|a, b| b.1.total_cmp(&a.1));
    let kinds: Vec<String> = by_kind
        .iter()
        .map(|(op, ms)| format!("{op} {:.1}", ms * 1e3))
        .collect();
    println!("  native us by op: {}", kinds.join(", "));
    println!(
        "  {:<10} {:<11} {:>10} {:>11} {:>9} {:>9}",
        "node", "op", "native us", "VM steps", "VM ms", "VM/nat"
    );
    for n in &report.nodes {
        println!(
            "  {:<10} {:<11} {:>10.1} {:>11} {:>9.2} {:>9.0}",
            n.name,
            n.op,
            n.native_ms * 1e3,
            n.vm_steps,
            n.vm_ms,
            n.vm_over_native
        );
    }
    let mm = &report.matmul;
    println!(
        "int8 matmul {}x{}x{}: native executor {:.2} GMAC/s, plain scalar loop {:.2} GMAC/s ({:.1}x)",
        mm.shape[0], mm.shape[1], mm.shape[2], mm.native_gmacs, mm.scalar_gmacs, mm.speedup
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs `model_dir` on `input` natively `runs` times (the median is kept) and each node once in the
/// VM (checked against the native commitment); with the int8 matmul throughput.
pub(crate) fn measure_dnn(model_dir: &Path, input: &str, runs: usize) -> Result<DnnBench> {
    let model = Model::load(model_dir)?;
    let input = crate::embed::model_input(&model, model_dir, input)?;
    let runs = runs.max(1);
    let traces: Vec<_> = (0..runs)
        .map(|_| model.run(&input))
        .collect::<Result<_, _>>()?;
    let trace = &traces[0];
    // Plain and committed runs taken in turn, so that a change in the machine's load touches both.
    let (mut plain, mut committed, mut hash) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        std::hint::black_box(model.run_plain(&input)?);
        plain.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        std::hint::black_box(model.run(&input)?);
        committed.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        for node in &trace.nodes {
            std::hint::black_box(node.output.commitment()?);
        }
        hash.push(t.elapsed().as_secs_f64());
    }
    let (plain, total, hash) = (median(plain), median(committed), median(hash));
    let mut nodes = Vec::new();
    let (mut vm_steps, mut vm_secs) = (0u64, 0f64);
    for (index, node) in model.manifest.nodes.iter().enumerate() {
        let native = median(
            traces
                .iter()
                .map(|t| t.nodes[index].time.as_secs_f64())
                .collect(),
        );
        let start = Instant::now();
        let run = model.run_node_in_vm(index, &input, trace, u64::MAX)?;
        let vm = start.elapsed().as_secs_f64();
        if run.commitment != trace.nodes[index].commitment {
            bail!(
                "node {index} ({}): the VM disagrees with the native run",
                node.name
            );
        }
        vm_steps += run.steps;
        vm_secs += vm;
        nodes.push(NodeBench {
            name: node.name.clone(),
            op: node.op.kind().name(),
            native_ms: native * 1e3,
            vm_steps: run.steps,
            vm_ms: vm * 1e3,
            vm_over_native: vm / native.max(1e-9),
        });
    }
    let report = DnnBench {
        model: model.manifest.name.clone(),
        native_ms: total * 1e3,
        plain_ms: plain * 1e3,
        committed_ms: total * 1e3,
        commitment_overhead: total / plain.max(1e-9),
        hash_ms: hash * 1e3,
        vm_steps,
        vm_ms: vm_secs * 1e3,
        vm_over_native: vm_secs / total.max(1e-9),
        nodes,
        matmul: bench_matmul()?,
    };
    Ok(report)
}
