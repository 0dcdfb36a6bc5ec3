//! Server-streaming plumbing: a bounded channel feeding the response stream, written by a task
//! that ends when the client goes away or shutdown begins (the stream then ends with OK).

use std::pin::Pin;

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::domain::access::Principal;

/// The response stream of a Watch method.
pub type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Messages buffered per stream before the writer waits for the client.
const BUFFER: usize = 32;

/// Returns the writer half and the response stream.
pub fn channel<T: Send + 'static>() -> (mpsc::Sender<Result<T, Status>>, EventStream<T>) {
    let (sender, receiver) = mpsc::channel(BUFFER);
    (sender, Box::pin(ReceiverStream::new(receiver)))
}

/// Returns the authenticated caller of a request (set by the auth layer).
pub fn principal<T>(request: &tonic::Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no authenticated caller"))
}
