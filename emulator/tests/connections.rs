//! Persistent connections: the emulator serves request after request on a connection the
//! client keeps (HTTP/1.1 without `Connection: close`, HTTP/1.0 with `keep-alive`), as IIS
//! does, and closes it when the client says so.

use std::net::SocketAddr;
use std::time::SystemTime;

use chrono::Utc;
use cmmp_emulator::{Emulator, Site, SiteConfig};
use cmmp_transport::cert::generate_mixed_mode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "shared/helpers.rs"]
mod shared;
use shared::response;

async fn emulator() -> Emulator {
    let site = Site::in_memory(SiteConfig::default(), Utc::now()).unwrap();
    let identity = generate_mixed_mode("MP01", SystemTime::now()).unwrap();
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    Emulator::start(listen, site, identity).await.unwrap()
}

fn get(version: &str, connection: Option<&str>) -> String {
    let connection = connection.map(|c| format!("Connection: {c}\r\n")).unwrap_or_default();
    format!("GET /SMS_MP/.sms_aut?MPLIST {version}\r\nHost: mp\r\n{connection}\r\n")
}

async fn closed(stream: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    rest.is_empty()
}

#[tokio::test]
async fn an_http11_connection_serves_requests_until_the_client_closes_it() {
    let mp = emulator().await;
    let mut stream = TcpStream::connect(mp.addr()).await.unwrap();
    for _ in 0..3 {
        stream.write_all(get("HTTP/1.1", None).as_bytes()).await.unwrap();
        let head = response(&mut stream).await;
        assert!(
            head.starts_with("HTTP/1.1 200") && head.contains("Connection: keep-alive"),
            "{head}"
        );
    }
    // Two requests written at once (pipelined) are both answered, in order.
    let two = format!("{}{}", get("HTTP/1.1", None), get("HTTP/1.1", Some("close")));
    stream.write_all(two.as_bytes()).await.unwrap();
    assert!(response(&mut stream).await.contains("Connection: keep-alive"));
    assert!(response(&mut stream).await.contains("Connection: close"));
    assert!(closed(&mut stream).await);
}

#[tokio::test]
async fn http10_closes_unless_the_client_asks_to_keep_it() {
    let mp = emulator().await;
    let mut stream = TcpStream::connect(mp.addr()).await.unwrap();
    stream.write_all(get("HTTP/1.0", Some("keep-alive")).as_bytes()).await.unwrap();
    assert!(response(&mut stream).await.contains("Connection: keep-alive"));
    stream.write_all(get("HTTP/1.0", None).as_bytes()).await.unwrap();
    assert!(response(&mut stream).await.contains("Connection: close"));
    assert!(closed(&mut stream).await);
}

#[tokio::test]
async fn a_kept_alive_client_is_answered_on_the_connections_it_keeps() {
    use cmmp_model::MessageExt;
    use cmmp_model::kinds::SiteInformation;
    use cmmp_transport::client::{Client, ClientConfig};
    use cmmp_transport::msg::HostName;
    use cmmp_transport::wire::Settings;
    let mp = emulator().await;
    let host = |n: &str| HostName::new(n).unwrap();
    let mut config = ClientConfig::new(Settings::new(host("127.0.0.1"), host("WS01")));
    config.port = Some(mp.addr().port());
    config.keep_alive = true;
    let client = Client::new(config).unwrap();
    let request = cmmp_model::location::SiteInformationRequest::from_xml(
        r#"<SiteInformationRequest SchemaVersion="1.00"><SiteCode Name="P01"/></SiteInformationRequest>"#,
    )
    .unwrap();
    for _ in 0..20 {
        let reply = client.invoke(&SiteInformation(request.clone()), vec![], None).await.unwrap();
        assert!(reply.reply.site.is_some());
    }
}
