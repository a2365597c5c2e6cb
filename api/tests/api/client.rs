//! A client for a server started in the test, on port 0.

use reqwest::{Client, Method, StatusCode};
use serde_json::Value;
use tenantry::Application;

pub(crate) struct Api {
    pub(crate) base: String,
    pub(crate) client: Client,
    /// The server's read side (and through it, its store), for tests that go around HTTP.
    pub(crate) projections: tenantry_projections::Projections,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl Api {
    pub(crate) async fn start(database_url: Option<String>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let settings = super::support::server_settings(dir.path(), database_url, None);
        Self::serve(&settings, dir).await
    }

    /// A second server over the same store and master key, as another node would be.
    pub(crate) async fn another(&self, database_url: Option<String>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = super::support::server_settings(self._dir.path(), database_url, None);
        settings.store.master_key_file = Some(self._dir.path().join("master.key"));
        Self::serve(&settings, dir).await
    }

    pub(crate) async fn serve(settings: &tenantry::Settings, dir: tempfile::TempDir) -> Self {
        let app = Application::build(settings).await.unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        let projections = app.projections().clone();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        Self { base, client: Client::new(), projections, _stop: stop, _dir: dir }
    }

    /// The data directory of a server made by [`Api::start`].
    pub(crate) fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("data")
    }

    pub(crate) async fn call(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value, Option<u64>) {
        let mut req = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    pub(crate) async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value, Option<u64>) {
        let res = req.send().await.unwrap();
        let status = res.status();
        let position =
            res.headers().get("tenantry-position").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        let text = res.text().await.unwrap();
        assert!(!status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE, "{status}: {text}");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null), position)
    }

    /// A create: 201 with `Location` and `Tenantry-Position`, and a body that is the
    /// object as `GET Location` shows it (a secret shown once aside). Answers the body.
    pub(crate) async fn create(&self, key: &str, path: &str, body: Value) -> (Value, u64) {
        let res = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let header = |name: &str| res.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (location, position) = (header("location"), header("tenantry-position"));
        let made: Value = res.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{path}: {made}");
        let location = location.expect("a create answers Location");
        let position: u64 = position.expect("and Tenantry-Position").parse().unwrap();
        assert!(location.ends_with(made["id"].as_str().unwrap()) || location.ends_with("/settings"));
        let (s, got) = self.get_at(key, &location, position).await;
        assert_eq!(s, StatusCode::OK, "{location}: {got}");
        let mut shown = made.clone();
        // What is shown once (a key's or a webhook's secret) is not shown again.
        shown.as_object_mut().unwrap().remove("key");
        shown.as_object_mut().unwrap().remove("secret");
        assert_eq!(shown, got, "{path}: the answer is the object as GET shows it");
        (made, position)
    }

    /// A query that first waits for the read model to reach `position`.
    pub(crate) async fn get_at(&self, key: &str, path: &str, position: u64) -> (StatusCode, Value) {
        let req = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(key)
            .header("tenantry-min-position", position.to_string());
        let (s, v, _) = self.send(req).await;
        (s, v)
    }
}
