//! Blocking `Read` and `Write` adapters the workers that check and compress bodies are
//! built from: they read a body forwarded from the async side, hash, copy, count and
//! bound what passes, and collect output in chunks an object store takes as it is.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use object_store::PutPayload;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

/// A blocking `Read` over the chunks the async side forwards (see [`super::forward`]).
/// Call it from the runtime (it keeps its handle); read it in a blocking task.
pub fn channel_reader(mut rx: mpsc::Receiver<io::Result<Bytes>>) -> impl Read + Send {
    let chunks = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    SyncIoBridge::new(StreamReader::new(chunks))
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
