//! The transport as the kernel sees it: socket options of the server's accepted connections.

use jhf_warp::pb::v1 as pb;

use crate::helpers::spawn_app;

/// Returns `TCP_NODELAY` of every server-side socket of `port` in this process (the test
/// server runs in-process, so its accepted connections are among our descriptors).
#[cfg(target_os = "linux")]
fn server_side_nodelay(port: u16) -> Vec<bool> {
    use std::os::fd::{BorrowedFd, RawFd};
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<RawFd>() else { continue };
        // SAFETY: the descriptor is only borrowed for a few getsockopt/getsockname calls while
        // the server holds the connection open; a descriptor closed meanwhile only makes those
        // calls fail, which skips it.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&borrowed);
        let (Ok(local), Ok(peer)) = (socket.local_addr(), socket.peer_addr()) else { continue };
        let (Some(local), Some(_)) = (local.as_socket(), peer.as_socket()) else { continue };
        if local.port() == port
            && let Ok(nodelay) = socket.tcp_nodelay()
        {
            found.push(nodelay);
        }
    }
    found
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn accepted_connections_have_tcp_nodelay_so_responses_never_wait_for_delayed_acks() {
    let app = spawn_app().await;
    let mut meta = app.meta().await;
    meta.get_version(pb::GetVersionRequest {}).await.unwrap();
    let options = server_side_nodelay(app.addr.port());
    assert!(!options.is_empty(), "no accepted connection found");
    assert!(options.iter().all(|nodelay| *nodelay), "TCP_NODELAY per accepted connection: {options:?}");
    app.stop().await;
}
