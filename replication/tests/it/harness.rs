//! The harness's own guarantees, beyond what the model tests use: pauses hold a node's
//! inputs until it resumes, clocks drift at their rate, a cut kills what is in flight, and
//! the cluster-wide invariant check fires on a machine that breaks it.

use schism_history::{Key, Value};
use schism_replication::multi_leader::{MlConfig, MultiLeader};
use schism_replication::replica::ReplicaSettings;
use schism_replication::sim::{EPOCH_NS, Sim, SimConfig};
use schism_replication::versioned::KeyState;
use schism_replication::{DumpState, Input, Machine, Output, Reply, Request, Role, Status};
use std::collections::BTreeMap;

const MS: u64 = 1_000_000;

fn ml(seed: u64) -> Sim<MultiLeader> {
    let nodes: Vec<String> = (1..=3).map(|i| format!("n{i}")).collect();
    Sim::new(
        SimConfig::new(seed, 3),
        move |i, disk: BTreeMap<Key, KeyState>| {
            let cfg = MlConfig::new(&nodes[i], &nodes, ReplicaSettings::default());
            MultiLeader::new(cfg, disk.into_iter().collect())
        },
    )
}

#[test]
fn a_paused_node_gets_its_messages_when_it_resumes() {
    let mut sim = ml(1);
    sim.pause(1);
    sim.client(0, 1, Request::Write { key: 3, value: 9 });
    sim.client(1, 2, Request::Read { key: 3 });
    sim.run_for(200 * MS);
    assert_eq!(sim.machine(1).unwrap().local_read(3), Value::Null);
    assert_eq!(sim.machine(2).unwrap().local_read(3), Value::Int(9));
    assert!(sim.reply(2).is_none(), "a paused node answers nothing");
    sim.resume(1);
    assert!(matches!(sim.reply(2), Some(Reply::Ok { .. })));
    sim.run_for(200 * MS);
    assert_eq!(sim.machine(1).unwrap().local_read(3), Value::Int(9));
}

#[test]
fn clocks_take_offset_and_rate_and_a_cut_kills_what_is_in_flight() {
    let mut sim = ml(2);
    sim.set_clock(2, -(500 * MS as i64), 2.0).unwrap();
    assert!(sim.set_clock(2, 0, 0.0).is_err());
    sim.run_for(1_000 * MS);
    assert_eq!(sim.clock_ns(0), EPOCH_NS + 1_000 * MS);
    assert_eq!(sim.clock_ns(2), EPOCH_NS - 500 * MS + 2_000 * MS);
    // A write at n1, then at once a cut n1 → n2: what was on its way is lost too.
    sim.client(0, 1, Request::Write { key: 1, value: 1 });
    sim.cut(0, 1);
    sim.run_for(50 * MS);
    assert_eq!(sim.machine(1).unwrap().local_read(1), Value::Null);
    assert_eq!(sim.machine(2).unwrap().local_read(1), Value::Int(1));
}

/// A machine that claims to lead epoch 1 on every node.
#[derive(Debug)]
struct Usurper(String);

impl Machine for Usurper {
    type Msg = String;
    type Persist = ();
    type Durable = ();

    fn persist(_: &mut (), _: &()) {}

    fn handle(&mut self, _: u64, _: Input<String>, _: &mut Vec<Output<String, ()>>) {}

    fn sender(msg: &String) -> &str {
        msg
    }

    fn dump(&self) -> DumpState {
        DumpState::default()
    }

    fn status(&self, _: u64) -> Status {
        Status {
            node: self.0.clone(),
            role: Role::Leader,
            epoch: 1,
            last_lsn: 0,
            applied_lsn: 0,
            leader: Some(self.0.clone()),
            commit_lsn: 0,
            lease: false,
            followers: Vec::new(),
            clock: Default::default(),
        }
    }

    fn local_read(&self, _: Key) -> Value {
        Value::Null
    }
}

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "both lead epoch 1")]
fn two_leaders_of_one_epoch_fail_the_run() {
    let mut sim = Sim::new(SimConfig::new(3, 2), |i, ()| Usurper(format!("n{}", i + 1)));
    sim.run_for(100 * MS);
}
