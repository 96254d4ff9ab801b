//! How slowly a request body may arrive. A client that trickles a byte now and then
//! would otherwise hold what its request holds (WAL memory, a backup upload slot, a
//! connection) for as long as it likes: every body gets an idle limit and, after a grace
//! period, a least average rate, chosen by route.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http_body::Frame;
use tokio::time::{Instant, Sleep};

use super::AppState;

/// The limits one body arrives under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// The longest silence between two chunks.
    pub idle: Duration,
    /// How long the body may run before the rate counts.
    pub grace: Duration,
    /// The least average rate, in bytes per second, counted from the start: a body may
    /// fall `grace` behind it.
    pub min_rate: u64,
}

impl Pace {
    /// JSON and form bodies: a few KiB at most, sent at once by any real client.
    pub const SMALL: Pace = Pace {
        idle: Duration::from_secs(10),
        grace: Duration::from_secs(10),
        min_rate: 1024,
    };

    /// A WAL file: silent at most as long as the gateway allows, and at least 64 KiB/s
    /// (a 16 MiB segment in 4 minutes) after half that long. A push waits for WAL memory
    /// as long as a body may be silent: uploads that trickle must give theirs back
    /// sooner, so that one waiting behind them gets it in time.
    pub fn wal(idle: Duration) -> Pace {
        Pace {
            idle,
            grace: idle / 2,
            min_rate: 64 << 10,
        }
    }

    /// A base backup: pg_basebackup sends nothing while the server's checkpoint runs,
    /// spread over minutes by default, so an hour of silence; then at least 16 KiB/s on
    /// average, far below any real link or `--max-rate`.
    pub const BACKUP: Pace = Pace {
        idle: Duration::from_secs(3600),
        grace: Duration::from_secs(3600),
        min_rate: 16 << 10,
    };

    /// When a body that started at `started` and has sent `received` bytes, the last of
    /// them at `last`, is too slow.
    fn deadline(&self, started: Instant, last: Instant, received: u64) -> Instant {
        let on_schedule = Duration::from_secs(received / self.min_rate.max(1));
        // A limit too far to represent (an idle timeout of years) is no limit.
        let far = started + Duration::from_secs(100 * 365 * 86_400);
        let idle = last.checked_add(self.idle).unwrap_or(far);
        let rate = started
            .checked_add(self.grace)
            .and_then(|t| t.checked_add(on_schedule))
            .unwrap_or(far);
        idle.min(rate)
    }
}

/// A body that fails once it arrives slower than its [`Pace`], counted from when the
/// gateway first reads it (a WAL upload may wait for memory before that).
pub struct Paced<B> {
    inner: B,
    pace: Pace,
    received: u64,
    /// When reading started, and the timer for the current deadline.
    clock: Option<(Instant, Pin<Box<Sleep>>)>,
    /// When the last data arrived.
    last: Option<Instant>,
}

impl<B> Paced<B> {
    pub fn new(inner: B, pace: Pace) -> Self {
        Paced {
            inner,
            pace,
            received: 0,
            clock: None,
            last: None,
        }
    }
}

/// Why a body was given up: silent too long, or too slow on average.
#[derive(Debug, thiserror::Error)]
pub enum TooSlow {
    #[error("the client sent nothing for {} s", .0.as_secs())]
    Silent(Duration),
    #[error(
        "the request body arrived too slowly ({received} bytes in {} s; it must average at least {} bytes/s after {} s)",
        elapsed.as_secs(), pace.min_rate, pace.grace.as_secs()
    )]
    Slow {
        received: u64,
        elapsed: Duration,
        pace: Pace,
    },
}

impl<B> HttpBody for Paced<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let pace = this.pace;
        let (started, timer) = this.clock.get_or_insert_with(|| {
            let now = Instant::now();
            (
                now,
                Box::pin(tokio::time::sleep_until(pace.deadline(now, now, 0))),
            )
        });
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let now = Instant::now();
                    this.received += data.len() as u64;
                    this.last = Some(now);
                    timer
                        .as_mut()
                        .reset(pace.deadline(*started, now, this.received));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other.map(|r| r.map_err(Into::into))),
            Poll::Pending => match timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let silent = this.last.unwrap_or(*started).elapsed();
                    let why = if silent >= pace.idle {
                        TooSlow::Silent(silent)
                    } else {
                        TooSlow::Slow {
                            received: this.received,
                            elapsed: started.elapsed(),
                            pace,
                        }
                    };
                    // Kept an I/O timeout, so that uploads tell it from a cut body.
                    let err = std::io::Error::new(std::io::ErrorKind::TimedOut, why);
                    Poll::Ready(Some(Err(err.into())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The pace for a request to `route` with `method`.
fn pace_of(state: &AppState, method: &axum::http::Method, route: Option<&str>) -> Pace {
    use axum::http::Method;
    match (method, route) {
        (&Method::PUT, Some("/v1/clusters/{cluster}/wal/{file}")) => {
            Pace::wal(state.services.settings.wal_idle_timeout)
        }
        // `curl -T -` sends a PUT, walgate-client a POST: the same upload.
        (&Method::POST | &Method::PUT, Some("/v1/clusters/{cluster}/backups")) => Pace::BACKUP,
        _ => Pace::SMALL,
    }
}

/// Middleware: gives every request body the pace of its route.
pub async fn pace(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let pace = pace_of(&state, request.method(), route);
    next.run(request.map(|body| Body::new(Paced::new(body, pace))))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A body that sends `chunks`, each after waiting `every`.
    fn trickle(chunks: usize, every: Duration) -> Body {
        let stream = futures_util::stream::unfold(0, move |n| async move {
            if n == chunks {
                return None;
            }
            tokio::time::sleep(every).await;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(b"x")), n + 1))
        });
        Body::from_stream(stream)
    }

    const PACE: Pace = Pace {
        idle: Duration::from_secs(5),
        grace: Duration::from_secs(10),
        min_rate: 1,
    };

    #[tokio::test(start_paused = true)]
    async fn a_silent_body_fails_after_its_idle_limit() {
        let started = Instant::now();
        let err = Paced::new(trickle(1, Duration::from_secs(60)), PACE)
            .collect()
            .await
            .unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert_eq!(err.to_string(), "the client sent nothing for 5 s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_within_the_idle_limit_fails_once_behind_the_rate() {
        // A byte every 4 s never trips the idle limit; at 1 byte/s with 10 s of grace,
        // n bytes are due by 10 + n seconds: the third (at 12 s) leaves it due at 13 s.
        let started = Instant::now();
        let err = Paced::new(trickle(100, Duration::from_secs(4)), PACE)
            .collect()
            .await
            .unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_secs(13));
        assert!(err.to_string().contains("too slowly"), "{err}");
        // On schedule, the whole body arrives.
        let body = Paced::new(trickle(30, Duration::from_millis(900)), PACE)
            .collect()
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(body.len(), 30);
    }
}
