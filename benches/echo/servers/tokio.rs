//! `tokio`: tokio's current-thread runtime, one task per connection.

use super::std_listener;

pub fn serve() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_io().build().expect("tokio runtime");
    let std = std_listener();
    std.set_nonblocking(true).expect("nonblocking");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(std).expect("tokio listener");
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let _ = conn.set_nodelay(true);
                let mut buf = [0u8; 4096];
                loop {
                    let n = match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if conn.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}
