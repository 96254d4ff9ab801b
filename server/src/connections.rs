//! Connections: how many the gateway holds open at once, and the file descriptors they
//! need. Each connection takes a descriptor; past the process's limit, accept fails and
//! every client, probes and WAL pushes included, waits. A cap below the limit closes
//! connections beyond it at once, with a log line, so that descriptors stay for the
//! catalog, the store and the connections already open.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Descriptors kept back from connections for the catalog, the store and files.
const RESERVED_FDS: u64 = 256;

/// Raises the soft limit on open files to the hard limit (as systemd's `LimitNOFILE`
/// or the container allows); returns the soft limit now in force.
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    let soft = if limit.current != limit.maximum && setrlimit(Resource::Nofile, raised).is_ok() {
        limit.maximum
    } else {
        limit.current
    };
    // `None` is unlimited.
    soft.unwrap_or(1 << 20)
}

/// The connections that leave room for the rest within `fds` open files.
pub fn default_cap(fds: u64) -> usize {
    fds.saturating_sub(RESERVED_FDS).clamp(64, 1 << 20) as usize
}

/// An acceptor that holds at most `max` connections open, closing any beyond at once.
#[derive(Clone)]
pub struct Capped {
    permits: Arc<Semaphore>,
    max: usize,
    /// When the cap was last reported, and how many connections were closed since.
    reported: Arc<Mutex<(Option<Instant>, u64)>>,
}

/// How often hitting the cap is logged at most.
const REPORT_EVERY: Duration = Duration::from_secs(10);

impl Capped {
    pub fn new(max: usize) -> Self {
        Capped {
            permits: Arc::new(Semaphore::new(max)),
            max,
            reported: Default::default(),
        }
    }

    fn refused(&self) {
        let mut r = self.reported.lock().expect("connection cap report");
        r.1 += 1;
        if r.0.is_none_or(|at| at.elapsed() >= REPORT_EVERY) {
            tracing::warn!(
                max = self.max,
                closed = r.1,
                "connection limit reached: closing new connections (raise WALGATE_MAX_CONNECTIONS and LimitNOFILE if these are real clients)"
            );
            *r = (Some(Instant::now()), 0);
        }
    }
}

impl<S> Accept<TcpStream, S> for Capped {
    type Stream = Held;
    type Service = S;
    type Future = std::future::Ready<io::Result<(Held, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        std::future::ready(match self.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                // Without it, the last small piece of each answer waits for the client's
                // delayed ACK (Nagle): up to 40 ms per request, which a restore_command
                // that fetches one segment per process pays on every segment.
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "TCP_NODELAY not set");
                }
                Ok((
                    Held {
                        stream,
                        _permit: permit,
                    },
                    service,
                ))
            }
            Err(_) => {
                self.refused();
                Err(io::Error::other("connection limit reached"))
            }
        })
    }
}

/// A connection counted against the cap until it closes.
pub struct Held {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Held {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Held {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Logs a failed accept (out of descriptors, say), at most every [`REPORT_EVERY`]: the
/// server retries, and a silent failure looked like a hung gateway.
pub fn accept_failed(last: &Mutex<Option<Instant>>, error: &io::Error) {
    let mut last = last.lock().expect("accept error report");
    if last.is_none_or(|at| at.elapsed() >= REPORT_EVERY) {
        tracing::error!(%error, "accepting a connection failed (out of file descriptors? see LimitNOFILE)");
        *last = Some(Instant::now());
    }
}
