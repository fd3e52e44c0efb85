//! Line charts as SVG text, for the status page and the simulator: rates over time, the
//! levels that matter drawn across, events marked where they happened. No dependencies: an SVG
//! of a few polylines is a few lines of text, and the page stays one self-contained document.

use std::fmt::Write as _;

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Its name in the legend.
    pub label: String,
    /// A CSS colour.
    pub color: &'static str,
    /// Dashed (for a line of lesser weight, such as a stream's).
    pub dashed: bool,
    /// Points as (x, y), x ascending.
    pub points: Vec<(f64, f64)>,
}

/// A horizontal level across the chart (a threshold).
#[derive(Debug, Clone, PartialEq)]
pub struct Level {
    /// What it is.
    pub label: String,
    /// Where, in y units.
    pub y: f64,
    /// A CSS colour.
    pub color: &'static str,
}

impl Level {
    /// A level at the rate `y`, labelled with its name and the rate as a percentage.
    pub fn rate(name: &str, y: f64, color: &'static str) -> Self {
        Self {
            label: format!("{name} {}", percent(y)),
            y,
            color,
        }
    }
}

/// A vertical mark at an x (a transition).
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    /// Where, in x units.
    pub x: f64,
    /// What happened.
    pub label: String,
}

/// A line chart.
#[derive(Debug, Clone, Default)]
pub struct Chart {
    /// Title above the plot.
    pub title: String,
    /// The x axis' caption.
    pub x_caption: String,
    /// Labels under the x axis, at x.
    pub x_ticks: Vec<(f64, String)>,
    /// The y range shown (from 0), and how a y value reads (`4.0 %`).
    pub y_max: f64,
    /// Formats a y value for the axis.
    pub y_format: Option<fn(f64) -> String>,
    /// The x range shown.
    pub x_range: (f64, f64),
    /// The lines.
    pub lines: Vec<Line>,
    /// The levels across.
    pub levels: Vec<Level>,
    /// The marks.
    pub marks: Vec<Mark>,
}

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 110.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 40.0;

/// Text made safe inside SVG or HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A fraction as a percentage with one decimal.
pub fn percent(value: f64) -> String {
    format!("{:.1} %", value * 100.0)
}

impl Chart {
    fn x(&self, x: f64) -> f64 {
        let (first, last) = self.x_range;
        let span = (last - first).max(f64::EPSILON);
        LEFT + (x - first) / span * (WIDTH - LEFT - RIGHT)
    }

    fn y(&self, y: f64) -> f64 {
        let top = self.y_max.max(f64::EPSILON);
        TOP + (1.0 - (y / top).clamp(0.0, 1.05)) * (HEIGHT - TOP - BOTTOM)
    }

    /// The chart as an `<svg>` element.
    pub fn svg(&self) -> String {
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" class="chart" font-family="sans-serif" font-size="11"><title>{}</title><rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#,
            escape(&self.title)
        );
        let _ = write!(
            svg,
            r#"<text x="{}" y="18" font-size="13" font-weight="bold">{}</text>"#,
            LEFT - 40.0,
            escape(&self.title)
        );
        self.draw_grid(&mut svg);
        self.draw_levels(&mut svg);
        self.draw_marks(&mut svg);
        self.draw_lines(&mut svg);
        let (bottom, right) = (HEIGHT - BOTTOM, WIDTH - RIGHT);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#333"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="#333"/></svg>"##
        );
        svg
    }

    /// The y grid with its values, the x ticks and the x caption.
    fn draw_grid(&self, svg: &mut String) {
        let format = self.y_format.unwrap_or(percent);
        let (bottom, right) = (HEIGHT - BOTTOM, WIDTH - RIGHT);
        for i in 0..=4 {
            let value = self.y_max * f64::from(i) / 4.0;
            let y = self.y(value);
            let _ = write!(
                svg,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{right}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end" fill="#555">{}</text>"##,
                LEFT - 4.0,
                y + 4.0,
                escape(&format(value))
            );
        }
        for (x, label) in &self.x_ticks {
            let px = self.x(*x);
            let _ = write!(
                svg,
                r##"<text x="{px:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text>"##,
                bottom + 14.0,
                escape(label)
            );
        }
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text>"##,
            (LEFT + right) / 2.0,
            HEIGHT - 6.0,
            escape(&self.x_caption)
        );
    }

    /// The levels across the plot, each labelled at its right.
    fn draw_levels(&self, svg: &mut String) {
        let right = WIDTH - RIGHT;
        for level in &self.levels {
            let y = self.y(level.y);
            let _ = write!(
                svg,
                r#"<line x1="{LEFT}" y1="{y:.1}" x2="{right}" y2="{y:.1}" stroke="{}" stroke-dasharray="6 3" class="level"/><text x="{}" y="{:.1}" fill="{}">{}</text>"#,
                level.color,
                right + 4.0,
                y + 4.0,
                level.color,
                escape(&level.label)
            );
        }
    }

    /// The marks, each a vertical line with its label along it.
    fn draw_marks(&self, svg: &mut String) {
        let bottom = HEIGHT - BOTTOM;
        for mark in &self.marks {
            let x = self.x(mark.x);
            let _ = write!(
                svg,
                r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{bottom}" stroke="#888" stroke-dasharray="2 3" class="mark"/><text x="{:.1}" y="{:.1}" fill="#444" transform="rotate(-90 {:.1} {:.1})">{}</text>"##,
                x - 3.0,
                bottom - 4.0,
                x - 3.0,
                bottom - 4.0,
                escape(&mark.label)
            );
        }
    }

    /// The lines, with dots where they are sparse, and their legend in a row under the title.
    fn draw_lines(&self, svg: &mut String) {
        let mut legend_x = LEFT;
        for line in &self.lines {
            let points: Vec<String> = line
                .points
                .iter()
                .map(|(x, y)| format!("{:.1},{:.1}", self.x(*x), self.y(*y)))
                .collect();
            let dash = if line.dashed {
                r#" stroke-dasharray="4 2""#
            } else {
                ""
            };
            let _ = write!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash} class="series" data-label="{}"/>"#,
                points.join(" "),
                line.color,
                escape(&line.label)
            );
            // A lone point draws no line: each point is also a dot.
            if line.points.len() < 40 {
                for (x, y) in &line.points {
                    let _ = write!(
                        svg,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}"/>"#,
                        self.x(*x),
                        self.y(*y),
                        line.color
                    );
                }
            }
            // The legend, in a row under the title.
            let _ = write!(
                svg,
                r#"<line x1="{legend_x:.1}" y1="30" x2="{:.1}" y2="30" stroke="{}" stroke-width="2"{dash}/><text x="{:.1}" y="34">{}</text>"#,
                legend_x + 16.0,
                line.color,
                legend_x + 20.0,
                escape(&line.label)
            );
            legend_x += 36.0 + 6.5 * line.label.chars().count() as f64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_draws_its_lines_levels_and_marks_inside_the_plot() {
        let chart = Chart {
            title: "primary <bounces>".into(),
            x_caption: "hours".into(),
            x_ticks: vec![(0.0, "0".into()), (24.0, "24".into())],
            y_max: 0.12,
            y_format: None,
            x_range: (0.0, 24.0),
            lines: vec![Line {
                label: "bounce rate".into(),
                color: "crimson",
                dashed: false,
                points: vec![(0.0, 0.0), (12.0, 0.06), (24.0, 0.12)],
            }],
            levels: vec![Level {
                label: "SES 10 %".into(),
                y: 0.10,
                color: "red",
            }],
            marks: vec![Mark {
                x: 12.0,
                label: "paused".into(),
            }],
        };
        let svg = chart.svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("primary &lt;bounces&gt;"), "escaped");
        assert!(
            svg.contains(r#"points="56.0,260.0 353.0,152.0 650.0,44.0""#),
            "{svg}"
        );
        assert_eq!(svg.matches("<circle").count(), 3, "each point a dot");
        assert!(svg.contains("SES 10 %") && svg.contains("paused"));
        assert_eq!(svg.matches("class=\"level\"").count(), 1);
        assert_eq!(percent(0.0912), "9.1 %");
    }
}
