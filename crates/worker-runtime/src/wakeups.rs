//! Waking consumers when a job is pushed.
//!
//! apalis-redis 1.0 puts every pushed job in its scheduled set (due now) and announces nothing,
//! so a worker with an empty queue only looks again at its next heartbeat: seconds of latency
//! for every job. Our producer publishes on `{queue}:wake` after each push; each consumer
//! subscribes and turns those messages into a wake-up for apalis' poller (a `PollWith` stream
//! strategy), with a slow interval behind it for delayed jobs coming due and for messages lost
//! while the subscription reconnects.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A stream that yields once per burst of pushes (wake-ups coalesce while one is pending).
pub struct Wakeups {
    rx: mpsc::Receiver<()>,
}

impl Stream for Wakeups {
    type Item = ();

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.rx.poll_recv(cx)
    }
}

/// Subscribes to `channel` until `stop`, reconnecting after errors.
pub fn subscribe(client: redis::Client, channel: String, stop: CancellationToken) -> Wakeups {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        loop {
            let session = async {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(&channel).await?;
                // Anything pushed while we were not subscribed is picked up by this first look.
                let _ = tx.try_send(());
                let mut messages = pubsub.on_message();
                while messages.next().await.is_some() {
                    let _ = tx.try_send(());
                }
                Ok::<(), redis::RedisError>(())
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                result = session => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, channel, "wake-up subscription lost; reconnecting");
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    });
    Wakeups { rx }
}
