//! hyper 1.x's I/O traits over a glommio `TcpStream` (futures-io), so hyper's HTTP/1 server
//! runs on the shard's own executor: no second runtime. hyper-util ships this adapter only for
//! tokio; the glommio one is these few lines.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;

/// Bytes read from the socket per `poll_read` at most.
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// A glommio TCP stream as a hyper `rt::Read + rt::Write`.
pub struct GlommioIo {
    stream: TcpStream,
    /// Reads land here first: hyper hands out uninitialised memory and we keep `unsafe` out.
    scratch: Box<[u8; READ_BUFFER_BYTES]>,
}

impl GlommioIo {
    /// Wraps an accepted connection.
    pub fn new(stream: TcpStream) -> GlommioIo {
        GlommioIo {
            stream,
            scratch: Box::new([0; READ_BUFFER_BYTES]),
        }
    }
}

impl hyper::rt::Read for GlommioIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let want = buf.remaining().min(READ_BUFFER_BYTES);
        match Pin::new(&mut this.stream).poll_read(cx, &mut this.scratch[..want]) {
            Poll::Ready(Ok(n)) => {
                buf.put_slice(&this.scratch[..n]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl hyper::rt::Write for GlommioIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_close(cx)
    }
}
