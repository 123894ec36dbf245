//! Kubernetes Events about `NomadJob`s, published in the background by one worker with
//! a bounded queue and a few requests in flight.
//!
//! A reconcile never waits for the apiserver to take an Event, only for room in the
//! queue: when thousands of objects change at once, the Events go out a few at a time
//! over a few connections instead of one connection each.
//!
//! Each Event is published through a fresh [`Recorder`]. A shared recorder would
//! fold a later Event with the same reason into the first one's series (keeping the
//! first note, so "registered version 2" would show as a second "registered version 1")
//! and would keep every Event in memory for six minutes. The operator publishes only
//! on transitions, so there is nothing to fold.

use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, Recorder, Reporter};
use tracing::warn;

use crate::leader::Leadership;

/// How many Events wait for the worker before `publish` waits for room.
const QUEUE: usize = 256;
/// How many Events are being sent to the apiserver at once.
const IN_FLIGHT: usize = 4;
/// The longest Event note the apiserver takes (`events.k8s.io/v1`: 1 kB); longer notes
/// are cut, so that an Event carrying a long user value is still published.
pub const MAX_NOTE_BYTES: usize = 1024;

/// One Event to publish: what happened, and about which object.
struct Pending {
    event: Event,
    regarding: ObjectReference,
}

/// Queues Events for the background worker. Cheap to clone.
#[derive(Clone)]
pub struct EventPublisher {
    queue: mpsc::Sender<Pending>,
}

impl EventPublisher {
    /// Starts the worker (on the current Tokio runtime); it stops when every
    /// publisher is dropped.
    /// Events queued while this replica led but sent after it stopped leading are
    /// dropped.
    pub fn start(client: Client, reporter: Reporter, leadership: Leadership) -> Self {
        let (queue, pending) = mpsc::channel::<Pending>(QUEUE);
        tokio::spawn(pending.for_each_concurrent(IN_FLIGHT, move |p| {
            let recorder = Recorder::new(client.clone(), reporter.clone());
            let leads = leadership.holds();
            async move {
                if !leads {
                    warn!("not the leader any more; dropped Event {}", p.event.reason);
                    return;
                }
                if let Err(e) = recorder.publish(&p.event, &p.regarding).await {
                    let namespace = p.regarding.namespace.as_deref().unwrap_or_default();
                    let name = p.regarding.name.as_deref().unwrap_or_default();
                    warn!(
                        object = format!("{namespace}/{name}"),
                        "publishing Event {} failed: {e}", p.event.reason
                    );
                }
            }
        }));
        Self { queue }
    }

    /// Queues `event` about `regarding`, waiting only while the queue is full. A
    /// failure to publish is logged by the worker, never returned.
    pub async fn publish(&self, mut event: Event, regarding: ObjectReference) {
        event.note = event
            .note
            .map(|note| crate::nomad::truncate_bytes(&note, MAX_NOTE_BYTES));
        let reason = event.reason.clone();
        if self
            .queue
            .clone()
            .send(Pending { event, regarding })
            .await
            .is_err()
        {
            warn!("the Event worker stopped; dropped Event {reason}");
        }
    }
}
