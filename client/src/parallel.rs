//! Compressing and decompressing a stream on every core while keeping its order.
//!
//! Backups travel as a sequence of independent zstd frames (one per `FRAME` bytes of the
//! tar stream), so a single stream can be cut into frames and each frame (de)compressed
//! on its own core; one stream decoded by one thread could not keep up with the disks on
//! a two-core host.

use std::io::{self, Cursor, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

/// Tar bytes per zstd frame.
pub const FRAME: usize = 8 << 20;

type Job = (Vec<u8>, SyncSender<io::Result<Vec<u8>>>);

/// A `Read` over `f` applied to each item `produce` yields, in order, with `f` running
/// on `workers` threads. Memory is bounded by a few items per worker.
pub struct ParallelMap {
    order: Receiver<Receiver<io::Result<Vec<u8>>>>,
    current: Cursor<Vec<u8>>,
}

impl ParallelMap {
    pub fn new<P, F>(mut produce: P, f: F) -> Self
    where
        P: FnMut() -> io::Result<Option<Vec<u8>>> + Send + 'static,
        F: Fn(Vec<u8>) -> io::Result<Vec<u8>> + Send + Sync + 'static,
    {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        let (order_tx, order) = sync_channel(workers * 2);
        let (job_tx, job_rx) = sync_channel::<Job>(workers);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let f = Arc::new(f);
        for _ in 0..workers {
            let (job_rx, f) = (job_rx.clone(), f.clone());
            std::thread::spawn(move || {
                loop {
                    let job = job_rx.lock().expect("job queue").recv();
                    let Ok((input, done)) = job else { return };
                    let _ = done.send(f(input));
                }
            });
        }
        std::thread::spawn(move || {
            loop {
                let (done, result) = sync_channel(1);
                match produce() {
                    Ok(Some(input)) => {
                        if order_tx.send(result).is_err() || job_tx.send((input, done)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        let _ = done.send(Err(e));
                        let _ = order_tx.send(result);
                        return;
                    }
                }
            }
        });
        ParallelMap {
            order,
            current: Cursor::new(Vec::new()),
        }
    }
}

impl Read for ParallelMap {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.current.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let Ok(next) = self.order.recv() else {
                return Ok(0);
            };
            match next.recv() {
                Ok(Ok(output)) => self.current = Cursor::new(output),
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(io::Error::other("a worker thread died")),
            }
        }
    }
}

/// Reads up to `len` bytes; fewer only at the end of `r`.
fn read_chunk(r: &mut impl Read, len: usize) -> io::Result<Vec<u8>> {
    let mut chunk = Vec::with_capacity(len);
    r.take(len as u64).read_to_end(&mut chunk)?;
    Ok(chunk)
}

/// `input` compressed as a sequence of independent zstd frames, on every core.
pub fn compress(mut input: impl Read + Send + 'static, level: i32) -> ParallelMap {
    ParallelMap::new(
        move || read_chunk(&mut input, FRAME).map(|c| (!c.is_empty()).then_some(c)),
        move |chunk| frame_compressor(level)?.compress(&chunk),
    )
}

/// A compressor for independent frames that checksum their content, so that a damaged
/// frame fails its decode instead of yielding wrong bytes (a WAL segment replayed wrong,
/// a backup restored wrong).
pub fn frame_compressor(level: i32) -> io::Result<zstd::bulk::Compressor<'static>> {
    let mut c = zstd::bulk::Compressor::new(level)?;
    c.include_checksum(true)?;
    Ok(c)
}

/// Above this much compressed data without a frame boundary, the stream is not framed
/// for parallel decoding (e.g. uploaded with `--compress=client-zstd`): decode the rest
/// as one stream rather than hold it in memory.
const MAX_FRAME: usize = 64 << 20;

/// What the splitter hands to the workers.
enum Piece {
    Frame(Vec<u8>),
    Decoded(Vec<u8>),
}

/// A zstd stream decoded on every core, frame by frame.
pub fn decompress(input: impl Read + Send + 'static) -> ParallelMap {
    decompress_with(input, MAX_FRAME)
}

fn decompress_with(input: impl Read + Send + 'static, max_frame: usize) -> ParallelMap {
    let mut input: Box<dyn Read + Send> = Box::new(input);
    let mut pending: Vec<u8> = Vec::new();
    let mut eof = false;
    let mut streaming: Option<Box<dyn Read + Send>> = None;
    let mut next = move || -> io::Result<Option<Piece>> {
        if let Some(decoder) = streaming.as_mut() {
            let chunk = read_chunk(decoder, FRAME)?;
            return Ok((!chunk.is_empty()).then_some(Piece::Decoded(chunk)));
        }
        loop {
            if let Ok(n) = zstd::zstd_safe::find_frame_compressed_size(&pending) {
                let rest = pending.split_off(n);
                return Ok(Some(Piece::Frame(std::mem::replace(&mut pending, rest))));
            }
            if pending.len() > max_frame {
                let rest = std::mem::replace(&mut input, Box::new(io::empty()));
                let joined = Cursor::new(std::mem::take(&mut pending)).chain(rest);
                streaming = Some(Box::new(zstd::Decoder::new(joined)?));
                let chunk = read_chunk(streaming.as_mut().expect("just set"), FRAME)?;
                return Ok(Some(Piece::Decoded(chunk)));
            }
            if eof {
                return match pending.is_empty() {
                    true => Ok(None),
                    false => Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the backup stream ends inside a zstd frame",
                    )),
                };
            }
            let chunk = read_chunk(&mut input, 1 << 20)?;
            eof = chunk.is_empty();
            pending.extend_from_slice(&chunk);
        }
    };
    // ParallelMap carries bytes: tag each piece with one leading byte.
    ParallelMap::new(
        move || {
            Ok(next()?.map(|piece| {
                let (tag, mut bytes) = match piece {
                    Piece::Frame(b) => (0u8, b),
                    Piece::Decoded(b) => (1u8, b),
                };
                bytes.push(tag);
                bytes
            }))
        },
        |mut tagged| match tagged.pop() {
            Some(0) => zstd::stream::decode_all(&tagged[..]),
            _ => Ok(tagged),
        },
    )
}

/// `f` applied to every item on at most `jobs` threads; results in the items' order.
/// Items are taken in order, so the first ones start first.
pub fn map_bounded<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    *results[i].lock().expect("no panics hold this lock") = Some(r);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .expect("no panics hold this lock")
                .expect("every item ran")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_order_across_frames() {
        let data: Vec<u8> = (0..(3 * FRAME + 12345))
            .map(|i| (i % 251) as u8 ^ (i / 4096) as u8)
            .collect();
        let mut compressed = Vec::new();
        compress(Cursor::new(data.clone()), 1)
            .read_to_end(&mut compressed)
            .unwrap();
        // Independent frames: a plain decoder reads the whole sequence too.
        assert_eq!(zstd::stream::decode_all(&compressed[..]).unwrap(), data);
        let mut back = Vec::new();
        decompress(Cursor::new(compressed.clone()))
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == data);
        // One big frame (not framed for parallel decoding) still decodes, streaming.
        let mut seed = 1u64;
        let big: Vec<u8> = (0..(3 << 20))
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 56) as u8
            })
            .collect();
        let one = zstd::stream::encode_all(&big[..], 1).unwrap();
        assert!(
            one.len() > 1 << 20,
            "incompressible, so larger than the limit below"
        );
        let mut back = Vec::new();
        decompress_with(Cursor::new(one), 1 << 20)
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == big);
        // A cut stream is an error, not a short read.
        let cut = compressed[..compressed.len() - 10].to_vec();
        assert!(
            decompress(Cursor::new(cut))
                .read_to_end(&mut Vec::new())
                .is_err()
        );
    }
}
