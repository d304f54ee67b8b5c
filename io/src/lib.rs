//! spindle's sockets: TCP, UDP and Unix sockets that park the calling coroutine, not the
//! thread, when an operation would block.
