//! Closing the public listener of a process that stops without resetting a connection nginx has
//! already written a request on.
//!
//! Closing (or shutting down) a listening socket resets every connection in its accept queue:
//! the kernel completed their handshakes, so nginx took them as connected and sent its request,
//! and a reset after that is a `502` for a POST, which nginx never sends twice. Pausing the
//! accept loop first only makes it worse: the queue fills while nobody takes from it. So the
//! listener first stops *completing* handshakes, by a socket filter that drops new connection
//! requests (a SYN without ACK), while the accept loop goes on taking what is queued; once the
//! queue is empty it can close without resetting anything. A dropped SYN is sent again by the
//! client's kernel after a second, finds the port closed and is refused, and nginx passes a
//! refused connection's request to another process, POST or not.

use std::net::TcpListener;
use std::time::{Duration, Instant};

/// From when the filter is attached, how long handshakes already under way get to complete
/// and be queued: a round trip, microseconds on one host and well under a millisecond across a
/// rack. Kept short because a connection nginx opens to this process meanwhile waits for its
/// SYN to be sent again (a second) before it is refused and passed on. A handshake slower than
/// this (nginx far away, a lost packet) can still be reset when the listener closes. Watching
/// the handshakes themselves through `/proc/net/tcp` was tried: under a flood that file held
/// 8,000–13,000 closed connections, and reading it stretched this wait to 90–130 ms, so that
/// ten times more requests waited a second.
const SETTLE: Duration = Duration::from_millis(1);

/// How often the accept queue is looked at while it empties.
const POLL: Duration = Duration::from_millis(1);

/// Makes `listener` drop new connection requests from now on; the connections it has queued,
/// and the handshakes under way, are unaffected. Linux only (elsewhere: `Unsupported`).
pub fn refuse_new_connections(listener: &TcpListener) -> std::io::Result<()> {
    refuse(listener)
}

/// Waits until `listener`'s accept queue has been taken by the accept loop: at least
/// [`SETTLE`], at most `limit`. Returns whether it emptied (where the queue cannot be read, it
/// is taken as emptied after `SETTLE`).
pub async fn wait_until_accepted(listener: &TcpListener, limit: Duration) -> bool {
    let started = Instant::now();
    tokio::time::sleep(SETTLE).await;
    loop {
        match queued(listener) {
            Some(0) | None => return true,
            Some(_) if started.elapsed() >= limit => return false,
            Some(_) => tokio::time::sleep(POLL).await,
        }
    }
}

#[cfg(target_os = "linux")]
fn refuse(listener: &TcpListener) -> std::io::Result<()> {
    use socket2::SockFilter;
    // Classic BPF over the TCP header: flags byte at 13; a SYN without ACK is dropped (0 bytes
    // kept), anything else kept whole.
    const SYN: u32 = 0x02;
    const ACK: u32 = 0x10;
    let code = |c: u32| c as u16;
    let program = [
        SockFilter::new(code(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS), 0, 0, 13),
        SockFilter::new(
            code(libc::BPF_ALU | libc::BPF_AND | libc::BPF_K),
            0,
            0,
            SYN | ACK,
        ),
        SockFilter::new(code(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K), 0, 1, SYN),
        SockFilter::new(code(libc::BPF_RET | libc::BPF_K), 0, 0, 0),
        SockFilter::new(code(libc::BPF_RET | libc::BPF_K), 0, 0, u32::MAX),
    ];
    socket2::SockRef::from(listener).attach_filter(&program)
}

#[cfg(not(target_os = "linux"))]
fn refuse(_: &TcpListener) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// The connections waiting in `listener`'s accept queue (Linux reports it as a listening
/// socket's `tcpi_unacked`), or `None` where that cannot be read.
#[cfg(target_os = "linux")]
fn queued(listener: &TcpListener) -> Option<u32> {
    use std::os::fd::AsRawFd;
    // SAFETY: `info` is a plain C struct that getsockopt fills up to `len` bytes, and `len`
    // is its size; the descriptor is valid for as long as `listener` is borrowed.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(info.tcpi_unacked)
}

#[cfg(not(target_os = "linux"))]
fn queued(_: &TcpListener) -> Option<u32> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::net::TcpStream;

    /// A connection the kernel completed before the filter is still queued and accepted after
    /// it; a new one cannot complete while the filter is on.
    #[tokio::test]
    async fn a_filtered_listener_keeps_its_queue_and_completes_no_new_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let before = TcpStream::connect(addr).unwrap();
        let connected = Instant::now();
        while queued(&listener) != Some(1) {
            assert!(connected.elapsed() < Duration::from_secs(1), "never queued");
            std::thread::sleep(Duration::from_millis(1));
        }

        refuse_new_connections(&listener).unwrap();
        let after = TcpStream::connect_timeout(&addr, Duration::from_millis(300));
        assert!(after.is_err(), "a connection completed through the filter");
        assert_eq!(queued(&listener), Some(1), "the queue is kept");
        assert!(!wait_until_accepted(&listener, Duration::from_millis(100)).await);

        let (accepted, _) = listener.accept().unwrap();
        assert_eq!(accepted.peer_addr().unwrap(), before.local_addr().unwrap());
        assert!(wait_until_accepted(&listener, Duration::from_millis(100)).await);
    }
}
