//! A bot's database: what it has seen and done, so that a restarted bot (even after SIGKILL)
//! picks up where it stopped.
//!
//! redb, not SQLite: it is pure Rust (no C toolchain in the build), every commit is atomic and
//! durable (copy-on-write B-trees with a checksummed commit slot, so a kill mid-write leaves the
//! last commit intact), and a bot's state is a handful of keyed records, not relational data.
//! Records are JSON, so that `redb`'s tools or a debugger show what a person can read; cached
//! tensors are binary ([`Tensor::encode`]).

use crate::client::{ResultStatus, Side};
use alloy::primitives::{Address, Bytes, B256};
use opml_dnn::Tensor;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::Path;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const REQUESTS: TableDefinition<u64, &[u8]> = TableDefinition::new("requests");
const RESULTS: TableDefinition<u64, &[u8]> = TableDefinition::new("results");
const GAMES: TableDefinition<u64, &[u8]> = TableDefinition::new("games");
const VIEWS: TableDefinition<u64, &[u8]> = TableDefinition::new("views");
const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");

/// Why the database failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database itself (file, lock, transaction).
    #[error("database {path}: {source}")]
    Db {
        /// The file.
        path: String,
        /// What failed.
        source: Box<redb::Error>,
    },
    /// A record that does not decode: the file is not this version's, or damaged.
    #[error("database {path}: record {table}/{key} is unreadable: {reason}")]
    Record {
        /// The file.
        path: String,
        /// The table.
        table: String,
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The database belongs to another bot, chain, contract or account.
    #[error("database {path} belongs to {stored}, not to {wanted}: give this bot its own `db`")]
    Identity {
        /// The file.
        path: String,
        /// Whose it is.
        stored: String,
        /// Who opened it.
        wanted: String,
    },
}

/// Whose database it is: one bot role, account, contract and chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The bot's role.
    pub role: Side,
    /// The chain id.
    pub chain_id: u64,
    /// The `DisputeGame` contract.
    pub game: Address,
    /// The bot's account.
    pub account: Address,
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the {:?} {} of game contract {} on chain {}",
            self.role, self.account, self.game, self.chain_id
        )
    }
}

/// What a bot decided about a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestRecord {
    /// To be answered, once the games and the funds allow (new work comes after defence).
    Waiting,
    /// Answered with this result.
    Answered {
        /// The result id.
        result: u64,
    },
    /// Left alone, and why.
    Skipped {
        /// Why.
        reason: String,
    },
}

/// What a bot decided about a posted result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The bot's own result.
    Posted,
    /// Re-executed and found equal.
    Agrees,
    /// Re-executed and found different; its challenge has not landed yet (it is tried again on
    /// every tick until it does or the window closes).
    Differs,
    /// Re-executed, found different, and challenged.
    Disputed,
    /// Found different, but its window closed (or another game settled it) before our challenge
    /// landed.
    Missed,
    /// Not one of the bot's models, or an input it cannot read.
    Ignored,
}

/// A result the bot follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultRecord {
    /// Its request.
    pub request: u64,
    /// The request's model.
    pub model: B256,
    /// Who posted it.
    pub submitter: Address,
    /// Its output commitment.
    pub output: B256,
    /// Its trace root.
    pub trace_root: B256,
    /// End of its challenge window.
    pub deadline: u64,
    /// Its status when last seen.
    pub status: ResultStatus,
    /// What the bot made of it.
    pub verdict: Verdict,
}

/// A game the bot plays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GameRecord {
    /// The disputed result.
    pub result: u64,
    /// The bot's side.
    pub side: Side,
    /// The winner, once over.
    pub winner: Option<Side>,
    /// Moves the bot made.
    pub moves: u32,
    /// Gas of those moves.
    pub gas: u64,
}

/// A signed transaction written down before it is broadcast, so that a restart re-sends the same
/// bytes (same hash, same nonce) instead of deciding the move again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTx {
    /// Its nonce.
    pub nonce: u64,
    /// What it does.
    pub what: String,
    /// Its hash.
    pub hash: B256,
    /// The signed EIP-2718 bytes.
    pub raw: Bytes,
    /// Hashes of the earlier versions it replaced with higher fees, oldest first: any of them
    /// may be the one mined.
    #[serde(default)]
    pub replaced: Vec<B256>,
}

/// The database.
#[derive(Debug)]
pub struct Store {
    db: Database,
    path: String,
}

impl Store {
    /// Opens (or creates) the database at `path` for `identity`; refuses one written by another.
    pub fn open(path: &Path, identity: &Identity) -> Result<Self, StoreError> {
        let name = path.display().to_string();
        let db = Database::create(path).map_err(|e| StoreError::Db {
            path: name.clone(),
            source: Box::new(e.into()),
        })?;
        let store = Self { db, path: name };
        match store.meta::<Identity>("identity")? {
            Some(stored) if stored != *identity => {
                return Err(StoreError::Identity {
                    path: store.path.clone(),
                    stored: stored.to_string(),
                    wanted: identity.to_string(),
                })
            }
            Some(_) => {}
            None => store.set_meta("identity", identity)?,
        }
        Ok(store)
    }

    fn db_error(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            source: Box::new(e.into()),
        }
    }

    fn record<T: DeserializeOwned>(
        &self,
        table: String,
        key: String,
        bytes: &[u8],
    ) -> Result<T, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| StoreError::Record {
            path: self.path.clone(),
            table,
            key,
            reason: e.to_string(),
        })
    }

    /// Table `def` for reading, or `None` before anything was written to it.
    fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Result<Option<redb::ReadOnlyTable<K, V>>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.db_error(e))?;
        match tx.open_table(def) {
            Ok(table) => Ok(Some(table)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(self.db_error(e)),
        }
    }

    fn meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        let Some(table) = self.table(META)? else {
            return Ok(None);
        };
        let Some(value) = table.get(key).map_err(|e| self.db_error(e))? else {
            return Ok(None);
        };
        self.record("meta".into(), key.to_string(), value.value())
            .map(Some)
    }

    fn set_meta<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).expect("records serialize");
        self.write(|tx| {
            Ok(tx
                .open_table(META)?
                .insert(key, bytes.as_slice())
                .map(drop)?)
        })
    }

    fn write(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.db_error(e))?;
        f(&tx).map_err(|e| self.db_error(e))?;
        tx.commit().map_err(|e| self.db_error(e))
    }

    fn get<T: DeserializeOwned>(
        &self,
        def: TableDefinition<u64, &[u8]>,
        key: u64,
    ) -> Result<Option<T>, StoreError> {
        let Some(table) = self.table(def)? else {
            return Ok(None);
        };
        let Some(value) = table.get(key).map_err(|e| self.db_error(e))? else {
            return Ok(None);
        };
        self.record(def.name().to_string(), key.to_string(), value.value())
            .map(Some)
    }

    fn all<T: DeserializeOwned>(
        &self,
        def: TableDefinition<u64, &[u8]>,
    ) -> Result<Vec<(u64, T)>, StoreError> {
        let Some(table) = self.table(def)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in table.iter().map_err(|e| self.db_error(e))? {
            let (key, value) = entry.map_err(|e| self.db_error(e))?;
            let key = key.value();
            out.push((
                key,
                self.record(def.name().to_string(), key.to_string(), value.value())?,
            ));
        }
        Ok(out)
    }

    fn put<T: Serialize>(
        &self,
        def: TableDefinition<u64, &[u8]>,
        key: u64,
        value: &T,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).expect("records serialize");
        self.write(|tx| {
            Ok(tx
                .open_table(def)?
                .insert(key, bytes.as_slice())
                .map(drop)?)
        })
    }

    /// The next block to scan for logs.
    pub fn cursor(&self) -> Result<Option<u64>, StoreError> {
        self.meta("cursor")
    }

    /// Records that every block before `next` has been scanned.
    pub fn set_cursor(&self, next: u64) -> Result<(), StoreError> {
        self.set_meta("cursor", &next)
    }

    /// What the bot decided about request `id`.
    pub fn request(&self, id: u64) -> Result<Option<RequestRecord>, StoreError> {
        self.get(REQUESTS, id)
    }

    /// Every request the bot decided about.
    pub fn requests(&self) -> Result<Vec<(u64, RequestRecord)>, StoreError> {
        self.all(REQUESTS)
    }

    /// Records what the bot decided about request `id`.
    pub fn put_request(&self, id: u64, record: &RequestRecord) -> Result<(), StoreError> {
        self.put(REQUESTS, id, record)
    }

    /// Result `id`, if the bot follows it.
    pub fn result(&self, id: u64) -> Result<Option<ResultRecord>, StoreError> {
        self.get(RESULTS, id)
    }

    /// Every result the bot follows.
    pub fn results(&self) -> Result<Vec<(u64, ResultRecord)>, StoreError> {
        self.all(RESULTS)
    }

    /// Records result `id`.
    pub fn put_result(&self, id: u64, record: &ResultRecord) -> Result<(), StoreError> {
        self.put(RESULTS, id, record)
    }

    /// Game `id`, if the bot plays it.
    pub fn game(&self, id: u64) -> Result<Option<GameRecord>, StoreError> {
        self.get(GAMES, id)
    }

    /// Every game the bot plays or played.
    pub fn games(&self) -> Result<Vec<(u64, GameRecord)>, StoreError> {
        self.all(GAMES)
    }

    /// Records game `id`.
    pub fn put_game(&self, id: u64, record: &GameRecord) -> Result<(), StoreError> {
        self.put(GAMES, id, record)
    }

    /// The cached native run of request `id`: its input, then every node's output.
    pub fn view(&self, request: u64) -> Result<Option<Vec<Tensor>>, StoreError> {
        let Some(table) = self.table(VIEWS)? else {
            return Ok(None);
        };
        let Some(value) = table.get(request).map_err(|e| self.db_error(e))? else {
            return Ok(None);
        };
        let mut bytes = value.value();
        let mut tensors = Vec::new();
        while !bytes.is_empty() {
            let (t, used) = Tensor::decode_prefix(bytes).map_err(|e| StoreError::Record {
                path: self.path.clone(),
                table: "views".into(),
                key: request.to_string(),
                reason: e.to_string(),
            })?;
            tensors.push(t);
            bytes = &bytes[used..];
        }
        Ok(Some(tensors))
    }

    /// Caches the native run of request `id` (input first).
    pub fn put_view(&self, request: u64, tensors: &[&Tensor]) -> Result<(), StoreError> {
        let mut bytes = Vec::new();
        for t in tensors {
            bytes.extend(
                t.encode()
                    .expect("tensors of a model run have valid headers"),
            );
        }
        self.write(|tx| {
            tx.open_table(VIEWS)?.insert(request, bytes.as_slice())?;
            Ok(())
        })
    }

    /// Transactions signed and not yet known to be mined.
    pub fn outbox(&self) -> Result<Vec<PendingTx>, StoreError> {
        Ok(self.all(OUTBOX)?.into_iter().map(|(_, tx)| tx).collect())
    }

    /// Writes `tx` down before it is broadcast.
    pub fn put_outbox(&self, tx: &PendingTx) -> Result<(), StoreError> {
        self.put(OUTBOX, tx.nonce, tx)
    }

    /// Forgets the transaction of `nonce` once mined.
    pub fn remove_outbox(&self, nonce: u64) -> Result<(), StoreError> {
        self.write(|tx| Ok(tx.open_table(OUTBOX)?.remove(nonce).map(drop)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, IxDyn};

    fn identity(role: Side) -> Identity {
        Identity {
            role,
            chain_id: 31337,
            game: Address::repeat_byte(1),
            account: Address::repeat_byte(2),
        }
    }

    #[test]
    fn records_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("opml-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bot.redb");
        let _ = std::fs::remove_file(&path);
        let result = ResultRecord {
            request: 3,
            model: B256::repeat_byte(9),
            submitter: Address::repeat_byte(4),
            output: B256::repeat_byte(5),
            trace_root: B256::repeat_byte(6),
            deadline: 1_000,
            status: ResultStatus::Pending,
            verdict: Verdict::Disputed,
        };
        let game = GameRecord {
            result: 7,
            side: Side::Challenger,
            winner: None,
            moves: 2,
            gas: 120_000,
        };
        let pending = PendingTx {
            nonce: 11,
            what: "pick".into(),
            hash: B256::repeat_byte(8),
            raw: Bytes::from_static(b"\x02signed"),
            replaced: vec![B256::repeat_byte(7)],
        };
        let tensors = [
            Tensor::I8(ArrayD::from_shape_vec(IxDyn(&[2]), vec![1, -1]).unwrap()),
            Tensor::I32(ArrayD::from_shape_vec(IxDyn(&[1, 1]), vec![-7]).unwrap()),
        ];
        {
            let store = Store::open(&path, &identity(Side::Challenger)).unwrap();
            store.set_cursor(42).unwrap();
            store
                .put_request(3, &RequestRecord::Answered { result: 7 })
                .unwrap();
            store.put_result(7, &result).unwrap();
            store.put_game(1, &game).unwrap();
            store.put_outbox(&pending).unwrap();
            store.put_view(3, &[&tensors[0], &tensors[1]]).unwrap();
        }
        let store = Store::open(&path, &identity(Side::Challenger)).unwrap();
        assert_eq!(store.cursor().unwrap(), Some(42));
        assert_eq!(
            store.request(3).unwrap(),
            Some(RequestRecord::Answered { result: 7 })
        );
        assert_eq!(store.request(4).unwrap(), None);
        assert_eq!(store.results().unwrap(), vec![(7, result)]);
        assert_eq!(store.game(1).unwrap(), Some(game));
        assert_eq!(store.outbox().unwrap(), vec![pending]);
        store.remove_outbox(11).unwrap();
        assert!(store.outbox().unwrap().is_empty());
        assert_eq!(store.view(3).unwrap(), Some(tensors.to_vec()));
        drop(store);

        match Store::open(&path, &identity(Side::Submitter)) {
            Err(StoreError::Identity { .. }) => {}
            other => panic!("another bot's database opened: {other:?}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_fresh_database_is_empty() {
        let dir = std::env::temp_dir().join(format!("opml-store-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bot.redb");
        let _ = std::fs::remove_file(&path);
        let store = Store::open(&path, &identity(Side::Submitter)).unwrap();
        assert_eq!(store.cursor().unwrap(), None);
        assert!(store.results().unwrap().is_empty());
        assert!(store.games().unwrap().is_empty());
        assert!(store.outbox().unwrap().is_empty());
        assert_eq!(store.view(1).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
