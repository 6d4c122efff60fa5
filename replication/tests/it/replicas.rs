//! The multi-leader and leaderless models under the deterministic harness: convergence
//! under every topology and resolution, clock skew under LWW, siblings, quorums, sloppy
//! quorums and hinted hand-off, repair knobs, determinism and restart from disk.

use schism_history::{Key, Value};
use schism_replication::leaderless::{Leaderless, LlConfig};
use schism_replication::multi_leader::{MlConfig, MultiLeader};
use schism_replication::replica::{MlReplication, Quorum, ReplicaSettings, Topology};
use schism_replication::sim::{Sim, SimConfig};
use schism_replication::versioned::KeyState;
use schism_replication::{DumpState, Machine, Reply, Request, Resolution};
use std::collections::BTreeMap;

const MS: u64 = 1_000_000;

fn ids(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("n{i}")).collect()
}

fn ml(cfg: SimConfig, s: ReplicaSettings) -> Sim<MultiLeader> {
    let nodes = ids(cfg.nodes);
    Sim::new(cfg, move |i, disk: BTreeMap<Key, KeyState>| {
        MultiLeader::new(
            MlConfig::new(&nodes[i], &nodes, s),
            disk.into_iter().collect(),
        )
    })
}

fn ll(cfg: SimConfig, s: ReplicaSettings) -> Sim<Leaderless> {
    let nodes = ids(cfg.nodes);
    Sim::new(cfg, move |i, disk: BTreeMap<Key, KeyState>| {
        Leaderless::new(
            LlConfig::new(&nodes[i], &nodes, s),
            disk.into_iter().collect(),
        )
    })
}

fn dumps<M: Machine>(net: &Sim<M>, n: usize) -> Vec<DumpState> {
    (0..n)
        .map(|i| {
            let mut d = net.machine(i).unwrap().dump();
            d.extra = serde_json::Value::Null;
            d
        })
        .collect()
}

/// Writes at every node of a lossy, duplicating, reordering network, then heals.
fn ml_lossy(seed: u64, s: ReplicaSettings) -> Sim<MultiLeader> {
    let mut cfg = SimConfig::new(seed, 3);
    cfg.drop_probability = 0.2;
    cfg.duplicate_probability = 0.1;
    let mut net = ml(cfg, s);
    for v in 1..=120i64 {
        let op = match s.conflict {
            Resolution::Crdt if v % 2 == 0 => Request::Add { key: 2, value: v },
            _ => Request::Append {
                key: (v % 3) as u64,
                value: v,
            },
        };
        net.client((v % 3) as usize, v as u64, op);
        if v % 4 == 0 {
            net.run_for(MS);
        }
    }
    net.set_drop_probability(0.0);
    net.run_for(3_000 * MS);
    net
}

#[test]
fn multi_leader_converges_under_every_topology_and_resolution() {
    for topology in [Topology::AllToAll, Topology::Ring, Topology::Star] {
        for conflict in [Resolution::Lww, Resolution::VersionVector, Resolution::Crdt] {
            for ml_replication in [MlReplication::Async, MlReplication::Sync] {
                let s = ReplicaSettings {
                    topology,
                    conflict,
                    ml_replication,
                    ..ReplicaSettings::default()
                };
                let net = ml_lossy(11, s);
                let d = dumps(&net, 3);
                assert_eq!(d[0], d[1], "{s:?}");
                assert_eq!(d[1], d[2], "{s:?}");
                assert_eq!(net.replies().len(), 120, "{s:?}: every write answered");
            }
        }
    }
}

#[test]
fn multi_leader_crdt_counter_loses_no_add() {
    let s = ReplicaSettings {
        conflict: Resolution::Crdt,
        ..ReplicaSettings::default()
    };
    let net = ml_lossy(5, s);
    let expected: i64 = (2..=120).step_by(2).sum();
    for i in 0..3 {
        assert_eq!(net.machine(i).unwrap().local_read(2), Value::Int(expected));
    }
}

#[test]
fn multi_leader_same_seed_same_outcome() {
    let s = ReplicaSettings::default();
    let (a, b, c) = (ml_lossy(42, s), ml_lossy(42, s), ml_lossy(43, s));
    assert_eq!(a.trace_hash(), b.trace_hash());
    assert_eq!(dumps(&a, 3), dumps(&b, 3));
    assert_eq!(a.replies(), b.replies());
    assert_ne!(a.trace_hash(), c.trace_hash());
}

#[test]
fn multi_leader_lww_with_a_slow_clock_loses_an_acknowledged_append() {
    let mut net = ml(SimConfig::new(1, 3), ReplicaSettings::default());
    net.set_clock_offset(1, -(5_000 * MS as i64));
    net.client(0, 1, Request::Append { key: 1, value: 1 });
    net.run_for(100 * MS);
    // n2 sees [1] and appends 2 — stamped 5 s before n1's append.
    net.client(1, 2, Request::Append { key: 1, value: 2 });
    assert!(matches!(net.reply(2), Some(Reply::Ok { .. })));
    net.run_for(1_000 * MS);
    for i in 0..3 {
        assert_eq!(net.machine(i).unwrap().local_read(1), Value::list(vec![1]));
    }
}

#[test]
fn multi_leader_version_vectors_keep_partitioned_appends_as_siblings() {
    let s = ReplicaSettings {
        conflict: Resolution::VersionVector,
        ..ReplicaSettings::default()
    };
    let mut net = ml(SimConfig::new(2, 3), s);
    net.client(0, 1, Request::Append { key: 1, value: 1 });
    net.run_for(100 * MS);
    net.partition(&[&[0], &[1, 2]]);
    net.client(0, 2, Request::Append { key: 1, value: 2 });
    net.client(1, 3, Request::Append { key: 1, value: 3 });
    net.run_for(100 * MS);
    net.heal();
    net.run_for(1_000 * MS);
    net.client(2, 4, Request::Read { key: 1 });
    let Some(Reply::Ok {
        value, siblings, ..
    }) = net.reply(4)
    else {
        panic!("{:?}", net.reply(4));
    };
    assert_eq!(*value, Value::list(vec![1, 2, 3]));
    assert_eq!(
        siblings.clone().unwrap(),
        vec![Value::list(vec![1, 2]), Value::list(vec![1, 3])]
    );
    // A write on top of the siblings resolves them everywhere.
    net.client(0, 5, Request::Append { key: 1, value: 4 });
    net.run_for(1_000 * MS);
    let d = dumps(&net, 3);
    assert!(d.iter().all(|x| x == &d[0] && x.siblings.is_empty()));
    assert_eq!(d[0].state[&1], Value::list(vec![1, 2, 3, 4]));
}

fn quorum(n: usize, w: usize, r: usize) -> ReplicaSettings {
    ReplicaSettings {
        quorum: Quorum { n, w, r },
        ..ReplicaSettings::default()
    }
}

#[test]
fn leaderless_1_1_reads_are_stale_and_quorums_are_not() {
    let mut net = ll(SimConfig::new(3, 3), quorum(3, 1, 1));
    net.run_for(200 * MS);
    net.client(0, 1, Request::Write { key: 1, value: 7 });
    assert!(
        matches!(net.reply(1), Some(Reply::Ok { .. })),
        "W=1: acknowledged locally"
    );
    net.client(1, 2, Request::Read { key: 1 });
    assert!(
        matches!(
            net.reply(2),
            Some(Reply::Ok {
                value: Value::Null,
                ..
            })
        ),
        "R=1 at another replica: stale"
    );
    let mut net = ll(SimConfig::new(3, 3), quorum(3, 2, 2));
    net.run_for(200 * MS);
    net.client(0, 1, Request::Write { key: 1, value: 7 });
    net.run_for(20 * MS);
    assert!(matches!(net.reply(1), Some(Reply::Ok { .. })));
    for node in 0..3 {
        net.client(node, 10 + node as u64, Request::Read { key: 1 });
        net.run_for(20 * MS);
        assert!(
            matches!(
                net.reply(10 + node as u64),
                Some(Reply::Ok {
                    value: Value::Int(7),
                    ..
                })
            ),
            "node {node}: {:?}",
            net.reply(10 + node as u64)
        );
    }
}

#[test]
fn leaderless_write_without_quorum_is_unknown_and_read_fails() {
    let mut net = ll(SimConfig::new(4, 3), quorum(3, 2, 2));
    net.run_for(200 * MS);
    net.partition(&[&[0], &[1, 2]]);
    net.client(0, 1, Request::Append { key: 1, value: 1 });
    net.client(0, 2, Request::Write { key: 2, value: 1 });
    net.run_for(1_000 * MS);
    assert!(
        matches!(net.reply(1), Some(Reply::Fail { .. })),
        "its read phase failed"
    );
    assert!(
        matches!(net.reply(2), Some(Reply::Unknown { .. })),
        "{:?}",
        net.reply(2)
    );
}

/// Five nodes 3/2/2 with sloppy quorum, split 2|3: a write on one side is invisible on
/// the other although W+R>N; after the heal, hints reach the owners.
#[test]
fn leaderless_sloppy_quorum_reads_stale_across_a_partition_then_hands_off() {
    let mut s = quorum(3, 2, 2);
    s.sloppy_quorum = true;
    let mut net = ll(SimConfig::new(5, 5), s);
    net.run_for(300 * MS);
    net.partition(&[&[0, 1], &[2, 3, 4]]);
    net.run_for(1_000 * MS);
    net.client(0, 1, Request::Write { key: 9, value: 1 });
    net.run_for(50 * MS);
    assert!(
        matches!(net.reply(1), Some(Reply::Ok { .. })),
        "{:?}",
        net.reply(1)
    );
    net.client(3, 2, Request::Read { key: 9 });
    net.run_for(50 * MS);
    assert!(
        matches!(
            net.reply(2),
            Some(Reply::Ok {
                value: Value::Null,
                ..
            })
        ),
        "stale despite W+R>N: {:?}",
        net.reply(2)
    );
    net.heal();
    net.run_for(2_000 * MS);
    let owners = net.machine(0).unwrap().owners(9);
    let holding = ids(5)
        .iter()
        .enumerate()
        .filter(|(i, id)| {
            owners.contains(id)
                && net.machine(*i).unwrap().dump().state.get(&9) == Some(&Value::Int(1))
        })
        .count();
    assert!(holding >= 2, "the W stand-ins handed their hints to owners");
}

/// With read repair and anti-entropy off a replica that missed a write stays behind
/// after the heal; anti-entropy repairs it; a quorum read with read repair does too.
#[test]
fn leaderless_repair_knobs_decide_convergence() {
    let run = |s: ReplicaSettings, read_after: bool| {
        let mut net = ll(SimConfig::new(6, 3), s);
        net.run_for(300 * MS);
        net.partition(&[&[0, 1], &[2]]);
        net.client(0, 1, Request::Write { key: 1, value: 5 });
        net.run_for(500 * MS);
        net.heal();
        net.run_for(500 * MS);
        if read_after {
            net.client(2, 2, Request::Read { key: 1 });
        }
        net.run_for(1_000 * MS);
        net.machine(2).unwrap().dump().state.get(&1).cloned()
    };
    let mut off = quorum(3, 2, 2);
    off.read_repair = false;
    assert_eq!(run(off, false), None, "nothing repairs n3");
    assert_eq!(
        run(off, true),
        None,
        "a read without repair changes nothing"
    );
    let mut ae = off;
    ae.anti_entropy_ms = 100;
    assert_eq!(run(ae, false), Some(Value::Int(5)));
    let rr = quorum(3, 2, 3);
    assert_eq!(run(rr, true), Some(Value::Int(5)));
}

#[test]
fn leaderless_same_seed_same_outcome_and_restart_from_disk() {
    let go = |seed| {
        let mut cfg = SimConfig::new(seed, 3);
        cfg.drop_probability = 0.1;
        cfg.duplicate_probability = 0.1;
        let mut s = quorum(3, 2, 2);
        s.versioning = Resolution::VersionVector;
        s.anti_entropy_ms = 50;
        let mut net = ll(cfg, s);
        net.run_for(300 * MS);
        for v in 1..=60i64 {
            net.client(
                (v % 3) as usize,
                v as u64,
                Request::Append {
                    key: (v % 2) as u64,
                    value: v,
                },
            );
            net.run_for(MS);
            if v == 30 {
                net.crash(2);
            }
            if v == 45 {
                net.restart(2);
            }
        }
        net.set_drop_probability(0.0);
        net.run_for(3_000 * MS);
        net
    };
    let (a, b, c) = (go(8), go(8), go(9));
    assert_eq!(a.trace_hash(), b.trace_hash());
    assert_eq!(a.replies(), b.replies());
    assert_eq!(dumps(&a, 3), dumps(&b, 3));
    assert_ne!(a.trace_hash(), c.trace_hash());
    let d = dumps(&a, 3);
    assert_eq!(d[0], d[2], "anti-entropy brought the restarted node back");
    assert_eq!(d[0], d[1]);
}
