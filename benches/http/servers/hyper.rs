//! `hyper`: hyper 1's HTTP/1 server on tokio, current-thread or multi-thread with 2 workers.

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::std_listener;
use crate::server::response::Status;
use crate::server::routes::{Body, Route};

/// One route's answer; hyper writes `Date` itself (cached, as the others do).
async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let reply = Route::of(target).run();
    let status = if reply.status == Status::Ok { StatusCode::OK } else { StatusCode::NOT_FOUND };
    let body = match reply.body {
        Body::Static(bytes) => Bytes::from_static(bytes),
        Body::Text(text) => Bytes::from(text),
    };
    let response = Response::builder()
        .status(status)
        .header("Server", "hyper")
        .header("Content-Type", "text/plain")
        .body(Full::new(body))
        .expect("a valid response");
    Ok(response)
}

pub fn serve_current_thread() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build();
    serve(runtime.expect("tokio runtime"))
}

pub fn serve_multi_thread() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_io().build();
    serve(runtime.expect("tokio runtime"))
}

fn serve(runtime: tokio::runtime::Runtime) {
    let std = std_listener();
    std.set_nonblocking(true).expect("nonblocking");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(std).expect("tokio listener");
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .pipeline_flush(true)
                    .serve_connection(TokioIo::new(stream), service_fn(answer))
                    .await;
            });
        }
    });
}
