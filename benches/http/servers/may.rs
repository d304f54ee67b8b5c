//! `may_minihttp`: the `may` crate's HTTP server, stackful coroutines on 1 or 2 worker threads.

use std::io;

use may_minihttp::{HttpServer, HttpService, Request, Response};

use super::announce;
use crate::server::routes::{Body, Route};

/// Answers as the others do; may_minihttp writes `Server` and `Date` itself.
#[derive(Clone)]
struct Bench;

impl HttpService for Bench {
    fn call(&mut self, req: Request, rsp: &mut Response) -> io::Result<()> {
        let reply = Route::of(req.path()).run();
        rsp.header("Content-Type: text/plain");
        if reply.status != crate::server::response::Status::Ok {
            rsp.status_code(404, "Not Found");
        }
        match reply.body {
            Body::Static(bytes) => rsp.body_vec(bytes.to_vec()),
            Body::Text(text) => rsp.body_vec(text.into_bytes()),
        }
        Ok(())
    }
}

pub fn serve_1() {
    serve(1)
}

pub fn serve_2() {
    serve(2)
}

fn serve(workers: usize) {
    may::config().set_workers(workers);
    // may_minihttp binds by address and does not say which port it got: take a free one.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr());
    let addr = addr.expect("a free port");
    let server = HttpServer(Bench).start(addr).expect("start may_minihttp");
    announce(addr);
    let _ = server.join();
}
