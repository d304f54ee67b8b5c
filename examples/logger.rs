//! A logging coroutine fed by a queue, writing to the terminal and to a file that rolls over by
//! time.
//!
//! `cargo run --example logger -- --dir /tmp/spindle-logs --roll-ms 100 --lines 40`
//!
//! Workers send lines into a channel and never wait for the disk. One logger coroutine takes
//! them in batches, prints them, and appends them to `app.<n>.log` in `--dir`, starting a new
//! file every `--roll-ms` milliseconds. File writes are blocking system calls, so the logger
//! does them through `spindle::unblock`, on the blocking pool, and the workers run meanwhile.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use spindle::sync::channel;
use spindle::time::now;

struct Args {
    dir: PathBuf,
    roll: Duration,
    lines: u32,
}

fn args() -> Args {
    let mut args = Args {
        dir: std::env::temp_dir().join("spindle-logs"),
        roll: Duration::from_millis(100),
        lines: 40,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--dir" => args.dir = value.into(),
            "--roll-ms" => args.roll = Duration::from_millis(value.parse().expect("--roll-ms")),
            "--lines" => args.lines = value.parse().expect("--lines"),
            other => panic!("unknown flag {other}; use --dir, --roll-ms, --lines"),
        }
    }
    args
}

fn main() {
    let args = args();
    std::fs::create_dir_all(&args.dir).expect("create the log directory");
    spindle::run(|| {
        let (log, lines) = channel::unbounded::<String>();

        let dir = args.dir.clone();
        let roll = args.roll;
        let logger = spindle::Builder::new()
            .name("logger")
            .spawn(move || {
                let mut file_no = 0u32;
                let mut rolls_at = now() + roll;
                let mut written = 0u32;
                // `recv` parks until a line comes; then take whatever else is already queued.
                while let Ok(first) = lines.recv() {
                    let mut batch = vec![first];
                    batch.extend(lines.try_iter());
                    if now() >= rolls_at {
                        file_no += 1;
                        rolls_at = now() + roll;
                    }
                    for line in &batch {
                        println!("{line}");
                    }
                    written += batch.len() as u32;
                    let path = dir.join(format!("app.{file_no}.log"));
                    spindle::unblock(move || {
                        let mut file = OpenOptions::new().create(true).append(true).open(path)?;
                        for line in batch {
                            writeln!(file, "{line}")?;
                        }
                        std::io::Result::Ok(())
                    })
                    .expect("write the log file");
                }
                (written, file_no + 1)
            })
            .unwrap();

        let workers: Vec<_> = (0..2)
            .map(|w| {
                let log = log.clone();
                let lines = args.lines / 2;
                spindle::spawn(move || {
                    for i in 0..lines {
                        log.send(format!("worker {w} line {i}")).unwrap();
                        spindle::sleep(Duration::from_millis(5));
                    }
                })
            })
            .collect();
        drop(log);
        workers.into_iter().for_each(|w| w.join().unwrap());
        let (written, files) = logger.join().unwrap();
        let noun = if files == 1 { "file" } else { "files" };
        println!("logged {written} lines into {files} {noun} in {}", args.dir.display());
    });
}
