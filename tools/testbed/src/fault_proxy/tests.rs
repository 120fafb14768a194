//! The proxy against an echo server: modes, cuts, canned answers and crash plans.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::crash::describe;
use super::*;

async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    address
}

async fn round_trip(stream: &mut TcpStream, text: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(text).await?;
    let mut buf = vec![0u8; text.len()];
    tokio::time::timeout(Duration::from_millis(500), stream.read_exact(&mut buf))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    Ok(buf)
}

#[tokio::test]
async fn passes_black_holes_cuts_and_goes_down() {
    let proxy = FaultProxy::start("echo", echo_server().await)
        .await
        .unwrap();
    let mut stream = TcpStream::connect(proxy.address()).await.unwrap();
    assert_eq!(round_trip(&mut stream, b"ping").await.unwrap(), b"ping");

    proxy.set_mode(Mode::BlackHole);
    let error = round_trip(&mut stream, b"lost").await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);

    proxy.set_mode(Mode::Pass);
    proxy.cut();
    let mut buf = [0u8; 8];
    let read = stream.read(&mut buf).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    let mut fresh = TcpStream::connect(proxy.address()).await.unwrap();
    assert_eq!(round_trip(&mut fresh, b"again").await.unwrap(), b"again");
    proxy.cut_after(1);
    assert!(round_trip(&mut fresh, b"cut").await.is_err());

    proxy.set_mode(Mode::Down);
    let mut refused = TcpStream::connect(proxy.address()).await.unwrap();
    assert!(round_trip(&mut refused, b"down").await.is_err());
    assert_eq!(proxy.connections(), 3);
}

#[tokio::test]
async fn a_crash_plan_counts_calls_across_proxies() {
    let upstream = echo_server().await;
    let (a, b) = (
        FaultProxy::start("a", upstream).await.unwrap(),
        FaultProxy::start("b", upstream).await.unwrap(),
    );
    let plan = CrashPlan::new(3, When::After);
    a.set_plan(Some(plan.clone()));
    b.set_plan(Some(plan.clone()));
    let mut first = TcpStream::connect(a.address()).await.unwrap();
    let mut second = TcpStream::connect(b.address()).await.unwrap();
    round_trip(&mut first, b"1").await.unwrap();
    round_trip(&mut second, b"2").await.unwrap();
    assert_eq!(plan.fired(), None);
    // The third call reaches the server; its answer never comes back.
    assert!(round_trip(&mut first, b"3").await.is_err());
    assert_eq!(plan.fired().as_deref(), Some("after call 3: a 1 bytes"));
    assert_eq!(plan.calls(), 3);
}

#[tokio::test]
async fn answers_in_place_of_the_upstream() {
    let proxy = FaultProxy::start("echo", echo_server().await)
        .await
        .unwrap();
    proxy.answer_next(2, b"busy");
    for _ in 0..2 {
        let mut stream = TcpStream::connect(proxy.address()).await.unwrap();
        assert_eq!(round_trip(&mut stream, b"ping").await.unwrap(), b"busy");
    }
    let mut stream = TcpStream::connect(proxy.address()).await.unwrap();
    assert_eq!(round_trip(&mut stream, b"ping").await.unwrap(), b"ping");
}

#[test]
fn names_secrets_manager_operations() {
    let request =
        b"POST / HTTP/1.1\r\nhost: x\r\nX-Amz-Target: secretsmanager.PutSecretValue\r\n\r\n{}";
    assert_eq!(describe(request), "PutSecretValue");
    assert_eq!(describe(&[0x17, 3, 3, 0, 1]), "5 bytes");
}
