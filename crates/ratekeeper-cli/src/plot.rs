//! `simulate --plot`: admitted and rejected requests over time, one panel per strategy, as an
//! SVG drawn with `plotters`.

use plotters::prelude::*;
use ratekeeper_core::Duration;

use crate::{error::CliError, simulate::Report, span::show_span};

/// One series' count in a time bin of `(admitted, rejected)`.
type Count = fn(&(u64, u64)) -> u64;

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
        let bins = report.timeline.len().max(1);
        let bin_secs = secs / bins as f64;
        let top = report
            .timeline
            .iter()
            .map(|&(a, r)| a.max(r))
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
            .build_cartesian_2d(0f64..secs / scale, 0f64..top * 1.1)
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc(unit)
            .y_desc(format!(
                "requests per {}",
                show_span(Duration::from_nanos((bin_secs * 1e9) as u64))
            ))
            .draw()
            .map_err(|e| fail(&e))?;
        let at = |i: usize| (i as f64 + 0.5) * bin_secs / scale;
        let series: [(&str, RGBColor, Count); 2] = [
            ("admitted", RGBColor(0x1b, 0x9e, 0x3e), |b| b.0),
            ("rejected", RGBColor(0xd6, 0x27, 0x28), |b| b.1),
        ];
        for (label, color, count) in series {
            let points = report
                .timeline
                .iter()
                .enumerate()
                .map(|(i, b)| (at(i), count(b) as f64));
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| fail(&e))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}
