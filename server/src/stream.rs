//! Helpers for the blocking workers that read request bodies: the async side forwards
//! body chunks over a channel, and the worker reads, checks and compresses them with
//! ordinary `std::io` code.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::time::Duration;

/// How a request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Zstd,
    Gzip,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Identity => "identity",
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
        }
    }
}

use bytes::{Bytes, BytesMut};
use object_store::PutPayload;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

/// A blocking `Read` over the chunks the async side forwards.
pub struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl ChannelReader {
    pub fn new(rx: mpsc::Receiver<io::Result<Bytes>>) -> Self {
        ChannelReader {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// A `Write` that collects output in 1 MiB `Bytes` chunks, so a large object is never
/// copied into one growing buffer.
#[derive(Default)]
pub struct Chunks {
    done: Vec<Bytes>,
    current: BytesMut,
    len: u64,
}

impl Write for Chunks {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        const CHUNK: usize = 1 << 20;
        if self.current.capacity() - self.current.len() < buf.len() && !self.current.is_empty() {
            self.done.push(std::mem::take(&mut self.current).freeze());
        }
        if self.current.capacity() == 0 {
            self.current.reserve(CHUNK.max(buf.len()));
        }
        self.current.extend_from_slice(buf);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Chunks {
    pub fn into_payload(mut self) -> (PutPayload, u64) {
        if !self.current.is_empty() {
            self.done.push(self.current.freeze());
        }
        (self.done.into_iter().collect(), self.len)
    }
}

/// A `Write` that only hashes.
pub struct HashWriter(pub Sha256);

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads through `inner`, copying every byte read into `out` and counting them. Used to
/// feed a compressor while parsing, and to keep a client's own zstd frames as sent.
pub struct Tee<R, W> {
    pub inner: R,
    pub out: W,
    pub bytes: u64,
}

impl<R, W> Tee<R, W> {
    pub fn new(inner: R, out: W) -> Self {
        Tee {
            inner,
            out,
            bytes: 0,
        }
    }
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// After a zstd decoder has reached the end of its stream: anything still to be read
/// was never checked, so refuse it.
pub fn refuse_trailing(rest: &mut impl Read) -> io::Result<()> {
    match rest.read(&mut [0u8; 1])? {
        0 => Ok(()),
        _ => Err(io::Error::other("data after the end of the zstd stream")),
    }
}

/// A reader that fails once more than `max` bytes have come through it: a body that
/// decodes to little (a run of empty zstd frames, say) must not grow without bound.
/// `max` is shared so that the reader's owner can tighten it as it learns more.
pub struct Limited<R> {
    inner: R,
    read: u64,
    max: Rc<Cell<u64>>,
}

impl<R> Limited<R> {
    pub fn new(inner: R, max: Rc<Cell<u64>>) -> Self {
        Limited {
            inner,
            read: 0,
            max,
        }
    }
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.max.get() {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                "the body is larger than any file of its kind compresses to",
            ));
        }
        Ok(n)
    }
}

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
    next.map(|chunk| chunk.map_err(io::Error::other))
}

/// Forwards a request body to a worker's channel until the body ends, fails or stays
/// silent for `idle` (the error is forwarded too), or the worker stops reading.
/// `inspect` sees each chunk on the way.
pub async fn forward<S, E>(
    body: &mut S,
    tx: mpsc::Sender<io::Result<Bytes>>,
    idle: Option<Duration>,
    mut inspect: impl FnMut(&Bytes),
) where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::error::Error + Send + Sync + 'static,
{
    while let Some(chunk) = next_within(body, idle).await {
        if let Ok(c) = &chunk {
            inspect(c);
        }
        let failed = chunk.is_err();
        // A closed channel means the worker has refused the body: stop reading.
        if tx.send(chunk).await.is_err() || failed {
            break;
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
