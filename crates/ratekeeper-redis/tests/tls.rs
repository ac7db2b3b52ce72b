//! `rediss://`: TLS (rustls) to a `redis-server` with a certificate from a CA made for the
//! test, trusted through `ssl_ca_certs`; without it the server's certificate is refused.

use std::process::Command;

use ratekeeper_core::{Limit, StrategyKind};
use ratekeeper_redis::RedisStorage;
use ratekeeper_storage::{Charge, Key, Storage};
use ratekeeper_test_support::redis::{RedisServer, free_port};

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn rediss_with_a_private_ca() {
    let dir = std::env::temp_dir().join(format!("ratelimit-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let subj = |cn: &str| format!("/CN={cn}");
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            &subj("ratekeeper test CA"),
        ],
    );
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            &subj("localhost"),
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    let tls_port = free_port().to_string();
    let path = |f: &str| dir.join(f).display().to_string();
    let server = RedisServer::start_with(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &path("server.pem"),
        "--tls-key-file",
        &path("server.key"),
        "--tls-ca-cert-file",
        &path("ca.pem"),
        "--tls-auth-clients",
        "no",
    ]);
    let limit: Limit = "2 per minute".parse().unwrap();
    let batch = [Charge::new(
        Key::new("ip", "1"),
        limit,
        StrategyKind::Gcra,
        1,
    )];
    let url = format!(
        "rediss://127.0.0.1:{tls_port}?ssl_ca_certs={}",
        path("ca.pem")
    );
    let store = RedisStorage::from_uri(&url).unwrap();
    smol::block_on(async {
        assert!(store.hit(&batch).await.unwrap().allowed);
        assert!(store.hit(&batch).await.unwrap().allowed);
        assert!(!store.hit(&batch).await.unwrap().allowed);
    });
    // The counter is on the server behind the TLS port.
    assert_eq!(
        server
            .cli(&["--scan", "--pattern", "ratelimit:*"])
            .lines()
            .count(),
        1
    );
    // The system roots do not know this CA: the connection is refused, as an error.
    let untrusted = RedisStorage::from_uri(&format!("rediss://127.0.0.1:{tls_port}")).unwrap();
    let err = smol::block_on(untrusted.hit(&batch)).unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    // Refused for the certificate, not for some other reason (a closed port would pass the
    // check above too).
    let text = err.to_string().to_lowercase();
    assert!(text.contains("invalid peer certificate"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
