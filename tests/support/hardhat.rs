//! A Hardhat node process on a free loopback port, for the tests against a real node.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A Hardhat node process, killed when dropped.
pub struct HardhatNode {
    child: Child,
    /// Its JSON-RPC URL.
    pub url: String,
}

impl HardhatNode {
    /// Starts the node of `contracts/` (installed by scripts/setup.sh) and waits until it listens.
    pub fn start() -> Self {
        let contracts = Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts");
        let hardhat = contracts.join("node_modules/.bin/hardhat");
        assert!(
            hardhat.exists(),
            "{} is missing: run scripts/setup.sh (npm ci in contracts/) first",
            hardhat.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(hardhat)
            .args([
                "node",
                "--hostname",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .env("HARDHAT_DISABLE_TELEMETRY_PROMPT", "true")
            .current_dir(&contracts)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("Started HTTP") {
                    let _ = tx.send(());
                }
            }
        });
        let node = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        rx.recv_timeout(Duration::from_secs(120))
            .expect("hardhat node did not start within 120 s");
        node
    }
}

impl Drop for HardhatNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
