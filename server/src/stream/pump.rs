//! The async side of body handling: moving a request body's chunks to a blocking
//! worker, and draining what is left of a refused one. How slowly a body may arrive is
//! the HTTP layer's pace (`http::pace`), which fails a body too slow with a timeout.

use std::io;
use std::time::Duration;

use bytes::Bytes;
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
                // Gather what is there already, without waiting for more. A chunk alone
                // (a slow link's) goes on as it is, uncopied.
                let mut len = first.len();
                let mut pieces = vec![first];
                while len < BATCH {
                    match body.next().now_or_never() {
                        Some(Some(Ok(more))) if len + more.len() <= BATCH => {
                            len += more.len();
                            pieces.push(more);
                        }
                        // Too much for this batch, or an error: next time.
                        Some(Some(more)) => {
                            next = Some(more.map_err(to_io));
                            break;
                        }
                        Some(None) => {
                            ended = true;
                            break;
                        }
                        None => break,
                    }
                }
                Ok(match pieces.len() {
                    1 => pieces.swap_remove(0),
                    _ => Bytes::from(pieces.concat()),
                })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What `forward` sends on for `chunks`, all there at once.
    async fn forwarded(chunks: Vec<io::Result<Bytes>>) -> Vec<io::Result<Bytes>> {
        let (tx, mut rx) = mpsc::channel(IN_FLIGHT);
        let mut body = futures_util::stream::iter(chunks);
        let sent = tokio::spawn(async move { forward(&mut body, tx).await });
        let mut got = vec![];
        while let Some(chunk) = rx.recv().await {
            got.push(chunk);
        }
        sent.await.unwrap();
        got
    }

    #[tokio::test]
    async fn chunks_there_already_go_on_in_batches_in_order() {
        let data: Vec<u8> = (0..BATCH * 3).map(|i| (i % 251) as u8).collect();
        let mut chunks: Vec<_> = data
            .chunks(10_000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        // A chunk larger than a batch goes on as it is.
        chunks.push(Ok(Bytes::from(vec![7u8; BATCH + 1])));
        let got = forwarded(chunks).await;
        let got: Vec<Bytes> = got.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            got.len(),
            5,
            "three batches, the rest of the last, the large chunk"
        );
        assert!(got[..4].iter().all(|b| b.len() <= BATCH));
        assert_eq!(got[4].len(), BATCH + 1);
        let joined: Vec<u8> = got[..4].iter().flat_map(|b| b.to_vec()).collect();
        assert_eq!(joined, data);
    }

    #[tokio::test]
    async fn an_error_follows_what_came_before_it_and_ends_the_body() {
        let chunks = vec![
            Ok(Bytes::from_static(b"abc")),
            Ok(Bytes::from_static(b"def")),
            Err(io::Error::other("cut")),
            Ok(Bytes::from_static(b"never")),
        ];
        let got = forwarded(chunks).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].as_ref().unwrap().as_ref(), b"abcdef");
        assert_eq!(got[1].as_ref().unwrap_err().to_string(), "cut");
    }

    #[tokio::test]
    async fn a_chunk_alone_goes_on_uncopied() {
        let chunk = Bytes::from(vec![1u8; 1000]);
        let got = forwarded(vec![Ok(chunk.clone())]).await;
        let sent = got[0].as_ref().unwrap();
        assert_eq!(sent.as_ptr(), chunk.as_ptr(), "the same buffer");
    }
}
