//! `opml`: the command line of the opML fraud-proof toolkit, for model submitters, challengers and
//! researchers.

mod bench;
mod bots;
mod demo;
mod dispute;
mod embed;
mod gemm_bench;
mod llm;
mod model;
mod onchain;
mod report;
mod vm;

use clap::{Parser, Subcommand};
use std::ffi::OsStr;
use std::io::IsTerminal;
use std::process::ExitCode;

/// Exit status when the program in the VM faulted.
pub(crate) const EXIT_FAULT: u8 = 125;
/// Exit status when the step limit was reached before the program exited.
pub(crate) const EXIT_STEP_LIMIT: u8 = 124;
/// Exit status for bad input to opml itself (unreadable or malformed files, bad arguments).
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit status when a check found a mismatch (a witness that does not verify).
pub(crate) const EXIT_MISMATCH: u8 = 1;

#[derive(Parser)]
#[command(
    name = "opml",
    version,
    about = "Optimistic ML: post ML results on Ethereum and defend them with fraud proofs",
    long_about = "Optimistic ML: post ML results on Ethereum and defend them with fraud proofs.\n\n\
        A dispute narrows, by bisection, over a model's graph nodes and then over the VM steps of one \
        node, down to a single RV32IM instruction that the chain executes. This tool runs that VM, \
        produces and checks its one-step witnesses, and measures it.\n\n\
        Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) for more. They are coloured only on \
        a terminal and without NO_COLOR; --log-format json writes one JSON object per line."
)]
struct Cli {
    /// How logs are written on stderr: text (for people) or json (one object per line, for log
    /// collectors).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per event (timestamp, level, fields).
    Json,
}

/// Whether logs get ANSI colour codes: text logs to a terminal only, and never while `NO_COLOR`
/// is set to a non-empty value (no-color.org), so that files, pipes and log collectors get
/// plain text.
fn use_ansi(format: LogFormat, terminal: bool, no_color: Option<&OsStr>) -> bool {
    format == LogFormat::Text && terminal && no_color.is_none_or(|v| v.is_empty())
}

#[derive(Subcommand)]
enum Command {
    /// Run RV32IM programs in the fraud-proof VM, produce and verify one-step witnesses.
    #[command(subcommand)]
    Vm(vm::VmCommand),
    /// The main job: an end-to-end opML dispute on the embedded chain. Real held-out MNIST digits
    /// are requested; an honest submitter answers most and a faulty one (--fault) the last; the
    /// challenger re-executes every result, disputes only the faulty one and wins it down to one VM
    /// step the chain executes; honest results become final and the bonds are paid out. Ends with
    /// the transcript (each move: phase, segment, gas, time), the results, bonds and total time.
    Demo(demo::DemoArgs),
    /// Quantize, inspect and evaluate integer models.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Run a model on one input: prediction, per-node commitments, the phase-2 trace root; with
    /// --check-vm, re-execute nodes in the VM and compare (exit status 1 on a mismatch).
    Infer(model::InferArgs),
    /// Sentence embeddings of an integer BERT model (opml model import of a BERT folder): the
    /// integer embedding of each text, with --float the f32 model's and their cosine; with
    /// --check-vm every node re-executed in the VM (exit status 1 on a mismatch).
    Embed(embed::EmbedArgs),
    /// Greedy decoding by a LLaMA-shaped decoder with weights from a seed: token ids in, token ids
    /// out, with the token state (tokens and KV cache committed) after every step.
    Generate(llm::GenerateArgs),
    /// Benchmarks of proof costs.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Dispute games: simulate a whole dispute between an honest and a faulty party.
    #[command(subcommand)]
    Dispute(dispute::DisputeCommand),
    /// The submitter bot: answers inference requests for its models with a bonded result,
    /// defends every dispute on them to the end, finalizes and withdraws. Runs until Ctrl-C or
    /// SIGTERM; its database lets it resume after any crash.
    Submitter(bots::BotArgs),
    /// The challenger bot: re-executes every result of the models it knows, challenges those that
    /// differ, plays every game to the end and withdraws. Runs until Ctrl-C or SIGTERM; its
    /// database lets it resume after any crash.
    Challenger(bots::BotArgs),
    /// A scripted adversary bot, for tests and demonstrations: a submitter or challenger from the
    /// same TOML file as the honest bots, made to lie by --fault (which no config file can do).
    /// Never run it with money you mind losing: it loses its bonds.
    Adversary(bots::AdversaryArgs),
    /// Deploy Step, NodeVm, Registry and DisputeGame on a node and register models (signed by dev
    /// account 0, or the key of --private-key-env or --keystore).
    Deploy(bots::DeployArgs),
    /// Post an inference request with a held-out MNIST digit; prints the request id.
    Request(bots::RequestArgs),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Gas of one Step contract transaction by instruction class (ALU, load, store, branch, M
    /// extension, read-chunk, write-chunk, exit, ...), base cost and calldata included.
    Gas(onchain::GasArgs),
    /// Native time per op and per model, VM steps and time per node and their ratio, and int8
    /// matmul throughput of the native executor against a plain scalar loop.
    Dnn(model::BenchDnnArgs),
    /// G MAC/s of the native executor's int8 GEMM kernel (AVX-512 VNNI, AVX2 or scalar, as this
    /// CPU allows) against the scalar reference, same shape, threads and process.
    Gemm(gemm_bench::BenchGemmArgs),
    /// The researchers' proof-cost report, every figure measured in this run: one-step gas and
    /// witness bytes by instruction class over every step of the example programs; dispute
    /// rounds and gas per party against graph and node size for arities 2 to 64 (moves measured
    /// on the embedded chain, composed over sizes); time to a witness against the checkpoint
    /// interval; VM speed beside qemu-riscv32 and native against VM per op kind; outside anchors
    /// with their sources. Writes report.md, gas.json and SVG plots, and prints where.
    Report(report::ReportArgs),
    /// A LLaMA-shaped decoder: native ms per token and GMAC/s, the commitments' overhead over
    /// plain inference, nodes per token, and the largest node's VM steps and time.
    Llm(llm::BenchLlmArgs),
}

/// Restores the default action of SIGPIPE (Rust ignores it, so that a write to a closed pipe
/// becomes an error and `println!` panics): `opml ... --json | head -1` then ends quietly, as
/// other Unix tools do, instead of panicking with exit status 101.
fn die_quietly_on_closed_pipes() {
    // SAFETY: called first thing in `main`, before any other thread exists; `signal` with
    // `SIG_DFL` only sets the signal's disposition and touches no memory of ours.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// `err` and each of its causes, once: a cause whose text its parent already printed (an error
/// that formats its source into its own message) is not printed again.
fn report(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn main() -> ExitCode {
    die_quietly_on_closed_pipes();
    let cli = Cli::parse();
    // The demo tells its own story on stdout; its bots' logs are there on request (RUST_LOG=info).
    let default_level = if matches!(cli.command, Command::Demo(_)) {
        "warn"
    } else {
        "info"
    };
    let ansi = use_ansi(
        cli.log_format,
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let result = match cli.command {
        Command::Vm(cmd) => vm::run(cmd),
        Command::Demo(args) => demo::demo(args),
        Command::Bench(BenchCommand::Gas(args)) => onchain::bench_gas(args),
        Command::Bench(BenchCommand::Dnn(args)) => model::bench_dnn(args),
        Command::Bench(BenchCommand::Gemm(args)) => gemm_bench::bench_gemm(args),
        Command::Bench(BenchCommand::Report(args)) => report::run(args),
        Command::Bench(BenchCommand::Llm(args)) => llm::bench_llm(args),
        Command::Generate(args) => llm::generate(args),
        Command::Model(cmd) => model::run(cmd),
        Command::Infer(args) => model::infer(args),
        Command::Embed(args) => embed::embed(args),
        Command::Dispute(cmd) => dispute::run(cmd),
        Command::Submitter(args) => bots::run_bot(opml_bisect::Side::Submitter, args),
        Command::Challenger(args) => bots::run_bot(opml_bisect::Side::Challenger, args),
        Command::Adversary(args) => bots::run_adversary(args),
        Command::Deploy(args) => bots::deploy(args),
        Command::Request(args) => bots::request(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", report(&err));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{report, use_ansi, Cli, LogFormat};
    use clap::Parser;
    use std::ffi::OsStr;

    #[test]
    fn colours_only_text_logs_on_a_terminal_without_no_color() {
        let set = Some(OsStr::new("1"));
        let empty = Some(OsStr::new(""));
        // (format, stderr is a terminal, NO_COLOR) → colours.
        let cases = [
            (LogFormat::Text, true, None, true),
            (LogFormat::Text, true, set, false),
            // An empty NO_COLOR is as good as unset (no-color.org).
            (LogFormat::Text, true, empty, true),
            (LogFormat::Text, false, None, false),
            (LogFormat::Text, false, set, false),
            (LogFormat::Json, true, None, false),
            (LogFormat::Json, true, set, false),
            (LogFormat::Json, false, None, false),
            (LogFormat::Json, false, set, false),
        ];
        for (format, terminal, no_color, want) in cases {
            assert_eq!(
                use_ansi(format, terminal, no_color),
                want,
                "{format:?}, terminal {terminal}, NO_COLOR {no_color:?}"
            );
        }
    }

    #[test]
    fn log_format_and_metrics_addr_parse_where_operators_put_them() {
        let cases: [(&[&str], Option<LogFormat>); 6] = [
            (
                &["opml", "submitter", "--config", "a.toml"],
                Some(LogFormat::Text),
            ),
            (
                &[
                    "opml",
                    "--log-format",
                    "json",
                    "challenger",
                    "--config",
                    "a.toml",
                ],
                Some(LogFormat::Json),
            ),
            // Global: after the subcommand too.
            (
                &[
                    "opml",
                    "submitter",
                    "--config",
                    "a.toml",
                    "--log-format",
                    "json",
                ],
                Some(LogFormat::Json),
            ),
            (
                &[
                    "opml",
                    "submitter",
                    "--config",
                    "a.toml",
                    "--metrics-addr",
                    "127.0.0.1:9464",
                ],
                Some(LogFormat::Text),
            ),
            (
                &[
                    "opml",
                    "--log-format",
                    "xml",
                    "submitter",
                    "--config",
                    "a.toml",
                ],
                None,
            ),
            (
                &[
                    "opml",
                    "challenger",
                    "--config",
                    "a.toml",
                    "--metrics-addr",
                    "localhost",
                ],
                None,
            ),
        ];
        for (argv, want) in cases {
            let got = Cli::try_parse_from(argv).ok().map(|c| c.log_format);
            assert_eq!(got, want, "{argv:?}");
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("model models/x: {source}")]
    struct Wrapping {
        source: std::io::Error,
    }

    #[test]
    fn each_cause_is_printed_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let cases = [
            (
                anyhow::Error::new(Wrapping { source: io() }).context("loading the bot"),
                "loading the bot: model models/x: no such file",
            ),
            (
                anyhow::Error::new(io()).context("reading a.json"),
                "reading a.json: no such file",
            ),
            (anyhow::anyhow!("plain"), "plain"),
        ];
        for (err, want) in cases {
            assert_eq!(report(&err), want);
        }
    }
}
