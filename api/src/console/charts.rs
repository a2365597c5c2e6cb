//! Charts as SVG drawn on the server: readable without script, each bar titled with its
//! figure, each chart described for screen readers.

use maud::{Markup, html};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 24.0;

/// Columns of `values` labelled by `labels` (a day each, say), on an axis from 0 to the
/// largest value.
pub fn columns(id: &str, description: &str, points: &[(String, f64)]) -> Markup {
    let max = points.iter().map(|p| p.1).fold(0.0_f64, f64::max);
    let top = if max > 0.0 { max } else { 1.0 };
    let plot_w = WIDTH - LEFT - 8.0;
    let plot_h = HEIGHT - BOTTOM - 8.0;
    let step = plot_w / points.len().max(1) as f64;
    let bar = (step * 0.7).max(1.0);
    html! {
        svg.chart id=(id) role="img" aria-label=(description) viewBox={"0 0 " (WIDTH) " " (HEIGHT)} xmlns="http://www.w3.org/2000/svg" data-max=(max) {
            title { (description) }
            line.axis x1=(LEFT) y1=(8) x2=(LEFT) y2=(HEIGHT - BOTTOM) {}
            line.axis x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH - 8.0) y2=(HEIGHT - BOTTOM) {}
            text.tick x=(LEFT - 6.0) y=(14) text-anchor="end" { (compact(max)) }
            text.tick x=(LEFT - 6.0) y=(HEIGHT - BOTTOM) text-anchor="end" { "0" }
            @for (i, (label, value)) in points.iter().enumerate() {
                @let h = (value / top * plot_h).max(if *value > 0.0 { 1.0 } else { 0.0 });
                @let x = LEFT + i as f64 * step + (step - bar) / 2.0;
                rect.bar x=(fmt(x)) y=(fmt(HEIGHT - BOTTOM - h)) width=(fmt(bar)) height=(fmt(h)) data-label=(label) data-value=(value) {
                    title { (label) ": " (compact(*value)) }
                }
                @if points.len() <= 12 || i % (points.len() / 8).max(1) == 0 {
                    text.tick x=(fmt(x + bar / 2.0)) y=(HEIGHT - 6.0) text-anchor="middle" { (short_label(label)) }
                }
            }
        }
    }
}

/// Horizontal bars, one per label (a model, say), longest first as given.
pub fn bars(id: &str, description: &str, points: &[(String, f64)]) -> Markup {
    let max = points.iter().map(|p| p.1).fold(0.0_f64, f64::max);
    let top = if max > 0.0 { max } else { 1.0 };
    let row = 26.0;
    let label_w = 180.0;
    let height = (points.len().max(1) as f64) * row + 8.0;
    html! {
        svg.chart id=(id) role="img" aria-label=(description) viewBox={"0 0 " (WIDTH) " " (fmt(height))} xmlns="http://www.w3.org/2000/svg" {
            title { (description) }
            @for (i, (label, value)) in points.iter().enumerate() {
                @let y = 4.0 + i as f64 * row;
                @let w = value / top * (WIDTH - label_w - 80.0);
                text.tick x=(label_w - 8.0) y=(fmt(y + 16.0)) text-anchor="end" { (label) }
                rect.bar x=(label_w) y=(fmt(y + 3.0)) width=(fmt(w.max(if *value > 0.0 { 1.0 } else { 0.0 }))) height=(18) data-label=(label) data-value=(value) {
                    title { (label) ": " (compact(*value)) }
                }
                text.tick x=(fmt(label_w + w + 6.0)) y=(fmt(y + 16.0)) { (compact(*value)) }
            }
        }
    }
}

/// A small line of `values` (tokens per day, say) for a table cell.
pub fn sparkline(description: &str, values: &[f64]) -> Markup {
    let (w, h) = (120.0, 24.0);
    let max = values.iter().copied().fold(0.0_f64, f64::max);
    let top = if max > 0.0 { max } else { 1.0 };
    let step = if values.len() > 1 { w / (values.len() - 1) as f64 } else { w };
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{},{}", fmt(i as f64 * step), fmt(h - 2.0 - v / top * (h - 4.0))))
        .collect();
    html! {
        svg.spark role="img" aria-label=(description) viewBox={"0 0 " (w) " " (h)} width=(w) height=(h) xmlns="http://www.w3.org/2000/svg" {
            title { (description) }
            polyline points=(points.join(" ")) fill="none" {}
        }
    }
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

/// 1234 → "1.2k", 2500000 → "2.5M".
pub fn compact(v: f64) -> String {
    match v.abs() {
        a if a >= 1e9 => format!("{:.1}G", v / 1e9),
        a if a >= 1e6 => format!("{:.1}M", v / 1e6),
        a if a >= 1e4 => format!("{:.0}k", v / 1e3),
        a if a >= 1e3 => format!("{:.1}k", v / 1e3),
        _ if v.fract() == 0.0 => format!("{v:.0}"),
        _ => format!("{v:.2}"),
    }
}

/// `2026-11-30` → `30`: days on an axis by their number.
fn short_label(label: &str) -> &str {
    label.rsplit('-').next().unwrap_or(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_as_tall_as_their_share_of_the_largest() {
        let svg = columns("c", "tokens", &[("2026-11-01".into(), 50.0), ("2026-11-02".into(), 100.0)])
            .into_string();
        let plot_h = HEIGHT - BOTTOM - 8.0;
        assert!(svg.contains(&format!("height=\"{}\"", fmt(plot_h))), "{svg}");
        assert!(svg.contains(&format!("height=\"{}\"", fmt(plot_h / 2.0))), "{svg}");
    }

    #[test]
    fn labels_are_escaped() {
        let svg = bars("b", "models", &[("<script>x</script>".into(), 3.0)]).into_string();
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
    }

    #[test]
    fn compact_figures() {
        assert_eq!(compact(999.0), "999");
        assert_eq!(compact(1234.0), "1.2k");
        assert_eq!(compact(25_000.0), "25k");
        assert_eq!(compact(2_500_000.0), "2.5M");
    }
}
