//! With an OTLP endpoint configured, spans leave the process as OTLP/HTTP protobuf posts to
//! `{endpoint}/v1/traces`. A tiny listener stands in for the collector.

use std::collections::HashMap;
use std::path::PathBuf;

use biz_core::settings::Settings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread")]
async fn spans_are_exported_over_otlp_http_when_an_endpoint_is_set() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 65536];
        let n = sock.read(&mut buf).await.unwrap();
        let head = String::from_utf8_lossy(&buf[..n]).to_string();
        let _ = sock
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
        let _ = tx.send(head);
    });

    biz_core::install_crypto_provider();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let vars = HashMap::from([
        ("BIZ_ENV".to_string(), "test".to_string()),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_string(),
            format!("http://127.0.0.1:{port}"),
        ),
    ]);
    let (settings, notes) = Settings::load_from(&dir, &vars).unwrap();
    let guard = biz_core::telemetry::init("otlp-test", &settings, &notes).unwrap();
    // An error-level span: the test profile filters below warn.
    tracing::error_span!("job.run", job.kind = "test").in_scope(|| {
        tracing::warn!("inside a span");
    });
    // Dropping the guard shuts the provider down, which flushes the batch.
    tokio::task::spawn_blocking(move || drop(guard))
        .await
        .unwrap();

    let head = tokio::time::timeout(std::time::Duration::from_secs(10), rx)
        .await
        .expect("the exporter posted within 10 s")
        .unwrap();
    assert!(head.starts_with("POST /v1/traces HTTP/1.1"), "{head}");
    assert!(
        head.to_lowercase()
            .contains("content-type: application/x-protobuf"),
        "{head}"
    );
}
