//! Transactions on the real databases, at the adapter level: a provisioned cluster's
//! sessions run the seeded list-append / rw-register generator concurrently through
//! `TargetSession::txn`, the test records the history exactly as a run does (invoke with
//! nil reads; ok with the reads filled in, fail, info) and the txn checker judges it.
//! PostgreSQL serializable on the primary and etcd's compare-on-mod-revision `Txn` must be
//! valid under strict serializability with many committed transactions; PostgreSQL read
//! committed must show read skew (G-single), repeatable read (snapshot isolation) write
//! skew (G2-item) and nothing SI forbids; Galera's default level must show lost updates. Few hot keys and several clients make the transactions contend.

use super::*;
use schism_checker::Validity;
use schism_checker::txn::{ConsistencyModel, TxnOptions, TxnWorkload, check_txn};
use schism_history::txn::txn_value;
use schism_history::{F, History, Op, OpType, Process};
use schism_targets::db::{DbKind, DbOptions, DbSpec, Isolation, Placement};
use schism_targets::{ReadRouting, TxnReply};
use schism_workloads::txn::{KeyDist, TxnGenerator, TxnKind, TxnSpec};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One contended drive of a cluster.
pub struct Drive {
    pub kind: DbKind,
    pub nodes: usize,
    pub isolation: Option<Isolation>,
    pub reads: ReadRouting,
    pub workload: TxnKind,
    pub clients: usize,
    pub keys: u64,
    pub run_for: Duration,
    pub seed: u64,
}

/// What a drive recorded and the checker made of it.
pub struct Driven {
    pub validity: Validity,
    pub ok: usize,
    pub fail: usize,
    pub info: usize,
    /// Anomaly kinds found, with counts.
    pub kinds: BTreeMap<String, usize>,
    pub ruled_out: Vec<String>,
}

impl Drive {
    pub fn new(kind: DbKind, workload: TxnKind) -> Drive {
        Drive {
            kind,
            nodes: 1,
            isolation: None,
            reads: ReadRouting::Leader,
            workload,
            clients: 8,
            keys: 4,
            run_for: Duration::from_secs(5),
            seed: 1,
        }
    }

    /// Provisions the cluster under `store`, drives it, stops it, checks the history
    /// against `model`.
    pub fn run(&self, store: &Path, model: ConsistencyModel) -> Driven {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let history = rt.block_on(self.drive(store));
        let workload = match self.workload {
            TxnKind::ListAppend => TxnWorkload::ListAppend,
            TxnKind::RwRegister => TxnWorkload::RwRegister,
        };
        let res = check_txn(&history, &TxnOptions::new(workload, model)).expect("check");
        let count = |t: OpType| history.ops.iter().filter(|o| o.kind == t).count();
        let mut kinds = BTreeMap::new();
        for a in &res.anomalies {
            *kinds.entry(a.kind.as_str().to_owned()).or_insert(0) += 1;
        }
        let ruled_out = res.figures["ruled_out"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m.as_str().map(str::to_owned))
            .collect();
        let d = Driven {
            validity: res.validity,
            ok: count(OpType::Ok),
            fail: count(OpType::Fail),
            info: count(OpType::Info),
            kinds,
            ruled_out,
        };
        eprintln!(
            "{} {:?} {:?}: {:?}, ok {} fail {} info {}, anomalies {:?}, rules out {:?}",
            self.kind, self.isolation, self.workload, d.validity, d.ok, d.fail, d.info, d.kinds, d.ruled_out
        );
        d
    }

    async fn drive(&self, store: &Path) -> History {
        let spec = DbSpec {
            kind: self.kind,
            nodes: self.nodes,
            data_dir: store.join("nodes"),
            log_dir: store.join("logs"),
            placement: Placement::Loopback { base_port: None },
            node_env: vec![],
            endpoints: None,
            options: DbOptions {
                reads: self.reads,
                isolation: self.isolation,
                timeout: Duration::from_secs(2),
                ..DbOptions::default()
            },
            startup_timeout: Duration::from_secs(90),
        };
        let mut cluster = schism_targets::db::open(spec).await.expect("cluster");
        let seeds: Vec<u64> = (0..self.clients as u64).map(|c| self.seed * 1000 + c).collect();
        let sessions = cluster
            .sessions(&seeds, self.reads, Duration::from_secs(2))
            .expect("sessions");
        let generator = Arc::new(Mutex::new(
            TxnGenerator::new(TxnSpec {
                kind: self.workload,
                keys: self.keys,
                min_len: 1,
                max_len: 4,
                max_writes_per_key: 64,
                read_fraction: 0.5,
                key_dist: KeyDist::Exponential,
                seed: self.seed,
            })
            .expect("generator"),
        ));
        let ops: Arc<Mutex<Vec<Op>>> = Arc::default();
        let began = Instant::now();
        let until = began + self.run_for;
        let mut tasks = vec![];
        for (p, mut session) in sessions.into_iter().enumerate() {
            let (generator, ops) = (generator.clone(), ops.clone());
            tasks.push(tokio::spawn(async move {
                let record = |kind: OpType, value, error: Option<String>| {
                    let mut ops = ops.lock().unwrap();
                    let index = ops.len() as u64;
                    let mut op = Op::new(
                        index,
                        began.elapsed().as_nanos() as u64,
                        Process::Client(p as u64),
                        kind,
                        F::parse("txn"),
                        None,
                        value,
                    );
                    op.error = error;
                    ops.push(op);
                };
                while Instant::now() < until {
                    let mops = generator.lock().unwrap().next_txn();
                    record(OpType::Invoke, txn_value(&mops), None);
                    match session.txn(mops.clone()).await {
                        TxnReply::Ok(done) => record(OpType::Ok, txn_value(&done), None),
                        TxnReply::Fail { error } => {
                            record(OpType::Fail, txn_value(&mops), Some(error))
                        }
                        TxnReply::Unknown { error } => {
                            record(OpType::Info, txn_value(&mops), Some(error))
                        }
                    }
                }
            }));
        }
        for t in tasks {
            t.await.expect("client task");
        }
        cluster.stop().await.expect("stop");
        let ops = std::mem::take(&mut *ops.lock().unwrap());
        History::new(ops)
    }
}

/// A store PostgreSQL (user postgres) can enter: temp dirs are created 0700.
#[cfg(feature = "postgres")]
fn open_store() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let store = tempdir();
    std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod store");
    store
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_serializable_on_the_primary_is_strict_serializable() {
    let _lock = db_lock();
    if !require_db("postgres transactions", db_postgres::PG, false) {
        return;
    }
    let store = open_store();
    let mut d = Drive::new(DbKind::Postgres, TxnKind::ListAppend);
    d.isolation = Some(Isolation::Serializable);
    let r = d.run(store.path(), ConsistencyModel::StrictSerializable);
    assert_eq!(r.validity, Validity::Valid, "{:?}", r.kinds);
    assert!(r.ok > 200, "only {} transactions committed", r.ok);
    // Contention made SSI abort some: the workload really conflicts.
    assert!(r.fail > 0, "no serialization failure in {} transactions", r.ok);
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_read_committed_is_not_serializable() {
    let _lock = db_lock();
    if !require_db("postgres transactions", db_postgres::PG, false) {
        return;
    }
    let store = open_store();
    let mut d = Drive::new(DbKind::Postgres, TxnKind::ListAppend);
    d.isolation = Some(Isolation::ReadCommitted);
    let r = d.run(store.path(), ConsistencyModel::Serializable);
    assert_eq!(r.validity, Validity::Invalid, "{:?}", r.kinds);
    // Read skew: a transaction's reads see two different committed states.
    assert!(r.kinds.contains_key("G-single"), "{:?}", r.kinds);
    assert!(
        r.ruled_out.iter().any(|m| m == "read-committed"),
        "{:?}",
        r.ruled_out
    );
}

#[cfg(feature = "etcd")]
#[test]
fn etcd_txn_is_strict_serializable() {
    let _lock = db_lock();
    if !require_db("etcd transactions", &[("etcd", "etcd-server")], false) {
        return;
    }
    let store = tempdir();
    let mut d = Drive::new(DbKind::Etcd, TxnKind::ListAppend);
    d.nodes = 3;
    d.reads = ReadRouting::Any;
    let r = d.run(store.path(), ConsistencyModel::StrictSerializable);
    assert_eq!(r.validity, Validity::Valid, "{:?}", r.kinds);
    assert!(r.ok > 100, "only {} transactions committed", r.ok);
    assert!(r.fail > 0, "no compare ever failed: the keys did not contend");
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_repeatable_read_is_snapshot_isolation() {
    let _lock = db_lock();
    if !require_db("postgres transactions", db_postgres::PG, false) {
        return;
    }
    let store = open_store();
    let mut d = Drive::new(DbKind::Postgres, TxnKind::ListAppend);
    d.isolation = Some(Isolation::RepeatableRead);
    let r = d.run(store.path(), ConsistencyModel::SnapshotIsolation);
    assert_eq!(r.validity, Validity::Valid, "{:?}", r.kinds);
    // Write skew, which snapshot isolation allows and serializability forbids.
    assert!(r.kinds.contains_key("G2-item"), "{:?}", r.kinds);
    assert!(!r.kinds.contains_key("G-single"), "{:?}", r.kinds);
}

#[cfg(feature = "galera")]
#[test]
fn galera_repeatable_read_loses_updates() {
    let _lock = db_lock();
    if !require_db("galera transactions", db_galera::GALERA, false) {
        return;
    }
    let store = tempdir();
    let mut d = Drive::new(DbKind::Galera, TxnKind::ListAppend);
    d.nodes = 3;
    d.reads = ReadRouting::Any;
    let r = d.run(store.path(), ConsistencyModel::RepeatableRead);
    assert_eq!(r.validity, Validity::Invalid, "{:?}", r.kinds);
    // InnoDB's default level, which is not snapshot isolation: an update reads the latest
    // row, not the transaction's snapshot (what Jepsen found in MariaDB Galera).
    assert!(r.kinds.contains_key("lost-update"), "{:?}", r.kinds);
}
