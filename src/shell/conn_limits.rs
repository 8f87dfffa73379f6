//! Limits on both HTTP listeners (`/metrics` and the probes): at most [`MAX_CONNECTIONS`] open
//! at once (one more is closed as soon as it is accepted), and a connection on which no byte is
//! read or written for [`IDLE_TIMEOUT`] is closed. The idle timeout also bounds how long a client
//! may take over its request headers between two bytes, so slow or silent clients cannot hold the
//! connections (and the memory behind them) for good.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tracing::debug;

/// Connections open at once, per listener (Prometheus holds one or two).
pub const MAX_CONNECTIONS: usize = 64;
/// No byte either way for this long closes the connection.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// How many connections a listener holds and how long they may stay silent.
#[derive(Clone, Debug)]
pub struct Limits {
    permits: Arc<Semaphore>,
    idle: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(MAX_CONNECTIONS, IDLE_TIMEOUT)
    }
}

impl Limits {
    pub fn new(connections: usize, idle: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(connections)),
            idle,
        }
    }

    /// The connection under the limits, or `None` (it is dropped: closed) when all are taken.
    pub fn admit<IO>(&self, io: IO) -> Option<Guarded<IO>> {
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        Some(Guarded {
            io,
            idle: self.idle,
            deadline: Box::pin(tokio::time::sleep(self.idle)),
            _permit: permit,
        })
    }
}

/// A connection that holds one of its listener's places and closes itself when idle.
pub struct Guarded<IO> {
    io: IO,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    _permit: OwnedSemaphorePermit,
}

impl<IO> Guarded<IO> {
    /// Pending IO: an error once the deadline has passed, else pending (and woken by either).
    fn idle_or_pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle too long",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn active(&mut self) {
        let next = Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.active();
                Poll::Ready(r)
            }
            Poll::Pending => this.idle_or_pending(cx),
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Ready(r) => {
                this.active();
                Poll::Ready(r)
            }
            Poll::Pending => this.idle_or_pending(cx),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Accepts a TCP connection under `limits`, closing those beyond it; waits out accept errors
/// (out of file descriptors and the like) instead of spinning.
pub async fn accept(tcp: &TcpListener, limits: &Limits) -> (Guarded<TcpStream>, SocketAddr) {
    loop {
        match tcp.accept().await {
            Ok((stream, peer)) => match limits.admit(stream) {
                Some(guarded) => return (guarded, peer),
                None => debug!(%peer, "connection limit reached: closed"),
            },
            Err(e) => {
                debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A plain TCP listener under [`Limits`]: `axum::serve(LimitedListener::new(..), router)`.
pub struct LimitedListener {
    tcp: TcpListener,
    limits: Limits,
}

impl LimitedListener {
    pub fn new(tcp: TcpListener, limits: Limits) -> Self {
        Self { tcp, limits }
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = Guarded<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        accept(&self.tcp, &self.limits).await
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn connections_beyond_the_limit_are_closed_and_idle_ones_time_out() {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let mut listener = LimitedListener::new(tcp, Limits::new(1, Duration::from_millis(200)));
        let first = TcpStream::connect(addr).await.unwrap();
        let (mut held, _) = axum::serve::Listener::accept(&mut listener).await;
        // The second is accepted and closed at once: it reads end-of-stream.
        let mut second = TcpStream::connect(addr).await.unwrap();
        let accepting = tokio::spawn(async move {
            let accepted = axum::serve::Listener::accept(&mut listener).await;
            (listener, accepted)
        });
        let mut byte = [0u8; 1];
        assert_eq!(second.read(&mut byte).await.unwrap(), 0);
        // The held one, silent, times out; its place is free again.
        let started = Instant::now();
        let err = held.read(&mut byte).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(150));
        drop(held);
        drop(first);
        let mut third = TcpStream::connect(addr).await.unwrap();
        third.write_all(b"x").await.unwrap();
        let (_listener, (mut accepted, _)) = accepting.await.unwrap();
        accepted.read_exact(&mut byte).await.unwrap();
        assert_eq!(&byte, b"x");
    }
}
