//! End-to-end tests over real HTTP against a server on port 0.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::os::unix::fs::PermissionsExt;

use tenantry::settings::StoreSettings;
use tenantry::{Application, Settings};

fn settings(dir: &std::path::Path) -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: StoreSettings { data_dir: dir.join("data"), database_url: None, master_key_file: None },
    }
}

async fn spawn(settings: &Settings) -> (u16, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let app = Application::build(settings).await.expect("builds");
    let port = app.port();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        app.run_until(async {
            let _ = rx.await;
        })
        .await
        .expect("serves");
    });
    (port, tx, handle)
}

#[tokio::test]
async fn serve_starts_on_embedded_sqlite_and_answers_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path());
    let (port, stop, handle) = spawn(&settings).await;
    let body: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "ok");
    stop.send(()).unwrap();
    handle.await.unwrap();

    // The data directory holds the database and a master key readable by its owner only.
    let key = settings.store.data_dir.join("master.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(settings.store.data_dir.join("tenantry.db").exists());

    // A restart keeps the same key.
    let first = std::fs::read_to_string(&key).unwrap();
    let (_, stop, handle) = spawn(&settings).await;
    stop.send(()).unwrap();
    handle.await.unwrap();
    assert_eq!(std::fs::read_to_string(&key).unwrap(), first);
}
