//! The leader-follower model under the deterministic harness: convergence despite loss,
//! determinism, restarts from disk, and every knob (replication, failover, fencing, lease,
//! topology), each run twice where it matters (same seed, same trace).

use schism_history::Value;
use schism_replication::leader_follower::{LeaderFollower, MachineConfig};
use schism_replication::sim::{Sim, SimConfig};
use schism_replication::{ReadOpts, Reply, Request};

const MS: u64 = 1_000_000;

/// The harness's settings plus the knobs of every node (id, nodes and leader are filled
/// in per node; n1 leads). Virtual time starts at 0, the machines' own origin.
#[derive(Debug, Clone)]
struct LfConfig {
    net: SimConfig,
    machine: MachineConfig,
}

impl LfConfig {
    fn new(seed: u64, nodes: usize) -> LfConfig {
        LfConfig {
            net: SimConfig {
                start_ns: 0,
                ..SimConfig::new(seed, nodes)
            },
            machine: MachineConfig::new("n1", &["n1"], "n1"),
        }
    }
}

/// A cluster `n1..nN` of leader-follower machines, `n1` the configured leader.
fn lf(cfg: LfConfig) -> Sim<LeaderFollower> {
    let ids: Vec<String> = (1..=cfg.net.nodes).map(|i| format!("n{i}")).collect();
    let machine = cfg.machine;
    Sim::new(cfg.net, move |i, disk| {
        let cfg = MachineConfig {
            id: ids[i].clone(),
            nodes: ids.clone(),
            leader: ids[0].clone(),
            ..machine.clone()
        };
        LeaderFollower::from_disk(cfg, disk)
    })
}

/// Appends 1..=n to key 1 at the leader, a few per millisecond, under a lossy network.
fn lossy_run(seed: u64, n: i64) -> Sim<LeaderFollower> {
    let mut cfg = LfConfig::new(seed, 3);
    cfg.net.drop_probability = 0.2;
    cfg.net.duplicate_probability = 0.1;
    let mut sim = lf(cfg);
    for v in 1..=n {
        sim.client(0, v as u64, Request::Append { key: 1, value: v });
        if v % 3 == 0 {
            sim.run_for(MS);
        }
    }
    sim
}

fn assert_converged(sim: &Sim<LeaderFollower>) {
    let leader = sim.machine(0).unwrap();
    for i in 1..3 {
        let f = sim.machine(i).unwrap();
        assert_eq!(f.log(), leader.log(), "follower n{} log differs", i + 1);
        assert_eq!(f.read(1), leader.read(1));
        assert_eq!(
            sim.disk(i).entries,
            leader.log(),
            "follower n{} disk differs",
            i + 1
        );
    }
}

#[test]
fn followers_converge_to_the_leader_log_despite_loss() {
    let mut sim = lossy_run(7, 300);
    sim.set_drop_probability(0.0);
    sim.run_for(2_000 * MS);
    assert_converged(&sim);
    assert_eq!(
        sim.machine(0).unwrap().read(1),
        Value::list((1..=300).collect::<Vec<i64>>())
    );
    let oks = sim
        .replies()
        .iter()
        .filter(|r| matches!(r.reply, Reply::Ok { .. }))
        .count();
    assert_eq!(oks, 300);
    // A follower that had not caught up before the loss stopped is stale, not wrong:
    // every read it served is a prefix of the final list.
}

#[test]
fn same_seed_same_outcome_other_seed_other_trace() {
    let a = lossy_run(42, 100);
    let b = lossy_run(42, 100);
    assert_eq!(a.trace_hash(), b.trace_hash());
    for i in 0..3 {
        assert_eq!(a.machine(i).unwrap().log(), b.machine(i).unwrap().log());
    }
    let c = lossy_run(43, 100);
    assert_ne!(a.trace_hash(), c.trace_hash());
}

#[test]
fn failed_cas_writes_nothing_anywhere() {
    let mut sim = lf(LfConfig::new(1, 3));
    sim.client(0, 1, Request::Write { key: 5, value: 1 });
    sim.client(
        0,
        2,
        Request::Cas {
            key: 5,
            expected: 2,
            new: 3,
        },
    );
    sim.run_for(100 * MS);
    assert!(matches!(sim.replies()[1].reply, Reply::Fail { .. }));
    for i in 0..3 {
        assert_eq!(sim.disk(i).entries.len(), 1, "node {i}");
        assert_eq!(sim.machine(i).unwrap().read(5), Value::Int(1));
    }
}

#[test]
fn restarted_follower_resumes_from_its_disk() {
    let mut sim = lf(LfConfig::new(3, 3));
    for v in 1..=50 {
        sim.client(0, v as u64, Request::Append { key: 1, value: v });
    }
    sim.run_for(200 * MS);
    assert_converged(&sim);
    sim.crash(1);
    for v in 51..=80 {
        sim.client(0, v as u64, Request::Append { key: 1, value: v });
    }
    sim.run_for(50 * MS);
    sim.restart(1);
    // Straight after the restart the follower holds what its disk held, and no more.
    assert_eq!(sim.machine(1).unwrap().last_lsn(), 50);
    assert_eq!(
        sim.machine(1).unwrap().read(1),
        Value::list((1..=50).collect::<Vec<i64>>())
    );
    sim.run_for(1_000 * MS);
    assert_converged(&sim);
    assert_eq!(
        sim.disk(1).entries.len(),
        80,
        "the follower's disk holds each entry once"
    );
}

#[test]
fn restarted_leader_resumes_and_followers_that_lost_a_tail_are_refilled() {
    let mut sim = lf(LfConfig::new(9, 3));
    for v in 1..=40 {
        sim.client(0, v as u64, Request::Append { key: 1, value: v });
    }
    sim.run_for(200 * MS);
    // Follower n3 loses the last 15 entries of its disk (a torn tail).
    sim.crash(2);
    sim.disk_mut(2).entries.truncate(25);
    sim.restart(2);
    sim.crash(0);
    sim.restart(0);
    // The restarted leader begins a new epoch with a no-op at LSN 41.
    assert_eq!(sim.machine(0).unwrap().last_lsn(), 41);
    sim.client(0, 41, Request::Append { key: 1, value: 41 });
    assert!(matches!(
        sim.replies().last().unwrap().reply,
        Reply::Ok { lsn: Some(42), .. }
    ));
    sim.run_for(1_000 * MS);
    assert_converged(&sim);
    assert_eq!(
        sim.machine(2).unwrap().read(1),
        Value::list((1..=41).collect::<Vec<i64>>())
    );
}

/// Buffered durability: acknowledged appends wait in the leader's memory until its flush
/// timer (every 50 ms, its phase drawn from the seed); a crash before it loses them from
/// the disk, a flush (on time, or at once when a pause made the node miss one) keeps them.
#[test]
fn buffered_durability_loses_only_what_no_flush_wrote() {
    let buffered = |seed| {
        let mut cfg = LfConfig::new(seed, 3);
        cfg.net.flush_ns = Some(50 * MS);
        let mut sim = lf(cfg);
        sim.run_for(100 * MS);
        for v in 1..=5 {
            sim.client(0, v as u64, Request::Append { key: 1, value: v });
        }
        sim
    };
    // A crash before the next flush: acknowledged, and gone.
    let mut sim = buffered(1);
    assert!(
        sim.replies()
            .iter()
            .all(|r| matches!(r.reply, Reply::Ok { .. }))
    );
    assert_eq!(
        sim.replies().len(),
        5,
        "the leader acknowledged every append"
    );
    assert_eq!(sim.buffered(0).len(), 5);
    let in_memory = sim.machine(0).unwrap().log().len();
    assert_eq!(
        sim.disk(0).entries.len(),
        in_memory - 5,
        "nothing flushed yet"
    );
    sim.crash(0);
    sim.restart(0);
    assert_eq!(sim.machine(0).unwrap().log().len(), in_memory - 5);
    assert!(sim.buffered(0).is_empty());
    // Within 50 ms a flush writes them.
    let mut sim = buffered(2);
    sim.run_for(50 * MS);
    assert!(sim.buffered(0).is_empty());
    assert_eq!(
        sim.disk(0).entries.len(),
        sim.machine(0).unwrap().log().len()
    );
    // Paused across the flush: written when it resumes, not before.
    let mut sim = buffered(3);
    sim.pause(0);
    sim.run_for(200 * MS);
    assert_eq!(
        sim.buffered(0).len(),
        5,
        "a stopped process flushes nothing"
    );
    sim.resume(0);
    assert!(
        sim.buffered(0).is_empty(),
        "the missed flush fires on resume"
    );
    sim.crash(0);
    sim.restart(0);
    assert_eq!(
        sim.machine(0).unwrap().read(1),
        Value::list((1..=5).collect::<Vec<i64>>())
    );
}

// ---- the knobs, under the deterministic harness (each run twice: same seed, same trace)

use schism_replication::{Failover, Replication};

fn knob_sim(seed: u64, f: impl Fn(&mut MachineConfig)) -> Sim<LeaderFollower> {
    let mut cfg = LfConfig::new(seed, 3);
    cfg.machine.failover = Failover::Auto;
    f(&mut cfg.machine);
    lf(cfg)
}

fn acked_values(sim: &Sim<LeaderFollower>, first_req: u64) -> Vec<i64> {
    sim.replies()
        .iter()
        .filter(|r| r.req >= first_req && matches!(r.reply, Reply::Ok { lsn: Some(_), .. }))
        .map(|r| r.req as i64)
        .collect()
}

/// Writes 1..=n (req id = value) to the leader n1, then crashes it at once, then lets
/// the others fail over; returns the sim and the values acknowledged.
fn crash_leader_after_writes(
    seed: u64,
    replication: Replication,
) -> (Sim<LeaderFollower>, Vec<i64>) {
    let mut sim = knob_sim(seed, |m| m.replication = replication);
    sim.run_for(200 * MS);
    for v in 1..=30 {
        sim.client(0, v as u64, Request::Append { key: 1, value: v });
        sim.run_for(MS / 2);
    }
    let acked = acked_values(&sim, 1);
    sim.crash(0);
    sim.run_for(4_000 * MS);
    (sim, acked)
}

fn new_leader_value(sim: &Sim<LeaderFollower>) -> (usize, Vec<i64>) {
    let leaders = sim.leaders();
    assert_eq!(leaders.len(), 1, "one leader after failover: {leaders:?}");
    let l = leaders[0].0;
    assert_ne!(l, 0, "the crashed leader cannot lead");
    let v = match sim.machine(l).unwrap().read(1) {
        Value::List(v) => v.to_vec(),
        _ => Vec::new(),
    };
    (l, v)
}

#[test]
fn sync_never_loses_an_acknowledged_write_across_leader_crash_and_failover() {
    for seed in 0..5 {
        let (a, acked) = crash_leader_after_writes(seed, Replication::Sync);
        let (b, _) = crash_leader_after_writes(seed, Replication::Sync);
        assert_eq!(
            a.trace_hash(),
            b.trace_hash(),
            "seed {seed}: same seed, same run"
        );
        assert!(
            !acked.is_empty(),
            "seed {seed}: some writes were acknowledged"
        );
        let (_, list) = new_leader_value(&a);
        for v in &acked {
            assert!(
                list.contains(v),
                "seed {seed}: acknowledged {v} lost: {list:?}"
            );
        }
    }
}

#[test]
fn async_loses_acknowledged_writes_on_failover() {
    let mut lost_somewhere = false;
    for seed in 0..5 {
        let (a, acked) = crash_leader_after_writes(seed, Replication::Async);
        let (b, _) = crash_leader_after_writes(seed, Replication::Async);
        assert_eq!(a.trace_hash(), b.trace_hash());
        assert_eq!(acked.len(), 30, "async acknowledges at once");
        let (_, list) = new_leader_value(&a);
        lost_somewhere |= acked.iter().any(|v| !list.contains(v));
    }
    assert!(
        lost_somewhere,
        "async + failover must lose an acknowledged write"
    );
}

#[test]
fn semi_sync_keeps_what_one_follower_acknowledged_and_waits_for_it() {
    for seed in 0..5 {
        let (a, acked) = crash_leader_after_writes(seed, Replication::SemiSync(1));
        let (b, _) = crash_leader_after_writes(seed, Replication::SemiSync(1));
        assert_eq!(a.trace_hash(), b.trace_hash());
        let (_, list) = new_leader_value(&a);
        for v in &acked {
            assert!(list.contains(v), "seed {seed}: acknowledged {v} lost");
        }
    }
    // With both followers gone, semi-sync:1 cannot acknowledge; with one, it can.
    let mut sim = lf({
        let mut c = LfConfig::new(1, 3);
        c.machine.replication = Replication::SemiSync(1);
        c
    });
    sim.run_for(200 * MS);
    sim.crash(1);
    sim.client(0, 1, Request::Append { key: 1, value: 1 });
    sim.run_for(100 * MS);
    assert_eq!(acked_values(&sim, 1), vec![1], "one follower is enough");
    sim.crash(2);
    sim.client(0, 2, Request::Append { key: 1, value: 2 });
    sim.run_for(500 * MS);
    assert_eq!(acked_values(&sim, 1), vec![1], "no follower: no ack");
    sim.restart(2);
    sim.run_for(500 * MS);
    assert_eq!(
        acked_values(&sim, 1),
        vec![1, 2],
        "acknowledged once a follower holds it"
    );
}

#[test]
fn failover_elects_the_most_up_to_date_follower() {
    for seed in 0..5 {
        let run = || {
            let mut sim = knob_sim(seed, |_| {});
            sim.run_for(200 * MS);
            // n3 (index 2) misses the last writes: it is cut off while they happen.
            sim.cut(0, 2);
            for v in 1..=20 {
                sim.client(0, v as u64, Request::Append { key: 1, value: v });
            }
            sim.run_for(100 * MS);
            sim.crash(0);
            sim.heal();
            sim.run_for(4_000 * MS);
            sim
        };
        let (a, b) = (run(), run());
        assert_eq!(a.trace_hash(), b.trace_hash());
        // n2 (index 1) holds more, so it must win although n3 may time out... later
        // or earlier: a voter refuses a candidate that is behind it.
        let (l, list) = new_leader_value(&a);
        assert_eq!(l, 1, "seed {seed}: the up-to-date follower n2 leads");
        assert_eq!(list, (1..=20).collect::<Vec<_>>());
        assert!(a.machine(l).unwrap().epoch() >= 2);
    }
}

/// n1 leads and takes write 1, is isolated for `isolated_ns`, and the leader the majority
/// side elected (`elected` is the failure message if none) takes write 100 (request 100).
fn isolate_n1_then_write_on_majority(
    sim: &mut Sim<LeaderFollower>,
    isolated_ns: u64,
    elected: &str,
) {
    sim.run_for(300 * MS);
    sim.client(0, 1, Request::Append { key: 1, value: 1 });
    sim.run_for(100 * MS);
    sim.isolate(0);
    sim.run_for(isolated_ns);
    let (l, _) = sim
        .leaders()
        .into_iter()
        .find(|(i, _)| *i != 0)
        .expect(elected);
    sim.client(l, 100, Request::Append { key: 1, value: 100 });
    sim.run_for(50 * MS);
}

/// n1 leads, is isolated, n2/n3 elect a leader; then a write goes to each side.
fn split(seed: u64, fencing: bool, lease: bool) -> Sim<LeaderFollower> {
    let mut sim = knob_sim(seed, |m| {
        m.fencing = fencing;
        m.read_lease = lease;
    });
    isolate_n1_then_write_on_majority(&mut sim, 3_000 * MS, "the majority side elects a leader");
    sim.client(0, 200, Request::Append { key: 1, value: 200 });
    sim.client(0, 300, Request::Read { key: 1 });
    sim.run_for(50 * MS);
    sim
}

fn reply_to(sim: &Sim<LeaderFollower>, req: u64) -> &Reply {
    &sim.replies()
        .iter()
        .rfind(|r| r.req == req)
        .expect("a reply")
        .reply
}

#[test]
fn fencing_off_lets_two_leaders_acknowledge() {
    for seed in 0..3 {
        let (a, b) = (split(seed, false, false), split(seed, false, false));
        assert_eq!(a.trace_hash(), b.trace_hash());
        assert!(matches!(reply_to(&a, 100), Reply::Ok { .. }));
        assert!(
            matches!(reply_to(&a, 200), Reply::Ok { .. }),
            "fencing off: the deposed leader still acknowledges"
        );
        assert_eq!(a.leaders().len(), 2, "split brain");
    }
}

#[test]
fn fencing_on_stops_the_deposed_leader() {
    for seed in 0..3 {
        let sim = split(seed, true, false);
        assert!(matches!(reply_to(&sim, 100), Reply::Ok { .. }));
        assert!(
            matches!(reply_to(&sim, 200), Reply::Fail { .. }),
            "fencing on: an isolated leader stepped down: {:?}",
            reply_to(&sim, 200)
        );
        assert_eq!(sim.leaders().len(), 1);
    }
}

#[test]
fn lease_on_means_no_stale_leader_read() {
    for seed in 0..3 {
        // Lease off and fencing off: the old leader serves a stale read.
        let off = split(seed, false, false);
        assert!(
            matches!(reply_to(&off, 300), Reply::Ok { value: Value::List(v), .. } if !v.contains(&100)),
            "without a lease the old leader answers without the new write"
        );
        // Lease on: it refuses (and it never answered stale after the new leader won).
        let (a, b) = (split(seed, false, true), split(seed, false, true));
        assert_eq!(a.trace_hash(), b.trace_hash());
        assert!(
            matches!(reply_to(&a, 300), Reply::Fail { error, .. } if error.contains("lease")),
            "{:?}",
            reply_to(&a, 300)
        );
    }
}

/// Fencing on: n1 leads, is isolated; once n2/n3 elected and acknowledged a write,
/// n1 is asked for a read — before its check-quorum timeout has passed.
fn isolated_leader_read(seed: u64, lease: bool, replication: Replication) -> Sim<LeaderFollower> {
    let mut sim = knob_sim(seed, |m| {
        m.read_lease = lease;
        m.replication = replication;
    });
    // Followers time out after 1 s + rank/4 and elect; check-quorum is 2.5 s.
    let elected = "the majority side elected a leader before the old one noticed";
    isolate_n1_then_write_on_majority(&mut sim, 1_700 * MS, elected);
    sim.client(0, 300, Request::Read { key: 1 });
    sim.run_for(10 * MS);
    sim
}

#[test]
fn an_isolated_leader_without_a_lease_serves_stale_reads_until_check_quorum() {
    // Sync too: the new leader's sync set is the nodes that voted for it, so the old
    // leader (cut off, still in epoch 1) cannot block it.
    for (seed, replication) in
        (0..5).flat_map(|s| [(s, Replication::Async), (s, Replication::Sync)])
    {
        let (a, b) = (
            isolated_leader_read(seed, false, replication),
            isolated_leader_read(seed, false, replication),
        );
        assert_eq!(a.trace_hash(), b.trace_hash());
        assert!(matches!(reply_to(&a, 100), Reply::Ok { .. }));
        assert!(
            matches!(reply_to(&a, 300), Reply::Ok { value: Value::List(v), .. } if !v.contains(&100)),
            "seed {seed}: the old leader still leads and answers without the new write: {:?}",
            reply_to(&a, 300)
        );
        assert_eq!(a.leaders().len(), 2, "two nodes believe they lead");
        // Check-quorum: 2.5 s after it last heard a majority, n1 steps down.
        let mut a = a;
        a.run_for(1_000 * MS);
        assert_eq!(a.leaders().len(), 1, "seed {seed}: n1 stepped down");
        let leader_only = ReadOpts {
            min_lsn: 0,
            leader_only: true,
        };
        a.client_with(0, 400, Request::Read { key: 1 }, leader_only);
        assert!(
            matches!(reply_to(&a, 400), Reply::Fail { error, .. } if error.contains("not leader")),
            "{:?}",
            reply_to(&a, 400)
        );
        // With the lease on the same read is refused.
        let on = isolated_leader_read(seed, true, replication);
        assert!(
            matches!(reply_to(&on, 300), Reply::Fail { error, .. } if error.contains("lease")),
            "seed {seed}: {:?}",
            reply_to(&on, 300)
        );
    }
}

#[test]
fn chain_topology_replicates_through_the_middle() {
    let mut sim = lf({
        let mut c = LfConfig::new(5, 3);
        c.machine.topology = schism_replication::Topology::Chain;
        c.machine.replication = Replication::Sync;
        c
    });
    sim.run_for(200 * MS);
    for v in 1..=10 {
        sim.client(0, v as u64, Request::Append { key: 1, value: v });
    }
    sim.run_for(1_000 * MS);
    assert_eq!(
        acked_values(&sim, 1).len(),
        10,
        "sync acks through the chain"
    );
    for i in 0..3 {
        assert_eq!(
            sim.machine(i).unwrap().read(1),
            Value::list((1..=10).collect::<Vec<i64>>())
        );
    }
}
