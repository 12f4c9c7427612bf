//! `opml submitter`, `opml challenger` (the long-running bots), and the operator commands around
//! them: `opml deploy` (contracts and models on a node) and `opml request` (ask for an inference).

use crate::onchain::{runtime, ChainArgs, ChainInfo};
use crate::EXIT_MISMATCH;
use alloy::providers::DynProvider;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{bail, Context, Result};
use clap::Args;
use opml_bisect::bot::{
    check_config, http_provider, http_provider_counting, parse_key, BotMetrics, Endpoint,
    MetricsServer,
};
use opml_bisect::{Attack, Bot, BotConfig, Deployment, GameClient, GameParams, Side};
use opml_contracts::dev_signer;
use opml_dnn::mnist::{quantize_image, Dataset};
use opml_dnn::Model;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tracing::info;

#[derive(Args)]
pub(crate) struct BotArgs {
    /// The bot's TOML file: rpc (a node URL), key (hex, env:VAR for a hex key in the environment
    /// variable VAR, keystore:PATH for an encrypted keystore file whose password is in the file
    /// key_password_file or the environment variable OPML_KEYSTORE_PASSWORD, or dev:N for the
    /// test mnemonic), game (the DisputeGame address), models (folders), bond (the most it locks,
    /// e.g. "1 ether"), reserve (submitter), arity, poll_interval_ms, db (its redb file), serve
    /// (submitter: requesters it answers), from_block, max_node_steps, max_fee_gwei (the most it
    /// pays per gas), confirmations (how deep a block is before it acts on its logs) and
    /// metrics_addr. See docs/bots.md and examples/.
    #[arg(long)]
    config: PathBuf,
    /// Serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9464 (an IP address and
    /// port; overrides the file's metrics_addr; off by default). The page names the bot's account:
    /// keep it on loopback or a private network.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Check the file against the chain and exit without running: the game is this build's
    /// deployment, its arity and bonds fit, the models load and are registered, the key is not a
    /// public dev key off a dev chain, the fee cap pays today's gas, its balance covers a bond
    /// (and the reserve, submitter).
    /// Prints each check with ok or FAIL; exits 0 when all pass, 1 when one fails, 2 when the file
    /// is unusable.
    #[arg(long)]
    check: bool,
}

/// Where an operator command's signing key comes from, when not a dev account.
#[derive(Args)]
pub(crate) struct KeyArgs {
    /// Sign with the hex private key held by the environment variable VAR instead of a dev account
    /// (the key is never written on the command line, where `ps` and shell history would show it).
    #[arg(long, value_name = "VAR", conflicts_with = "keystore")]
    private_key_env: Option<String>,
    /// Sign with the key of an encrypted keystore file (Web3 Secret Storage JSON, as `cast wallet
    /// import` and geth write) instead of a dev account. Its password comes from --password-file,
    /// else from the environment variable OPML_KEYSTORE_PASSWORD.
    #[arg(long, value_name = "PATH")]
    keystore: Option<PathBuf>,
    /// The file holding the --keystore's password (a line ending after it is no part of it).
    #[arg(long, value_name = "PATH", requires = "keystore")]
    password_file: Option<PathBuf>,
}

impl KeyArgs {
    /// The signer it names, if any.
    fn signer(&self) -> Result<Option<PrivateKeySigner>> {
        let here = Path::new(".");
        if let Some(var) = &self.private_key_env {
            let signer = parse_key(&format!("env:{var}"), here, None)
                .with_context(|| format!("--private-key-env {var}"))?;
            return Ok(Some(signer));
        }
        let Some(path) = &self.keystore else {
            return Ok(None);
        };
        let Some(spec) = path.to_str() else {
            bail!("--keystore {}: the path is not Unicode", path.display());
        };
        // The error names the keystore (and the password file) already.
        let signer = parse_key(
            &format!("keystore:{spec}"),
            here,
            self.password_file.as_deref(),
        )?;
        Ok(Some(signer))
    }
}

/// Which bot a scripted adversary is.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum AdversaryRole {
    /// A submitter that posts and defends a lie (node=K, output, step=K:N, trace=K, header=K,
    /// steps=K:+D, boundary=K).
    Submitter,
    /// A challenger that disputes honest results (challenger[=K], challenger-random[=SEED],
    /// challenger-stall[=N]).
    Challenger,
}

#[derive(Args)]
pub(crate) struct AdversaryArgs {
    /// The bot it is.
    #[arg(long)]
    role: AdversaryRole,
    /// Its scripted attack (the specs of `opml dispute simulate --help`).
    #[arg(long)]
    fault: Attack,
    #[command(flatten)]
    bot: BotArgs,
}

/// Runs a scripted adversary bot (tests and demonstrations) until Ctrl-C or SIGTERM.
pub(crate) fn run_adversary(args: AdversaryArgs) -> Result<ExitCode> {
    let role = match args.role {
        AdversaryRole::Submitter => Side::Submitter,
        AdversaryRole::Challenger => Side::Challenger,
    };
    let fits = match role {
        Side::Submitter => args.fault.is_submitters(),
        Side::Challenger => args.fault.is_challengers(),
    };
    if !fits {
        bail!(
            "--fault {}: not an attack of a {} (see --help)",
            args.fault,
            role.name()
        );
    }
    run_bot_with(role, args.bot, Some(args.fault))
}

/// Runs the bot of `role` until Ctrl-C or SIGTERM.
pub(crate) fn run_bot(role: Side, args: BotArgs) -> Result<ExitCode> {
    run_bot_with(role, args, None)
}

fn run_bot_with(role: Side, args: BotArgs, attack: Option<Attack>) -> Result<ExitCode> {
    let mut config = BotConfig::load(&args.config)?;
    if args.metrics_addr.is_some() {
        config.metrics_addr = args.metrics_addr;
    }
    let url = match &config.rpc {
        Endpoint::Http(url) => url.clone(),
        Endpoint::Embedded => bail!(
            "{}: rpc = \"embedded\": the embedded chain lives inside one process, so a bot on it \
             runs inside `opml demo`; give a node's URL here",
            args.config.display()
        ),
    };
    if args.check {
        return runtime()?.block_on(check(role, &config, http_provider(url)));
    }
    runtime()?.block_on(async move {
        // Bound before anything else, so that a port in use stops the bot at once; served while
        // it starts (`opml_bot_up` is 0 until its first tick).
        let metrics = Arc::new(BotMetrics::new(role));
        if let Some(addr) = config.metrics_addr {
            let server = MetricsServer::bind(addr).await?;
            tokio::spawn(server.serve(metrics.clone()));
        }
        let provider = http_provider_counting(url, Some(metrics.clone()));
        let mut bot = Bot::start_with_metrics(role, config, provider, metrics).await?;
        if let Some(attack) = attack {
            bot = bot.with_attack(attack);
        }
        bot.run(shutdown()).await?;
        info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Prints each check of `config` against the chain; success only when every one passes.
async fn check(role: Side, config: &BotConfig, provider: DynProvider) -> Result<ExitCode> {
    let checks = check_config(role, config, &provider).await;
    for c in &checks {
        match &c.outcome {
            Ok(facts) => println!("ok    {}: {facts}", c.name),
            Err(why) => println!("FAIL  {}: {why}", c.name),
        }
    }
    Ok(if checks.iter().all(|c| c.outcome.is_ok()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_MISMATCH)
    })
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[derive(Args)]
pub(crate) struct DeployArgs {
    /// Model folders to register.
    #[arg(long = "model", required = true)]
    models: Vec<PathBuf>,
    /// Sub-segments per dissection move.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(2..=64))]
    arity: u64,
    /// Seconds a result may be challenged.
    #[arg(long, default_value_t = 3600)]
    window: u64,
    /// Seconds on each party's chess clock per game.
    #[arg(long, default_value_t = 1800)]
    clock: u64,
    /// Print the addresses as one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    chain: ChainArgs,
}

#[derive(Serialize)]
struct DeployReport {
    #[serde(flatten)]
    chain: ChainInfo,
    #[serde(flatten)]
    deployment: Deployment,
    params: GameParams,
    /// Model commitments, in the order given.
    models: Vec<String>,
}

/// Deploys Step, NodeVm, Registry and DisputeGame and registers the models, signed with the key of
/// `--private-key-env` or `--keystore`, or else dev account 0.
pub(crate) fn deploy(args: DeployArgs) -> Result<ExitCode> {
    if args.chain.is_embedded() {
        bail!("opml deploy needs --rpc URL: what it deploys on the embedded chain ends with the process");
    }
    let models = args
        .models
        .iter()
        .map(|p| Model::load(p).with_context(|| format!("loading {}", p.display())))
        .collect::<Result<Vec<_>>>()?;
    let params = GameParams {
        arity: args.arity,
        challenge_window: args.window,
        clock: args.clock,
        ..GameParams::default()
    };
    let signer = args.key.signer()?.unwrap_or_else(|| dev_signer(0));
    let report = runtime()?.block_on(async {
        let (providers, chain) = args.chain.providers_for(vec![signer]).await?;
        let deployment = Deployment::deploy(&providers[0], &params)
            .await
            .with_context(|| format!("deploying on {}", chain.chain))?;
        let mut commitments = Vec::new();
        for (model, path) in models.iter().zip(&args.models) {
            let (_, c) = deployment
                .register_model(&providers[0], model, &format!("file:{}", path.display()))
                .await
                .with_context(|| format!("registering {}", path.display()))?;
            commitments.push(format!("0x{}", hex::encode(c)));
        }
        anyhow::Ok(DeployReport {
            chain,
            deployment,
            params,
            models: commitments,
        })
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let d = &report.deployment;
        println!("on {}", report.chain.describe());
        println!("Step        {}", d.step);
        println!("NodeVm      {}", d.node_vm);
        println!("Registry    {}", d.registry);
        println!("DisputeGame {}", d.game);
        for (path, c) in args.models.iter().zip(&report.models) {
            println!("model       {c}  ({})", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub(crate) struct RequestArgs {
    /// The DisputeGame contract.
    #[arg(long)]
    game: alloy::primitives::Address,
    /// The model to run (its folder; its commitment is what the request names).
    #[arg(long, default_value = "models/mnist-cnn")]
    model: PathBuf,
    /// Index of the held-out digit to request (the MNIST test split of scripts/mnist).
    #[arg(long)]
    digit: usize,
    /// The digits.
    #[arg(long, default_value = "data/mnist/test.safetensors")]
    data: PathBuf,
    /// Dev account (of the test mnemonic) that signs the request: 0 to 19, the accounts Hardhat's
    /// node and the embedded chain fund.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..20),
          conflicts_with_all = ["private_key_env", "keystore"])]
    account: u32,
    /// Print one JSON report (request id, transaction, gas, model commitment, digit and label)
    /// instead of the bare request id.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    chain: ChainArgs,
}

/// `opml request --json`.
#[derive(Serialize)]
struct RequestReport {
    #[serde(flatten)]
    chain: ChainInfo,
    /// The request's id in the game.
    request: u64,
    #[serde(serialize_with = "opml_contracts::json::checksummed")]
    game: alloy::primitives::Address,
    /// Who signed the request.
    #[serde(serialize_with = "opml_contracts::json::checksummed")]
    requester: alloy::primitives::Address,
    tx_hash: String,
    gas: u64,
    model_commitment: String,
    /// Index of the digit in the held-out split, and its label.
    digit: usize,
    label: u8,
}

/// Posts one inference request with a held-out MNIST digit; prints the request id.
pub(crate) fn request(args: RequestArgs) -> Result<ExitCode> {
    if args.chain.is_embedded() {
        bail!("opml request needs --rpc URL");
    }
    let model = Model::load(&args.model)?;
    let data = Dataset::load(&args.data)?;
    if args.digit >= data.len() {
        bail!(
            "--digit {}: {} has {} digits",
            args.digit,
            args.data.display(),
            data.len()
        );
    }
    let input = quantize_image(data.image(args.digit));
    let spec = &model.manifest.input;
    let header = opml_dnn::tensor::header(spec.dtype, &spec.shape)?;
    let commitment = model.commitment()?;
    let signer = match args.key.signer()? {
        Some(signer) => signer,
        None => dev_signer(args.account),
    };
    let requester = signer.address();
    let report = runtime()?.block_on(async {
        let (providers, chain) = args.chain.providers_for(vec![signer]).await?;
        let client = GameClient::new(args.game, providers[0].clone()).await?;
        let (tx, id) = client
            .request(commitment, &header, &input.to_le_bytes())
            .await?;
        info!(
            request = id,
            gas = tx.gas,
            digit = args.digit,
            label = data.labels[args.digit],
            "requested"
        );
        anyhow::Ok(RequestReport {
            chain,
            request: id,
            game: args.game,
            requester,
            tx_hash: tx.hash.to_string(),
            gas: tx.gas,
            model_commitment: alloy::primitives::B256::from(commitment).to_string(),
            digit: args.digit,
            label: data.labels[args.digit],
        })
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.request);
    }
    Ok(ExitCode::SUCCESS)
}
