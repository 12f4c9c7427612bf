//! The submitter and challenger bots as separate `opml` processes against a real node (Hardhat's,
//! on 127.0.0.1): an honest result finalizes untouched, a faulty one is challenged and rejected,
//! a challenger killed with SIGKILL mid-game and restarted still wins, and a challenger behind a
//! proxy that spoils the node's answers still wins. Every process is killed when the test ends.

mod support;

use alloy::primitives::{Address, U256};
use alloy::providers::DynProvider;
use opml_bisect::bot::http_provider;
use opml_bisect::{GameClient, ResultStatus, Side};
use opml_contracts::dev_signer;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::hardhat::HardhatNode;
use support::rpc_proxy::{ProxyFault, RpcProxy};

const OPML: &str = env!("CARGO_BIN_EXE_opml");
/// Dev accounts: 0 and 4 request, 1 is the honest submitter, 3 the faulty one, 2 the challenger.
const HONEST_CLIENT: u32 = 0;
const FAULTY_CLIENT: u32 = 4;

/// A bot process whose log goes to a file; killed when dropped.
struct BotProcess {
    child: Child,
    log: PathBuf,
}

impl BotProcess {
    /// `command` is the subcommand and its flags before `--config` (`submitter`, `challenger`,
    /// or `adversary --role submitter --fault node=2`).
    fn start(command: &str, config: &Path, log: PathBuf) -> Self {
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(OPML)
            .args(command.split_whitespace())
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no chance to flush or clean up.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for BotProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("opml-bots-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn opml(args: &[&str]) -> String {
    let out = Command::new(OPML)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "opml {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Writes a bot's TOML file; returns its path.
fn config(dir: &Path, name: &str, rpc: &str, game: Address, key: u32, extra: &str) -> PathBuf {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mnist-cnn");
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "rpc = \"{rpc}\"\nkey = \"dev:{key}\"\ngame = \"{game}\"\nmodels = [\"{}\"]\n\
             bond = \"1 ether\"\narity = 2\npoll_interval_ms = 200\ndb = \"{name}.redb\"\n{extra}\n",
            model.display()
        ),
    )
    .unwrap();
    path
}

/// Polls `check` every 250 ms until it returns a value, at most `limit`.
fn wait_for<T>(
    what: &str,
    limit: Duration,
    bots: &[&BotProcess],
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        if start.elapsed() > limit {
            let logs: Vec<String> = bots
                .iter()
                .map(|b| format!("--- {}\n{}", b.log.display(), b.log()))
                .collect();
            panic!("{what}: not within {limit:?}\n{}", logs.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The chain as the test reads it.
struct Chain {
    rt: tokio::runtime::Runtime,
    url: String,
    game: GameClient,
}

impl Chain {
    fn new(rt: tokio::runtime::Runtime, url: &str, game: Address) -> Self {
        let provider: DynProvider = http_provider(url.parse().unwrap());
        let game = rt.block_on(GameClient::new(game, provider)).unwrap();
        Self {
            rt,
            url: url.to_string(),
            game,
        }
    }

    fn request(&self, address: Address, digit: usize, account: u32) -> u64 {
        let out = opml(&[
            "request",
            "--rpc",
            &self.url,
            "--game",
            &address.to_string(),
            "--digit",
            &digit.to_string(),
            "--account",
            &account.to_string(),
        ]);
        out.trim().parse().unwrap()
    }

    /// The result answering `request`, once posted: (id, submitter, status).
    fn result_of(&self, request: u64) -> Option<(u64, Address, ResultStatus)> {
        self.rt.block_on(async {
            let logs = self
                .game
                .contract()
                .ResultPosted_filter()
                .from_block(0)
                .query()
                .await
                .ok()?;
            let (event, _) = logs.iter().rev().find(|(e, _)| e.request == request)?;
            let status = self.game.result_status(event.result).await.ok()?;
            Some((event.result, event.submitter, status))
        })
    }

    /// The games on `result`: (id, view).
    fn games_on(&self, result: u64) -> Vec<(u64, opml_bisect::GameView)> {
        self.rt.block_on(async {
            let logs = self
                .game
                .contract()
                .GameStarted_filter()
                .topic2(U256::from(result))
                .from_block(0)
                .query()
                .await
                .unwrap_or_default();
            let mut out = Vec::new();
            for (event, _) in logs {
                if let Ok(view) = self.game.view(event.game).await {
                    out.push((event.game, view));
                }
            }
            out
        })
    }

    fn credit(&self, account: Address) -> U256 {
        self.rt
            .block_on(async { self.game.contract().credit(account).call().await })
            .unwrap()
    }
}

/// Milliseconds in the "caught up" line of a bot's log: how long its start took.
fn caught_up_ms(log: &str) -> Option<u64> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("caught up with the chain"))?;
    let ms = line.split("ms=").nth(1)?.split_whitespace().next()?;
    ms.parse().ok()
}

#[test]
fn bots_play_disputes_on_a_real_node() {
    let node = HardhatNode::start();
    let dir = workdir("real-node");
    let deployed: serde_json::Value = serde_json::from_str(&opml(&[
        "deploy",
        "--rpc",
        &node.url,
        "--model",
        "models/mnist-cnn",
        "--window",
        "20",
        "--clock",
        "600",
        "--json",
    ]))
    .unwrap();
    let game: Address = deployed["game"].as_str().unwrap().parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let chain = Chain::new(rt, &node.url, game);
    let addr = |i: u32| dev_signer(i).address();
    let serve = |client: u32| format!("serve = [\"{}\"]", addr(client));

    let honest_cfg = config(&dir, "honest", &node.url, game, 1, &serve(HONEST_CLIENT));
    let faulty_cfg = config(&dir, "faulty", &node.url, game, 3, &serve(FAULTY_CLIENT));
    let challenger_cfg = config(&dir, "challenger", &node.url, game, 2, "");
    let honest = BotProcess::start("submitter", &honest_cfg, dir.join("honest.log"));
    let faulty = BotProcess::start(
        "adversary --role submitter --fault node=2",
        &faulty_cfg,
        dir.join("faulty.log"),
    );
    let mut challenger =
        BotProcess::start("challenger", &challenger_cfg, dir.join("challenger-1.log"));

    // An honest result: re-executed, left alone, final after the window, the bond withdrawn.
    let request = chain.request(game, 0, HONEST_CLIENT);
    let (result, submitter, _) = wait_for(
        "the honest result is final",
        Duration::from_secs(90),
        &[&honest, &challenger],
        || {
            chain
                .result_of(request)
                .filter(|r| r.2 == ResultStatus::Final)
        },
    );
    assert_eq!(submitter, addr(1));
    assert!(
        chain.games_on(result).is_empty(),
        "an honest result was challenged"
    );
    wait_for(
        "the honest submitter withdraws",
        Duration::from_secs(30),
        &[&honest],
        || chain.credit(addr(1)).is_zero().then_some(()),
    );
    assert!(challenger.log().contains("agrees"), "{}", challenger.log());

    // A faulty result: challenged and rejected, the challenger wins the game.
    let request = chain.request(game, 1, FAULTY_CLIENT);
    let (result, submitter, _) = wait_for(
        "the faulty result is rejected",
        Duration::from_secs(120),
        &[&faulty, &challenger],
        || {
            chain
                .result_of(request)
                .filter(|r| r.2 == ResultStatus::Rejected)
        },
    );
    assert_eq!(submitter, addr(3));
    let games = chain.games_on(result);
    assert_eq!(games.len(), 1);
    assert_eq!(games[0].1.winner, Some(Side::Challenger));

    // The challenger killed mid-game (in phase 1) and restarted from its database.
    let request = chain.request(game, 2, FAULTY_CLIENT);
    let (result, _, _) = wait_for(
        "the third result is posted",
        Duration::from_secs(60),
        &[&faulty],
        || chain.result_of(request),
    );
    wait_for(
        "the game reaches phase 1",
        Duration::from_secs(120),
        &[&faulty, &challenger],
        || {
            chain
                .games_on(result)
                .iter()
                .any(|(_, v)| v.phase == 1)
                .then_some(())
        },
    );
    challenger.kill();
    let killed_at = Instant::now();
    let restarted = BotProcess::start("challenger", &challenger_cfg, dir.join("challenger-2.log"));
    let (_, _, status) = wait_for(
        "the restarted challenger wins",
        Duration::from_secs(120),
        &[&faulty, &restarted],
        || {
            chain
                .result_of(request)
                .filter(|r| r.2 != ResultStatus::Pending)
        },
    );
    assert_eq!(status, ResultStatus::Rejected);
    let games = chain.games_on(result);
    assert_eq!(games.len(), 1, "the restarted challenger challenged twice");
    assert_eq!(games[0].1.winner, Some(Side::Challenger));
    let resume = caught_up_ms(&restarted.log()).expect("the restarted bot logs when it caught up");
    eprintln!(
        "challenger restarted after SIGKILL: caught up in {resume} ms; game won {:.1} s after the kill",
        killed_at.elapsed().as_secs_f64()
    );
    drop(restarted);

    // The challenger behind a proxy that spoils every third answer of the node.
    let upstream = node.url.trim_start_matches("http://").parse().unwrap();
    let proxy = chain.rt.block_on(RpcProxy::start(upstream)).unwrap();
    let proxied_cfg = config(&dir, "challenger", &proxy.url(), game, 2, "");
    proxy.set_faults(
        vec![
            ProxyFault::Drop,
            ProxyFault::ServerError,
            ProxyFault::Garbage,
            ProxyFault::Truncated,
            ProxyFault::Delay(Duration::from_millis(300)),
        ],
        3,
    );
    let proxied = BotProcess::start("challenger", &proxied_cfg, dir.join("challenger-3.log"));
    let request = chain.request(game, 3, FAULTY_CLIENT);
    let (result, _, status) = wait_for(
        "the proxied challenger wins",
        Duration::from_secs(180),
        &[&faulty, &proxied],
        || {
            chain
                .result_of(request)
                .filter(|r| r.2 != ResultStatus::Pending)
        },
    );
    assert_eq!(status, ResultStatus::Rejected, "{}", proxied.log());
    assert_eq!(chain.games_on(result)[0].1.winner, Some(Side::Challenger));
    assert!(
        proxy.faults_injected() > 10,
        "only {} faults injected",
        proxy.faults_injected()
    );
    assert!(proxied.log().contains("retrying"), "{}", proxied.log());
    eprintln!(
        "proxied challenger: {} requests, {} spoiled answers",
        proxy.requests(),
        proxy.faults_injected()
    );
    wait_for(
        "the challenger withdraws its winnings",
        Duration::from_secs(30),
        &[&proxied],
        || chain.credit(addr(2)).is_zero().then_some(()),
    );
    drop((honest, faulty, proxied));
    let _ = std::fs::remove_dir_all(&dir);
}
