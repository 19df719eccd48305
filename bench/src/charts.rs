//! SVG charts of the report, drawn with plotters: cost per suite, dissemination latency against
//! fanout per suite (simulated and real), the shift of the best setting, and the simulator's
//! rounds against the rumor-spreading formula. Each function takes the rows the measurements
//! wrote and draws one file; none measures anything.
//! Concurrency: plain functions.

use std::path::Path;

use anyhow::anyhow;
use plotters::prelude::*;
use serde_json::Value;

use crate::shift::ShiftRow;
use crate::sim::Row;

const SIZE: (u32, u32) = (900, 560);
/// The gossip interval the latency-vs-fanout chart is drawn at: memberlist's 200 ms, which every
/// grid (simulated and real) contains.
const CHART_INTERVAL_MS: u64 = 200;

/// One line of a chart; dashed lines are real measurements beside simulated ones.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing a chart: {e}")
}

/// A line chart of `series` (empty series are skipped; axes fit the data).
pub fn lines(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> anyhow::Result<()> {
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    if all.is_empty() {
        return Err(anyhow!("chart {title}: no finite points"));
    }
    let (x0, x1) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.0), b.max(p.0))
        });
    let y1 = all.iter().fold(0.0f64, |m, p| m.max(p.1)) * 1.1;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1.max(x0 + 1.0), 0.0..y1.max(1.0))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .draw()
        .map_err(err)?;
    for (i, s) in series.iter().enumerate() {
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        if pts.is_empty() {
            continue;
        }
        let color = Palette99::pick(i).to_rgba();
        let style = ShapeStyle::from(&color).stroke_width(2);
        let drawn = if s.dashed {
            chart.draw_series(DashedLineSeries::new(pts.clone(), 6, 4, style))
        } else {
            chart.draw_series(LineSeries::new(pts.clone(), style))
        };
        drawn
            .map_err(err)?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// A bar chart of labelled values.
pub fn bars(path: &Path, title: &str, y_label: &str, bars: &[(String, f64)]) -> anyhow::Result<()> {
    let top = bars
        .iter()
        .map(|b| b.1)
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    if bars.is_empty() || top <= 0.0 {
        return Err(anyhow!("chart {title}: nothing to draw"));
    }
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((0..bars.len()).into_segmented(), 0.0..top * 1.1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(y_label)
        .x_labels(bars.len())
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .draw()
        .map_err(err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
            let mut r = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), *v),
                ],
                Palette99::pick(i).filled(),
            );
            r.set_margin(0, 0, 8, 8);
            r
        }))
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// µs of one core to open one 1200-byte-payload datagram, per suite (`crypto.json`).
pub fn cost_per_suite(path: &Path, crypto: &Value) -> anyhow::Result<()> {
    let rows = crypto
        .get("results")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let b: Vec<(String, f64)> = rows
        .iter()
        .filter(|r| r.get("size").and_then(Value::as_f64) == Some(1200.0))
        .filter_map(|r| {
            let suite = r.get("suite")?.as_str()?.to_string();
            let rate = r.get("open_per_s")?.as_f64()?;
            (rate > 0.0).then(|| (suite, 1e6 / rate))
        })
        .collect();
    bars(
        path,
        "Cost per suite: opening one datagram (1200 B payload)",
        "µs per datagram, one core",
        &b,
    )
}

/// p99 time to full dissemination against fanout at 200 ms, one line per suite and n (real
/// clusters dashed).
pub fn latency_vs_fanout(path: &Path, rows: &[ShiftRow]) -> anyhow::Result<()> {
    let series: Vec<Series> = rows
        .iter()
        .map(|r| Series {
            label: format!("{} n={} {}", r.suite, r.nodes, r.source),
            points: r
                .grid
                .iter()
                .filter(|p| p.gossip_interval_ms == CHART_INTERVAL_MS)
                .filter_map(|p| Some((p.fanout as f64, p.p99_ms?)))
                .collect(),
            dashed: r.source == "real",
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    lines(
        path,
        &format!("Dissemination p99 vs fanout (gossip every {CHART_INTERVAL_MS} ms)"),
        "fanout",
        "p99 publish → last member, ms",
        &series,
    )
}

/// The shift: the best fanout (and its p99) per suite, suites in order of growing cost, one
/// line per (n, source).
pub fn shift(path: &Path, rows: &[ShiftRow]) -> anyhow::Result<()> {
    let suites: Vec<&str> = crate::shift::PROFILES.iter().map(|p| p.name).collect();
    let mut keys: Vec<(u32, &str)> = rows.iter().map(|r| (r.nodes, r.source.as_str())).collect();
    keys.sort();
    keys.dedup();
    let mut series = Vec::new();
    for (n, source) in keys {
        let of = |f: &dyn Fn(&ShiftRow) -> Option<f64>| -> Vec<(f64, f64)> {
            rows.iter()
                .filter(|r| r.nodes == n && r.source == source)
                .filter_map(|r| {
                    let x = suites.iter().position(|s| *s == r.suite)? as f64;
                    Some((x, f(r)?))
                })
                .collect()
        };
        series.push(Series {
            label: format!("best fanout n={n} {source}"),
            points: of(&|r| r.optimal_fanout.map(|k| k as f64)),
            dashed: source == "real",
        });
        series.push(Series {
            label: format!("its gossip interval / 100 ms, n={n} {source}"),
            points: of(&|r| r.optimal_gossip_interval_ms.map(|g| g as f64 / 100.0)),
            dashed: true,
        });
    }
    let names = suites
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{i}={s}"))
        .collect::<Vec<_>>()
        .join(", ");
    lines(
        path,
        "The shift: best setting as authentication cost grows",
        &format!("suite ({names})"),
        "fanout / interval (100 ms)",
        &series,
    )
}

/// The simulator's synchronous rounds against log_{k+1}(n) + ln(n)/k, per fanout.
pub fn validation(path: &Path, rows: &[Row]) -> anyhow::Result<()> {
    let mut fanouts: Vec<usize> = rows.iter().map(|r| r.fanout).collect();
    fanouts.sort_unstable();
    fanouts.dedup();
    let mut series = Vec::new();
    for k in fanouts {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.fanout == k).collect();
        series.push(Series {
            label: format!("simulated, fanout {k}"),
            points: mine
                .iter()
                .map(|r| (f64::from(r.nodes).log10(), r.mean_rounds))
                .collect(),
            dashed: false,
        });
        series.push(Series {
            label: format!("formula, fanout {k}"),
            points: mine
                .iter()
                .map(|r| (f64::from(r.nodes).log10(), r.formula_rounds))
                .collect(),
            dashed: true,
        });
    }
    lines(
        path,
        "Rounds to full dissemination: simulator vs log_{k+1} n + ln n / k",
        "log10 n",
        "rounds",
        &series,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_an_svg_and_refuses_an_empty_chart() {
        let tmp = tempfile::tempdir().expect("dir");
        let dir = tmp.path();
        let p = dir.join("l.svg");
        let s = Series {
            label: "a".into(),
            points: vec![(1.0, 2.0), (2.0, 3.0)],
            dashed: false,
        };
        lines(&p, "t", "x", "y", &[s]).expect("draw");
        let svg = std::fs::read_to_string(&p).expect("read");
        assert!(svg.starts_with("<svg") && svg.contains("polyline"));
        assert!(lines(&dir.join("e.svg"), "t", "x", "y", &[]).is_err());
        bars(&dir.join("b.svg"), "t", "y", &[("x".into(), 1.0)]).expect("bars");
    }
}
