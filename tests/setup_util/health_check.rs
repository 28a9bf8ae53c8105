//! A health-check service on loopback, in the part healthchecks.io plays
//! in the README: it answers every HTTP request with 200 and records its
//! method, path and body, so a test sees what a hook's `curl` sent.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One request received.
#[derive(Debug, Clone)]
pub struct Ping {
    pub method: String,
    pub path: String,
    pub body: String,
}

/// The listener; it stops when dropped.
pub struct HealthCheck {
    port: u16,
    pings: Arc<Mutex<Vec<Ping>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HealthCheck {
    pub fn start() -> HealthCheck {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let pings = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (pings, stop) = (pings.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            if let Some(ping) = answer(stream) {
                                pings.lock().unwrap().push(ping);
                            }
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        };
        HealthCheck {
            port,
            pings,
            stop,
            thread: Some(thread),
        }
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The requests so far, oldest first.
    pub fn pings(&self) -> Vec<Ping> {
        self.pings.lock().unwrap().clone()
    }
}

impl Drop for HealthCheck {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request (its head, then a body of Content-Length bytes,
/// after a `100 Continue` when curl waits for one) and answers 200.
fn answer(stream: TcpStream) -> Option<Ping> {
    stream.set_nonblocking(false).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut words = request_line.split_whitespace();
    let (method, path) = (words.next()?.to_string(), words.next()?.to_string());
    let (mut length, mut expects_continue) = (0, false);
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "expect" => expects_continue = value.trim().eq_ignore_ascii_case("100-continue"),
            _ => {}
        }
    }
    if expects_continue {
        reader
            .get_mut()
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .ok()?;
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    reader
        .get_mut()
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK")
        .ok()?;
    Some(Ping {
        method,
        path,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
