//! Helpers for the blocking workers that read request bodies: the async side forwards
//! body chunks over a channel, and the worker reads, checks and compresses them with
//! ordinary `std::io` code.

use std::io::{self, Read, Write};

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

/// Forwards a request body to a worker's channel until the body ends, fails (the error
/// is forwarded too), or the worker stops reading. `inspect` sees each chunk on the way.
pub async fn forward<S, E>(
    body: &mut S,
    tx: mpsc::Sender<io::Result<Bytes>>,
    mut inspect: impl FnMut(&Bytes),
) where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::error::Error + Send + Sync + 'static,
{
    use futures_util::StreamExt;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(io::Error::other);
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

/// Reads and drops what is left of a refused request body, up to `max` bytes, so the
/// client gets to read the refusal instead of a broken pipe. Beyond `max` the
/// connection is closed as before.
pub async fn drain<S, E>(body: &mut S, max: u64)
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
{
    use futures_util::StreamExt;
    let mut read = 0u64;
    while read <= max {
        match body.next().await {
            Some(Ok(chunk)) => read += chunk.len() as u64,
            Some(Err(_)) | None => return,
        }
    }
}
