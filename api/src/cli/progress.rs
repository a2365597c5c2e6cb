//! Progress of long jobs: a bar on a terminal, plain lines otherwise (logs, CI).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tenantry_projections::Progress;

#[derive(Debug)]
pub struct CliProgress {
    bar: Mutex<Option<ProgressBar>>,
    plain: Mutex<Plain>,
    terminal: bool,
}

#[derive(Debug)]
struct Plain {
    label: String,
    total: u64,
    done: u64,
    last: Instant,
}

impl Default for CliProgress {
    fn default() -> Self {
        Self {
            bar: Mutex::new(None),
            plain: Mutex::new(Plain { label: String::new(), total: 0, done: 0, last: Instant::now() }),
            terminal: std::io::stderr().is_terminal(),
        }
    }
}

impl Progress for CliProgress {
    fn start(&self, label: &str, total: u64) {
        if self.terminal {
            let bar = ProgressBar::new(total).with_message(label.to_owned());
            bar.set_style(
                ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            if let Ok(mut slot) = self.bar.lock() {
                *slot = Some(bar);
            }
        } else if let Ok(mut p) = self.plain.lock() {
            *p = Plain { label: label.to_owned(), total, done: 0, last: Instant::now() };
            eprintln!("{label}: {total} events");
        }
    }

    fn advance(&self, done: u64) {
        if let Ok(bar) = self.bar.lock()
            && let Some(bar) = bar.as_ref()
        {
            bar.inc(done);
            return;
        }
        if let Ok(mut p) = self.plain.lock() {
            p.done += done;
            if p.last.elapsed() >= Duration::from_secs(2) {
                p.last = Instant::now();
                eprintln!("{}: {}/{} events", p.label, p.done, p.total);
            }
        }
    }

    fn finish(&self) {
        if let Ok(mut bar) = self.bar.lock()
            && let Some(bar) = bar.take()
        {
            bar.finish();
            return;
        }
        if let Ok(p) = self.plain.lock() {
            eprintln!("{}: done, {} events", p.label, p.done);
        }
    }
}
