//! `opml embed` and the BERT half of `opml model import`: text in, integer sentence embeddings out,
//! measured against the f32 model they were quantized from.

use crate::EXIT_MISMATCH;
use alloy::primitives::B256;
use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use opml_dnn::bert::{cosine, l2_normalize, padded_ids, FloatBert};
use opml_dnn::mnist::{quantize_image, read_pgm};
use opml_dnn::text::Tokenizer;
use opml_dnn::{Model, Tensor};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// The tokenizer's file, in a BERT folder and in the integer model directory imported from it.
const TOKENIZER: &str = "tokenizer.json";

#[derive(Args)]
pub(crate) struct EmbedArgs {
    /// The integer model directory (or model.json).
    model: PathBuf,
    /// The texts to embed.
    #[arg(required = true)]
    texts: Vec<String>,
    /// Also compute the f32 model's embedding and the cosine between the two.
    #[arg(long)]
    float: bool,
    /// The BERT folder (tokenizer.json and the f32 weights); defaults to the folder the model was
    /// imported from, as its provenance records it.
    #[arg(long, value_name = "DIR")]
    source: Option<PathBuf>,
    /// Re-execute every node of every text in the VM and compare output commitments.
    #[arg(long)]
    check_vm: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Embedding {
    text: String,
    tokens: usize,
    /// The integer model's output commitment.
    output_commitment: String,
    /// The integer embedding, L2-normalised (normalising is left to this float edge: cosine
    /// similarity does not see a vector's length).
    embedding: Vec<f32>,
    float_embedding: Option<Vec<f32>>,
    cosine: Option<f64>,
    vm_nodes_checked: Option<usize>,
    /// VM steps of all nodes together, with --check-vm.
    vm_steps: Option<u64>,
    wall_ms: f64,
}

/// The folder the model was imported from, as its provenance records it.
fn source(model: &Model, given: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    match model.manifest.provenance["source"].as_str() {
        Some(s) => Ok(PathBuf::from(s)),
        None => bail!("the model does not record its source folder; give --source DIR"),
    }
}

/// The tokens of every request of a BERT sentence encoder, or `None` for another model.
fn bert_tokens(model: &Model) -> Option<usize> {
    match model.manifest.input.shape.as_slice() {
        [t] if model.manifest.provenance["architecture"] == "bert" => Some(*t),
        _ => None,
    }
}

/// The tokenizer a BERT model directory carries (`opml model import` copies it there).
fn model_tokenizer(model_path: &Path, tokens: usize) -> Result<Tokenizer> {
    let dir = if model_path.is_dir() {
        model_path
    } else {
        model_path.parent().unwrap_or(Path::new("."))
    };
    Ok(Tokenizer::from_file(&dir.join(TOKENIZER), tokens)?)
}

/// The tensor that the model at `model_path` takes for a request `input`: for a BERT sentence
/// encoder the text itself, tokenized and padded to the model's tokens; for the MNIST models the
/// path of a 28x28 PGM digit.
pub(crate) fn model_input(model: &Model, model_path: &Path, input: &str) -> Result<Tensor> {
    match bert_tokens(model) {
        Some(tokens) => {
            let ids = model_tokenizer(model_path, tokens)?.encode(input)?;
            Ok(padded_ids(&ids, tokens))
        }
        None => Ok(quantize_image(&read_pgm(Path::new(input))?)),
    }
}

/// The integer model's pooled output at its `scale`, L2-normalised (normalising is left to this
/// float edge: cosine similarity does not see a vector's length).
fn unit_embedding(output: &Tensor, scale: f64) -> Result<Vec<f32>> {
    let mut v: Vec<f32> = output
        .as_i16()?
        .iter()
        .map(|&x| (f64::from(x) * scale) as f32)
        .collect();
    l2_normalize(&mut v);
    Ok(v)
}

/// The scale of a BERT model's pooled output.
fn output_scale(model: &Model) -> Result<f64> {
    model.manifest.provenance["output_scale"]
        .as_f64()
        .context("the model records no output_scale")
}

pub(crate) fn embed(args: EmbedArgs) -> Result<ExitCode> {
    let model = Model::load(&args.model)?;
    let Some(tokens) = bert_tokens(&model) else {
        bail!(
            "{}: not a BERT sentence encoder (import one with opml model import BERT_FOLDER)",
            args.model.display()
        );
    };
    let scale = output_scale(&model)?;
    let tokenizer = model_tokenizer(&args.model, tokens)?;
    let float = if args.float {
        Some(FloatBert::load(&source(&model, args.source.as_deref())?)?)
    } else {
        None
    };
    let mut out = Vec::new();
    let mut mismatch = false;
    for text in &args.texts {
        let start = Instant::now();
        let ids = tokenizer.encode(text)?;
        let input = padded_ids(&ids, tokens);
        let trace = model.run(&input)?;
        let embedding = unit_embedding(trace.output(), scale)?;
        let float_embedding = float.as_ref().map(|f| f.embed(&ids)).transpose()?;
        let mut vm_steps = 0u64;
        let vm_nodes_checked = if args.check_vm {
            for i in 0..model.manifest.nodes.len() {
                let run =
                    model.run_node_in_vm(i, &input, &trace, opml_dnn::bert::MAX_NODE_STEPS * 2)?;
                if run.commitment != trace.nodes[i].commitment {
                    eprintln!(
                        "node {i} ({}): the VM's output differs",
                        model.manifest.nodes[i].name
                    );
                    mismatch = true;
                }
                vm_steps += run.steps;
            }
            Some(model.manifest.nodes.len())
        } else {
            None
        };
        out.push(Embedding {
            text: text.clone(),
            tokens: ids.len(),
            output_commitment: B256::from(trace.nodes.last().expect("a node").commitment)
                .to_string(),
            cosine: float_embedding.as_ref().map(|f| cosine(&embedding, f)),
            embedding,
            float_embedding,
            vm_nodes_checked,
            vm_steps: args.check_vm.then_some(vm_steps),
            wall_ms: start.elapsed().as_secs_f64() * 1e3,
        });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for e in &out {
            let head: Vec<String> = e
                .embedding
                .iter()
                .take(6)
                .map(|v| format!("{v:+.4}"))
                .collect();
            println!(
                "{:?} ({} tokens): [{} ...]",
                e.text,
                e.tokens,
                head.join(", ")
            );
            if let Some(c) = e.cosine {
                println!("  cosine to the f32 model {c:.5}");
            }
            if let (Some(n), Some(steps)) = (e.vm_nodes_checked, e.vm_steps) {
                println!("  {n} nodes re-executed in the VM ({steps} steps)");
            }
        }
    }
    Ok(if mismatch {
        ExitCode::from(EXIT_MISMATCH)
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(Serialize)]
struct BertImportReport {
    out: String,
    name: String,
    commitment: String,
    nodes: usize,
    weights: usize,
    tokens: usize,
    calibration: String,
    samples: usize,
    largest_node_steps: u64,
    wall_ms: f64,
}

/// Quantizes the BERT folder `dir` into `out`, calibrated on up to `samples` lines of `sentences`.
pub(crate) fn import_bert(
    dir: &Path,
    sentences: &Path,
    samples: usize,
    tokens: usize,
    out: &Path,
    json: bool,
) -> Result<ExitCode> {
    let text = std::fs::read_to_string(sentences)
        .with_context(|| format!("reading {}", sentences.display()))?;
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(samples)
        .collect();
    if lines.is_empty() {
        bail!("{}: no sentences to calibrate on", sentences.display());
    }
    if sentences.file_name().is_some_and(|n| n == "test.txt") {
        bail!(
            "{} holds the held-out test sentences; calibrate on data/sentences/calibration.txt",
            sentences.display()
        );
    }
    let start = Instant::now();
    let float = FloatBert::load(dir)?;
    let tokenizer = Tokenizer::from_file(&dir.join(TOKENIZER), tokens)?;
    let ids = lines
        .iter()
        .map(|l| tokenizer.encode(l))
        .collect::<Result<Vec<_>, _>>()?;
    let name = dir
        .file_name()
        .map_or("bert".into(), |n| n.to_string_lossy().to_lowercase());
    let mut model = float.quantize(&name, &ids, tokens)?;
    model.manifest.provenance["source"] = serde_json::json!(dir.display().to_string());
    model.save(out)?;
    std::fs::copy(dir.join(TOKENIZER), out.join(TOKENIZER))
        .with_context(|| format!("copying {TOKENIZER} into {}", out.display()))?;
    let report = BertImportReport {
        out: out.display().to_string(),
        commitment: B256::from(model.commitment()?).to_string(),
        nodes: model.manifest.nodes.len(),
        weights: model.weights.len(),
        tokens,
        calibration: sentences.display().to_string(),
        samples: ids.len(),
        largest_node_steps: model.manifest.provenance["largest_node_steps"]
            .as_u64()
            .unwrap_or(0),
        wall_ms: start.elapsed().as_secs_f64() * 1e3,
        name,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{}: {} nodes, {} weight tensors, {} tokens, calibrated on {} sentences of {} in {:.2} s",
            report.out,
            report.nodes,
            report.weights,
            report.tokens,
            report.samples,
            report.calibration,
            report.wall_ms / 1e3
        );
        println!("largest node: about {} VM steps", report.largest_node_steps);
        println!("model commitment {}", report.commitment);
    }
    Ok(ExitCode::SUCCESS)
}

/// `opml model eval` of a BERT sentence encoder: cosine of each integer embedding to the f32
/// model's.
#[derive(Serialize)]
struct EmbeddingEval {
    model: String,
    data: String,
    count: usize,
    min_cosine: f64,
    mean_cosine: f64,
    /// The sentence of the least cosine.
    worst: String,
    wall_ms: f64,
}

/// Whether the model at `model` is a BERT sentence encoder (`opml model eval` then compares
/// embeddings instead of predictions).
pub(crate) fn is_bert(model: &Model) -> bool {
    bert_tokens(model).is_some()
}

/// Embeds every line of `sentences` with the integer model and the f32 one it came from; prints
/// the least and the mean cosine between them.
pub(crate) fn eval_bert(
    model_path: &Path,
    model: &Model,
    sentences: &Path,
    float: Option<&Path>,
    json: bool,
) -> Result<ExitCode> {
    let tokens = bert_tokens(model).context("not a BERT sentence encoder")?;
    let text = std::fs::read_to_string(sentences)
        .with_context(|| format!("reading {}", sentences.display()))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        bail!("{}: no sentences", sentences.display());
    }
    let start = Instant::now();
    let tokenizer = model_tokenizer(model_path, tokens)?;
    let float = FloatBert::load(&source(model, float)?)?;
    let scale = output_scale(model)?;
    let bar = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(lines.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} sentences  eta {eta}")
            .expect("valid template"),
    );
    let mut cosines = Vec::with_capacity(lines.len());
    for line in &lines {
        let ids = tokenizer.encode(line)?;
        let trace = model.run(&padded_ids(&ids, tokens))?;
        let integer = unit_embedding(trace.output(), scale)?;
        // The float model sees the same (possibly cut) tokens as the integer one.
        let cut = &ids[..ids.len().min(tokens)];
        cosines.push(cosine(&integer, &float.embed(cut)?));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let (worst, min_cosine) = cosines
        .iter()
        .enumerate()
        .map(|(i, &c)| (i, c))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("at least one sentence");
    let report = EmbeddingEval {
        model: model_path.display().to_string(),
        data: sentences.display().to_string(),
        count: lines.len(),
        min_cosine,
        mean_cosine: cosines.iter().sum::<f64>() / cosines.len() as f64,
        worst: lines[worst].to_string(),
        wall_ms: start.elapsed().as_secs_f64() * 1e3,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} on {} ({} sentences, {tokens} tokens): cosine to the f32 embeddings min {:.5}, mean {:.5} in {:.1} s",
            report.model,
            report.data,
            report.count,
            report.min_cosine,
            report.mean_cosine,
            report.wall_ms / 1e3
        );
        println!("least: {:?}", report.worst);
    }
    Ok(ExitCode::SUCCESS)
}
