//! The bots on the embedded chain, in one process: a challenger stopped mid-game at an arbitrary
//! await point (as a crash would leave it, a signed transaction possibly in flight) and started
//! again from its database wins without a second challenge or a repeated move; a bot refuses a
//! database of another bot, a contract whose bond exceeds its own and another arity; and a
//! submitter whose cached run no longer matches what it posted stops instead of playing on.

use alloy::primitives::U256;
use opml_bisect::bot::{BotEvent, Endpoint};
use opml_bisect::{
    Bot, BotConfig, BotError, Deployment, Fault, GameClient, GameParams, ResultStatus, Side,
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

    fn config(&self, account: u32, db: &str, fault: Fault) -> BotConfig {
        BotConfig {
            rpc: Endpoint::Embedded,
            signer: dev_signer(account),
            game: self.deployment.game,
            models: vec![repo("models/mnist-cnn")],
            bond: U256::from(10u128.pow(18)),
            arity: Some(self.params.arity),
            poll_interval: Duration::from_millis(10),
            db: self.dir.join(db),
            serve: Vec::new(),
            from_block: 0,
            fault,
        }
    }

    async fn bot(
        &self,
        role: Side,
        account: u32,
        db: &str,
        fault: Fault,
    ) -> (Bot, UnboundedReceiver<BotEvent>) {
        let (tx, rx) = unbounded_channel();
        let bot = Bot::start(
            role,
            self.config(account, db, fault),
            self.chain.provider(dev_signer(account)),
        )
        .await
        .unwrap()
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
        .bot(Side::Challenger, 2, "challenger.redb", Fault::None)
        .await;
    // Well into phase 1 of the 4.1M-step conv node: the challenge and about ten picks.
    let before = tokio::select! {
        r = &mut liar => panic!("the liar stopped: {r:?}"),
        seen = run_until(challenger, &mut events, 11) => seen,
    };
    let (challenger, mut events) = setup
        .bot(Side::Challenger, 2, "challenger.redb", Fault::None)
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
    assert!(after.iter().any(|e| e.record.action == "prove-step"));
    let _ = std::fs::remove_dir_all(&setup.dir);
}

#[tokio::test]
async fn a_bot_refuses_another_bots_database_and_a_larger_bond() {
    let setup = Setup::new("refusals").await;
    let (bot, _) = setup
        .bot(Side::Submitter, 1, "submitter.redb", Fault::None)
        .await;
    drop(bot);
    let provider = setup.chain.provider(dev_signer(2));
    // Another role on the same file.
    let err = Bot::start(
        Side::Challenger,
        setup.config(2, "submitter.redb", Fault::None),
        provider.clone(),
    )
    .await
    .err()
    .expect("another bot's database opened");
    assert!(matches!(err, BotError::Store(_)), "{err}");
    // A bond limit below the contract's challenge bond (0.5 ether).
    let mut config = setup.config(2, "challenger.redb", Fault::None);
    config.bond = U256::from(10u128.pow(17));
    let err = Bot::start(Side::Challenger, config, provider.clone())
        .await
        .err()
        .expect("started");
    assert!(matches!(err, BotError::Config(_)), "{err}");
    // An arity the contract does not play.
    let mut config = setup.config(2, "challenger.redb", Fault::None);
    config.arity = Some(4);
    let err = Bot::start(Side::Challenger, config, provider)
        .await
        .err()
        .expect("started");
    assert!(matches!(err, BotError::Config(_)), "{err}");
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
            .bot(Side::Challenger, 2, "challenger.redb", Fault::None)
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
        Err(BotError::Config(reason)) => assert!(reason.contains("no longer"), "{reason}"),
        other => panic!("played on with a changed run: {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&setup.dir);
}
