//! Slow clients (slowloris): a connection that dribbles its request headers, or sends nothing,
//! is closed after `header_read_timeout`; a `/kojihub` body (XML-RPC or `rawUpload`) that stops
//! arriving for `body_idle_timeout` is answered and closed; a body that keeps arriving slowly is
//! not cut; other clients are served all along. The hub runs with 2-second limits.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Hub, call_xml, fault_code};

const LIMITS: &str = "header_read_timeout = 2\nbody_idle_timeout = 2\n";

fn connect(hub: &Hub) -> TcpStream {
    let s = TcpStream::connect(hub.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    s
}

/// Whether the hub closed the connection (EOF or reset), reading whatever it sent first.
fn closed(s: &mut TcpStream, seen: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(n) => {
            seen.extend_from_slice(&buf[..n]);
            false
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
        Err(_) => true,
    }
}

/// Sends `bytes` one at a time every `every` until the hub closes the connection or `give_up`
/// passes; returns how long the connection lived and what the hub sent.
fn dribble(
    s: &mut TcpStream,
    bytes: &[u8],
    every: Duration,
    give_up: Duration,
) -> (Duration, Vec<u8>) {
    let start = Instant::now();
    let mut seen = Vec::new();
    let mut i = 0;
    let mut next = Instant::now();
    while start.elapsed() < give_up {
        if Instant::now() >= next && i < bytes.len() {
            if s.write_all(&bytes[i..i + 1]).is_err() {
                return (start.elapsed(), seen);
            }
            i += 1;
            next += every;
        }
        if closed(s, &mut seen) {
            return (start.elapsed(), seen);
        }
    }
    panic!(
        "the hub kept the connection open for {give_up:?}; it sent {:?}",
        String::from_utf8_lossy(&seen)
    );
}

/// The hub answers a normal call quickly (each call under a second).
fn assert_responsive(hub: &Hub) {
    for _ in 0..3 {
        let t = Instant::now();
        let (status, _, body) = hub.raw_call(&call_xml("getAPIVersion", &[]));
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("<int>1</int>"), "{body}");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "slow answer: {:?}",
            t.elapsed()
        );
    }
}

#[test]
fn dribbled_headers_and_silent_connections_are_closed() {
    let Some(hub) = Hub::start_with_config(LIMITS) else {
        return;
    };
    // Ten clients dribbling header bytes every 300 ms, plus ten that send nothing at all.
    let mut dribblers = Vec::new();
    for _ in 0..10 {
        let mut s = connect(&hub);
        dribblers.push(std::thread::spawn(move || {
            let head = b"POST /kojihub HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
            dribble(&mut s, head, Duration::from_millis(300), Duration::from_secs(10))
        }));
    }
    let mut silent = Vec::new();
    for _ in 0..10 {
        let mut s = connect(&hub);
        silent.push(std::thread::spawn(move || {
            dribble(&mut s, b"", Duration::from_secs(1), Duration::from_secs(10))
        }));
    }
    // Meanwhile other clients are served.
    std::thread::sleep(Duration::from_millis(500));
    assert_responsive(&hub);
    for t in dribblers.into_iter().chain(silent) {
        let (lived, _) = t.join().expect("client thread");
        eprintln!("slow connection closed after {lived:?}");
        assert!(
            lived >= Duration::from_millis(1500) && lived < Duration::from_secs(5),
            "closed after {lived:?}; want about 2 s"
        );
    }
    assert_responsive(&hub);
}

#[test]
fn stalled_bodies_are_answered_and_closed_but_slow_ones_finish() {
    let Some(hub) = Hub::start_with_config(LIMITS) else {
        return;
    };
    let body = call_xml("echo", &["<string>hello</string>"]);

    // An XML-RPC body that stops after 10 bytes: 408 and the connection closes.
    let mut s = connect(&hub);
    let head = format!(
        "POST /kojihub HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("send head");
    s.write_all(&body.as_bytes()[..10]).expect("send some body");
    let (lived, seen) = dribble(&mut s, b"", Duration::from_secs(1), Duration::from_secs(10));
    let seen = String::from_utf8_lossy(&seen);
    eprintln!("stalled XML-RPC body: closed after {lived:?}: {seen}");
    assert!(seen.starts_with("HTTP/1.1 408"), "{seen}");
    assert!(
        lived >= Duration::from_millis(1500) && lived < Duration::from_secs(5),
        "{lived:?}"
    );

    // A rawUpload body that stalls: answered with an error and closed, nothing half-written
    // is reported as done.
    let (id, key) = hub.raw_login(common::ADMIN, hub.admin_password());
    let mut s = connect(&hub);
    let head = format!(
        "POST /kojihub?filename=slow.bin&filepath=slow-upload&fileverify=adler32&offset=0 HTTP/1.1\r\n\
         Host: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\
         Koji-Session-Id: {id}\r\nKoji-Session-Key: {key}\r\nKoji-Session-Callnum: 0\r\n\r\n"
    );
    s.write_all(head.as_bytes()).expect("send head");
    s.write_all(&[7u8; 100]).expect("send some body");
    let (lived, seen) = dribble(&mut s, b"", Duration::from_secs(1), Duration::from_secs(10));
    let seen = String::from_utf8_lossy(&seen);
    eprintln!("stalled upload: closed after {lived:?}: {seen}");
    assert!(seen.starts_with("HTTP/1.1 4"), "{seen}");
    assert!(seen.contains("no request data for"), "{seen}");
    assert!(
        lived >= Duration::from_millis(1500) && lived < Duration::from_secs(5),
        "{lived:?}"
    );

    // A body sent slowly but steadily (a byte every 250 ms, about 10 s in all, five times the
    // idle limit) is read to the end and answered.
    let small = call_xml("echo", &["<int>42</int>"]);
    let mut s = connect(&hub);
    let head = format!(
        "POST /kojihub HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
        small.len()
    );
    s.write_all(head.as_bytes()).expect("send head");
    let start = Instant::now();
    let bytes = small.as_bytes();
    let every = Duration::from_secs(10) / bytes.len() as u32;
    for b in bytes {
        s.write_all(std::slice::from_ref(b)).expect("send byte");
        std::thread::sleep(every);
    }
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut resp = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&resp).contains("</methodResponse>") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => resp.extend_from_slice(&buf[..n]),
        }
    }
    let resp = String::from_utf8_lossy(&resp);
    eprintln!("slow steady body took {:?}", start.elapsed());
    assert!(start.elapsed() > Duration::from_secs(4));
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("<int>42</int>"), "{resp}");
    assert!(fault_code(&resp).is_none(), "{resp}");
    assert_responsive(&hub);
}
