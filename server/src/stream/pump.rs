//! The async side of body handling: moving a request body's chunks to a blocking
//! worker, and draining what is left of a refused one. How slowly a body may arrive is
//! the HTTP layer's pace (`http::pace`), which fails a body too slow with a timeout.

use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

/// The next chunk of `body`, or a `TimedOut` error once it has sent nothing for `idle`.
async fn next_within<S, E>(body: &mut S, idle: Option<Duration>) -> Option<io::Result<Bytes>>
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::error::Error + Send + Sync + 'static,
{
    use futures_util::StreamExt;
    let next = match idle {
        None => body.next().await,
        Some(idle) => match tokio::time::timeout(idle, body.next()).await {
            Ok(next) => next,
            Err(_) => {
                return Some(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the client sent nothing for {} s", idle.as_secs()),
                )));
            }
        },
    };
    next.map(|chunk| chunk.map_err(to_io))
}

/// A body's error as an I/O error, keeping a timeout's kind (a body too slow for its
/// pace fails with one, wrapped by the HTTP layers) so that it is told from a cut body.
fn to_io<E: std::error::Error + Send + Sync + 'static>(e: E) -> io::Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>()
            && io.kind() == io::ErrorKind::TimedOut
        {
            return io::Error::new(io::ErrorKind::TimedOut, io.to_string());
        }
        source = s.source();
    }
    io::Error::other(e)
}

/// Chunks that have already arrived are sent on together up to this size: hyper yields
/// a network read (16 KiB or so) at a time, and a worker woken for each spent more time
/// switching threads than working (a third of the gateway's CPU on a raw segment).
const BATCH: usize = 256 << 10;

/// How many batches may wait between the network and a worker: about 1 MiB, enough
/// that the worker rarely waits for the network or the network for it.
pub const IN_FLIGHT: usize = 4;

/// Forwards a request body to a worker's channel (of [`IN_FLIGHT`] places) until the
/// body ends or fails (the error is forwarded too), or the worker stops reading.
pub async fn forward<S, E>(body: &mut S, tx: mpsc::Sender<io::Result<Bytes>>)
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::error::Error + Send + Sync + 'static,
{
    use futures_util::{FutureExt, StreamExt};
    let mut next = next_within(body, None).await;
    let mut ended = false;
    while let Some(chunk) = next.take() {
        let chunk = match chunk {
            Ok(first) if first.len() < BATCH => {
                // Gather what is there already, without waiting for more.
                let mut batch = BytesMut::with_capacity(BATCH);
                batch.extend_from_slice(&first);
                while batch.len() < BATCH {
                    match body.next().now_or_never() {
                        Some(Some(Ok(more))) => batch.extend_from_slice(&more),
                        Some(Some(Err(e))) => {
                            next = Some(Err(to_io(e)));
                            break;
                        }
                        Some(None) => {
                            ended = true;
                            break;
                        }
                        None => break,
                    }
                }
                Ok(batch.freeze())
            }
            other => other,
        };
        let failed = chunk.is_err();
        // A closed channel means the worker has refused the body: stop reading.
        if tx.send(chunk).await.is_err() || failed || ended {
            return;
        }
        if next.is_none() {
            next = next_within(body, None).await;
        }
    }
}

/// Reads and drops what is left of a refused request body, up to `max` bytes and while
/// it keeps coming within `idle`, so the client gets to read the refusal instead of a
/// broken pipe. Beyond that the connection is closed as before.
pub async fn drain<S, E>(body: &mut S, max: u64, idle: Duration)
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut read = 0u64;
    while read <= max {
        match next_within(body, Some(idle)).await {
            Some(Ok(chunk)) => read += chunk.len() as u64,
            Some(Err(_)) | None => return,
        }
    }
}
