//! Node-to-node links of the shell: one bounded queue and one sender task per peer.
//!
//! The actor never waits on a peer: `Peers::send` puts a message on that peer's queue, and
//! when the queue is full (the peer is slow, paused or unreachable and the backlog reached
//! `PEER_QUEUE_MESSAGES`) the message is dropped and counted, as a congested network
//! would drop it; the protocols resend what matters. The count is logged when drops start
//! and at most once a second while they go on. Each sender task delivers its queue in
//! order over HTTP (`POST /replicate`: one message per request, or a JSON array per batch
//! for models with `Hosted::BATCHED_WIRE`); a failed delivery is lost, and the link is
//! logged when it goes down and when it comes back. A cooperative partition
//! (`/admin/links`) drops outgoing messages here.

use super::config::NodeConfig;
use super::context::{Links, Logger};
use super::hosted::Hosted;
use crate::error::TargetError;
use axum::http::header;
use schism_replication::NodeId;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Messages one peer's queue holds before new ones are dropped.
pub const PEER_QUEUE_MESSAGES: usize = 16_384;

/// One peer's queue as the actor sees it.
struct Queue<T> {
    tx: mpsc::Sender<T>,
    dropped: u64,
    last_report: Option<Instant>,
}

/// The actor's side of every peer link.
pub(super) struct Peers<M: Hosted> {
    queues: HashMap<NodeId, Queue<M::Msg>>,
}

impl<M: Hosted> Peers<M> {
    /// Starts one sender task per peer of `config`.
    pub(super) fn start(
        config: &NodeConfig,
        logger: &Logger,
        links: &Arc<RwLock<Links>>,
    ) -> Result<Peers<M>, TargetError> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_millis(config.peer_timeout_ms))
            .connect_timeout(Duration::from_millis(config.peer_timeout_ms.min(250)))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| TargetError::Client(e.to_string()))?;
        let mut queues = HashMap::new();
        for (id, addr) in config.peers.iter().filter(|(id, _)| **id != config.id) {
            let (tx, rx) = mpsc::channel(PEER_QUEUE_MESSAGES);
            queues.insert(
                id.clone(),
                Queue {
                    tx,
                    dropped: 0,
                    last_report: None,
                },
            );
            let link = Link {
                logger: logger.clone(),
                peer: id.clone(),
                url: format!("http://{addr}/replicate"),
                http: http.clone(),
                down_since: None,
                failures: 0,
            };
            tokio::spawn(sender::<M>(link, rx, links.clone()));
        }
        Ok(Peers { queues })
    }

    /// Queues `msg` for `to`; drops and counts it when the queue is full.
    pub(super) fn send(&mut self, to: &str, msg: M::Msg, logger: &Logger) {
        let Some(q) = self.queues.get_mut(to) else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = q.tx.try_send(msg) {
            q.dropped += 1;
            let due = q
                .last_report
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
            if due {
                q.last_report = Some(Instant::now());
                logger.line(format_args!(
                    "queue to {to} is full ({PEER_QUEUE_MESSAGES} messages): {} dropped so far",
                    q.dropped
                ));
            }
        }
    }
}

/// Delivers one peer's queue in order. A failed delivery is dropped: the protocol resends
/// what matters.
async fn sender<M: Hosted>(
    mut link: Link,
    mut rx: mpsc::Receiver<M::Msg>,
    links: Arc<RwLock<Links>>,
) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 1024).await > 0 {
        // While a peer is slow or paused, resends pile up here; only the newest counts.
        M::coalesce(&mut batch);
        let cut = links
            .read()
            .map(|l| l.drop_to.contains(&link.peer))
            .unwrap_or(false);
        if cut {
            // A cooperative partition: the messages are lost, as dropped packets would be.
            batch.clear();
            continue;
        }
        if M::BATCHED_WIRE {
            let n = batch.len() as u64;
            link.send(&batch, n).await;
            batch.clear();
        } else {
            for msg in batch.drain(..) {
                link.send(&msg, 1).await;
            }
        }
    }
}

/// The sending side of one node-to-node link.
struct Link {
    logger: Logger,
    peer: NodeId,
    url: String,
    http: reqwest::Client,
    down_since: Option<Instant>,
    /// Messages lost since the link went down.
    failures: u64,
}

impl Link {
    /// Posts `body` (carrying `messages` messages); logs the link going down or coming back.
    async fn send<T: serde::Serialize>(&mut self, body: &T, messages: u64) {
        let body = match serde_json::to_vec(body) {
            Ok(b) => b,
            Err(e) => {
                self.logger.line(format_args!(
                    "cannot encode a message to {}: {e}",
                    self.peer
                ));
                return;
            }
        };
        let result = self
            .http
            .post(&self.url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .and_then(|r| r.error_for_status());
        match result {
            Ok(_) => {
                if let Some(since) = self.down_since.take() {
                    self.logger.line(format_args!(
                        "link to {} is back after {:.1}s ({} messages lost)",
                        self.peer,
                        since.elapsed().as_secs_f64(),
                        self.failures
                    ));
                    self.failures = 0;
                }
            }
            Err(e) => {
                self.failures += messages;
                if self.down_since.is_none() {
                    self.down_since = Some(Instant::now());
                    self.logger.line(format_args!(
                        "link to {} is down: {}",
                        self.peer,
                        crate::api::error_text(&e)
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::hosted::coalesce;
    use crate::reference::leader_follower::PeerMessage;

    fn append(seq: u64) -> PeerMessage {
        PeerMessage::Append {
            from: "n1".into(),
            epoch: 1,
            seq,
            prev_lsn: 0,
            prev_epoch: 0,
            commit: 0,
            leader: None,
            entries: Vec::new(),
        }
    }

    fn ack(seq: u64) -> PeerMessage {
        PeerMessage::Ack {
            from: "n2".into(),
            epoch: 1,
            seq,
            last_lsn: 0,
            downstream: Vec::new(),
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        use crate::reference::leader_follower::LeaderFollower;
        let (tx, mut rx) = mpsc::channel(2);
        let queue = Queue {
            tx,
            dropped: 0,
            last_report: None,
        };
        let mut peers = Peers::<LeaderFollower> {
            queues: [("n2".to_owned(), queue)].into_iter().collect(),
        };
        let logger = Logger {
            id: "n1".into(),
            start: Instant::now(),
        };
        for seq in 1..=5 {
            peers.send("n2", append(seq), &logger);
        }
        peers.send("n9", append(6), &logger);
        assert_eq!(peers.queues["n2"].dropped, 3, "two fit, three are dropped");
        assert_eq!(rx.try_recv().unwrap(), append(1));
        assert_eq!(rx.try_recv().unwrap(), append(2));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn coalesce_keeps_the_newest_of_each_kind() {
        let mut batch = vec![append(1), ack(7), append(2), append(3), ack(8)];
        coalesce(&mut batch);
        assert_eq!(batch, vec![append(3), ack(8)]);
        let mut one = vec![append(4)];
        coalesce(&mut one);
        assert_eq!(one, vec![append(4)]);
    }
}
