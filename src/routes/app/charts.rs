//! Accessible SVG charts for the marketer's dashboard, rendered on the server as strings.
//!
//! Charts are embedded inline in pages served with `Content-Security-Policy: default-src 'none';
//! style-src 'self'`, which blocks `style=` attributes and scripts: everything is drawn with
//! presentation attributes (`fill=`, `stroke=`…), with no external references. The few `class=`
//! attributes only name parts (`bar`, `benchmark`, `x-label`…) for tests and an optional stylesheet.
//!
//! Each chart is `role="img"` labelled by its `<title>` and a `<desc>` that states the numbers in
//! words, so a screen reader announces the data rather than "image".
//!
//! Ids: the `<svg>` gets `id="chart-<16 hex digits>"`, the FNV-1a hash of the chart kind, title and
//! data; its `<title>` and `<desc>` get that id plus `-title` / `-desc`. A hash (not a counter)
//! keeps the output deterministic; two charts on one page only share ids when they are identical
//! in kind, title and numbers, so give such charts different titles.

use std::fmt::Write as _;

/// One stage of a conversion funnel, e.g. ("Sent", 1000), ("Opened", 522)…
#[derive(Debug, Clone, Copy)]
pub struct Stage<'a> {
    pub label: &'a str,
    pub count: i64,
    /// Optional reference rate of this stage relative to the first stage (e.g. 0.522 for the KAiKU
    /// benchmark's opened), drawn as a marker on the bar's track.
    pub benchmark: Option<f64>,
}

/// One line of a [`time_series`] chart: a value per x label, in order.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    pub label: &'a str,
    pub points: &'a [i64],
}

const WIDTH: f64 = 640.0;
const MARGIN: f64 = 8.0;
const FONT_FAMILY: &str = "system-ui, sans-serif";
const INK: &str = "#111827";
const MUTED: &str = "#4b5563";
const GRID: &str = "#e5e7eb";
const AXIS: &str = "#9ca3af";
const BAR: &str = "#1d4e89";

const TITLE_BASELINE: f64 = 22.0;
const CONTENT_TOP: f64 = 36.0;

const FUNNEL_TRACK_WIDTH: f64 = WIDTH - 2.0 * MARGIN;
const FUNNEL_ROW_HEIGHT: f64 = 54.0;
const FUNNEL_LABEL_CHARS: usize = 48;

const PLOT_HEIGHT: f64 = 200.0;
const LEGEND_ROW_HEIGHT: f64 = 20.0;
const LEGEND_LABEL_CHARS: usize = 40;
const X_LABEL_CHARS: usize = 20;
const MAX_X_LABELS: usize = 12;

/// Okabe–Ito colours (readable with colour-vision deficiencies), each with its own dash pattern so
/// the lines also differ in grayscale. Lines beyond six reuse the styles in order.
const LINE_STYLES: [(&str, &str); 6] = [
    ("#0072b2", "none"),
    ("#d55e00", "8 4"),
    ("#009e73", "2 3"),
    ("#cc79a7", "12 4 2 4"),
    ("#000000", "4 4"),
    ("#e69f00", "1 5"),
];

/// The words of a chart's text alternative (its `<desc>`), in the dashboard's language. `{…}`
/// marks where a value goes.
pub struct ChartWords {
    pub benchmark: &'static str,
    pub no_stages: &'static str,
    /// A time slot without a label: `{n}`.
    pub point: &'static str,
    pub one_point: &'static str,
    pub points: &'static str,
    pub no_data: &'static str,
    pub single: &'static str,
    pub summary: &'static str,
}

impl ChartWords {
    pub const EN: Self = Self {
        benchmark: "benchmark",
        no_stages: "No stages.",
        point: "point {n}",
        one_point: "1 point at {at}.",
        points: "{n} points from {from} to {to}.",
        no_data: "{label}: no data.",
        single: "{label}: {value} at {at}.",
        summary: "{label}: total {total}; peak {peak} at {at}; last {last}.",
    };
    pub const DA: Self = Self {
        benchmark: "benchmark",
        no_stages: "Ingen trin.",
        point: "punkt {n}",
        one_point: "1 punkt: {at}.",
        points: "{n} punkter fra {from} til {to}.",
        no_data: "{label}: ingen data.",
        single: "{label}: {value} ({at}).",
        summary: "{label}: i alt {total}; højest {peak} ({at}); senest {last}.",
    };

    /// The words for a dashboard page in `locale` (Danish, or English for everyone else).
    pub fn of(locale: crate::domain::Locale) -> &'static Self {
        // Danish times read as "(14:00)" or "(06/12)", which fits a day as well as an hour.
        match locale {
            crate::domain::Locale::Da => &Self::DA,
            _ => &Self::EN,
        }
    }
}

/// Horizontal funnel bars: one row per stage with the label, a bar whose width is count / first
/// stage's count, and the count plus the percentage of the first stage as text.
///
/// Benchmarks, when present, are a thin vertical marker at `benchmark × track width`; the legend
/// entry shows `benchmark_label` (e.g. "KAiKU benchmark") when given and any stage has one. Negative
/// counts are drawn as 0; a stage larger than the first fills the track and shows its real
/// percentage (e.g. 120.0 %); a first stage of 0 draws empty bars and no percentages.
pub fn funnel_bars(words: &ChartWords, title: &str, stages: &[Stage<'_>], benchmark_label: Option<&str>) -> String {
    let counts: Vec<u64> = stages.iter().map(|stage| non_negative(stage.count)).collect();
    let first = counts.first().copied().unwrap_or(0);
    let benchmarks: Vec<Option<f64>> = stages
        .iter()
        .map(|stage| {
            stage
                .benchmark
                .filter(|rate| rate.is_finite())
                .map(|rate| rate.max(0.0))
        })
        .collect();
    let legend = benchmark_label.filter(|_| benchmarks.iter().any(Option::is_some));
    let ratio = |count: u64| (first > 0).then(|| count as f64 / first as f64);

    let mut key = format!("funnel\0{title}\0{benchmark_label:?}");
    for stage in stages {
        let _ = write!(key, "\0{}\0{}\0{:?}", stage.label, stage.count, stage.benchmark);
    }

    let mut desc = Vec::with_capacity(stages.len());
    for (index, (stage, &count)) in stages.iter().zip(&counts).enumerate() {
        let mut notes = Vec::new();
        // The first stage is the 100 % the others are measured against.
        if let Some(ratio) = ratio(count).filter(|_| index > 0) {
            notes.push(percent(ratio));
        }
        if let Some(rate) = benchmarks[index] {
            notes.push(format!(
                "{} {}",
                benchmark_label.unwrap_or(words.benchmark),
                percent(rate)
            ));
        }
        let mut entry = format!("{} {}", stage.label, group_thousands(count));
        if !notes.is_empty() {
            let _ = write!(entry, " ({})", notes.join("; "));
        }
        desc.push(entry);
    }
    let desc = if desc.is_empty() {
        words.no_stages.to_owned()
    } else {
        format!("{}.", desc.join("; "))
    };

    let rows_top = if legend.is_some() {
        CONTENT_TOP + 24.0
    } else {
        CONTENT_TOP
    };
    let height = rows_top + stages.len() as f64 * FUNNEL_ROW_HEIGHT + 4.0;
    let mut svg = open_svg(&chart_id(&key), height, title, &desc);

    if let Some(label) = legend {
        benchmark_marker(&mut svg, MARGIN + 1.0, CONTENT_TOP - 2.0, CONTENT_TOP + 14.0);
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" font-size="13" fill="{MUTED}">{}</text>"#,
            px(MARGIN + 10.0),
            px(CONTENT_TOP + 11.0),
            escape(label)
        );
    }

    for (index, (stage, &count)) in stages.iter().zip(&counts).enumerate() {
        let top = rows_top + index as f64 * FUNNEL_ROW_HEIGHT;
        let value = match ratio(count) {
            Some(ratio) => format!("{} ({})", group_thousands(count), percent(ratio)),
            None => group_thousands(count),
        };
        let bar_width = ratio(count).map_or(0.0, |ratio| ratio.min(1.0) * FUNNEL_TRACK_WIDTH);
        let _ = writeln!(
            svg,
            r#"<text class="label" x="{}" y="{}" font-size="14" fill="{INK}">{}</text>"#,
            px(MARGIN),
            px(top + 16.0),
            escape(&truncate(stage.label, FUNNEL_LABEL_CHARS))
        );
        let _ = writeln!(
            svg,
            r#"<text class="value" x="{}" y="{}" font-size="14" fill="{INK}" text-anchor="end">{}</text>"#,
            px(WIDTH - MARGIN),
            px(top + 16.0),
            escape(&value)
        );
        let _ = writeln!(
            svg,
            r#"<rect class="track" x="{}" y="{}" width="{}" height="18" rx="3" fill="{GRID}"/>"#,
            px(MARGIN),
            px(top + 24.0),
            px(FUNNEL_TRACK_WIDTH)
        );
        let _ = writeln!(
            svg,
            r#"<rect class="bar" x="{}" y="{}" width="{}" height="18" rx="3" fill="{BAR}"/>"#,
            px(MARGIN),
            px(top + 24.0),
            px(bar_width)
        );
        if let Some(rate) = benchmarks[index] {
            let x = MARGIN + rate.min(1.0) * FUNNEL_TRACK_WIDTH;
            benchmark_marker(&mut svg, x, top + 20.0, top + 46.0);
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// A line chart over time: one line per series against `x_labels` (already formatted by the caller,
/// e.g. "14:00" or "Nov 26"), a y axis with 4–6 round ticks, and a legend.
///
/// Each series has its own colour and dash pattern; a series with a single point is a dot. At most
/// twelve x labels are drawn (fewer when they are long), evenly thinned. Negative values are drawn
/// as 0. When there is no series, no point or only zeros, the chart shows `empty_text` instead.
pub fn time_series(
    words: &ChartWords,
    title: &str,
    x_labels: &[String],
    series: &[Line<'_>],
    empty_text: &str,
) -> String {
    let values: Vec<Vec<u64>> = series
        .iter()
        .map(|line| line.points.iter().map(|&point| non_negative(point)).collect())
        .collect();
    let slots = values.iter().map(Vec::len).max().unwrap_or(0).max(x_labels.len());
    let max = values.iter().flatten().copied().max().unwrap_or(0);

    let mut key = format!("time_series\0{title}\0{empty_text}");
    for label in x_labels {
        let _ = write!(key, "\0{label}");
    }
    for line in series {
        let _ = write!(key, "\0{}\0{:?}", line.label, line.points);
    }
    let id = chart_id(&key);

    if max == 0 {
        let frame_height = 150.0;
        let mut svg = open_svg(&id, CONTENT_TOP + frame_height + 8.0, title, empty_text);
        let _ = writeln!(
            svg,
            r##"<rect x="{}" y="{}" width="{}" height="{}" rx="4" fill="#f9fafb" stroke="{GRID}"/>"##,
            px(MARGIN),
            px(CONTENT_TOP),
            px(WIDTH - 2.0 * MARGIN),
            px(frame_height)
        );
        let _ = writeln!(
            svg,
            r#"<text class="empty" x="{}" y="{}" font-size="14" fill="{MUTED}" text-anchor="middle">{}</text>"#,
            px(WIDTH / 2.0),
            px(CONTENT_TOP + frame_height / 2.0 + 5.0),
            escape(empty_text)
        );
        svg.push_str("</svg>\n");
        return svg;
    }

    // Legend entries flow left to right and wrap: (x, row, label).
    let mut legend = Vec::with_capacity(series.len());
    let (mut x, mut row) = (MARGIN, 0usize);
    for line in series {
        let label = truncate(line.label, LEGEND_LABEL_CHARS);
        let entry_width = 30.0 + text_width(&label, 13.0);
        if x > MARGIN && x + entry_width > WIDTH - MARGIN {
            row += 1;
            x = MARGIN;
        }
        legend.push((x, row, label));
        x += entry_width + 20.0;
    }
    let legend_rows = if legend.is_empty() { 0 } else { row + 1 };

    let ticks = nice_ticks(max);
    let top_tick = ticks.last().copied().unwrap_or(1).max(1) as f64;
    let tick_labels: Vec<String> = ticks.iter().map(|&tick| group_thousands(tick)).collect();
    let tick_label_width = tick_labels
        .iter()
        .map(|label| text_width(label, 12.0))
        .fold(0.0, f64::max);
    let shown_x_labels: Vec<String> = x_labels.iter().map(|label| truncate(label, X_LABEL_CHARS)).collect();
    let x_label_width = shown_x_labels
        .iter()
        .map(|label| text_width(label, 12.0))
        .fold(0.0, f64::max);

    let plot_top = CONTENT_TOP + legend_rows as f64 * LEGEND_ROW_HEIGHT + 12.0;
    let plot_bottom = plot_top + PLOT_HEIGHT;
    let plot_left = (MARGIN + tick_label_width + 8.0).max(MARGIN + x_label_width / 2.0);
    let plot_right = WIDTH - MARGIN - (x_label_width / 2.0).max(4.0);
    let plot_width = plot_right - plot_left;
    let x_at = |index: usize| {
        if slots <= 1 {
            plot_left + plot_width / 2.0
        } else {
            plot_left + index as f64 * plot_width / (slots - 1) as f64
        }
    };
    let y_at = |value: u64| plot_bottom - value as f64 / top_tick * PLOT_HEIGHT;

    let mut svg = open_svg(
        &id,
        plot_bottom + 30.0,
        title,
        &time_series_desc(words, x_labels, series, &values, slots),
    );

    for (index, (x, row, label)) in legend.iter().enumerate() {
        let (color, dash) = LINE_STYLES[index % LINE_STYLES.len()];
        let y = CONTENT_TOP + *row as f64 * LEGEND_ROW_HEIGHT;
        let _ = writeln!(
            svg,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{color}" stroke-width="2.5" stroke-dasharray="{dash}"/>"#,
            px(*x),
            px(y + 6.0),
            px(x + 24.0),
            px(y + 6.0)
        );
        let _ = writeln!(
            svg,
            r#"<text class="legend" x="{}" y="{}" font-size="13" fill="{INK}">{}</text>"#,
            px(x + 30.0),
            px(y + 10.0),
            escape(label)
        );
    }

    for (tick, label) in ticks.iter().zip(&tick_labels) {
        let y = y_at(*tick);
        let stroke = if *tick == 0 { AXIS } else { GRID };
        let _ = writeln!(
            svg,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{stroke}" stroke-width="1"/>"#,
            px(plot_left),
            px(y),
            px(plot_right),
            px(y)
        );
        let _ = writeln!(
            svg,
            r#"<text class="y-label" x="{}" y="{}" font-size="12" fill="{MUTED}" text-anchor="end">{label}</text>"#,
            px(plot_left - 6.0),
            px(y + 4.0)
        );
    }

    let max_x_labels = ((plot_width + 12.0) / (x_label_width + 12.0))
        .floor()
        .clamp(1.0, MAX_X_LABELS as f64);
    for index in x_label_indices(shown_x_labels.len(), max_x_labels as usize) {
        let x = x_at(index);
        let _ = writeln!(
            svg,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{AXIS}" stroke-width="1"/>"#,
            px(x),
            px(plot_bottom),
            px(x),
            px(plot_bottom + 4.0)
        );
        let _ = writeln!(
            svg,
            r#"<text class="x-label" x="{}" y="{}" font-size="12" fill="{MUTED}" text-anchor="middle">{}</text>"#,
            px(x),
            px(plot_bottom + 18.0),
            escape(&shown_x_labels[index])
        );
    }

    for (index, points) in values.iter().enumerate() {
        let (color, dash) = LINE_STYLES[index % LINE_STYLES.len()];
        match points.as_slice() {
            [] => {}
            [only] => {
                let _ = writeln!(
                    svg,
                    r#"<circle class="point" cx="{}" cy="{}" r="4" fill="{color}"/>"#,
                    px(x_at(0)),
                    px(y_at(*only))
                );
            }
            _ => {
                let coordinates: Vec<String> = points
                    .iter()
                    .enumerate()
                    .map(|(slot, &value)| format!("{},{}", px(x_at(slot)), px(y_at(value))))
                    .collect();
                let _ = writeln!(
                    svg,
                    r#"<polyline class="line" points="{}" fill="none" stroke="{color}" stroke-width="2.5" stroke-dasharray="{dash}" stroke-linejoin="round"/>"#,
                    coordinates.join(" ")
                );
            }
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// "48 points from 00:00 to 23:30. Opened: total 1,234; peak 87 at 14:00; last 12."
fn time_series_desc(
    words: &ChartWords,
    x_labels: &[String],
    series: &[Line<'_>],
    values: &[Vec<u64>],
    slots: usize,
) -> String {
    let at = |index: usize| {
        x_labels
            .get(index)
            .cloned()
            .unwrap_or_else(|| words.point.replace("{n}", &(index + 1).to_string()))
    };
    let mut sentences = vec![match slots {
        1 => words.one_point.replace("{at}", &at(0)),
        _ => words
            .points
            .replace("{n}", &group_thousands(slots as u64))
            .replace("{from}", &at(0))
            .replace("{to}", &at(slots - 1)),
    }];
    for (line, points) in series.iter().zip(values) {
        let sentence =
            match points.as_slice() {
                [] => words.no_data.replace("{label}", line.label),
                [only] => words
                    .single
                    .replace("{label}", line.label)
                    .replace("{value}", &group_thousands(*only))
                    .replace("{at}", &at(0)),
                _ => {
                    let total = points.iter().fold(0u64, |sum, &value| sum.saturating_add(value));
                    // `max_by_key` keeps the last maximum; the first reads better ("peak at 09:00").
                    let (peak_index, peak) = points.iter().copied().enumerate().fold((0, 0), |best, (index, value)| {
                        if value > best.1 { (index, value) } else { best }
                    });
                    let last = points.last().copied().unwrap_or(0);
                    words
                        .summary
                        .replace("{label}", line.label)
                        .replace("{total}", &group_thousands(total))
                        .replace("{peak}", &group_thousands(peak))
                        .replace("{at}", &at(peak_index))
                        .replace("{last}", &group_thousands(last))
                }
            };
        sentences.push(sentence);
    }
    sentences.join(" ")
}

/// Opens the `<svg>` with its `<title>`, `<desc>` and the visible title.
fn open_svg(id: &str, height: f64, title: &str, desc: &str) -> String {
    let title = escape(title);
    let mut svg = String::with_capacity(4096);
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" id="{id}" viewBox="0 0 {} {}" width="100%" role="img" aria-labelledby="{id}-title {id}-desc" font-family="{FONT_FAMILY}">"#,
        px(WIDTH),
        px(height)
    );
    let _ = writeln!(svg, r#"<title id="{id}-title">{title}</title>"#);
    let _ = writeln!(svg, r#"<desc id="{id}-desc">{}</desc>"#, escape(desc));
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" font-size="16" font-weight="600" fill="{INK}">{title}</text>"#,
        px(MARGIN),
        px(TITLE_BASELINE)
    );
    svg
}

/// A dark line with a white halo, so it stands out on both the light track and the dark bar.
fn benchmark_marker(svg: &mut String, x: f64, y1: f64, y2: f64) {
    let (x, y1, y2) = (px(x), px(y1), px(y2));
    let _ = writeln!(
        svg,
        r##"<line class="benchmark-halo" x1="{x}" y1="{y1}" x2="{x}" y2="{y2}" stroke="#ffffff" stroke-width="5"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<line class="benchmark" x1="{x}" y1="{y1}" x2="{x}" y2="{y2}" stroke="{INK}" stroke-width="2"/>"#
    );
}

/// `chart-` and the 64-bit FNV-1a hash of `key` (http://www.isthe.com/chongo/tech/comp/fnv/): stable
/// across Rust releases, unlike `DefaultHasher`.
fn chart_id(key: &str) -> String {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("chart-{hash:016x}")
}

/// Ticks `0, step, 2·step…` covering `max` in 3–5 intervals, with `step` 1, 2 or 5 × 10ⁿ; counts are
/// whole numbers, so the step is at least 1 and small maxima get `0, 1, 2, 3`.
fn nice_ticks(max: u64) -> Vec<u64> {
    let max = u128::from(max);
    let mut magnitude: u128 = 1;
    loop {
        for factor in [1, 2, 5] {
            let step = factor * magnitude;
            let intervals = max.div_ceil(step).max(3);
            if intervals <= 5 {
                return (0..=intervals)
                    .map(|i| u64::try_from(i * step).unwrap_or(u64::MAX))
                    .collect();
            }
        }
        magnitude *= 10;
    }
}

/// Indices of the labels to draw: every k-th from the first, at most `max_labels` of them.
fn x_label_indices(count: usize, max_labels: usize) -> Vec<usize> {
    if count == 0 {
        return Vec::new();
    }
    let step = count.div_ceil(max_labels.max(1));
    (0..count).step_by(step).collect()
}

fn non_negative(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// 1234567 → "1,234,567".
fn group_thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// 0.5224 → "52.2 %".
fn percent(ratio: f64) -> String {
    format!("{:.1} %", ratio * 100.0)
}

/// A coordinate with one decimal; never "-0.0".
fn px(value: f64) -> String {
    if value.abs() < 0.05 {
        "0.0".to_owned()
    } else {
        format!("{value:.1}")
    }
}

/// A rough width for layout: system-ui glyphs average about 0.6 em.
fn text_width(text: &str, font_size: f64) -> f64 {
    text.chars().count() as f64 * font_size * 0.6
}

/// Shortens `text` to `max_chars` characters with an ellipsis; the `<desc>` keeps the full text.
fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(max_chars.saturating_sub(1)).collect();
        short.push('…');
        short
    }
}

/// Escapes text for XML content and attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            // XML 1.0 forbids these code points (https://www.w3.org/TR/xml/#charsets); a stray one
            // in a label would make a standalone SVG unparsable.
            '\t' | '\n' | '\r' => escaped.push(' '),
            c if c < ' ' || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Danish page's charts describe themselves in Danish (their `<desc>`), an English page's
    /// in English.
    #[test]
    fn text_alternatives_speak_the_page_language() {
        let labels = vec!["14:00".to_owned(), "15:00".to_owned()];
        let series = [Line {
            label: "Åbnet",
            points: &[3, 5],
        }];
        let da = time_series(
            ChartWords::of(crate::domain::Locale::Da),
            "Tidslinje",
            &labels,
            &series,
            "-",
        );
        assert!(
            da.contains("2 punkter fra 14:00 til 15:00. Åbnet: i alt 8; højest 5 (15:00); senest 5."),
            "{da}"
        );
        let en = time_series(
            ChartWords::of(crate::domain::Locale::En),
            "Timeline",
            &labels,
            &series,
            "-",
        );
        assert!(en.contains("Åbnet: total 8; peak 5 at 15:00; last 5."), "{en}");
        let none = funnel_bars(ChartWords::of(crate::domain::Locale::Da), "Tragt", &[], None);
        assert!(none.contains("Ingen trin."), "{none}");
    }

    fn stage(label: &str, count: i64) -> Stage<'_> {
        Stage {
            label,
            count,
            benchmark: None,
        }
    }

    /// Every tag of `svg` as (name, attributes); also checks the tags are balanced. Text and
    /// attribute values are escaped, so `<` and `>` only ever delimit tags.
    fn tags(svg: &str) -> Vec<(String, Vec<(String, String)>)> {
        let mut found = Vec::new();
        let mut open = Vec::new();
        for chunk in svg.split('<').skip(1) {
            let (tag, _text) = chunk.split_once('>').expect("unclosed tag");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(open.pop().as_deref(), Some(name), "mismatched closing tag in {svg}");
                continue;
            }
            let self_closing = tag.ends_with('/');
            let tag = tag.trim_end_matches('/');
            let (name, mut rest) = tag.split_once(' ').unwrap_or((tag, ""));
            let mut attributes = Vec::new();
            while let Some((attribute, after)) = rest.trim_start().split_once("=\"") {
                let (value, after) = after.split_once('"').expect("unterminated attribute value");
                attributes.push((attribute.to_owned(), value.to_owned()));
                rest = after;
            }
            assert!(rest.trim().is_empty(), "stray text in tag <{tag}>");
            if !self_closing {
                open.push(name.to_owned());
            }
            found.push((name.to_owned(), attributes));
        }
        assert!(open.is_empty(), "unclosed elements {open:?}");
        found
    }

    fn attribute<'a>(attributes: &'a [(String, String)], name: &str) -> Option<&'a str> {
        attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// `attribute` of every element with `class="{class}"`, in document order, as numbers.
    fn numbers_of(svg: &str, class: &str, attribute_name: &str) -> Vec<f64> {
        tags(svg)
            .iter()
            .filter(|(_, attributes)| attribute(attributes, "class") == Some(class))
            .map(|(_, attributes)| attribute(attributes, attribute_name).unwrap().parse().unwrap())
            .collect()
    }

    fn text_of(svg: &str, class: &str) -> Vec<String> {
        let marker = format!("class=\"{class}\"");
        svg.lines()
            .filter(|line| line.contains(&marker))
            .map(|line| line.split_once('>').unwrap().1.trim_end_matches("</text>").to_owned())
            .collect()
    }

    fn svg_id(svg: &str) -> String {
        let (name, attributes) = &tags(svg)[0];
        assert_eq!(name, "svg");
        attribute(attributes, "id").unwrap().to_owned()
    }

    fn hours(count: usize) -> Vec<String> {
        (0..count)
            .map(|i| format!("{:02}:{:02}", (i / 2) % 24, (i % 2) * 30))
            .collect()
    }

    const HOSTILE: &str = r#"<script>alert("x")</script> A & B 'q' " onload="alert(1)"#;

    fn hostile_charts() -> Vec<String> {
        let points = [3, 5, 2];
        vec![
            funnel_bars(
                &ChartWords::EN,
                HOSTILE,
                &[
                    Stage {
                        label: HOSTILE,
                        count: 10,
                        benchmark: Some(0.5),
                    },
                    stage("A & B", 4),
                ],
                Some(HOSTILE),
            ),
            time_series(
                &ChartWords::EN,
                HOSTILE,
                &[HOSTILE.to_owned(), "b".into(), "c".into()],
                &[Line {
                    label: HOSTILE,
                    points: &points,
                }],
                HOSTILE,
            ),
            time_series(&ChartWords::EN, HOSTILE, &[], &[], HOSTILE),
        ]
    }

    #[test]
    fn labels_from_marketers_are_escaped() {
        for svg in hostile_charts() {
            assert!(!svg.contains("<script"), "{svg}");
            assert!(
                svg.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; A &amp; B &apos;q&apos;"),
                "{svg}"
            );
            assert!(!svg.contains("A & B"), "{svg}");
        }
        let funnel = funnel_bars(&ChartWords::EN, "Q&A", &[stage("A & B", 1)], None);
        assert!(
            funnel.contains(r#"<title id=""#) && funnel.contains(">Q&amp;A</title>"),
            "{funnel}"
        );
        assert!(funnel.contains(">A &amp; B</text>"), "{funnel}");
        assert_eq!(escape("a\u{0}b\u{1b}c\nd"), "abc d");
    }

    #[test]
    fn output_works_under_a_strict_csp() {
        let mut charts = hostile_charts();
        charts.push(example_funnel());
        charts.push(example_time_series());
        for svg in charts {
            assert!(svg.starts_with(r#"<svg xmlns="http://www.w3.org/2000/svg" "#), "{svg}");
            assert!(svg.contains(r#" width="100%" role="img" aria-labelledby=""#), "{svg}");
            assert!(!svg.contains("style="), "{svg}");
            assert!(!svg.contains("url("), "{svg}");
            for (name, attributes) in tags(&svg) {
                assert!(
                    !["script", "foreignObject", "style", "image", "use", "a"].contains(&name.as_str()),
                    "<{name}>"
                );
                for (key, _) in attributes {
                    assert!(
                        !key.to_ascii_lowercase().starts_with("on"),
                        "event attribute {key} in <{name}>"
                    );
                    assert!(!key.contains("href") && key != "style", "attribute {key} in <{name}>");
                }
            }
        }
    }

    #[test]
    fn title_and_desc_label_the_chart() {
        let svg = funnel_bars(&ChartWords::EN, "Invitations", &[stage("Sent", 1)], None);
        let id = svg_id(&svg);
        assert!(id.starts_with("chart-") && id.len() == 22, "{id}");
        assert!(
            svg.contains(&format!(r#"aria-labelledby="{id}-title {id}-desc""#)),
            "{svg}"
        );
        assert!(
            svg.contains(&format!(r#"<title id="{id}-title">Invitations</title>"#)),
            "{svg}"
        );
        assert!(
            svg.contains(&format!(r#"<desc id="{id}-desc">Sent 1.</desc>"#)),
            "{svg}"
        );
        assert!(svg.contains(r#"font-family="system-ui, sans-serif""#), "{svg}");
    }

    #[test]
    fn funnel_bar_widths_are_count_over_first_stage() {
        let counts = [1000, 522, 80, 7, 0];
        let stages: Vec<Stage<'_>> = counts.iter().map(|&count| stage("s", count)).collect();
        let svg = funnel_bars(&ChartWords::EN, "Funnel", &stages, None);
        let tracks = numbers_of(&svg, "track", "width");
        let bars = numbers_of(&svg, "bar", "width");
        assert_eq!(bars.len(), counts.len());
        for ((&count, bar), track) in counts.iter().zip(&bars).zip(&tracks) {
            let expected = count as f64 / 1000.0 * track;
            assert!(
                (bar - expected).abs() < 0.5,
                "count {count}: bar {bar}, expected {expected}"
            );
        }
        assert_eq!(
            text_of(&svg, "value"),
            [
                "1,000 (100.0 %)",
                "522 (52.2 %)",
                "80 (8.0 %)",
                "7 (0.7 %)",
                "0 (0.0 %)"
            ]
        );
    }

    #[test]
    fn zero_and_odd_counts_still_show_label_and_number() {
        let svg = funnel_bars(
            &ChartWords::EN,
            "Empty",
            &[stage("Sent", 0), stage("Opened", 0), stage("Clicked", -3)],
            None,
        );
        assert_eq!(numbers_of(&svg, "bar", "width"), [0.0, 0.0, 0.0]);
        assert_eq!(text_of(&svg, "label"), ["Sent", "Opened", "Clicked"]);
        assert_eq!(text_of(&svg, "value"), ["0", "0", "0"]);
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        assert!(svg.contains(">Sent 0; Opened 0; Clicked 0.</desc>"), "{svg}");

        let svg = funnel_bars(
            &ChartWords::EN,
            "More clicks than sends",
            &[stage("Sent", 10), stage("Clicks", 12)],
            None,
        );
        let tracks = numbers_of(&svg, "track", "width");
        assert_eq!(numbers_of(&svg, "bar", "width")[1], tracks[1]);
        assert_eq!(text_of(&svg, "value")[1], "12 (120.0 %)");

        let svg = funnel_bars(&ChartWords::EN, "Nothing", &[], Some("KAiKU benchmark"));
        assert!(svg.contains(">No stages.</desc>") && !svg.contains("KAiKU"), "{svg}");
    }

    #[test]
    fn benchmark_markers_sit_at_rate_times_track_width() {
        let stages = [
            stage("Sent", 1000),
            Stage {
                label: "Opened",
                count: 400,
                benchmark: Some(0.522),
            },
            stage("Clicked", 80),
            Stage {
                label: "Confirmed",
                count: 20,
                benchmark: Some(0.031),
            },
        ];
        let svg = funnel_bars(&ChartWords::EN, "Funnel", &stages, Some("KAiKU benchmark"));
        let track_x = numbers_of(&svg, "track", "x")[0];
        let track_width = numbers_of(&svg, "track", "width")[0];
        let markers = numbers_of(&svg, "benchmark", "x1");
        // The legend's marker comes first, then one per stage with a benchmark.
        assert_eq!(markers.len(), 3, "{svg}");
        for (marker, rate) in markers[1..].iter().zip([0.522, 0.031]) {
            let expected = track_x + rate * track_width;
            assert!((marker - expected).abs() < 0.5, "marker {marker}, expected {expected}");
        }
        // Each marker is within its own row: below the row's track top, above the next row.
        let track_tops = numbers_of(&svg, "track", "y");
        let marker_tops = numbers_of(&svg, "benchmark", "y1");
        assert!(marker_tops[1] > track_tops[0] && marker_tops[1] < track_tops[1]);
        assert!(svg.contains(">KAiKU benchmark</text>"), "{svg}");
        assert!(svg.contains("Opened 400 (40.0 %; KAiKU benchmark 52.2 %)"), "{svg}");

        let without_label = funnel_bars(&ChartWords::EN, "Funnel", &stages, None);
        assert_eq!(numbers_of(&without_label, "benchmark", "x1").len(), 2);
        assert!(
            without_label.contains("Opened 400 (40.0 %; benchmark 52.2 %)"),
            "{without_label}"
        );
        let without_benchmarks = funnel_bars(&ChartWords::EN, "Funnel", &[stage("Sent", 1)], Some("KAiKU benchmark"));
        assert!(!without_benchmarks.contains("KAiKU") && !without_benchmarks.contains("benchmark"));
    }

    #[test]
    fn desc_states_the_formatted_numbers() {
        let svg = funnel_bars(
            &ChartWords::EN,
            "Invitations",
            &[stage("Sent", 1_234_567), stage("Opened", 522_000), stage("Opted in", 0)],
            None,
        );
        assert!(
            svg.contains(">Sent 1,234,567; Opened 522,000 (42.3 %); Opted in 0 (0.0 %).</desc>"),
            "{svg}"
        );
        assert!(text_of(&svg, "value")[0] == "1,234,567 (100.0 %)", "{svg}");

        let sent = [0, 1200, 300, -4];
        let opened = [7];
        let svg = time_series(
            &ChartWords::EN,
            "Today",
            &hours(4),
            &[
                Line {
                    label: "Sent",
                    points: &sent,
                },
                Line {
                    label: "Opened",
                    points: &opened,
                },
                Line {
                    label: "Clicked",
                    points: &[],
                },
            ],
            "No activity",
        );
        assert!(
            svg.contains(
                ">4 points from 00:00 to 01:30. Sent: total 1,500; peak 1,200 at 00:30; last 0. \
                 Opened: 7 at 00:00. Clicked: no data.</desc>"
            ),
            "{svg}"
        );
    }

    #[test]
    fn group_thousands_and_percent() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1000), "1,000");
        assert_eq!(group_thousands(1_000_000), "1,000,000");
        assert_eq!(group_thousands(u64::MAX), "18,446,744,073,709,551,615");
        assert_eq!(percent(0.522), "52.2 %");
        assert_eq!(percent(1.0), "100.0 %");
    }

    #[test]
    fn nice_ticks_are_round_and_few() {
        let cases: [(u64, &[u64]); 7] = [
            (0, &[0, 1, 2, 3]),
            (1, &[0, 1, 2, 3]),
            (7, &[0, 2, 4, 6, 8]),
            (10, &[0, 2, 4, 6, 8, 10]),
            (99, &[0, 20, 40, 60, 80, 100]),
            (1234, &[0, 500, 1000, 1500]),
            (5_000_000, &[0, 1_000_000, 2_000_000, 3_000_000, 4_000_000, 5_000_000]),
        ];
        for (max, expected) in cases {
            assert_eq!(nice_ticks(max), expected, "max {max}");
        }
        for max in (0..2000).chain([i64::MAX as u64, u64::MAX]) {
            let ticks = nice_ticks(max);
            assert!((4..=6).contains(&ticks.len()), "max {max}: {ticks:?}");
            assert!(*ticks.last().unwrap() >= max, "max {max}: {ticks:?}");
            let step = ticks[1];
            let mantissa = step / 10u64.pow(step.ilog10());
            assert!(
                [1, 2, 5].contains(&mantissa) && step % 10u64.pow(step.ilog10()) == 0,
                "step {step}"
            );
        }
    }

    #[test]
    fn y_axis_labels_use_the_ticks() {
        let points = [0, 1234];
        let svg = time_series(
            &ChartWords::EN,
            "Sends",
            &hours(2),
            &[Line {
                label: "Sent",
                points: &points,
            }],
            "None",
        );
        assert_eq!(text_of(&svg, "y-label"), ["0", "500", "1,000", "1,500"]);
    }

    #[test]
    fn x_labels_are_thinned_to_at_most_twelve() {
        assert_eq!(x_label_indices(0, 12), Vec::<usize>::new());
        assert_eq!(x_label_indices(5, 12), [0, 1, 2, 3, 4]);
        assert_eq!(x_label_indices(48, 12), [0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44]);
        assert_eq!(x_label_indices(800, 12).len(), 12);

        let points: Vec<i64> = (0..800).map(|i| i % 37).collect();
        let svg = time_series(
            &ChartWords::EN,
            "Many",
            &hours(800),
            &[Line {
                label: "Opened",
                points: &points,
            }],
            "None",
        );
        let labels = text_of(&svg, "x-label");
        assert!((2..=12).contains(&labels.len()), "{labels:?}");
        assert_eq!(labels[0], "00:00");
        let polyline = svg.lines().find(|line| line.contains("<polyline")).unwrap();
        assert_eq!(polyline.matches(',').count(), 800);

        let svg = time_series(
            &ChartWords::EN,
            "Few",
            &hours(5),
            &[Line {
                label: "Opened",
                points: &[1, 2, 3, 4, 5],
            }],
            "None",
        );
        assert_eq!(text_of(&svg, "x-label"), ["00:00", "00:30", "01:00", "01:30", "02:00"]);

        let long: Vec<String> = (0..30).map(|i| format!("Wednesday, November {i:02}")).collect();
        let svg = time_series(
            &ChartWords::EN,
            "Long",
            &long,
            &[Line {
                label: "Opened",
                points: &[1; 30],
            }],
            "None",
        );
        let drawn = numbers_of(&svg, "x-label", "x");
        let gap = drawn.windows(2).map(|pair| pair[1] - pair[0]).fold(f64::MAX, f64::min);
        assert!(
            gap >= text_width("Wednesday, November", 12.0),
            "long labels overlap: {drawn:?}"
        );
    }

    #[test]
    fn one_point_is_a_dot_and_negatives_sit_on_zero() {
        let svg = time_series(
            &ChartWords::EN,
            "One",
            &hours(1),
            &[Line {
                label: "Opened",
                points: &[5],
            }],
            "None",
        );
        assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
        assert!(!svg.contains("<polyline"));

        let svg = time_series(
            &ChartWords::EN,
            "Negative",
            &hours(3),
            &[Line {
                label: "Opened",
                points: &[-5, 3, 0],
            }],
            "None",
        );
        let polyline = svg.lines().find(|line| line.contains("<polyline")).unwrap();
        let zero_line = numbers_of(&svg, "y-label", "y")[0] - 4.0;
        let ys: Vec<f64> = polyline
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .split(' ')
            .map(|pair| pair.split_once(',').unwrap().1.parse().unwrap())
            .collect();
        assert_eq!(ys[0], zero_line);
        assert_eq!(ys[2], zero_line);
        assert!(ys[1] < zero_line);
    }

    #[test]
    fn series_differ_in_colour_and_dash() {
        let points = [1, 2];
        let series: Vec<Line<'_>> = ["a", "b", "c", "d", "e", "f"]
            .iter()
            .map(|label| Line { label, points: &points })
            .collect();
        let svg = time_series(&ChartWords::EN, "Six", &hours(2), &series, "None");
        let polylines: Vec<(String, String)> = tags(&svg)
            .into_iter()
            .filter(|(name, _)| name == "polyline")
            .map(|(_, attributes)| {
                (
                    attribute(&attributes, "stroke").unwrap().to_owned(),
                    attribute(&attributes, "stroke-dasharray").unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(polylines.len(), 6);
        for (index, (stroke, dash)) in polylines.iter().enumerate() {
            for (other_stroke, other_dash) in &polylines[index + 1..] {
                assert!(stroke != other_stroke && dash != other_dash, "{polylines:?}");
            }
        }
        assert_eq!(text_of(&svg, "legend"), ["a", "b", "c", "d", "e", "f"]);
    }

    #[test]
    fn empty_state_text_when_nothing_to_draw() {
        let zeros = [0, 0, 0];
        let cases: [&[Line<'_>]; 3] = [
            &[],
            &[Line {
                label: "Opened",
                points: &[],
            }],
            &[Line {
                label: "Opened",
                points: &zeros,
            }],
        ];
        for series in cases {
            let svg = time_series(&ChartWords::EN, "Today", &hours(3), series, "No activity yet");
            assert_eq!(text_of(&svg, "empty"), ["No activity yet"], "{svg}");
            assert!(svg.contains(">No activity yet</desc>"), "{svg}");
            assert!(!svg.contains("<polyline") && !svg.contains("<circle"), "{svg}");
        }
    }

    #[test]
    fn charts_on_one_page_get_different_ids() {
        let points = [1, 2];
        let ids = [
            svg_id(&funnel_bars(&ChartWords::EN, "Invitations", &[stage("Sent", 1)], None)),
            svg_id(&funnel_bars(&ChartWords::EN, "Reminders", &[stage("Sent", 1)], None)),
            svg_id(&funnel_bars(&ChartWords::EN, "Invitations", &[stage("Sent", 2)], None)),
            svg_id(&time_series(
                &ChartWords::EN,
                "Invitations",
                &hours(2),
                &[Line {
                    label: "Sent",
                    points: &points,
                }],
                "None",
            )),
            svg_id(&time_series(&ChartWords::EN, "Invitations", &hours(2), &[], "None")),
        ];
        for (index, id) in ids.iter().enumerate() {
            assert!(!ids[index + 1..].contains(id), "{ids:?}");
        }
    }

    #[test]
    fn output_is_deterministic() {
        assert_eq!(example_funnel(), example_funnel());
        assert_eq!(example_time_series(), example_time_series());
    }

    fn example_funnel() -> String {
        let stages = [
            stage("Invitations sent", 12_480),
            stage("Delivered", 12_311),
            Stage {
                label: "Opened",
                count: 6_515,
                benchmark: Some(0.522),
            },
            stage("Clicked", 1_046),
            stage("Entered mobile number", 402),
            stage("Confirmed by SMS", 371),
            stage("Stopped", 0),
        ];
        funnel_bars(
            &ChartWords::EN,
            "Spring campaign: email to SMS",
            &stages,
            Some("KAiKU benchmark"),
        )
    }

    fn example_time_series() -> String {
        let wave = |scale: i64, shift: i64| -> Vec<i64> {
            (0..48)
                .map(|i: i64| (scale * (24 - (i - shift).abs()).max(0) / 24 + (i * 7) % 5) * i64::from(i >= 16))
                .collect()
        };
        let (opened, clicked, confirmed) = (wave(420, 20), wave(90, 21), wave(30, 23));
        time_series(
            &ChartWords::EN,
            "Today, every 30 minutes",
            &hours(48),
            &[
                Line {
                    label: "Opened",
                    points: &opened,
                },
                Line {
                    label: "Clicked",
                    points: &clicked,
                },
                Line {
                    label: "Confirmed by SMS",
                    points: &confirmed,
                },
            ],
            "No activity yet today",
        )
    }

    /// Writes `target/charts-example.html` (served under the dashboard's CSP) for a person to look at.
    #[test]
    fn write_example_page() {
        let empty = time_series(&ChartWords::EN, "Yesterday", &hours(48), &[], "No activity yesterday");
        let page = format!(
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'self'\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>optbridge charts</title>\n</head>\n<body>\n{}{}{}</body>\n</html>\n",
            example_funnel(),
            example_time_series(),
            empty
        );
        let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(target.join("charts-example.html"), page).unwrap();
    }
}
