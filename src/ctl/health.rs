//! `jhf-warp healthcheck`: probes `/ready` without an HTTP client in the image.

use std::process::ExitCode;
use std::time::Duration;

/// `jhf-warp healthcheck`: exit 0 when `/ready` answers 200 (for container HEALTHCHECKs,
/// without curl in the image).
pub async fn healthcheck(url: &str, timeout: Duration) -> ExitCode {
    match probe(url, timeout).await {
        Ok(200) => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("{url}: HTTP {status}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("{url}: {error}");
            ExitCode::FAILURE
        }
    }
}

/// A minimal HTTP/1.1 GET over plain TCP (the probe talks to its own loopback port).
async fn probe(url: &str, timeout: Duration) -> Result<u16, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs are probed")?;
    let (authority, path) =
        rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, "/".to_owned()));
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(authority).await.map_err(|e| e.to_string())?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut head = vec![0u8; 64];
        let read = stream.read(&mut head).await.map_err(|e| e.to_string())?;
        let line = String::from_utf8_lossy(&head[..read]).into_owned();
        line.split_whitespace()
            .nth(1)
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| format!("not an HTTP answer: {line:?}"))
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| "timed out".to_owned())?
}
