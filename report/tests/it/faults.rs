//! Fault windows, labels and the lag section from histories the nemesis's own
//! constructors write (`schism_nemesis::record`, `resolve`), never hand-typed event names.

use schism_history::nemesis::{FaultWindow, WindowKind, fault_windows};
use schism_history::{F, History, Op, OpType, Process, Value};
use schism_nemesis::record;
use schism_nemesis::{
    Applied, Change, ClockFault, Fault, FaultState, Planned, Shape, Targets, fault::resolve,
};
use schism_report::{LagData, RunInput, RunSettings, render_run};

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// Applies `changes` (at the given ms) the way the runner does and records invoke + info.
fn nemesis_history(changes: &[(u64, Change)]) -> (History, Vec<u64>) {
    let nodes = ids(&["n1", "n2", "n3"]);
    let mut state = FaultState::default();
    let mut ops = Vec::new();
    let mut info_times = Vec::new();
    let mut t = 0;
    let push = |ops: &mut Vec<Op>, mut op: Op, t: u64| {
        op.set_index(ops.len() as u64);
        op.time_ns = t;
        ops.push(op);
    };
    for (at_ms, change) in changes {
        // Client traffic between the changes, so windows have ops to count.
        while t < at_ms * 1_000_000 {
            let key = Some(t % 3);
            let inv = Op::new(
                0,
                0,
                Process::client(0),
                OpType::Invoke,
                F::Read,
                key,
                Value::Null,
            );
            push(&mut ops, inv, t);
            let ok = Op::new(
                0,
                0,
                Process::client(0),
                OpType::Ok,
                F::Read,
                key,
                Value::list(vec![]),
            );
            push(&mut ops, ok, t + 1_000_000);
            t += 50_000_000;
        }
        let planned = Planned {
            at_ns: at_ms * 1_000_000,
            change: change.clone(),
            final_heal: false,
        };
        let event = record::event(change);
        push(
            &mut ops,
            record::op(OpType::Invoke, event, record::invoke_value(&planned)),
            t,
        );
        state = match change {
            Change::Fault(f) => resolve(f, &nodes, Some("n1"), &state).unwrap(),
            Change::Heal => FaultState::default(),
        };
        let applied = Applied {
            state: state.clone(),
            leader: Some("n1".into()),
        };
        t += 2_000_000;
        info_times.push(t);
        push(
            &mut ops,
            record::op(
                OpType::Info,
                event,
                record::info_value(&planned, &applied, &[]),
            ),
            t,
        );
    }
    (History::new(ops), info_times)
}

fn plan() -> Vec<(u64, Change)> {
    vec![
        (1000, Change::Fault(Fault::Partition(Shape::IsolateLeader))),
        (2000, Change::Heal),
        (
            3000,
            Change::Fault(Fault::Partition(Shape::Halves {
                minority: ids(&["n1"]),
            })),
        ),
        (4000, Change::Heal),
        (
            5000,
            Change::Fault(Fault::Kill {
                targets: Targets::Nodes(ids(&["n1"])),
            }),
        ),
        (6000, Change::Heal),
        (
            7000,
            Change::Fault(Fault::Pause {
                targets: Targets::Nodes(ids(&["n2", "n3"])),
            }),
        ),
        (8000, Change::Heal),
        (
            9000,
            Change::Fault(Fault::Clock(ClockFault::Bump {
                targets: Targets::Nodes(ids(&["n2"])),
                delta_ms: 250,
            })),
        ),
        (10000, Change::Heal),
        (
            11000,
            Change::Fault(Fault::Clock(ClockFault::Drift {
                targets: Targets::Nodes(ids(&["n3"])),
                rate: 1.05,
            })),
        ),
        (12000, Change::Heal),
        (
            13000,
            Change::Fault(Fault::Clock(ClockFault::Strobe {
                targets: Targets::Nodes(ids(&["n2"])),
                offset_ms: 400,
            })),
        ),
        (
            13200,
            Change::Fault(Fault::Clock(ClockFault::Strobe {
                targets: Targets::Nodes(ids(&["n2"])),
                offset_ms: 0,
            })),
        ),
        (
            13400,
            Change::Fault(Fault::Clock(ClockFault::Strobe {
                targets: Targets::Nodes(ids(&["n2"])),
                offset_ms: 400,
            })),
        ),
        (14000, Change::Heal),
    ]
}

#[test]
fn one_window_per_fault_closed_by_the_state_that_ended_it() {
    let (h, infos) = nemesis_history(&plan());
    let w: Vec<FaultWindow> = fault_windows(&h);
    let got: Vec<(&str, u64, u64)> = w
        .iter()
        .map(|w| (w.label.as_str(), w.start_ns, w.end_ns))
        .collect();
    // infos[i] is the info time of change i; every fault ends at the next heal's info.
    assert_eq!(
        got,
        vec![
            ("isolate leader n1", infos[0], infos[1]),
            ("partition n1 | n2 n3", infos[2], infos[3]),
            ("kill n1", infos[4], infos[5]),
            ("pause n2 n3", infos[6], infos[7]),
            ("clock n2 +250 ms", infos[8], infos[9]),
            ("clock n3 drift ×1.05", infos[10], infos[11]),
            ("clock n2 strobe +400 ms", infos[12], infos[15]),
        ]
    );
    assert!(w.iter().all(|w| !w.open_ended && !w.label.contains('{')));
    assert_eq!(
        w.iter().filter(|w| w.kind == WindowKind::Clock).count(),
        3,
        "clock faults are windows"
    );
}

#[test]
fn the_report_names_faults_in_words() {
    let (h, _) = nemesis_history(&plan());
    let results = schism_report::ResultsData {
        validity: schism_checker::Validity::Valid,
        results: Vec::new(),
        stats: serde_json::Value::Null,
        warnings: Vec::new(),
    };
    let html = render_run(&RunInput {
        title: "faults",
        settings: &RunSettings::default(),
        results: &results,
        history: &h,
        lag: &LagData::default(),
    });
    assert!(!html.contains("never healed"));
    for label in [
        "isolate leader n1",
        "partition n1 | n2 n3",
        "kill n1",
        "pause n2 n3",
        "clock n2 +250 ms",
        "clock n3 drift ×1.05",
    ] {
        let row = format!(
            "<td class=\"fault-label\">{}</td>",
            schism_report::escape(label)
        );
        assert!(html.contains(&row), "availability row for {label}");
    }
    assert_eq!(html.matches("class=\"fault-row\"").count(), 7);
    // No label anywhere carries raw JSON.
    for cell in html.split("<td class=\"fault-label\">").skip(1) {
        let label = &cell[..cell.find("</td>").unwrap()];
        assert!(!label.contains('{'), "{label}");
    }
    assert!(html.contains("id=\"lag-none\""));
}
