//! What the nemesis writes into a history: the op of a planned change (`invoke`) and of
//! its outcome (`info`, carrying the whole state that holds after it).
//!
//! The event names are `schism_history::nemesis::Event`, and the `info` value is exactly
//! what `schism_history::nemesis::StateRecord` reads back, so the writer and the report
//! cannot drift apart. Pure: the caller gives the time and records the ops.

use crate::mechanism::Applied;
use crate::schedule::{Change, Planned};
use schism_history::nemesis::Event;
use schism_history::{F, Op, OpType, Process, Value};

/// The event a planned change is recorded as.
pub fn event(change: &Change) -> Event {
    match change {
        Change::Fault(fault) => fault.event(),
        Change::Heal => Event::Heal,
    }
}

/// The value of the change's `invoke`: when it was planned and what it asks for.
pub fn invoke_value(planned: &Planned) -> serde_json::Value {
    let mut v = serde_json::json!({ "at_ms": planned.at_ns / 1_000_000 });
    let what = match &planned.change {
        Change::Fault(fault) => serde_json::to_value(fault).unwrap_or_default(),
        Change::Heal => serde_json::json!({ "final": planned.final_heal }),
    };
    if let (Some(obj), serde_json::Value::Object(w)) = (v.as_object_mut(), what) {
        obj.extend(w);
    }
    v
}

/// The value of the change's `info` once applied: the invoke value plus the leader it
/// resolved to and the whole state (groups, cuts, paused, killed, clocks). `extra`
/// fields (the runner's `net`) are added as given.
pub fn info_value(
    planned: &Planned,
    applied: &Applied,
    extra: &[(&str, serde_json::Value)],
) -> serde_json::Value {
    let mut v = invoke_value(planned);
    if let Some(obj) = v.as_object_mut() {
        let st = &applied.state;
        for (k, x) in extra {
            obj.insert((*k).to_owned(), x.clone());
        }
        obj.insert("leader".into(), serde_json::json!(applied.leader));
        obj.insert("groups".into(), serde_json::json!(st.groups));
        obj.insert("cuts".into(), serde_json::json!(st.cuts));
        obj.insert("paused".into(), serde_json::json!(st.paused));
        obj.insert("killed".into(), serde_json::json!(st.killed));
        obj.insert("clocks".into(), serde_json::json!(st.clocks));
    }
    v
}

/// A nemesis op (index and time are the recorder's to assign).
pub fn op(kind: OpType, event: Event, value: serde_json::Value) -> Op {
    Op::new(
        0,
        0,
        Process::NEMESIS,
        kind,
        F::parse(event.as_str()),
        None,
        Value::other(value),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::{Fault, FaultState, Shape, resolve};
    use schism_history::nemesis::StateRecord;

    #[test]
    fn info_reads_back_as_the_state() {
        let nodes: Vec<String> = ["n1", "n2", "n3"].map(String::from).to_vec();
        let fault = Fault::Partition(Shape::IsolateLeader);
        let state = resolve(&fault, &nodes, Some("n2"), &FaultState::default()).unwrap();
        let planned = Planned {
            at_ns: 2_000_000_000,
            change: Change::Fault(fault),
            final_heal: false,
        };
        let applied = Applied {
            state,
            leader: Some("n2".into()),
        };
        let info = op(
            OpType::Info,
            event(&planned.change),
            info_value(&planned, &applied, &[]),
        );
        let rec = StateRecord::of(&info).expect("a whole state");
        assert_eq!(rec.cuts.len(), 4);
        assert_eq!(rec.shape.as_deref(), Some("isolate-leader"));
        let mut t = schism_history::nemesis::Tracker::new();
        t.observe(&info);
        assert_eq!(t.active_labels(), vec!["isolate leader n2".to_owned()]);
    }
}
