//! Logs, and traces over OTLP. Logs go to stderr (text, or JSON with
//! `TENANTRY_LOG_FORMAT=json`, filtered by `TENANTRY_LOG`). With `TENANTRY_OTLP_ENDPOINT` set
//! (`http://collector:4318`), spans are exported too (OTLP over HTTP, JSON): each request's
//! span (`request`, with the route, the method and the tenant) holds the command's
//! decision (`decide`), its append (`append`) and the wait for the read model (`project`), and
//! the access line carries the trace id.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// What was set up; traces are flushed and the exporter shut down when it is dropped.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Send the spans ended so far now (tests; shutdown).
    pub fn flush(&self) {
        if let Some(provider) = &self.provider
            && let Err(e) = provider.force_flush()
        {
            tracing::warn!(error = %e, "traces could not be flushed");
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// The traces URL of an OTLP endpoint (`…/v1/traces` appended unless given).
fn traces_url(endpoint: &str) -> String {
    let endpoint = endpoint.trim_end_matches('/');
    if endpoint.ends_with("/v1/traces") { endpoint.to_owned() } else { format!("{endpoint}/v1/traces") }
}

/// Install the process's logging, and tracing to `otlp_endpoint` when given.
pub fn init(otlp_endpoint: Option<&str>) -> anyhow::Result<Telemetry> {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_env("TENANTRY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let text = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour codes only where a person reads them.
        .with_ansi(std::io::stderr().is_terminal());
    let logs: Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync> =
        if std::env::var("TENANTRY_LOG_FORMAT").is_ok_and(|f| f == "json") {
            Box::new(text.json().with_filter(filter))
        } else {
            Box::new(text.with_filter(filter))
        };
    let (provider, traces) = match otlp_endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpJson)
                .with_endpoint(traces_url(endpoint))
                .build()?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(opentelemetry_sdk::Resource::builder().with_service_name("tenantry").build())
                .build();
            let tracer = provider.tracer("tenantry");
            // The spans of tenantry's own crates, whatever the log filter says.
            let layer = tracing_opentelemetry::layer().with_tracer(tracer).with_filter(EnvFilter::new(
                "tenantry=info,tenantry_app=info,tenantry_store=info,tenantry_projections=info",
            ));
            (Some(provider), Some(layer))
        }
        None => (None, None),
    };
    tracing_subscriber::registry().with(logs).with(traces).try_init()?;
    Ok(Telemetry { provider })
}

/// The trace id of the current span, when traces are exported.
pub fn current_trace_id(span: &tracing::Span) -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let context = span.context();
    let id = context.span().span_context().trace_id();
    (id != opentelemetry::trace::TraceId::INVALID).then(|| id.to_string())
}
