//! `spindle`: the example's server itself (`examples/http_server/server`), on one runtime
//! (`spindle`) or one per core with two shards (`spindle2`, as `http_server --shards 2`).

use spindle::net::TcpListener;

use super::announce;
use crate::server::{self, shards, stop, Config};

pub fn serve() {
    let stop = stop::on_signals(1).expect("install the stop signal handler").remove(0);
    spindle::run(move || {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        announce(listener.local_addr().expect("local_addr"));
        server::serve(listener, Config::default(), stop)
    })
    .expect("serve");
}

pub fn serve_2_shards() {
    let stops = stop::on_signals(2).expect("install the stop signal handler");
    shards::run("127.0.0.1:0", &Config::default(), stops, announce).expect("serve");
}
