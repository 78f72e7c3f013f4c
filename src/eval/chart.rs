//! Grouped bar charts as hand-written SVG (no plotting crate): one group of bars per category,
//! one bar per model, as in the Vicuna blog's per-category comparisons and MT-bench's category
//! scores. The output is a standalone `.svg` file that browsers and Markdown viewers display.
use std::fmt::Write;

/// One model's bars: a value per category, `None` where it has no score there (no bar drawn).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend label (the model name).
    pub name: String,
    /// One value per category, in the chart's category order.
    pub values: Vec<Option<f64>>,
}

/// A grouped bar chart, described independently of how it is drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    /// Title above the plot.
    pub title: String,
    /// Label of the value axis.
    pub y_label: String,
    /// Top of the value axis (10 for scores, 100 for percentages); larger values are clipped.
    pub y_max: f64,
    /// Group labels along the bottom.
    pub categories: Vec<String>,
    /// The bars of each model.
    pub series: Vec<Series>,
}

/// Tableau 10, distinguishable in print and for most colour-blind readers.
const COLORS: [&str; 10] =
    ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

const BAR: f64 = 16.0;
const GROUP_GAP: f64 = 18.0;
const LEFT: f64 = 64.0;
const TOP: f64 = 48.0;
const PLOT_HEIGHT: f64 = 260.0;
const BOTTOM: f64 = 110.0;
const TICKS: usize = 5;

/// Draws the chart as an SVG document. Each bar carries a `<title>` with the exact value so the
/// viewer shows it on hover.
pub fn render_svg(chart: &BarChart) -> String {
    let n_series = chart.series.len().max(1);
    let group = n_series as f64 * BAR + GROUP_GAP;
    let plot_width = (chart.categories.len().max(1) as f64 * group).max(200.0);
    let legend_chars = chart.series.iter().map(|s| s.name.chars().count()).max().unwrap_or(0).min(40);
    let legend_width = 40.0 + 7.0 * legend_chars as f64;
    let width = LEFT + plot_width + 20.0 + legend_width;
    let height = TOP + PLOT_HEIGHT + BOTTOM;
    let y_max = if chart.y_max > 0.0 { chart.y_max } else { 1.0 };
    let y = |v: f64| TOP + PLOT_HEIGHT * (1.0 - (v.clamp(0.0, y_max) / y_max));

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="24" font-size="16" font-weight="bold" text-anchor="middle">{}</text>"#,
        LEFT + plot_width / 2.0,
        escape(&chart.title)
    );
    for i in 0..=TICKS {
        let value = y_max * i as f64 / TICKS as f64;
        let ty = y(value);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_width,
            LEFT - 6.0,
            ty + 4.0,
            trim_number(value)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + PLOT_HEIGHT / 2.0,
        escape(&chart.y_label)
    );
    for (c, category) in chart.categories.iter().enumerate() {
        let x0 = LEFT + c as f64 * group + GROUP_GAP / 2.0;
        for (s, series) in chart.series.iter().enumerate() {
            let Some(value) = series.values.get(c).copied().flatten() else { continue };
            let top = y(value);
            let _ = writeln!(
                svg,
                r#"<rect x="{:.1}" y="{top:.1}" width="{BAR}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                x0 + s as f64 * BAR,
                TOP + PLOT_HEIGHT - top,
                COLORS[s % COLORS.len()],
                escape(&format!("{} / {category}", series.name)),
                trim_number(value)
            );
        }
        let lx = x0 + n_series as f64 * BAR / 2.0;
        let ly = TOP + PLOT_HEIGHT + 14.0;
        let _ = writeln!(
            svg,
            r#"<text x="{lx:.1}" y="{ly:.1}" text-anchor="end" transform="rotate(-35 {lx:.1} {ly:.1})">{}</text>"#,
            escape(category)
        );
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#333"/>"##,
        TOP + PLOT_HEIGHT,
        LEFT + plot_width,
        TOP + PLOT_HEIGHT
    );
    let legend_x = LEFT + plot_width + 20.0;
    for (s, series) in chart.series.iter().enumerate() {
        let ly = TOP + 18.0 * s as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="{legend_x:.1}" y="{ly:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            COLORS[s % COLORS.len()],
            legend_x + 18.0,
            ly + 10.0,
            escape(&series.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// A value as short text: `7`, `7.5`, `6.33`.
fn trim_number(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Escapes text for SVG content and attributes (model names can contain anything).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && c != '\t' && c != '\n' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_one_bar_per_value_with_escaped_names() {
        let chart = BarChart {
            title: "Scores <by> category".into(),
            y_label: "score".into(),
            y_max: 10.0,
            categories: vec!["writing".into(), "math & logic".into()],
            series: vec![
                Series { name: "vicuna-7b".into(), values: vec![Some(7.5), Some(12.0)] },
                Series { name: "m\"2\"".into(), values: vec![None, Some(0.0)] },
            ],
        };
        let svg = render_svg(&chart);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<title>").count(), 3);
        assert!(svg.contains("<title>vicuna-7b / writing: 7.5</title>"));
        assert!(svg.contains("Scores &lt;by&gt; category"));
        assert!(svg.contains("math &amp; logic"));
        assert!(svg.contains("m&quot;2&quot;"));
        assert!(!svg.contains("m\"2\""));
        // 7.5 of 10 is 3/4 of the 260-pixel plot; 12 is clipped to the top.
        assert!(svg.contains(r#"y="113.0" width="16" height="195.0""#), "{svg}");
        assert!(svg.contains(r#"y="48.0" width="16" height="260.0""#), "{svg}");
        assert_eq!(svg.matches('<').count(), svg.matches('>').count());
    }

    #[test]
    fn empty_chart_is_still_a_document() {
        let svg = render_svg(&BarChart {
            title: String::new(),
            y_label: String::new(),
            y_max: 0.0,
            categories: vec![],
            series: vec![],
        });
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(trim_number(6.333), "6.33");
        assert_eq!(trim_number(10.0), "10");
    }
}
