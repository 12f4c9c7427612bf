//! `opml demo`, the main job: an end-to-end opML dispute on the embedded chain. Real held-out MNIST
//! digits are requested, an honest submitter answers most of them and a faulty one the last; the
//! challenger re-executes every result, disputes only the faulty one and wins it down to one VM
//! step executed by the chain; the honest results become final and every bond is paid out.

use crate::onchain::runtime;
use alloy::primitives::{Address, U256};
use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use opml_bisect::bot::Endpoint;
use opml_bisect::simulate::short;
use opml_bisect::{
    advance_time, adversary, Attack, Bot, BotConfig, Deployment, GameClient, GameParams,
    MoveRecord, ResultStatus, Side,
};
use opml_contracts::dev_signer;
use opml_dnn::mnist::{quantize_image, Dataset};
use opml_dnn::{Model, Tensor};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
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
    fault: Attack,
    /// Sub-segments per dissection move (2 = bisection).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(2..=64))]
    arity: u64,
    /// Print the transcript as one JSON object instead of tables.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    chain: crate::onchain::ChainArgs,
}

/// Who sent a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
enum Actor {
    Requester,
    HonestSubmitter,
    FaultySubmitter,
    Challenger,
}

impl Actor {
    /// Its name in reports, the same as in its JSON (and as a key of `gas` and `credits`).
    fn name(self) -> &'static str {
        match self {
            Actor::Requester => "requester",
            Actor::HonestSubmitter => "honest_submitter",
            Actor::FaultySubmitter => "faulty_submitter",
            Actor::Challenger => "challenger",
        }
    }
}

#[derive(Serialize)]
struct DemoMove {
    actor: Actor,
    game: Option<u64>,
    /// The result it concerns, where one does.
    result: Option<u64>,
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
    #[serde(flatten)]
    chain: crate::onchain::ChainInfo,
    model: String,
    fault: String,
    arity: u64,
    results: Vec<DemoResult>,
    moves: Vec<DemoMove>,
    gas: BTreeMap<&'static str, u64>,
    /// Wei credited to each party at the end (paid out by the withdrawals that follow).
    credits: BTreeMap<&'static str, String>,
    /// Wei of rejected results' bonds burnt (paid to nobody).
    burnt: String,
    /// The game contract's balance after every party withdrew.
    final_balance: String,
    /// Wall time of the whole demo, deployment included.
    wall_ms: f64,
}

fn prediction(t: &Tensor) -> i32 {
    let bytes = t.to_le_bytes();
    i32::from_le_bytes(bytes[..4].try_into().expect("an arg_max output"))
}

pub(crate) fn demo(args: DemoArgs) -> Result<ExitCode> {
    if !args.fault.is_submitters() {
        bail!("--fault {}: the demo's faulty party is a submitter (node=K, output, step=K:N, trace=K, header=K, steps=K:+D or boundary=K)", args.fault);
    }
    if args.requests == 0 {
        bail!("--requests must be at least 1");
    }
    let model = Arc::new(Model::load(&args.model)?);
    // Checked here, where it can be said: a spec that does not fit the model would stop the faulty
    // bot at its first request.
    args.fault
        .node(model.manifest.nodes.len())
        .with_context(|| format!("--fault {} on {}", args.fault, args.model.display()))?;
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

/// A folder under the system's temporary folder for the bots' databases, removed when dropped
/// (on success and on every error path alike).
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(name: String) -> Self {
        let dir = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn step(json: bool, text: String) {
    if !json {
        println!("{text}");
    }
}

/// Dev accounts of the demo's parties (the Hardhat/Anvil test mnemonic).
const REQUESTER: u32 = 0;
const HONEST: u32 = 1;
const CHALLENGER: u32 = 2;
const FAULTY: u32 = 3;
/// The faulty submitter's client: the honest submitter serves account 0's requests, the faulty one
/// this account's.
const FAULTY_CLIENT: u32 = 4;
/// How long without a move before the demo takes a party to have stopped moving.
const STALLED: Duration = Duration::from_secs(3);
/// How long the demo waits for the bots before it gives up.
const PATIENCE: Duration = Duration::from_secs(600);

async fn run(args: &DemoArgs, model: Arc<Model>, data: &Dataset) -> Result<DemoReport> {
    let start = Instant::now();
    let json = args.json;
    let (providers, chain) = args.chain.providers(FAULTY_CLIENT + 1).await?;
    let provider = |i: u32| providers[i as usize].clone();
    let params = GameParams {
        arity: args.arity,
        ..GameParams::default()
    };
    step(
        json,
        format!(
            "== opml demo on {}: {} on {} held-out digits, the last answered with fault {} (arity {})",
            chain.describe(), model.manifest.name, args.requests, args.fault, args.arity
        ),
    );
    let deployment = Deployment::deploy(&provider(REQUESTER), &params)
        .await
        .context("deploying the contracts")?;
    step(json, format!(
        "-- deployed Step {}, NodeVm {}, Registry {} (kernel images of {} op kinds), DisputeGame {}",
        deployment.step, deployment.node_vm, deployment.registry, opml_dnn::OpKind::ALL.len(), deployment.game
    ));
    let (_, commitment) = deployment
        .register_model(
            &provider(HONEST),
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

    // The three bots, each with its own database, as `opml submitter` / `opml challenger` run them.
    let dir = ScratchDir::new(format!("opml-demo-{}", std::process::id()));
    let dir = &dir.0;
    let (events, mut transcript) = tokio::sync::mpsc::unbounded_channel();
    // The faulty submitter is the honest bot scripted by code to lie (`Bot::with_attack`); no
    // config file can make a bot lie.
    let bot = |role: Side, account: u32, name: &str, serve: Option<u32>, attack: Attack| {
        let config = BotConfig {
            rpc: Endpoint::Embedded,
            signer: dev_signer(account),
            game: deployment.game,
            models: vec![args.model.clone()],
            bond: params.result_bond.max(params.challenge_bond),
            reserve: None,
            arity: Some(args.arity),
            poll_interval: Duration::from_millis(20),
            db: dir.join(format!("{name}.redb")),
            serve: serve.map(|c| dev_signer(c).address()).into_iter().collect(),
            from_block: 0,
            max_node_steps: opml_bisect::MAX_NODE_STEPS,
            metrics_addr: None,
            max_fee_per_gas: None,
            confirmations: None,
        };
        let events = events.clone();
        let provider = provider(account);
        async move {
            anyhow::Ok(
                Bot::start(role, config, provider)
                    .await?
                    .with_attack(attack)
                    .with_events(events),
            )
        }
    };
    let honest = bot(
        Side::Submitter,
        HONEST,
        "honest",
        Some(REQUESTER),
        Attack::None,
    )
    .await?;
    let faulty = bot(
        Side::Submitter,
        FAULTY,
        "faulty",
        Some(FAULTY_CLIENT),
        args.fault,
    )
    .await?;
    let challenger = bot(
        Side::Challenger,
        CHALLENGER,
        "challenger",
        None,
        Attack::None,
    )
    .await?;
    drop(events);
    step(
        json,
        "-- started the honest and the faulty submitter bot and the challenger bot".into(),
    );
    let actor_of = |account: Address| {
        if account == dev_signer(HONEST).address() {
            Actor::HonestSubmitter
        } else if account == dev_signer(FAULTY).address() {
            Actor::FaultySubmitter
        } else {
            Actor::Challenger
        }
    };

    let requester = GameClient::new(deployment.game, provider(REQUESTER)).await?;
    let faulty_client = GameClient::new(deployment.game, provider(FAULTY_CLIENT)).await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let spec = &model.manifest.input;
    let header = opml_dnn::tensor::header(spec.dtype, &spec.shape)?;
    let accounts = [HONEST, FAULTY, CHALLENGER].map(|a| dev_signer(a).address());

    // The requests, then the bots' work, watched from their events and the chain.
    let driver = async {
        let mut moves: Vec<DemoMove> = Vec::new();
        let mut requests = Vec::new();
        for digit in 0..args.requests {
            let faulty = digit + 1 == args.requests;
            let client = if faulty { &faulty_client } else { &requester };
            let input = quantize_image(data.image(digit));
            let t = Instant::now();
            let (tx, request) = client
                .request(commitment, &header, &input.to_le_bytes())
                .await?;
            moves.push(DemoMove {
                actor: Actor::Requester,
                game: None,
                result: None,
                record: MoveRecord::new(
                    Side::Submitter,
                    "request",
                    None,
                    format!("digit {digit} (label {})", data.labels[digit]),
                    tx.gas,
                    t,
                ),
            });
            step(
                json,
                format!(
                    "-- request {request}: digit {digit} (label {}), for the {} submitter",
                    data.labels[digit],
                    if faulty { "faulty" } else { "honest" }
                ),
            );
            requests.push((request, digit, input));
        }
        let bar = if json {
            ProgressBar::hidden()
        } else {
            ProgressBar::new_spinner()
                .with_style(ProgressStyle::with_template("   {spinner} {msg}").expect("template"))
        };
        let mut credits: BTreeMap<Actor, U256> = BTreeMap::new();
        let mut window_passed = false;
        let mut last_event = Instant::now();
        let deadline = Instant::now() + PATIENCE;
        loop {
            while let Ok(event) = transcript.try_recv() {
                last_event = Instant::now();
                let actor = actor_of(event.account);
                let r = &event.record;
                bar.set_message(format!(
                    "{actor:?}: {}{}",
                    r.action,
                    event
                        .game
                        .map(|g| format!(
                            " in game {g}{}",
                            r.phase
                                .zip(r.segment)
                                .map(|(p, [lo, hi])| format!(", phase {p} on [{lo}, {hi}]"))
                                .unwrap_or_default()
                        ))
                        .unwrap_or_default()
                ));
                bar.tick();
                if r.action == "challenge" || r.action == "post_result" || r.action == "finalize" {
                    bar.suspend(|| {
                        step(json, format!("-- {actor:?}: {} ({})", r.action, r.detail))
                    });
                }
                *credits.entry(actor).or_default() += event.withdrawn;
                moves.push(DemoMove {
                    actor,
                    game: event.game,
                    result: event.result,
                    record: event.record,
                });
            }
            let mut open = 0;
            let mut pending = 0;
            for (request, _, _) in &requests {
                // The request's last result (a rejected one frees the request again).
                let posted = requester
                    .contract()
                    .ResultPosted_filter()
                    .topic2(U256::from(*request))
                    .from_block(requester.deployment_block())
                    .query()
                    .await?;
                match posted.last() {
                    Some((event, _))
                        if requester.result_status(event.result).await?
                            != ResultStatus::Pending => {}
                    _ => pending += 1,
                }
            }
            let games = requester.contract().gameCount().call().await?;
            for g in 1..=games {
                if !requester.view(g).await?.is_over() {
                    open += 1;
                }
            }
            let posted = requester.contract().resultCount().call().await? as usize;
            let mut owed = U256::ZERO;
            for a in accounts {
                owed += requester.contract().credit(a).call().await?;
            }
            if pending == 0 && owed.is_zero() {
                break;
            }
            // Every result posted and judged, every game over: let the challenge window pass so
            // that the honest results can become final.
            if !window_passed && posted == requests.len() && games >= 1 && open == 0 {
                bar.suspend(|| step(json, format!("-- every game is over; the chain's clock moves {} s on, past the challenge window", params.challenge_window + 1)));
                advance_time(&provider(REQUESTER), params.challenge_window + 1).await?;
                window_passed = true;
            }
            // A party that stopped moving (a liar with nothing left to say) loses on time: let
            // its clock run out so that the other bot can end the game.
            if open > 0 && last_event.elapsed() > STALLED {
                bar.suspend(|| step(json, format!("-- no move for {STALLED:?}: the chain's clock moves {} s on, past the silent party's clock", params.clock + 1)));
                advance_time(&provider(REQUESTER), params.clock + 1).await?;
                last_event = Instant::now();
            }
            if Instant::now() > deadline {
                bail!("the bots did not settle every result within {PATIENCE:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bar.finish_and_clear();
        let _ = stop.send(true);
        anyhow::Ok((moves, requests, credits))
    };
    // The first bot that fails ends the demo with its error (a bot runs until stopped, so an
    // early end is a failure); the others are dropped where they stand.
    let (_, _, _, (moves, requests, credits)) = tokio::try_join!(
        async {
            honest
                .run(until_stopped())
                .await
                .context("the honest submitter bot")
        },
        async {
            faulty
                .run(until_stopped())
                .await
                .context("the faulty submitter bot")
        },
        async {
            challenger
                .run(until_stopped())
                .await
                .context("the challenger bot")
        },
        driver
    )?;

    let mut results = Vec::new();
    for (request, digit, input) in requests {
        let posted = requester
            .contract()
            .ResultPosted_filter()
            .topic2(U256::from(request))
            .from_block(requester.deployment_block())
            .query()
            .await?;
        let Some((event, _)) = posted.last() else {
            bail!("request {request} was never answered");
        };
        let actor = actor_of(event.submitter);
        let fault = if actor == Actor::FaultySubmitter {
            args.fault
        } else {
            Attack::None
        };
        let view = adversary::defender(model.clone(), input, fault)?;
        results.push(DemoResult {
            request,
            result: event.result,
            digit,
            label: data.labels[digit],
            submitter: actor,
            prediction: prediction(view.view().outputs().last().expect("nodes")),
            output: format!("0x{}", hex::encode(event.output)),
            disputed: moves
                .iter()
                .any(|m| m.record.action == "challenge" && m.result == Some(event.result)),
            status: requester.result_status(event.result).await?,
        });
    }
    let final_balance =
        alloy::providers::Provider::get_balance(requester.contract().provider(), deployment.game)
            .await?;
    let burnt = requester.contract().burnt().call().await?;
    let mut gas = BTreeMap::new();
    for m in &moves {
        *gas.entry(m.actor.name()).or_insert(0) += m.record.gas;
    }
    let credits = [
        Actor::HonestSubmitter,
        Actor::FaultySubmitter,
        Actor::Challenger,
    ]
    .into_iter()
    .map(|a| {
        (
            a.name(),
            credits.get(&a).copied().unwrap_or_default().to_string(),
        )
    })
    .collect();
    Ok(DemoReport {
        chain,
        model: model.manifest.name.clone(),
        fault: args.fault.to_string(),
        arity: args.arity,
        results,
        moves,
        gas,
        credits,
        burnt: burnt.to_string(),
        final_balance: final_balance.to_string(),
        wall_ms: start.elapsed().as_secs_f64() * 1e3,
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
            m.actor.name(),
            m.game.map(|g| g.to_string()).unwrap_or_default(),
            rec.action,
            rec.phase.map(|p| p.to_string()).unwrap_or_default(),
            rec.segment
                .map(|[lo, hi]| format!("[{lo}, {hi}]"))
                .unwrap_or_default(),
            rec.gas,
            rec.wall_ms,
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
            "   request {} (digit {}, label {}): {} posted class {} -> {:?}{}",
            x.request,
            x.digit,
            x.label,
            x.submitter.name(),
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
    let burnt: alloy::primitives::U256 = r.burnt.parse().unwrap_or_default();
    println!(
        "   burnt (the rejected result's bond) {} ETH",
        alloy::primitives::utils::format_ether(burnt)
    );
    println!(
        "   game contract balance after the withdrawals: {} wei",
        r.final_balance
    );
    println!("== gas per party");
    for (party, gas) in &r.gas {
        println!("   {party:<16} {gas}");
    }
    println!("== total time: {:.2} s", r.wall_ms / 1e3);
}

#[cfg(test)]
mod tests {
    use super::Actor;

    #[test]
    fn an_actor_is_named_as_its_json_names_it() {
        let cases = [
            Actor::Requester,
            Actor::HonestSubmitter,
            Actor::FaultySubmitter,
            Actor::Challenger,
        ];
        for actor in cases {
            assert_eq!(serde_json::to_value(actor).unwrap(), actor.name());
        }
    }
}
