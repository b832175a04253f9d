//! Notices when a client has gone while its request is still being worked on, so that
//! the work stops (see [`fhir_model::budget`]) instead of running to its deadline.
//!
//! actix-web keeps polling a request's handler after its HTTP/1 client has closed the
//! connection (actix/actix-web#1313, #3462): the handler's future is not dropped. So
//! the server keeps its own handle on each connection's socket (a duplicate of the
//! descriptor, closed with the connection), and a request that waits for blocking work
//! looks at it now and then: a socket at end of file, or reset, means the client left.
//! (A client that half-closes its side after sending a request would be taken as gone
//! too; HTTP clients do not do that. Over TLS, a closing client's `close_notify` alert
//! may sit unread in the socket and look like data: such a client is noticed only if
//! it then closes the connection, or when its request ends.)

use std::net::TcpStream;
use std::os::fd::AsFd;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

/// A connection's socket, as seen by the server apart from actix.
#[derive(Debug, Clone)]
pub struct Peer(Arc<TcpStream>);

tokio::task_local! {
    /// The connection of the request running in this task.
    static CURRENT: Option<Peer>;
}

impl Peer {
    /// A handle on the socket of a new connection (plain or TLS); `None` if it cannot
    /// be duplicated (then the request simply runs to its deadline).
    pub fn of(conn: &dyn std::any::Any) -> Option<Peer> {
        type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
        let tcp = match conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            Some(tcp) => tcp,
            None => conn.downcast_ref::<Tls>()?.get_ref().0,
        };
        let fd = tcp.as_fd().try_clone_to_owned().ok()?;
        Some(Peer(Arc::new(TcpStream::from(fd))))
    }

    /// Whether the client has closed or reset the connection. Never blocks: the
    /// socket is non-blocking (the duplicate shares tokio's setting).
    pub fn gone(&self) -> bool {
        let mut byte = [0u8; 1];
        match self.0.peek(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
            ),
        }
    }

    /// The connection of the request running in this task, if known.
    pub fn current() -> Option<Peer> {
        CURRENT.try_with(Clone::clone).ok().flatten()
    }
}

/// Middleware: makes the request's connection known to the work it starts.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let peer = req.conn_data::<Peer>().cloned();
    CURRENT.scope(peer, next.call(req)).await
}
