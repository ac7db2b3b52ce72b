//! `simulate --plot`: admitted and rejected requests over time, one panel per strategy, as an
//! SVG drawn with `plotters`: per time bin a bar of admitted requests with the rejected ones
//! stacked on it (so neither hides the other), and one legend beside the title, outside every
//! panel (so it covers no data).

use plotters::prelude::*;
use ratekeeper_core::Duration;

use crate::{error::CliError, simulate::Report, span::show_span};

/// One series' span in a time bin of `(admitted, rejected)`: from, to (stacked).
type Span = fn(&(u64, u64)) -> (u64, u64);

/// The two series: name, colour, and where each bin's bar spans.
const SERIES: [(&str, RGBColor, Span); 2] = [
    ("admitted", RGBColor(0x1b, 0x9e, 0x3e), |b| (0, b.0)),
    ("rejected", RGBColor(0xd6, 0x27, 0x28), |b| (b.0, b.0 + b.1)),
];

/// Draws `reports` (timelines over `duration`) into the SVG file `path`.
pub fn draw(
    path: &str,
    reports: &[Report],
    duration: Duration,
    title: &str,
) -> Result<(), CliError> {
    let fail = |e: &dyn core::fmt::Display| CliError::Plot(format!("{path}: {e}"));
    let panels = reports.len().max(1);
    let height = 80 + 220 * panels as u32;
    let root = SVGBackend::new(path, (960, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    // The legend, top right beside the title, once for every panel.
    for (i, (label, color, _)) in SERIES.iter().enumerate() {
        let x = 790 + 90 * i as i32;
        root.draw(&Rectangle::new([(x, 10), (x + 14, 24)], color.filled()))
            .map_err(|e| fail(&e))?;
        root.draw(&Text::new(*label, (x + 20, 10), ("sans-serif", 14)))
            .map_err(|e| fail(&e))?;
    }
    let root = root
        .titled(title, ("sans-serif", 20))
        .map_err(|e| fail(&e))?;
    // The time axis in a unit that keeps its numbers readable.
    let secs = duration.as_nanos() as f64 / 1e9;
    let (unit, scale) = if secs <= 600.0 {
        ("seconds", 1.0)
    } else if secs <= 36_000.0 {
        ("minutes", 60.0)
    } else {
        ("hours", 3_600.0)
    };
    for (area, report) in root.split_evenly((panels, 1)).iter().zip(reports) {
        panel(area, report, secs, (unit, scale)).map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

/// One strategy's panel: its caption, then per time bin its admitted requests with the
/// rejected ones stacked on them; the time axis in `unit`s of `scale` seconds.
fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    report: &Report,
    secs: f64,
    (unit, scale): (&str, f64),
) -> Result<(), Box<dyn core::error::Error>> {
    let bins = report.timeline.len().max(1);
    let bin_secs = secs / bins as f64;
    let top = report
        .timeline
        .iter()
        .map(|&(a, r)| a + r)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let window = report
        .limits
        .first()
        .map(|l| {
            format!(
                ", at most {} in any {}",
                l.max_in_any_window,
                show_span(l.limit.window())
            )
        })
        .unwrap_or_default();
    let caption = format!(
        "{}: {} admitted, {} rejected{window}",
        report.strategy.name(),
        report.admitted,
        report.rejected
    );
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(10)
        .margin_right(28)
        .x_label_area_size(32)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..secs / scale, 0f64..top * 1.1)?;
    chart
        .configure_mesh()
        .x_desc(unit)
        .y_desc(format!(
            "requests per {}",
            show_span(Duration::from_nanos((bin_secs * 1e9) as u64))
        ))
        .draw()?;
    let bin = |i: usize| {
        (
            i as f64 * bin_secs / scale,
            (i + 1) as f64 * bin_secs / scale,
        )
    };
    for (_, color, span) in SERIES {
        let bars = report.timeline.iter().enumerate().filter_map(|(i, b)| {
            let ((x0, x1), (y0, y1)) = (bin(i), span(b));
            (y1 > y0).then(|| Rectangle::new([(x0, y0 as f64), (x1, y1 as f64)], color.filled()))
        });
        chart.draw_series(bars)?;
    }
    Ok(())
}
