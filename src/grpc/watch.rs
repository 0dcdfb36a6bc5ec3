//! Server-streaming plumbing shared by the Watch methods: a bounded channel feeding the
//! response stream, written by one task that sends a snapshot, then events, re-synchronises
//! from the store when it lags, and ends when the client goes away or shutdown begins (the
//! stream then ends with OK).

use std::pin::Pin;

use tokio::sync::{broadcast, mpsc};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tracing::Instrument;

use crate::control::AppError;

/// The response stream of a Watch method.
pub type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Messages buffered per stream before the writer waits for the client.
const BUFFER: usize = 32;

/// What a Watch method streams: a snapshot of the current state, then mapped events.
pub trait WatchSource: Send + 'static {
    /// The broadcast event type.
    type Event: Clone + Send + 'static;
    /// The response message type.
    type Message: Send + 'static;

    /// Returns the messages describing the current state (called at start and after a lag).
    fn snapshot(&mut self) -> impl Future<Output = Result<Vec<Self::Message>, AppError>> + Send;

    /// Maps an event to a message, or `None` to skip it.
    fn map(&mut self, event: Self::Event) -> Option<Self::Message>;

    /// Returns true when `message` is the last one the stream sends (e.g. a final state).
    fn is_last(&self, _message: &Self::Message) -> bool {
        false
    }
}

/// Starts the writer task of a Watch stream. `events` must be subscribed before `initial`
/// was read, so no change can fall between the snapshot and the first event.
pub fn spawn_watch<S: WatchSource>(
    mut source: S,
    initial: Vec<S::Message>,
    mut events: broadcast::Receiver<S::Event>,
    stop: CancellationToken,
    span: tracing::Span,
) -> EventStream<S::Message> {
    let (sender, receiver) = mpsc::channel::<Result<S::Message, Status>>(BUFFER);
    let task = async move {
        let mut pending = initial;
        loop {
            for message in std::mem::take(&mut pending) {
                let last = source.is_last(&message);
                if sender.send(Ok(message)).await.is_err() || last {
                    return;
                }
            }
            let event = tokio::select! {
                () = stop.cancelled() => return,
                () = sender.closed() => return,
                event = events.recv() => event,
            };
            match event {
                Ok(event) => pending.extend(source.map(event)),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "watcher lagged; re-synchronising from the store");
                    match source.snapshot().await {
                        Ok(messages) => pending = messages,
                        Err(error) => {
                            let _ = sender.send(Err(error.into())).await;
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    };
    tokio::spawn(task.instrument(span));
    Box::pin(ReceiverStream::new(receiver))
}
