//! [`BlockingEndpoint`]: a local HTTP/1.1 endpoint on plain threads (no async runtime) that
//! records the head of every request and answers each with a fixed status and no body. For
//! tests that stand a cloud API in for a child process or an SDK client: nothing leaves the
//! machine, and a test can say which endpoint a request went to.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// A local HTTP/1.1 endpoint that records the head of every request and answers each with a
/// fixed status and no body. Its threads live as long as the test process.
#[derive(Debug)]
pub struct BlockingEndpoint {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl BlockingEndpoint {
    /// Listens on 127.0.0.1 at a free port and answers every request with `status`, such as
    /// `"400 Bad Request"` (which AWS SDKs do not retry) or `"503 Service Unavailable"`.
    pub fn start(status: &'static str) -> BlockingEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free local port");
        let url = format!(
            "http://{}",
            listener.local_addr().expect("a bound listener's address")
        );
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    while let Some(head) = read_request(&mut stream) {
                        log.lock().unwrap_or_else(|e| e.into_inner()).push(head);
                        let reply = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                        if stream.write_all(reply.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        BlockingEndpoint { url, requests }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The heads of the requests received so far, lower-cased.
    pub fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many requests arrived so far.
    pub fn hits(&self) -> usize {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

/// Reads one HTTP/1.1 request; returns its head (lower-cased), or `None` at end of stream.
fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    Some(head)
}
