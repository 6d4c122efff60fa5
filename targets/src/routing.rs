//! The reference client's decisions, without the network: which node a request goes to
//! and with which read conditions, what a reply teaches the session, and which leader a
//! round of `/status` answers points to.
//!
//! `ReferenceClient` (HTTP, `client.rs`) and the simulated clients of `schism sim` both
//! drive a `Router`, so a simulated session routes, retries and follows leaders exactly as
//! a real one does. Guarantees: pure (no I/O, no clock; the caller keeps time and asks
//! `/status`); the only randomness is the session's seeded ChaCha8 stream, drawn in the
//! same order whichever caller drives it, so the same seed and the same replies give the
//! same choices.

use crate::api::ReadRouting;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Read conditions sent along with a request (the node's `KvOpts`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Conditions {
    #[serde(skip_serializing_if = "is_zero")]
    pub min_lsn: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub leader_only: bool,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// What every session of one client shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub routing: ReadRouting,
    /// Writes go to a node chosen like an `Any` read (multi-leader, leaderless).
    pub write_any: bool,
    /// Follow redirects and ask `/status` (the cluster fails over).
    pub discover_leader: bool,
    /// How many nodes there are.
    pub nodes: usize,
    /// The leader the cluster started with (index), until the session learns another.
    pub initial_leader: usize,
}

/// What a reply says, as far as routing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    pub ok: bool,
    /// An acknowledged write's LSN (0: none).
    pub lsn: u64,
    /// How far the serving node had applied, for a read (0: not said).
    pub applied: u64,
    /// The leader a refusal named (index), if any.
    pub hint: Option<usize>,
}

/// What to do after a read's first reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterRead {
    /// The reply stands. `refresh_now`: ask who leads before the next request.
    Done { refresh_now: bool },
    /// Send the read again, here, with these conditions; its reply stands.
    Retry(usize, Conditions),
}

/// One node's `/status` as the leader search reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub leads: bool,
    pub epoch: u64,
    /// The leader it names (index), if it names one of the client's nodes.
    pub names: Option<usize>,
}

/// One session's routing state: its seeded RNG, home node, the leader it follows and its
/// LSN tokens.
#[derive(Debug, Clone)]
pub struct Router {
    rng: ChaCha8Rng,
    /// The node this session is bound to: the one it asks first who leads.
    home: usize,
    /// The leader as this session knows it.
    leader: Option<usize>,
    /// LSN of this session's last acknowledged write (read-your-writes token).
    last_write_lsn: u64,
    /// Highest applied LSN a read of this session saw (monotonic-read token).
    seen_lsn: u64,
    sticky: Option<usize>,
}

impl Router {
    /// A session bound to node `home`, its choices drawn from `seed`.
    pub fn new(seed: u64, home: usize) -> Router {
        Router {
            rng: ChaCha8Rng::seed_from_u64(seed),
            home,
            leader: None,
            last_write_lsn: 0,
            seen_lsn: 0,
            sticky: None,
        }
    }

    pub fn home(&self) -> usize {
        self.home
    }

    /// The read-your-writes token.
    pub fn last_write_lsn(&self) -> u64 {
        self.last_write_lsn
    }

    /// The leader this session sends to now.
    pub fn leader(&self, rules: &Rules) -> usize {
        self.leader.unwrap_or(rules.initial_leader)
    }

    /// Where a request goes first, and with which conditions.
    pub fn route(&mut self, rules: &Rules, is_write: bool) -> (usize, Conditions) {
        let leader = self.leader(rules);
        let n = rules.nodes;
        let none = Conditions::default();
        if is_write {
            // Multi-leader and leaderless nodes all take writes; leader-follower only the leader.
            let target = if rules.write_any {
                self.rng.random_range(0..n)
            } else {
                leader
            };
            return (target, none);
        }
        match rules.routing {
            ReadRouting::Leader => (
                leader,
                Conditions {
                    leader_only: true,
                    ..none
                },
            ),
            ReadRouting::Any => (self.rng.random_range(0..n), none),
            ReadRouting::Follower => {
                let pick = if n > 1 {
                    (leader + 1 + self.rng.random_range(0..n - 1)) % n
                } else {
                    leader
                };
                (pick, none)
            }
            ReadRouting::Ryw => (
                self.rng.random_range(0..n),
                Conditions {
                    min_lsn: self.last_write_lsn,
                    ..none
                },
            ),
            ReadRouting::Sticky => {
                let rng = &mut self.rng;
                let node = *self.sticky.get_or_insert_with(|| rng.random_range(0..n));
                (
                    node,
                    Conditions {
                        min_lsn: self.seen_lsn,
                        ..none
                    },
                )
            }
        }
    }

    /// After a write's reply; true: ask who leads before the next request.
    pub fn after_write(&mut self, rules: &Rules, outcome: &Outcome) -> bool {
        if outcome.ok {
            self.last_write_lsn = self.last_write_lsn.max(outcome.lsn);
            false
        } else {
            self.learn(rules, outcome.hint)
        }
    }

    /// After a read's first reply (sent to `node` with `cond`).
    pub fn after_read(
        &mut self,
        rules: &Rules,
        node: usize,
        cond: Conditions,
        outcome: &Outcome,
    ) -> AfterRead {
        let leader = self.leader(rules);
        let mut refresh_now = false;
        if !outcome.ok {
            match rules.routing {
                // Not caught up (or down): the leader has every acknowledged write.
                ReadRouting::Ryw if node != leader => {
                    return AfterRead::Retry(
                        leader,
                        Conditions {
                            leader_only: true,
                            ..cond
                        },
                    );
                }
                // Move on; the token keeps the next node from going back in time.
                ReadRouting::Sticky => {
                    self.sticky = Some(self.rng.random_range(0..rules.nodes));
                }
                ReadRouting::Leader => refresh_now = self.learn(rules, outcome.hint),
                _ => {}
            }
        }
        self.after_final_read(outcome);
        AfterRead::Done { refresh_now }
    }

    /// After the reply that stands for a read (the retry's, or the first).
    pub fn after_final_read(&mut self, outcome: &Outcome) {
        if outcome.ok {
            self.seen_lsn = self.seen_lsn.max(outcome.applied);
        }
    }

    /// After a refusal: follow a redirect (false), or ask everyone who leads before the
    /// next request (true).
    fn learn(&mut self, rules: &Rules, hint: Option<usize>) -> bool {
        if !rules.discover_leader {
            return false;
        }
        match hint {
            Some(i) if Some(i) != self.leader => {
                self.leader = Some(i);
                false
            }
            _ => true,
        }
    }

    /// After a round of `/status` (`answers[i]`: node i's, `None` if it did not answer):
    /// follows the leader the home node believes in (itself, or the leader it names).
    /// When the home knows no leader, a node that leads in a newer epoch than the home
    /// knows, else the home itself (which refuses until it learns one); when the home does
    /// not answer, the node leading in the highest epoch. Returns the milliseconds until
    /// the next round (200–600, drawn from the session's RNG).
    pub fn follow(&mut self, answers: &[Option<Seen>]) -> u64 {
        let leaders: Vec<(u64, usize)> = answers
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.filter(|s| s.leads).map(|s| (s.epoch, i)))
            .collect();
        // The newest leader, ties to the lowest index; only epochs above `floor`.
        let newest = |floor: Option<u64>| {
            leaders
                .iter()
                .filter(|(e, _)| floor.is_none_or(|f| *e > f))
                .max_by_key(|(e, i)| (*e, std::cmp::Reverse(*i)))
                .map(|(_, i)| *i)
        };
        let pick = match answers.get(self.home).copied().flatten() {
            // A home that leads serves; one that follows sends the session to its leader.
            Some(st) if st.leads => Some(self.home),
            Some(st) => match st.names {
                Some(i) => Some(i),
                // It knows no leader (its leader went silent, an election runs): only a
                // leader of a newer epoch than it knows can be the one; else stay with it
                // (requests fail at once, "no leader known", until it learns one).
                None => newest(Some(st.epoch)).or(Some(self.home)),
            },
            // The home node does not answer (down, paused): the newest leader.
            None => newest(None),
        };
        if let Some(i) = pick {
            self.leader = Some(i);
        }
        self.rng.random_range(200..600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(routing: ReadRouting) -> Rules {
        Rules {
            routing,
            write_any: false,
            discover_leader: true,
            nodes: 3,
            initial_leader: 0,
        }
    }

    #[test]
    fn a_following_home_sends_the_session_to_its_leader() {
        let mut r = Router::new(1, 2);
        let seen = |leads, epoch, names| {
            Some(Seen {
                leads,
                epoch,
                names,
            })
        };
        r.follow(&[
            seen(true, 1, None),
            seen(true, 2, None),
            seen(false, 1, Some(0)),
        ]);
        // The home (n3) names n1, although n2 leads a newer epoch.
        assert_eq!(r.leader(&rules(ReadRouting::Leader)), 0);
        // The home knows no leader: the newer epoch wins.
        r.follow(&[
            seen(true, 1, None),
            seen(true, 2, None),
            seen(false, 1, None),
        ]);
        assert_eq!(r.leader(&rules(ReadRouting::Leader)), 1);
        // The home does not answer: the newest leader, ties to the lowest index.
        r.follow(&[seen(true, 3, None), seen(true, 3, None), None]);
        assert_eq!(r.leader(&rules(ReadRouting::Leader)), 0);
    }

    #[test]
    fn ryw_retries_at_the_leader_and_redirects_are_followed() {
        let rules = rules(ReadRouting::Ryw);
        let mut r = Router::new(7, 0);
        assert!(!r.after_write(
            &rules,
            &Outcome {
                ok: true,
                lsn: 9,
                ..Outcome::default()
            }
        ));
        let (node, cond) = r.route(&rules, false);
        assert_eq!(cond.min_lsn, 9);
        let after = r.after_read(&rules, 1, cond, &Outcome::default());
        assert_eq!(
            after,
            AfterRead::Retry(
                0,
                Conditions {
                    min_lsn: 9,
                    leader_only: true
                }
            )
        );
        let _ = node;
        // A refused write naming n2 moves the session there; one naming no one asks.
        let refused = |hint| Outcome {
            hint,
            ..Outcome::default()
        };
        assert!(!r.after_write(&rules, &refused(Some(1))));
        assert_eq!(r.leader(&rules), 1);
        assert!(r.after_write(&rules, &refused(None)));
    }
}
