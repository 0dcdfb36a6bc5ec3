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
/// Watch streams open at once on this replica (each holds a task and a subscription; HTTP/2
/// already bounds streams per connection).
pub const MAX_WATCH_STREAMS: usize = 1024;

/// The replica's bound on open watch streams.
fn watch_slots() -> &'static std::sync::Arc<tokio::sync::Semaphore> {
    static SLOTS: std::sync::OnceLock<std::sync::Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_WATCH_STREAMS)))
}

/// Takes a slot for a new watch stream, or refuses with RESOURCE_EXHAUSTED.
pub fn watch_slot() -> Result<tokio::sync::OwnedSemaphorePermit, AppError> {
    watch_slots().clone().try_acquire_owned().map_err(|_| AppError::Overloaded {
        limit: MAX_WATCH_STREAMS as u32,
        retry_after: std::time::Duration::from_secs(5),
    })
}

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
) -> Result<EventStream<S::Message>, AppError> {
    let slot = watch_slot()?;
    let (sender, receiver) = mpsc::channel::<Result<S::Message, Status>>(BUFFER);
    let task = async move {
        // Held for the stream's life.
        let _slot = slot;
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
    Ok(Box::pin(ReceiverStream::new(receiver)))
}
