//! The bots on the embedded chain, in one process: a challenger stopped mid-game at an arbitrary
//! await point (as a crash would leave it, a signed transaction possibly in flight) and started
//! again from its database wins without a second challenge or a repeated move; a bot refuses a
//! database of another bot, a contract whose bond exceeds its own and another arity; a
//! submitter whose cached run no longer matches what it posted stops instead of playing on. Money
//! and liveness (issue 14, attack 4): a challenger too poor to pay the bond keeps the wrong result
//! and challenges it once funded; a submitter keeps its reserve for defence (answers no request
//! below it, defends its game with it) and answers once funded; an honest submitter answers again
//! a request whose result (another submitter's) was rejected. A game the bot cannot compute (its
//! disputed node needs more VM steps than the bot records) is reported and leaves its other games
//! running. Chain safety (issue 20): a bot acts on a log only once its block is `confirmations`
//! deep, and no transaction is signed above the fee cap (a bot whose cap the market exceeds sends
//! nothing, and its tick goes on).

use alloy::primitives::U256;
use opml_bisect::bot::{BotEvent, Endpoint};
use opml_bisect::{
    Attack, Bot, BotConfig, BotError, Deployment, GameClient, GameParams, ResultStatus, Side,
};
use opml_contracts::{dev_signer, EmbeddedChain};
use opml_dnn::mnist::{quantize_image, read_pgm};
use opml_dnn::Model;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

struct Setup {
    chain: EmbeddedChain,
    deployment: Deployment,
    params: GameParams,
    dir: PathBuf,
}

impl Setup {
    async fn new(name: &str) -> Self {
        let chain = EmbeddedChain::default();
        let params = GameParams::default();
        let deployer = chain.provider(dev_signer(0));
        let deployment = Deployment::deploy(&deployer, &params).await.unwrap();
        let model = Model::load(&repo("models/mnist-cnn")).unwrap();
        deployment
            .register_model(&deployer, &model, "file:models/mnist-cnn")
            .await
            .unwrap();
        let dir = std::env::temp_dir().join(format!("opml-bot-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self {
            chain,
            deployment,
            params,
            dir,
        }
    }

    fn config(&self, account: u32, db: &str) -> BotConfig {
        BotConfig {
            rpc: Endpoint::Embedded,
            signer: dev_signer(account),
            game: self.deployment.game,
            models: vec![repo("models/mnist-cnn")],
            bond: U256::from(10u128.pow(18)),
            reserve: None,
            arity: Some(self.params.arity),
            poll_interval: Duration::from_millis(10),
            db: self.dir.join(db),
            serve: Vec::new(),
            from_block: 0,
            max_node_steps: opml_bisect::MAX_NODE_STEPS,
            metrics_addr: None,
            max_fee_per_gas: None,
            confirmations: None,
        }
    }

    async fn bot(
        &self,
        role: Side,
        account: u32,
        db: &str,
        attack: Attack,
    ) -> (Bot, UnboundedReceiver<BotEvent>) {
        let (tx, rx) = unbounded_channel();
        let bot = Bot::start(
            role,
            self.config(account, db),
            self.chain.provider(dev_signer(account)),
        )
        .await
        .unwrap()
        .with_attack(attack)
        .with_events(tx);
        (bot, rx)
    }

    async fn request(&self) -> u64 {
        let model = Model::load(&repo("models/mnist-cnn")).unwrap();
        let input =
            quantize_image(&read_pgm(&repo("data/mnist/samples/digit-6-label-1.pgm")).unwrap());
        let spec = &model.manifest.input;
        let header = opml_dnn::tensor::header(spec.dtype, &spec.shape).unwrap();
        let client = GameClient::new(self.deployment.game, self.chain.provider(dev_signer(0)))
            .await
            .unwrap();
        client
            .request(model.commitment().unwrap(), &header, &input.to_le_bytes())
            .await
            .unwrap()
            .1
    }
}

/// Runs `bot` until `events` has seen `moves` game moves, then drops it where it stands.
async fn run_until(
    bot: Bot,
    events: &mut UnboundedReceiver<BotEvent>,
    moves: usize,
) -> Vec<BotEvent> {
    let mut seen = Vec::new();
    let watch = async {
        while let Some(e) = events.recv().await {
            let game_move = e.game.is_some();
            seen.push(e);
            if game_move && seen.iter().filter(|e| e.game.is_some()).count() >= moves {
                return;
            }
        }
    };
    tokio::select! {
        r = bot.run(std::future::pending()) => panic!("the bot stopped: {r:?}"),
        _ = watch => {}
    }
    seen
}

#[tokio::test]
async fn a_challenger_stopped_mid_game_resumes_from_its_database_and_wins() {
    let setup = Setup::new("resume").await;
    let (liar, _liar_events) = setup
        .bot(Side::Submitter, 3, "liar.redb", "node=2".parse().unwrap())
        .await;
    // The bots are not `Send` (a VM's decoded code is not shared across threads): they run as
    // futures of this task, the liar throughout.
    let liar = liar.run(std::future::pending());
    tokio::pin!(liar);
    setup.request().await;

    let (challenger, mut events) = setup
        .bot(Side::Challenger, 2, "challenger.redb", Attack::None)
        .await;
    // Well into phase 1 of the 4.1M-step conv node: the challenge and about ten picks.
    let before = tokio::select! {
        r = &mut liar => panic!("the liar stopped: {r:?}"),
        seen = run_until(challenger, &mut events, 11) => seen,
    };
    let (challenger, mut events) = setup
        .bot(Side::Challenger, 2, "challenger.redb", Attack::None)
        .await;
    let client = GameClient::new(setup.deployment.game, setup.chain.provider(dev_signer(0)))
        .await
        .unwrap();
    let over = async {
        loop {
            let games = client.contract().gameCount().call().await.unwrap();
            if games == 1 && client.view(1).await.unwrap().is_over() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        r = &mut liar => panic!("the liar stopped: {r:?}"),
        r = challenger.run(over) => r.unwrap(),
    }
    let mut after = Vec::new();
    while let Ok(e) = events.try_recv() {
        after.push(e);
    }

    let view = client.view(1).await.unwrap();
    assert_eq!(view.winner, Some(Side::Challenger));
    assert_eq!(
        client.contract().gameCount().call().await.unwrap(),
        1,
        "challenged twice"
    );
    assert_eq!(
        client.result_status(view.result).await.unwrap(),
        ResultStatus::Rejected
    );
    let all: Vec<_> = before.iter().chain(&after).collect();
    assert_eq!(
        all.iter()
            .filter(|e| e.record.action == "challenge")
            .count(),
        1
    );
    // No move repeated: each pick is on a segment of its own.
    let mut segments: Vec<_> = all
        .iter()
        .filter(|e| e.record.action == "pick")
        .map(|e| (e.record.phase, e.record.segment))
        .collect();
    let picks = segments.len();
    segments.dedup();
    assert_eq!(segments.len(), picks, "a pick was made twice");
    assert!(after.iter().any(|e| e.record.action == "prove_step"));
    let _ = std::fs::remove_dir_all(&setup.dir);
}

#[tokio::test]
async fn a_bot_refuses_another_bots_database_and_a_larger_bond() {
    let setup = Setup::new("refusals").await;
    let (bot, _) = setup
        .bot(Side::Submitter, 1, "submitter.redb", Attack::None)
        .await;
    drop(bot);
    let provider = setup.chain.provider(dev_signer(2));
    // Another role on the same file.
    let err = Bot::start(
        Side::Challenger,
        setup.config(2, "submitter.redb"),
        provider.clone(),
    )
    .await
    .err()
    .expect("another bot's database opened");
    assert!(matches!(err, BotError::Store(_)), "{err}");
    // A bond limit below the contract's challenge bond (0.5 ether).
    let mut config = setup.config(2, "challenger.redb");
    config.bond = U256::from(10u128.pow(17));
    let err = Bot::start(Side::Challenger, config, provider.clone())
        .await
        .err()
        .expect("started");
    assert!(matches!(err, BotError::BondTooLarge { .. }), "{err}");
    // An arity the contract does not play.
    let mut config = setup.config(2, "challenger.redb");
    config.arity = Some(4);
    let err = Bot::start(Side::Challenger, config, provider)
        .await
        .err()
        .expect("started");
    assert!(
        matches!(err, BotError::ArityMismatch { config: 4, .. }),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&setup.dir);
}

#[tokio::test]
async fn a_submitter_whose_cached_run_changed_stops_instead_of_contradicting_itself() {
    let setup = Setup::new("changed").await;
    let request = {
        let (liar, _) = setup
            .bot(Side::Submitter, 3, "liar.redb", "node=2".parse().unwrap())
            .await;
        let liar = liar.run(std::future::pending());
        tokio::pin!(liar);
        let request = setup.request().await;
        let (challenger, mut events) = setup
            .bot(Side::Challenger, 2, "challenger.redb", Attack::None)
            .await;
        // The result posted and challenged: the challenge is the challenger's first event.
        tokio::select! {
            r = &mut liar => panic!("the liar stopped: {r:?}"),
            _ = run_until(challenger, &mut events, 1) => {}
        }
        request
    };

    // Its database now says the node outputs were the honest ones (as if its model files had
    // changed under it).
    let model = std::sync::Arc::new(Model::load(&repo("models/mnist-cnn")).unwrap());
    let input = quantize_image(&read_pgm(&repo("data/mnist/samples/digit-6-label-1.pgm")).unwrap());
    let honest = opml_bisect::GraphPhase::honest(model, input).unwrap();
    let (liar, _) = setup
        .bot(Side::Submitter, 3, "liar.redb", "node=2".parse().unwrap())
        .await;
    let mut tensors = vec![honest.input()];
    tensors.extend(honest.outputs());
    liar.store().put_view(request, &tensors).unwrap();
    let mut liar = liar;
    match liar.tick().await {
        Err(e @ BotError::RunChanged { what: "posted", .. }) => {
            assert!(e.to_string().contains("no longer"), "{e}")
        }
        other => panic!("played on with a changed run: {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&setup.dir);
}

/// A fresh account with no ether, signing for a bot.
fn fresh_key(byte: u8) -> alloy::signers::local::PrivateKeySigner {
    alloy::signers::local::PrivateKeySigner::from_bytes(&alloy::primitives::B256::repeat_byte(byte))
        .unwrap()
}

impl Setup {
    /// A bot of `role` signing with `key` (an account the test funds itself).
    async fn bot_with_key(
        &self,
        role: Side,
        key: alloy::signers::local::PrivateKeySigner,
        db: &str,
        reserve: Option<U256>,
    ) -> Bot {
        let mut config = self.config(0, db);
        config.signer = key.clone();
        config.reserve = reserve;
        Bot::start(role, config, self.chain.provider(key))
            .await
            .unwrap()
    }

    /// Sends `wei` from dev account 0 to `to`.
    async fn fund(&self, to: alloy::primitives::Address, wei: U256) {
        use alloy::network::TransactionBuilder;
        use alloy::providers::Provider;
        let tx = alloy::rpc::types::TransactionRequest::default()
            .with_to(to)
            .with_value(wei);
        self.chain
            .provider(dev_signer(0))
            .send_transaction(tx)
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
    }

    async fn client(&self) -> GameClient {
        GameClient::new(self.deployment.game, self.chain.provider(dev_signer(0)))
            .await
            .unwrap()
    }

    /// The live result of `request` (0 for none).
    async fn live_result(&self, request: u64) -> u64 {
        self.client()
            .await
            .contract()
            .request(request)
            .call()
            .await
            .unwrap()
            .result
    }
}

/// Ticks every bot in turn until `done` holds (at most 400 rounds).
async fn tick_until<F: std::future::Future<Output = bool>>(
    bots: &mut [&mut Bot],
    mut done: impl FnMut() -> F,
) {
    for _ in 0..400 {
        if done().await {
            return;
        }
        for bot in bots.iter_mut() {
            bot.tick().await.unwrap();
        }
    }
    panic!("not done after 400 rounds of ticks");
}

#[tokio::test]
async fn a_challenger_out_of_money_challenges_once_funded() {
    let setup = Setup::new("starved").await;
    let (mut liar, _) = setup
        .bot(Side::Submitter, 3, "liar.redb", "node=2".parse().unwrap())
        .await;
    let key = fresh_key(0x42);
    let account = key.address();
    let mut challenger = setup
        .bot_with_key(Side::Challenger, key, "challenger.redb", None)
        .await;
    setup.request().await;
    let client = setup.client().await;
    // It finds the lie, cannot pay the bond, and keeps the result to challenge: the failure is
    // not taken for a decision.
    for _ in 0..5 {
        liar.tick().await.unwrap();
        challenger.tick().await.unwrap();
    }
    assert_eq!(client.contract().gameCount().call().await.unwrap(), 0);
    let record = challenger.store().result(1).unwrap().unwrap();
    assert_eq!(record.verdict, opml_bisect::bot::Verdict::Differs);
    // Funded, it challenges and wins.
    setup.fund(account, U256::from(10u128.pow(18))).await;
    tick_until(&mut [&mut liar, &mut challenger], || async {
        client.contract().gameCount().call().await.unwrap() == 1
            && client.view(1).await.unwrap().is_over()
    })
    .await;
    assert_eq!(client.view(1).await.unwrap().winner, Some(Side::Challenger));
    assert_eq!(
        client.result_status(1).await.unwrap(),
        ResultStatus::Rejected
    );
    let _ = std::fs::remove_dir_all(&setup.dir);
}

#[tokio::test]
async fn a_submitter_keeps_its_reserve_for_defence_and_answers_once_funds_allow() {
    let setup = Setup::new("reserve").await;
    let p = setup.params;
    let gas = U256::from(10u128.pow(17));
    // Enough for one result bond and a reserve of one defence bond (and gas for each).
    let reserve = p.challenge_bond + gas;
    let key = fresh_key(0x43);
    let address = key.address();
    setup
        .fund(key.address(), p.result_bond + reserve + gas)
        .await;
    let mut submitter = setup
        .bot_with_key(Side::Submitter, key, "submitter.redb", Some(reserve))
        .await;
    let (mut griefer, _) = setup
        .bot(
            Side::Challenger,
            2,
            "griefer.redb",
            "challenger=3".parse().unwrap(),
        )
        .await;
    let client = setup.client().await;
    let first = setup.request().await;
    let second = setup.request().await;
    // It answers the first request, not the second (that would spend its reserve), and the
    // griefer's game on its result starts.
    tick_until(&mut [&mut submitter, &mut griefer], || async {
        client.contract().gameCount().call().await.unwrap() == 1
    })
    .await;
    assert_ne!(setup.live_result(first).await, 0);
    assert_eq!(setup.live_result(second).await, 0);
    assert_eq!(
        submitter.store().request(second).unwrap(),
        Some(opml_bisect::bot::RequestRecord::Waiting)
    );
    // It defends the game with its reserve and wins both of its bonds (the result bond stays
    // locked until the window ends), still short of a second result bond above its reserve.
    tick_until(&mut [&mut submitter, &mut griefer], || async {
        client.view(1).await.unwrap().is_over()
    })
    .await;
    assert_eq!(client.view(1).await.unwrap().winner, Some(Side::Submitter));
    for _ in 0..3 {
        submitter.tick().await.unwrap();
    }
    assert_eq!(setup.live_result(second).await, 0);
    // Funded, it answers the second request.
    setup.fund(address, p.result_bond).await;
    tick_until(&mut [&mut submitter, &mut griefer], || async {
        setup.live_result(second).await != 0
    })
    .await;
    let _ = std::fs::remove_dir_all(&setup.dir);
}

#[tokio::test]
async fn an_honest_submitter_answers_again_a_request_whose_result_was_rejected() {
    let setup = Setup::new("reanswer").await;
    // The liar ticks first and answers the request; the honest submitter finds it answered.
    let (mut liar, _) = setup
        .bot(Side::Submitter, 3, "liar.redb", "node=2".parse().unwrap())
        .await;
    let (mut honest, _) = setup
        .bot(Side::Submitter, 1, "honest.redb", Attack::None)
        .await;
    let (mut challenger, _) = setup
        .bot(Side::Challenger, 2, "challenger.redb", Attack::None)
        .await;
    let request = setup.request().await;
    let client = setup.client().await;
    tick_until(&mut [&mut liar, &mut honest, &mut challenger], || async {
        let live = setup.live_result(request).await;
        live != 0 && live != 1
    })
    .await;
    assert_eq!(
        client.result_status(1).await.unwrap(),
        ResultStatus::Rejected
    );
    let live = setup.live_result(request).await;
    let posted = client.contract().result(live).call().await.unwrap();
    assert_eq!(posted.submitter, dev_signer(1).address());
    let _ = std::fs::remove_dir_all(&setup.dir);
}

#[tokio::test]
async fn a_game_the_bot_cannot_compute_leaves_its_other_games_running() {
    let setup = Setup::new("isolation").await;
    // Two liars on two requests: one lies about the second conv (millions of VM steps), the other
    // about the last linear layer (thousands).
    let (mut big, _) = setup
        .bot(Side::Submitter, 3, "big.redb", "node=2".parse().unwrap())
        .await;
    let (mut small, _) = setup
        .bot(Side::Submitter, 4, "small.redb", "node=6".parse().unwrap())
        .await;
    let mut config = setup.config(2, "challenger.redb");
    config.max_node_steps = 100_000;
    let mut challenger = Bot::start(
        Side::Challenger,
        config,
        setup.chain.provider(dev_signer(2)),
    )
    .await
    .unwrap();
    let client = setup.client().await;
    let first = setup.request().await;
    big.tick().await.unwrap();
    let second = setup.request().await;
    small.tick().await.unwrap();
    let (big_result, small_result) = (
        setup.live_result(first).await,
        setup.live_result(second).await,
    );
    assert!(big_result != 0 && small_result != 0);
    // The challenger disputes both; the conv's run is over its budget, so that game is broken
    // (said once) while the other is played to the end and won.
    tick_until(&mut [&mut big, &mut small, &mut challenger], || async {
        client.result_status(small_result).await.unwrap() == ResultStatus::Rejected
    })
    .await;
    let games: Vec<_> = challenger.store().games().unwrap();
    assert_eq!(games.len(), 2, "{games:?}");
    let (broken_game, _) = games.iter().find(|(_, g)| g.result == big_result).unwrap();
    let (won_game, _) = games
        .iter()
        .find(|(_, g)| g.result == small_result)
        .unwrap();
    assert_eq!(
        client.view(*won_game).await.unwrap().winner,
        Some(Side::Challenger)
    );
    let broken = challenger.broken_games();
    assert_eq!(
        broken.keys().collect::<Vec<_>>(),
        [broken_game],
        "{broken:?}"
    );
    assert!(
        broken[broken_game].contains("node 2"),
        "{}",
        broken[broken_game]
    );
    // The broken game is still open (the liar's clock or the challenger's runs), and the bot's
    // ticks go on without error.
    assert!(!client.view(*broken_game).await.unwrap().is_over());
    let report = challenger.tick().await.unwrap();
    assert_eq!(report.open_games, 1);
    let _ = std::fs::remove_dir_all(&setup.dir);
}

#[tokio::test]
async fn a_bot_refuses_a_look_alike_deployment() {
    use alloy::primitives::B256;
    use opml_contracts::bindings::DisputeGame;
    let setup = Setup::new("lookalike").await;
    let provider = setup.chain.provider(dev_signer(0));
    let d = setup.deployment;
    let p = setup.params;
    let game = |registry, step| {
        DisputeGame::deploy(
            provider.clone(),
            registry,
            step,
            d.node_vm,
            p.result_bond,
            p.challenge_bond,
            p.challenge_window,
            p.clock,
            p.arity,
        )
    };
    // A game whose Step verifier is other code (here NodeVm's: any contract a liar wrote).
    let rigged_step = *game(d.registry, d.node_vm).await.unwrap().address();
    // A Registry that holds another kernel image for the first op kind.
    let mut images = opml_bisect::deploy::kernel_images();
    images[0].1 = B256::repeat_byte(7);
    let registry = Deployment::deploy_registry(&provider, &images)
        .await
        .unwrap();
    let rigged_kernel = *game(registry, d.step).await.unwrap().address();
    let cases = [
        ("another Step", rigged_step, "Step"),
        ("another kernel", rigged_kernel, "kernel image"),
        ("not a game", d.step, "DisputeGame"),
    ];
    for (case, address, says) in cases {
        let mut config = setup.config(2, &format!("{}.redb", says.replace(' ', "-")));
        config.game = address;
        let err = Bot::start(
            Side::Challenger,
            config,
            setup.chain.provider(dev_signer(2)),
        )
        .await
        .err()
        .unwrap_or_else(|| panic!("{case}: started"));
        assert!(
            matches!(&err, BotError::ForeignDeployment { reason, .. } if reason.contains(says)),
            "{case}: {err}"
        );
    }
    assert_eq!(Deployment::verify(&provider, d.game).await.unwrap(), d);
    let _ = std::fs::remove_dir_all(&setup.dir);
}

/// `opml submitter|challenger --check`: each kind of misconfiguration fails its own check (and
/// only it), a good file passes every one, and nothing is written (no database).
#[tokio::test]
async fn check_config_names_the_check_that_fails() {
    use opml_bisect::bot::check_config;
    let setup = Setup::new("check").await;
    // A second deployment where no model is registered.
    let bare = Deployment::deploy(&setup.chain.provider(dev_signer(0)), &setup.params)
        .await
        .unwrap();
    let good = |role| (role, setup.config(1, "check.redb"));
    let cases: Vec<(&str, (Side, BotConfig), &[&str])> = vec![
        ("good submitter", good(Side::Submitter), &[]),
        ("good challenger", good(Side::Challenger), &[]),
        (
            "unfunded",
            (Side::Submitter, {
                let mut c = setup.config(1, "check.redb");
                c.signer = fresh_key(0x51);
                c
            }),
            &["balance"],
        ),
        (
            "reserve beyond the balance",
            (Side::Submitter, {
                let mut c = setup.config(1, "check.redb");
                c.reserve = Some(U256::from(10u128.pow(18)) * U256::from(1_000_000u64));
                c
            }),
            &["balance"],
        ),
        (
            "bond too small",
            (Side::Challenger, {
                let mut c = setup.config(1, "check.redb");
                c.bond = U256::from(1u64);
                c
            }),
            &["terms"],
        ),
        (
            "model not registered",
            (Side::Challenger, {
                let mut c = setup.config(1, "check.redb");
                c.game = bare.game;
                c
            }),
            &["model"],
        ),
        (
            "fee cap below the base fee",
            (Side::Challenger, {
                let mut c = setup.config(1, "check.redb");
                c.max_fee_per_gas = Some(1_500_000_000);
                c
            }),
            &["fees"],
        ),
        (
            "no game there",
            (Side::Challenger, {
                let mut c = setup.config(1, "check.redb");
                c.game = alloy::primitives::Address::repeat_byte(0x77);
                c
            }),
            &["deployment"],
        ),
    ];
    for (name, (role, config), want) in cases {
        let checks = check_config(role, &config, &setup.chain.provider(dev_signer(1))).await;
        let failed: Vec<&str> = checks
            .iter()
            .filter(|c| c.outcome.is_err())
            .map(|c| c.name.split(' ').next().unwrap())
            .collect();
        assert_eq!(failed, want, "{name}: {checks:#?}");
        assert!(checks.iter().any(|c| c.name == "chain"), "{name}");
        assert!(
            checks.iter().any(|c| c.name.starts_with("model ")),
            "{name}"
        );
        assert!(!config.db.exists(), "{name}: --check wrote a database");
    }
}

/// Observability (issue 20): a bot's metrics count what it does. A liar (about the last linear
/// layer: a short game) posts a result and loses its game; the challenger challenges and wins;
/// every transaction each sent is counted once, none is left pending, and the balance gauge is
/// the account's balance.
#[tokio::test]
async fn the_metrics_count_what_the_bots_do() {
    use alloy::providers::Provider;
    let setup = Setup::new("metrics").await;
    let (mut liar, mut liar_events) = setup
        .bot(Side::Submitter, 3, "liar.redb", "node=6".parse().unwrap())
        .await;
    let (mut challenger, mut challenger_events) = setup
        .bot(Side::Challenger, 2, "challenger.redb", Attack::None)
        .await;
    // Started: it knows who it is, and is not up before its first tick.
    let s = challenger.metrics().snapshot();
    let info = s.info.map(|i| (i.account, i.game, i.chain_id));
    assert_eq!(
        info,
        Some((dev_signer(2).address(), setup.deployment.game, 31337))
    );
    assert!(!s.up && s.ticks == 0);
    setup.request().await;
    liar.tick().await.unwrap();
    let s = liar.metrics().snapshot();
    assert!(s.up && s.ticks == 1 && s.last_tick_unix > 0, "{s:?}");
    assert!(s.last_block > 0 && s.balance_wei > 0.0, "{s:?}");
    assert_eq!(
        (
            s.results_posted,
            s.transactions_sent,
            s.pending_transactions
        ),
        (1, 1, 0)
    );
    let client = setup.client().await;
    tick_until(&mut [&mut liar, &mut challenger], || async {
        client.contract().gameCount().call().await.unwrap() == 1
            && client.view(1).await.unwrap().is_over()
    })
    .await;
    // Each sees the game over on its next tick.
    liar.tick().await.unwrap();
    challenger.tick().await.unwrap();
    let (l, c) = (liar.metrics().snapshot(), challenger.metrics().snapshot());
    let count = |events: &mut UnboundedReceiver<BotEvent>| {
        std::iter::from_fn(|| events.try_recv().ok()).count() as u64
    };
    let provider = setup.chain.provider(dev_signer(0));
    let balance = |a| {
        let provider = provider.clone();
        async move { f64::from(provider.get_balance(a).await.unwrap()) }
    };
    let cases = [
        ("liar: games won", l.games_won, 0),
        ("liar: games lost", l.games_lost, 1),
        ("liar: results posted", l.results_posted, 1),
        ("liar: results challenged", l.results_challenged, 0),
        ("liar: games open", l.games_open, 0),
        ("liar: pending", l.pending_transactions, 0),
        ("liar: sent", l.transactions_sent, count(&mut liar_events)),
        ("challenger: games won", c.games_won, 1),
        ("challenger: games lost", c.games_lost, 0),
        ("challenger: results posted", c.results_posted, 0),
        ("challenger: results challenged", c.results_challenged, 1),
        ("challenger: games open", c.games_open, 0),
        ("challenger: pending", c.pending_transactions, 0),
        (
            "challenger: sent",
            c.transactions_sent,
            count(&mut challenger_events),
        ),
        // The embedded chain has no transport to fail, and the market's fees did not rise.
        ("challenger: rpc errors", c.rpc_errors, 0),
        ("challenger: tick failures", c.tick_failures, 0),
        ("challenger: replaced", c.transactions_replaced, 0),
    ];
    for (what, got, want) in cases {
        assert_eq!(got, want, "{what}");
    }
    assert!(c.transactions_sent > 2, "{c:?}");
    assert_eq!(l.balance_wei, balance(dev_signer(3).address()).await);
    assert_eq!(c.balance_wei, balance(dev_signer(2).address()).await);
    assert!(
        l.last_block > 0 && l.last_block <= c.last_block,
        "{l:?} {c:?}"
    );
    let text = opml_bisect::bot::metrics::render(&c);
    assert!(
        text.contains("opml_bot_games_finished_total{role=\"challenger\",outcome=\"won\"} 1\n"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&setup.dir);
}

/// Mines an empty block.
async fn mine(setup: &Setup) {
    use alloy::providers::Provider;
    let _: serde_json::Value = setup
        .chain
        .provider(dev_signer(0))
        .raw_request("evm_mine".into(), ())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_bot_acts_on_a_request_only_once_it_is_confirmations_deep() {
    let setup = Setup::new("confirmations").await;
    let mut config = setup.config(1, "deep.redb");
    config.confirmations = Some(2);
    let mut deep = Bot::start(Side::Submitter, config, setup.chain.provider(dev_signer(1)))
        .await
        .unwrap();
    // The default on a dev chain: none. Unfunded, so that it sends nothing (no block of its own).
    let mut shallow = setup
        .bot_with_key(Side::Submitter, fresh_key(0x61), "shallow.redb", None)
        .await;
    deep.tick().await.unwrap();
    let request = setup.request().await;
    shallow.tick().await.unwrap();
    assert_eq!(
        shallow.store().request(request).unwrap(),
        Some(opml_bisect::bot::RequestRecord::Waiting),
        "without confirmations the request is seen in its own block"
    );
    for on_top in 0..2 {
        deep.tick().await.unwrap();
        assert_eq!(
            deep.store().request(request).unwrap(),
            None,
            "seen with {on_top} blocks on top"
        );
        mine(&setup).await;
    }
    deep.tick().await.unwrap();
    assert!(
        deep.store().request(request).unwrap().is_some(),
        "not seen with 2 blocks on top"
    );
    let _ = std::fs::remove_dir_all(&setup.dir);
}

#[tokio::test]
async fn no_transaction_is_signed_above_the_fee_cap() {
    use alloy::consensus::Transaction;
    use alloy::network::TransactionBuilder;
    use alloy::providers::Provider;
    use opml_bisect::bot::{Identity, Outbox, Store};
    let setup = Setup::new("feecap").await;
    std::fs::create_dir_all(&setup.dir).unwrap();
    let gwei = 1_000_000_000u128;
    // The embedded chain asks a base fee of 1 gwei and a tip of 1 gwei: alloy's estimate is 3.
    // (cap, the max fee per gas of the transaction sent, or none sent.)
    let cases = [
        (None, Some(3 * gwei)),
        (Some(5 * gwei), Some(3 * gwei)),
        (Some(5 * gwei / 2), Some(5 * gwei / 2)),
        (Some(3 * gwei / 2), None),
    ];
    for (i, (cap, want)) in cases.into_iter().enumerate() {
        let signer = dev_signer(6 + i as u32);
        let account = signer.address();
        let provider = setup.chain.provider(signer.clone());
        let identity = Identity {
            role: Side::Submitter,
            chain_id: 31337,
            game: alloy::primitives::Address::ZERO,
            account,
        };
        let store = std::sync::Arc::new(
            Store::open(&setup.dir.join(format!("outbox-{i}.redb")), &identity).unwrap(),
        );
        let outbox = Outbox::open(
            provider.clone(),
            signer,
            31337,
            store.clone(),
            Duration::from_millis(10),
            std::sync::Arc::new(opml_bisect::bot::BotMetrics::new(Side::Submitter)),
        )
        .await
        .unwrap()
        .with_max_fee_per_gas(cap);
        let tx = alloy::rpc::types::TransactionRequest::default()
            .with_to(dev_signer(0).address())
            .with_value(U256::from(1));
        match (outbox.send("transfer", tx).await, want) {
            (Ok(receipt), Some(max_fee)) => {
                let sent = provider
                    .get_transaction_by_hash(receipt.transaction_hash)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(sent.inner.max_fee_per_gas(), max_fee, "cap {cap:?}");
            }
            (Err(e), None) => {
                assert!(e.is_fee_capped(), "{e}");
                let text = e.to_string();
                assert!(
                    text.contains("1.5 gwei") && text.contains("base fee 1 gwei"),
                    "{text}"
                );
                // Nothing signed, written down or sent: the nonce is still free.
                assert!(store.outbox().unwrap().is_empty());
                assert_eq!(provider.get_transaction_count(account).await.unwrap(), 0);
            }
            (got, want) => panic!("cap {cap:?}: got {got:?}, want {want:?}"),
        }
    }
    // A bot whose cap the market exceeds answers nothing, and its tick goes on.
    let mut config = setup.config(1, "capped.redb");
    config.max_fee_per_gas = Some(3 * gwei / 2);
    let mut bot = Bot::start(Side::Submitter, config, setup.chain.provider(dev_signer(1)))
        .await
        .unwrap();
    let request = setup.request().await;
    for _ in 0..3 {
        let report = bot.tick().await.unwrap();
        assert_eq!(report.transactions, 0);
    }
    assert_eq!(
        bot.store().request(request).unwrap(),
        Some(opml_bisect::bot::RequestRecord::Waiting)
    );
    assert_eq!(setup.live_result(request).await, 0);
    let _ = std::fs::remove_dir_all(&setup.dir);
}
