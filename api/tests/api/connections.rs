//! The server's bounds on clients: slow headers, idle connections and slow bodies are cut
//! off, and connections past the cap wait instead of being served. These bounds live in the
//! HTTP layer, before any store is touched, so SQLite alone runs them.

use std::time::Duration;

use tenantry::settings::ConnectionSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::Api;
use crate::support::BOOTSTRAP;

async fn server(connections: ConnectionSettings) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = crate::support::server_settings(dir.path(), None, None);
    settings.connections = connections;
    Api::serve(&settings, dir).await
}

fn address(api: &Api) -> String {
    api.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (within `within`); answers what it sent.
async fn until_closed(tcp: &mut TcpStream, within: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read).await.ok().map(|()| String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_headers_idle_connections_and_slow_bodies_are_cut_off() {
    // A long idle timeout, so only the header and body timeouts can close these.
    let api = server(ConnectionSettings {
        header_read_timeout: 1,
        idle_timeout: 600,
        body_read_timeout: 1,
        max_connections: 100,
    })
    .await;
    // Headers that never end, a byte at a time: closed, though bytes keep coming.
    let mut slow = TcpStream::connect(address(&api)).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let dripping = async {
        for _ in 0..100 {
            if slow.write_all(b"X").await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(20), dripping).await.unwrap_or(false),
        "slow headers are cut off"
    );

    // A body that never completes: 408, as a problem.
    let mut body = TcpStream::connect(address(&api)).await.unwrap();
    let head = format!(
        "POST /v1/tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {BOOTSTRAP}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"slug\""
    );
    body.write_all(head.as_bytes()).await.unwrap();
    let answer =
        until_closed(&mut body, Duration::from_secs(20)).await.expect("the server answers and closes");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");

    // A connection that sends nothing stays open under a long idle timeout...
    let mut quiet = TcpStream::connect(address(&api)).await.unwrap();
    assert_eq!(until_closed(&mut quiet, Duration::from_secs(2)).await, None);
    // ...and is closed under a short one.
    let short = server(ConnectionSettings { idle_timeout: 1, ..ConnectionSettings::default() }).await;
    let mut idle = TcpStream::connect(address(&short)).await.unwrap();
    assert!(until_closed(&mut idle, Duration::from_secs(20)).await.is_some(), "an idle connection is closed");
    // So is a kept-alive connection that sends no second request.
    let mut kept = TcpStream::connect(address(&short)).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let answer = until_closed(&mut kept, Duration::from_secs(20)).await.expect("closed after its idle time");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_past_the_cap_wait_for_a_slot() {
    let api = server(ConnectionSettings { max_connections: 2, ..ConnectionSettings::default() }).await;
    let held: Vec<TcpStream> = futures::future::join_all((0..2).map(|_| TcpStream::connect(address(&api))))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let client = reqwest::Client::builder().timeout(Duration::from_millis(1500)).build().unwrap();
    let url = format!("{}/healthz", api.base);
    assert!(client.get(&url).send().await.is_err(), "a third connection is not served while two are held");
    drop(held);
    let res = reqwest::Client::new().get(&url).send().await.unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::OK, "served once a slot is free");
}
