//! `spindle`: the example's server itself (`examples/http_server/server`), on one runtime.

use spindle::net::TcpListener;

use super::announce;
use crate::server::{self, stop, Config};

pub fn serve() {
    let stop = stop::on_signals(1).expect("install the stop signal handler").remove(0);
    spindle::run(move || {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        announce(listener.local_addr().expect("local_addr"));
        server::serve(listener, Config::default(), stop)
    })
    .expect("serve");
}
