//! Transactions on the real databases, at the adapter level: a provisioned cluster's
//! sessions run the seeded list-append / rw-register generator concurrently through
//! `TargetSession::txn`, the test records the history exactly as a run does (invoke with
//! nil reads; ok with the reads filled in, fail, info) and the txn checker judges it.
//! PostgreSQL serializable on the primary (list-append) and etcd's compare-on-mod-revision
//! `Txn` (rw-register) must be valid under strict serializability with many committed transactions; PostgreSQL read
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
            self.kind,
            self.isolation,
            self.workload,
            d.validity,
            d.ok,
            d.fail,
            d.info,
            d.kinds,
            d.ruled_out
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
        let seeds: Vec<u64> = (0..self.clients as u64)
            .map(|c| self.seed * 1000 + c)
            .collect();
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
                        Process::client(p as u64),
                        kind,
                        F::parse("txn"),
                        None,
                        value,
                    );
                    op.set_error(error);
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
    assert!(r.ruled_out.is_empty(), "{:?}", r.ruled_out);
    assert!(r.ok > 100, "only {} transactions committed", r.ok);
    // Contention made SSI abort some: the workload really conflicts.
    assert!(
        r.fail > 0,
        "no serialization failure in {} transactions",
        r.ok
    );
}

#[cfg(feature = "etcd")]
#[test]
fn etcd_txn_of_registers_is_strict_serializable() {
    let _lock = db_lock();
    if !require_db("etcd transactions", &[("etcd", "etcd-server")], false) {
        return;
    }
    let store = tempdir();
    let mut d = Drive::new(DbKind::Etcd, TxnKind::RwRegister);
    d.nodes = 3;
    d.reads = ReadRouting::Any;
    let r = d.run(store.path(), ConsistencyModel::StrictSerializable);
    assert_eq!(r.validity, Validity::Valid, "{:?}", r.kinds);
    // A loaded 2-core machine (three etcd members fsyncing) commits a few dozen.
    assert!(r.ok > 20, "only {} transactions committed", r.ok);
    assert!(
        r.fail > 0,
        "no compare ever failed: the keys did not contend"
    );
}

/// The database rows of `schism matrix`, end to end (each run a real `schism test
/// --workload list-append` on a provisioned cluster), one seed each and 5 s runs to keep
/// the suite short; the README gives their rates over more seeds at the rows' own 10 s.
#[cfg(all(feature = "postgres", feature = "galera", feature = "etcd"))]
#[test]
fn database_transaction_rows_of_the_matrix_hold() {
    let _lock = db_lock();
    let mut software: Vec<(&str, &str)> = db_postgres::PG.to_vec();
    software.extend_from_slice(db_galera::GALERA);
    software.push(("etcd", "etcd-server"));
    if !require_db("database transaction matrix rows", &software, false) {
        return;
    }
    let rows = matrix::db_rows();
    let (code, json, _dir) =
        matrix::matrix_with(&rows.join(","), &["--seeds", "1", "--time-limit", "4s"]);
    matrix::assert_rows_hold(code, &json, &rows);
}

/// `schism compare --vary isolation=…` on PostgreSQL: per level, the anomaly counts by
/// kind — read skew at read committed, write skew but no read skew at repeatable read,
/// nothing at serializable — in comparison.json and in the terminal table, and each run's
/// config.json records the level it ran at.
#[cfg(feature = "postgres")]
#[test]
fn compare_varies_postgres_isolation_levels() {
    let _lock = db_lock();
    if !require_db("postgres isolation comparison", db_postgres::PG, false) {
        return;
    }
    let store = open_store();
    let out = schism()
        .env("SCHISM_STATE_DIR", state_dir(store.path()))
        .args([
            "compare",
            "--name",
            "iso",
            "--vary",
            "isolation=read-committed,repeatable-read,serializable",
            "--seeds",
            "1",
            "--store",
        ])
        .arg(store.path())
        .args([
            "--",
            "--target",
            "postgres",
            "--nodes",
            "1",
            "--reads",
            "leader",
            "--workload",
            "list-append",
            "--keys",
            "4",
            "--concurrency",
            "8",
            "--nemesis",
            "none",
            "--time-limit",
            "4s",
        ])
        .output()
        .expect("spawn schism compare");
    let text = stdout(&out);
    eprintln!("{text}\n{}", stderr(&out));
    assert_eq!(out.status.code(), Some(0), "compare itself must succeed");
    let dir = only_run_dir(&store.path().join("compare"), "iso");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("comparison.json")).unwrap())
            .unwrap();
    let settings = json["settings"].as_array().unwrap();
    let count = |i: usize, kind: &str| settings[i]["anomalies"][kind].as_u64().unwrap_or(0);
    assert_eq!(settings.len(), 3);
    assert!(
        count(0, "G-single") > 0,
        "read committed: {}",
        settings[0]["anomalies"]
    );
    assert!(
        count(1, "G2-item") > 0,
        "repeatable read: {}",
        settings[1]["anomalies"]
    );
    assert_eq!(
        count(1, "G-single"),
        0,
        "snapshot isolation has no read skew"
    );
    let ser = settings[2]["anomalies"].as_object().unwrap();
    assert!(ser.values().all(|n| n == 0), "serializable: {ser:?}");
    assert_eq!(settings[2]["invalid_runs"], 0);
    // The terminal summary names the kinds per level (a line for each level that had any).
    let kinds_of = |label: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{label}: ")))
            .map(str::to_owned)
    };
    let rc = kinds_of("isolation=read-committed").unwrap_or_default();
    assert!(rc.contains(" G-single"), "{text}");
    assert_eq!(kinds_of("isolation=serializable"), None, "{text}");
    // Each run recorded its level.
    for (i, level) in ["read-committed", "repeatable-read", "serializable"]
        .iter()
        .enumerate()
    {
        let run = only_run_dir(store.path(), &format!("iso-isolation-{level}"));
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(config["test"]["isolation"], *level, "{}", run.display());
        assert_eq!(settings[i]["settings"]["isolation"], *level);
    }
}
