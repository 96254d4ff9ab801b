//! Blocking `Read` and `Write` adapters the workers that check and compress bodies are
//! built from: they read a body forwarded from the async side, hash, copy, count and
//! bound what passes, and collect output in chunks an object store takes as it is.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use object_store::PutPayload;
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

/// Bytes of a file per zstd frame when the gateway compresses it (WAL sent raw), as the
/// client does: each frame is compressed whole from one buffer that stays in the CPU's
/// cache. zstd's streaming mode, fed the network's small chunks, copied them into a ring
/// buffer and spent a fifth of the raw path's CPU matching across its wrap. The ratio is
/// within 3% of one frame, and readers decode concatenated frames as one file.
pub const FRAME: usize = 256 << 10;

/// A `Write` that compresses into independent, checksummed zstd frames of [`FRAME`]
/// bytes each, collected in [`Chunks`]. Call [`FrameEncoder::finish`] at the end.
pub struct FrameEncoder {
    compressor: zstd::bulk::Compressor<'static>,
    /// Input short of a frame.
    pending: Vec<u8>,
    /// One frame's output, reused.
    frame: Vec<u8>,
    out: Chunks,
}

impl FrameEncoder {
    pub fn new(level: i32) -> io::Result<Self> {
        let mut compressor = zstd::bulk::Compressor::new(level)?;
        compressor.include_checksum(true)?;
        Ok(FrameEncoder {
            compressor,
            pending: Vec::new(),
            frame: Vec::with_capacity(zstd::zstd_safe::compress_bound(FRAME)),
            out: Chunks::default(),
        })
    }

    fn compress(&mut self, input: &[u8]) -> io::Result<()> {
        self.frame.clear();
        self.compressor.compress_to_buffer(input, &mut self.frame)?;
        self.out.write_all(&self.frame)
    }

    /// Compresses what is left into a last, shorter frame.
    pub fn finish(mut self) -> io::Result<Chunks> {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.compress(&pending)?;
        }
        Ok(self.out)
    }
}

impl Write for FrameEncoder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Whole frames straight from the caller's buffer, the rest kept for later.
        if self.pending.is_empty() && buf.len() >= FRAME {
            self.compress(&buf[..FRAME])?;
            return Ok(FRAME);
        }
        let n = buf.len().min(FRAME - self.pending.len());
        self.pending.extend_from_slice(&buf[..n]);
        if self.pending.len() == FRAME {
            let pending = std::mem::take(&mut self.pending);
            self.compress(&pending)?;
            self.pending = pending;
            self.pending.clear();
        }
        Ok(n)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_decode_to_what_was_written_whatever_the_writes() {
        let input: Vec<u8> = (0..FRAME * 3 + 1234).map(|i| (i / 7 % 251) as u8).collect();
        for piece in [1000, FRAME, FRAME + 1, input.len()] {
            let mut e = FrameEncoder::new(1).unwrap();
            input.chunks(piece).for_each(|c| e.write_all(c).unwrap());
            let (payload, len) = e.finish().unwrap().into_payload();
            let stored: Vec<u8> = payload.iter().flat_map(|b| b.to_vec()).collect();
            assert_eq!(stored.len() as u64, len);
            assert_eq!(
                zstd::decode_all(&stored[..]).unwrap(),
                input,
                "pieces of {piece}"
            );
            // Four frames, each whole in itself.
            let mut rest = &stored[..];
            let mut frames = 0;
            while !rest.is_empty() {
                let n = zstd::zstd_safe::find_frame_compressed_size(rest).unwrap();
                rest = &rest[n..];
                frames += 1;
            }
            assert_eq!(frames, 4, "pieces of {piece}");
        }
    }
}
