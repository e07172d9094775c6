//! Charts drawn on the server as SVG: no script, no style attributes (the page's policy forbids inline
//! styles; presentation attributes are markup), readable by screen readers through a title, a description
//! and a title per bar, and scaled to the page's width by its `viewBox`.

use std::fmt::Write;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

/// One bar: its label on the axis, its value, and the value as shown to people.
pub struct Bar {
    pub label: String,
    pub value: Decimal,
    pub shown: String,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;
/// Axis labels at most this many along the bottom, so they never overlap.
const MAX_LABELS: usize = 8;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A bar chart. `id` prefixes the ids of its title and description; `axis` formats the axis's top value.
pub fn bars(id: &str, title: &str, description: &str, bars: &[Bar], axis: &str) -> String {
    let top = bars
        .iter()
        .map(|b| b.value)
        .fold(Decimal::ZERO, Decimal::max);
    let scale = top.to_f64().unwrap_or(0.0);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = plot_w / bars.len().max(1) as f64;
    let mut svg = String::with_capacity(256 + bars.len() * 200);
    let _ = write!(
        svg,
        r##"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{id}-title {id}-desc" xmlns="http://www.w3.org/2000/svg"><title id="{id}-title">{}</title><desc id="{id}-desc">{}</desc>"##,
        escape(title),
        escape(description)
    );
    // Axis: the base line, and the top value with its grid line.
    let base = TOP + plot_h;
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{base}" x2="{}" y2="{base}" stroke="#8d96a3"/><line x1="{LEFT}" y1="{TOP}" x2="{}" y2="{TOP}" stroke="#e3e6ea"/><text x="{}" y="{}" text-anchor="end" font-size="12" fill="#3d4652">{}</text><text x="{}" y="{base}" text-anchor="end" font-size="12" fill="#3d4652">0</text>"##,
        WIDTH - RIGHT,
        WIDTH - RIGHT,
        LEFT - 6.0,
        TOP + 4.0,
        escape(axis),
        LEFT - 6.0,
    );
    let every = bars.len().div_ceil(MAX_LABELS).max(1);
    for (i, bar) in bars.iter().enumerate() {
        let value = bar.value.to_f64().unwrap_or(0.0);
        let h = if scale > 0.0 {
            (value / scale * plot_h).max(0.0)
        } else {
            0.0
        };
        let x = LEFT + slot * i as f64 + slot * 0.15;
        let w = (slot * 0.7).max(1.0);
        let _ = write!(
            svg,
            r##"<rect x="{x:.1}" y="{:.1}" width="{w:.1}" height="{h:.1}" fill="#0b57b0" data-label="{}" data-value="{}"><title>{}: {}</title></rect>"##,
            base - h,
            escape(&bar.label),
            bar.value.normalize(),
            escape(&bar.label),
            escape(&bar.shown),
        );
        if i % every == 0 {
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{}" text-anchor="middle" font-size="12" fill="#3d4652">{}</text>"##,
                LEFT + slot * i as f64 + slot / 2.0,
                HEIGHT - 8.0,
                escape(bar.label.get(5..).unwrap_or(&bar.label)),
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_per_point_scaled_to_the_largest() {
        let points = [("2026-12-01", 2), ("2026-12-02", 0), ("2026-12-03", 4)];
        let bars_in: Vec<Bar> = points
            .iter()
            .map(|(label, v)| Bar {
                label: label.to_string(),
                value: Decimal::from(*v),
                shown: format!("${v}.00"),
            })
            .collect();
        let svg = bars("c", "Cost <per day>", "d", &bars_in, "$4.00");
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains(r#"data-label="2026-12-03" data-value="4""#));
        assert!(svg.contains("Cost &lt;per day&gt;"));
        // The largest bar fills the plot; the empty one has no height.
        assert!(svg.contains(&format!(r#"height="{:.1}""#, HEIGHT - TOP - BOTTOM)));
        assert!(svg.contains(r#"height="0.0""#));
        assert!(!svg.contains("style="));
    }
}
