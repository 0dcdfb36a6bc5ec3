//! Running background loops: a loop that panics is logged and started again after a backoff,
//! in its own span, until its stop token fires.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::task::Poll;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Polls `future`, turning a panic inside it into `Err(message)`.
pub async fn catch_panic<F: Future>(future: F) -> Result<F::Output, String> {
    let mut future = Box::pin(future);
    std::future::poll_fn(move |cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".to_owned());
                Poll::Ready(Err(message))
            }
        }
    })
    .await
}

/// Runs a loop until `stop`. A panic inside it is logged and the loop starts again after a
/// backoff (1 s, doubling to 60 s): one bad evaluation must not end a replica's observation,
/// sealing or leadership for good.
pub fn supervise<F, Fut>(name: &'static str, stop: &CancellationToken, make: F) -> JoinHandle<()>
where
    F: Fn(CancellationToken) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let stop = stop.child_token();
    let supervised = async move {
        let mut backoff = Duration::from_secs(1);
        loop {
            match catch_panic(make(stop.clone())).await {
                Ok(()) => return,
                Err(panic) => {
                    tracing::error!(%panic, backoff_secs = backoff.as_secs(), "background loop panicked; restarting");
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
    };
    tokio::spawn(supervised.instrument(tracing::info_span!("loop", name)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_panicking_loop_is_restarted_after_a_backoff() {
        let runs = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let counted = runs.clone();
        let task = supervise("test", &stop, move |stop| {
            let runs = counted.clone();
            async move {
                if runs.fetch_add(1, Ordering::SeqCst) < 2 {
                    panic!("bad evaluation");
                }
                stop.cancelled().await;
            }
        });
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3, "restarted twice, then running");
        stop.cancel();
        task.await.unwrap();
    }
}
