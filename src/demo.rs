//! `opml demo`, the main job: an end-to-end opML dispute on the embedded chain. Real held-out MNIST
//! digits are requested, an honest submitter answers most of them and a faulty one the last; the
//! challenger re-executes every result, disputes only the faulty one and wins it down to one VM
//! step executed by the chain; the honest results become final and every bond is paid out.

use crate::onchain::runtime;
use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use opml_bisect::simulate::short;
use opml_bisect::{
    advance_time, play_game, Challenger, Deployment, Fault, GameClient, GameParams, MoveRecord,
    ResultStatus, Side, Submitter,
};
use opml_contracts::dev_signer;
use opml_dnn::mnist::{quantize_image, Dataset};
use opml_dnn::{Model, Tensor};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[derive(Args)]
pub(crate) struct DemoArgs {
    /// The model the requests name.
    #[arg(long, default_value = "models/mnist-cnn")]
    model: PathBuf,
    /// Held-out digits to request (the test split of scripts/mnist).
    #[arg(long, default_value = "data/mnist/test.safetensors")]
    data: PathBuf,
    /// Requests to post; the faulty submitter answers the last one, the honest one the others.
    #[arg(long, default_value_t = 3)]
    requests: usize,
    /// The faulty submitter's lie: node=K flips a value of node K's output (see `opml dispute
    /// simulate --help` for the others a submitter can tell).
    #[arg(long, default_value = "node=2")]
    fault: Fault,
    /// Sub-segments per dissection move (2 = bisection).
    #[arg(long, default_value_t = 2)]
    arity: u64,
    /// Print the transcript as one JSON object instead of tables.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    chain: crate::onchain::ChainArgs,
}

/// Who sent a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Actor {
    Requester,
    HonestSubmitter,
    FaultySubmitter,
    Challenger,
}

#[derive(Serialize)]
struct DemoMove {
    actor: Actor,
    game: Option<u64>,
    /// The transaction (its `party` is the game side where it has one).
    #[serde(flatten)]
    record: MoveRecord,
}

#[derive(Serialize)]
struct DemoResult {
    request: u64,
    result: u64,
    /// Index of the digit in the held-out split, and its label.
    digit: usize,
    label: u8,
    submitter: Actor,
    /// The class the posted output says.
    prediction: i32,
    output: String,
    disputed: bool,
    status: ResultStatus,
}

#[derive(Serialize)]
struct DemoReport {
    /// `embedded`, or the node's URL.
    chain: String,
    model: String,
    fault: String,
    arity: u64,
    results: Vec<DemoResult>,
    moves: Vec<DemoMove>,
    gas: BTreeMap<String, u64>,
    /// Wei credited to each party at the end (paid out by the withdrawals that follow).
    credits: BTreeMap<String, String>,
    /// The game contract's balance after every party withdrew.
    final_balance: String,
    total_ms: f64,
}

fn prediction(t: &Tensor) -> i32 {
    let bytes = t.to_le_bytes();
    i32::from_le_bytes(bytes[..4].try_into().expect("an arg_max output"))
}

pub(crate) fn demo(args: DemoArgs) -> Result<ExitCode> {
    if !args.fault.is_submitters() {
        bail!("--fault {}: the demo's faulty party is a submitter (node=K, output, step=K:N, trace=K, steps=K:+D or boundary=K)", args.fault);
    }
    if args.requests == 0 {
        bail!("--requests must be at least 1");
    }
    let model = Arc::new(Model::load(&args.model)?);
    let data = Dataset::load(&args.data)?;
    if args.requests > data.len() {
        bail!(
            "--requests {}: {} has {} digits",
            args.requests,
            args.data.display(),
            data.len()
        );
    }
    let report = runtime()?.block_on(run(&args, model, &data))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report);
    }
    let ok = report
        .results
        .iter()
        .all(|r| (r.submitter == Actor::HonestSubmitter) == (r.status == ResultStatus::Final));
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_MISMATCH)
    })
}

fn step(json: bool, text: String) {
    if !json {
        println!("{text}");
    }
}

async fn run(args: &DemoArgs, model: Arc<Model>, data: &Dataset) -> Result<DemoReport> {
    let start = Instant::now();
    let json = args.json;
    let (providers, chain_name) = args.chain.providers(4).await?;
    let provider = |i: usize| providers[i].clone();
    let params = GameParams {
        arity: args.arity,
        ..GameParams::default()
    };
    step(
        json,
        format!(
            "== opml demo on the {chain_name} chain: {} on {} held-out digits, the last answered with fault {} (arity {})",
            model.manifest.name, args.requests, args.fault, args.arity
        ),
    );
    let deployment = Deployment::deploy(&provider(0), &params)
        .await
        .context("deploying the contracts")?;
    step(json, format!(
        "-- deployed Step {}, NodeVm {}, Registry {} (kernel images of {} op kinds), DisputeGame {}",
        deployment.step, deployment.node_vm, deployment.registry, opml_dnn::OpKind::ALL.len(), deployment.game
    ));
    let (_, commitment) = deployment
        .register_model(
            &provider(1),
            &model,
            &format!("file:{}", args.model.display()),
        )
        .await
        .context("registering the model")?;
    step(
        json,
        format!(
            "-- registered {} as {}",
            model.manifest.name,
            short(&commitment)
        ),
    );

    let client = |i| GameClient::new(deployment.game, provider(i));
    let requester = client(0).await?;
    let honest = client(1).await?;
    let attacker = client(2).await?;
    let faulty = client(3).await?;
    let mut moves: Vec<DemoMove> = Vec::new();
    let spec = &model.manifest.input;
    let header = opml_dnn::tensor::header(spec.dtype, &spec.shape)?;

    // Requests with real digits, answered as they come.
    let mut submitters: BTreeMap<u64, (Actor, Submitter)> = BTreeMap::new();
    let mut results = Vec::new();
    for digit in 0..args.requests {
        let input = quantize_image(data.image(digit));
        let t = Instant::now();
        let (tx, request) = requester
            .request(commitment, &header, &input.to_le_bytes())
            .await?;
        moves.push(DemoMove {
            actor: Actor::Requester,
            game: None,
            record: MoveRecord::new(
                Side::Submitter,
                "request",
                None,
                format!("digit {digit} (label {})", data.labels[digit]),
                tx.gas,
                t,
            ),
        });
        let (actor, fault, client) = if digit + 1 == args.requests {
            (Actor::FaultySubmitter, args.fault, &faulty)
        } else {
            (Actor::HonestSubmitter, Fault::None, &honest)
        };
        let submitter = Submitter::new(model.clone(), input, fault)?;
        let t = Instant::now();
        let (tx, result) = client
            .submit_result(
                request,
                submitter.output(),
                submitter.trace_root(),
                params.result_bond,
            )
            .await?;
        let predicted = prediction(submitter.view().outputs().last().expect("nodes"));
        moves.push(DemoMove {
            actor,
            game: None,
            record: MoveRecord::new(
                Side::Submitter,
                "post-result",
                None,
                format!("request {request}: class {predicted}"),
                tx.gas,
                t,
            ),
        });
        step(json, format!(
            "-- request {request}: digit {digit} (label {}); {:?} posts class {predicted}, output {}",
            data.labels[digit], actor, short(&submitter.output())
        ));
        results.push(DemoResult {
            request,
            result,
            digit,
            label: data.labels[digit],
            submitter: actor,
            prediction: predicted,
            output: format!("0x{}", hex::encode(submitter.output())),
            disputed: false,
            status: ResultStatus::Pending,
        });
        submitters.insert(result, (actor, submitter));
    }

    // The challenger watches the chain: every posted result, re-executed from the request's logged input.
    let posted = attacker
        .contract()
        .ResultPosted_filter()
        .from_block(0)
        .query()
        .await
        .context("reading ResultPosted logs")?;
    for (event, _) in posted {
        let requested = attacker
            .contract()
            .Requested_filter()
            .topic1(alloy::primitives::U256::from(event.request))
            .from_block(0)
            .query()
            .await
            .context("reading Requested logs")?;
        let Some((request, _)) = requested.last() else {
            bail!(
                "result {} names request {}, which has no Requested log",
                event.result,
                event.request
            );
        };
        let input =
            Tensor::from_le_bytes(spec.dtype, &spec.shape, &request.data).with_context(|| {
                format!(
                    "request {}: the logged input is not the model's",
                    event.request
                )
            })?;
        let mut challenger = Challenger::new(model.clone(), input, Fault::None)?;
        if !challenger.disputes(event.output.0, event.traceRoot.0) {
            step(
                json,
                format!("-- challenger re-ran result {}: agrees", event.result),
            );
            continue;
        }
        let t = Instant::now();
        let (tx, game) = attacker
            .challenge(event.result, params.challenge_bond)
            .await?;
        moves.push(DemoMove {
            actor: Actor::Challenger,
            game: Some(game),
            record: MoveRecord::new(
                Side::Challenger,
                "challenge",
                None,
                format!("result {}", event.result),
                tx.gas,
                t,
            ),
        });
        step(
            json,
            format!(
                "-- challenger re-ran result {}: differs; opens game {game}",
                event.result
            ),
        );
        let (actor, submitter) = submitters.get_mut(&event.result).expect("our own results");
        let defender = if *actor == Actor::FaultySubmitter {
            &faulty
        } else {
            &honest
        };
        let actor = *actor;
        let bar = if json {
            ProgressBar::hidden()
        } else {
            ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("   {spinner} game {prefix}: {msg}")
                    .expect("template"),
            )
        };
        bar.set_prefix(game.to_string());
        let mut record = |r: MoveRecord| {
            bar.set_message(format!(
                "{} by the {:?} in phase {} on [{}, {}]",
                r.action, r.party, r.phase, r.segment[0], r.segment[1]
            ));
            bar.tick();
            moves.push(DemoMove {
                actor: if r.party == Side::Challenger {
                    Actor::Challenger
                } else {
                    actor
                },
                game: Some(game),
                record: r,
            });
        };
        let played = play_game(
            &provider(0),
            game,
            (defender, submitter),
            (&attacker, &mut challenger),
            &mut record,
        )
        .await?;
        bar.finish_and_clear();
        let view = attacker.view(game).await?;
        step(
            json,
            format!(
                "-- game {game} over: {:?} wins{}",
                view.winner.expect("over"),
                played
                    .node
                    .map(|n| format!(
                        " (node {n}, {} VM steps, one executed on chain)",
                        played.steps.unwrap_or(0)
                    ))
                    .unwrap_or_default()
            ),
        );
        if let Some(r) = results.iter_mut().find(|r| r.result == event.result) {
            r.disputed = true;
        }
    }

    // Past the challenge window the undisputed results become final.
    advance_time(&provider(0), params.challenge_window + 1).await?;
    for r in &mut results {
        if honest.result_status(r.result).await? == ResultStatus::Pending {
            let t = Instant::now();
            let tx = honest.finalize(r.result).await?;
            moves.push(DemoMove {
                actor: r.submitter,
                game: None,
                record: MoveRecord::new(
                    Side::Submitter,
                    "finalize",
                    None,
                    format!("result {}", r.result),
                    tx.gas,
                    t,
                ),
            });
        }
        r.status = honest.result_status(r.result).await?;
    }

    // Bonds: what each party is owed, then everyone withdraws.
    let parties = [
        (Actor::HonestSubmitter, &honest, 1),
        (Actor::FaultySubmitter, &faulty, 3),
        (Actor::Challenger, &attacker, 2),
    ];
    let mut credits = BTreeMap::new();
    for (actor, client, account) in parties {
        let credit = client
            .contract()
            .credit(dev_signer(account).address())
            .call()
            .await?;
        credits.insert(format!("{actor:?}"), credit.to_string());
        if !credit.is_zero() {
            let t = Instant::now();
            let tx = client.withdraw().await?;
            moves.push(DemoMove {
                actor,
                game: None,
                record: MoveRecord::new(
                    Side::Submitter,
                    "withdraw",
                    None,
                    format!("{} ETH", alloy::primitives::utils::format_ether(credit)),
                    tx.gas,
                    t,
                ),
            });
        }
    }
    let final_balance =
        alloy::providers::Provider::get_balance(honest.contract().provider(), deployment.game)
            .await?;
    let mut gas = BTreeMap::new();
    for m in &moves {
        *gas.entry(format!("{:?}", m.actor)).or_insert(0) += m.record.gas;
    }
    Ok(DemoReport {
        chain: chain_name,
        model: model.manifest.name.clone(),
        fault: args.fault.to_string(),
        arity: args.arity,
        results,
        moves,
        gas,
        credits,
        final_balance: final_balance.to_string(),
        total_ms: start.elapsed().as_secs_f64() * 1e3,
    })
}

fn print(r: &DemoReport) {
    println!("== transcript");
    println!(
        "{:>3}  {:<16}  {:>4}  {:<11}  {:>5}  {:>21}  {:>8}  {:>7}  detail",
        "#", "actor", "game", "move", "phase", "segment", "gas", "ms"
    );
    for (i, m) in r.moves.iter().enumerate() {
        let rec = &m.record;
        println!(
            "{:>3}  {:<16}  {:>4}  {:<11}  {:>5}  {:>21}  {:>8}  {:>7.1}  {}{}",
            i + 1,
            format!("{:?}", m.actor),
            m.game.map(|g| g.to_string()).unwrap_or_default(),
            rec.action,
            if rec.phase == 0 {
                String::new()
            } else {
                rec.phase.to_string()
            },
            if rec.phase == 0 {
                String::new()
            } else {
                format!("[{}, {}]", rec.segment[0], rec.segment[1])
            },
            rec.gas,
            rec.ms,
            rec.detail,
            rec.refused
                .as_ref()
                .map(|e| format!("  REFUSED: {e}"))
                .unwrap_or_default()
        );
    }
    println!("== results");
    for x in &r.results {
        println!(
            "   request {} (digit {}, label {}): {:?} posted class {} -> {:?}{}",
            x.request,
            x.digit,
            x.label,
            x.submitter,
            x.prediction,
            x.status,
            if x.disputed { " after a dispute" } else { "" }
        );
    }
    println!("== bonds (credited, then withdrawn)");
    for (party, wei) in &r.credits {
        let wei: alloy::primitives::U256 = wei.parse().unwrap_or_default();
        println!(
            "   {party:<16} {} ETH",
            alloy::primitives::utils::format_ether(wei)
        );
    }
    println!(
        "   game contract balance after the withdrawals: {} wei",
        r.final_balance
    );
    println!("== gas per party");
    for (party, gas) in &r.gas {
        println!("   {party:<16} {gas}");
    }
    println!("== total time: {:.2} s", r.total_ms / 1e3);
}
