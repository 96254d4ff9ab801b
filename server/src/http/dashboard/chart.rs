//! Bar charts as inline SVG, drawn on the server: no script, no chart library.

use maud::{Markup, html};

const WIDTH: u64 = 600;
const HEIGHT: u64 = 120;
const MAX_STEP: u64 = 40;

/// One bar per point, scaled to the largest; each bar's label and value are its tooltip.
pub fn bars(points: &[(String, u64)], format: fn(u64) -> String) -> Markup {
    let max = points.iter().map(|(_, v)| *v).max().unwrap_or(0);
    if max == 0 {
        return html! { p.muted { "Nothing to chart yet." } };
    }
    // A few points stay narrow bars rather than blocks across the chart.
    let step = (WIDTH / points.len() as u64).min(MAX_STEP);
    let bar = step.saturating_sub(2).max(1);
    html! {
        figure.chart {
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img"
                aria-label={ "largest " (format(max)) } {
                @for (i, (label, value)) in points.iter().enumerate() {
                    @let h = (value * HEIGHT).div_ceil(max);
                    rect class="bar" x=(i as u64 * step) y=(HEIGHT - h) width=(bar) height=(h) {
                        title { (label) ": " (format(*value)) }
                    }
                }
            }
            figcaption {
                span { (points[0].0) }
                span { "max " (format(max)) }
                span { (points[points.len() - 1].0) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_and_carry_their_values() {
        let svg = bars(
            &[("a".into(), 50), ("b".into(), 100), ("c".into(), 0)],
            |v| format!("{v}B"),
        )
        .into_string();
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(
            svg.contains(r#"x="40" y="0" width="38" height="120""#),
            "{svg}"
        );
        assert!(svg.contains(r#"height="60""#), "{svg}");
        assert!(svg.contains("<title>b: 100B</title>"), "{svg}");
        assert!(
            bars(&[], |v| v.to_string())
                .into_string()
                .contains("Nothing")
        );
    }
}
