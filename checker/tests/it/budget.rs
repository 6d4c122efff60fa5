//! Budgets on cas histories: an exact search that cannot finish within its state budget,
//! or whose abort flag is raised, ends `unknown` — never `valid` — having explored no more
//! states than allowed, and says why.

use schism_checker::{Options, Validity};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::cas_waves::cas_waves;

#[test]
fn a_cas_search_over_budget_is_unknown_within_the_budget() {
    let h = cas_waves(40);
    for max_states in [1_000u64, 50_000] {
        let opts = Options {
            max_states,
            ..Options::default()
        };
        let r = schism_checker::check(&h, &opts).unwrap();
        let res = &r.results[0];
        assert_eq!(r.validity, Validity::Unknown, "{:?}", res.figures);
        assert_eq!(res.figures["algorithm"], "wgl");
        assert!(res.figures["explored_states"].as_u64().unwrap() <= max_states);
        let why = res.figures["unknown_reason"].as_str().unwrap();
        assert!(
            why.contains(&format!("budget of {max_states} states ran out on key 0")),
            "{why}"
        );
    }
}

#[test]
fn a_raised_abort_flag_ends_a_cas_search_unknown() {
    let opts = Options {
        abort: Some(Arc::new(AtomicBool::new(true))),
        ..Options::default()
    };
    let r = schism_checker::check(&cas_waves(40), &opts).unwrap();
    assert_eq!(r.validity, Validity::Unknown);
    assert!(
        r.results[0].figures["unknown_reason"]
            .as_str()
            .unwrap()
            .contains("aborted")
    );
}

#[test]
fn the_same_shape_small_enough_is_decided() {
    // Two waves fit the default budget: the read of the first value is refuted (one
    // wave would be valid: its write of 0 may take effect last).
    let r = schism_checker::check(&cas_waves(2), &Options::default()).unwrap();
    assert_eq!(r.validity, Validity::Invalid);
}
