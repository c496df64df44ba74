//! The report's charts as SVG (plotters, SVG backend only): one line per
//! series with a marker on each point, a legend, labelled axes.

use plotters::prelude::*;

use crate::report::{Chart, Scale};

/// Width and height of every chart, pixels.
const SIZE: (u32, u32) = (760, 440);

/// Colours of the series, in order (then again).
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(120, 120, 120),
];

/// Where a value sits on an axis of `scale`.
fn place(scale: Scale, value: f64) -> f64 {
    match scale {
        Scale::Linear => value,
        Scale::Log => value.max(f64::MIN_POSITIVE).log10(),
        Scale::Log2 => value.max(f64::MIN_POSITIVE).log2(),
        Scale::Nines => -(1.0 - (value / 100.0).min(0.999_999)).log10(),
    }
}

/// The value at `position` of an axis of `scale` (the inverse of [`place`]).
fn unplace(scale: Scale, position: f64) -> f64 {
    match scale {
        Scale::Linear => position,
        Scale::Log => 10f64.powf(position),
        Scale::Log2 => 2f64.powf(position),
        Scale::Nines => 100.0 * (1.0 - 10f64.powf(-position)),
    }
}

/// A tick label: few digits, percentiles with a `%`.
fn label(scale: Scale, position: f64) -> String {
    // Undo the rounding of the log and back (10^log10(64) is 63.99999…).
    let value = (unplace(scale, position) * 1e6).round() / 1e6;
    let whole = (position - position.round()).abs() < 1e-6;
    match scale {
        // Ticks between whole nines (p0, p90, p99, p99.9) or between powers of
        // two would read p68.377 or 2.8: left blank.
        Scale::Nines | Scale::Log2 if !whole => String::new(),
        Scale::Nines => {
            let text = format!("{value:.3}");
            let text = text.trim_end_matches('0').trim_end_matches('.');
            format!("p{text}")
        }
        _ if value.abs() >= 10_000.0 => format!("{:.0}k", value / 1_000.0),
        _ if value.abs() >= 100.0 || value == value.round() => format!("{value:.0}"),
        _ if value.abs() >= 1.0 => format!("{value:.1}"),
        _ => format!("{value:.2}"),
    }
}

/// The range covering `positions`, with a little room; never empty.
fn range(positions: impl Iterator<Item = f64>, scale: Scale) -> std::ops::Range<f64> {
    let (low, high) = positions.fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), v| {
        (low.min(v), high.max(v))
    });
    if !low.is_finite() || !high.is_finite() {
        return 0.0..1.0;
    }
    let span = (high - low).max(if scale == Scale::Linear {
        high.abs().max(1.0) * 0.1
    } else {
        0.2
    });
    let low = if scale == Scale::Linear && low >= 0.0 {
        0.0
    } else {
        low - span * 0.05
    };
    low..high + span * 0.08
}

/// Draws `chart` as an SVG document.
pub fn svg(chart: &Chart) -> Result<String, String> {
    let mut out = String::new();
    draw(chart, &mut out).map_err(|error| error.to_string())?;
    Ok(out)
}

fn draw(chart: &Chart, out: &mut String) -> Result<(), Box<dyn std::error::Error>> {
    let (x_scale, y_scale) = (chart.x_scale, chart.y_scale);
    let points = || chart.series.iter().flat_map(|series| series.points.iter());
    let x_range = range(points().map(|p| place(x_scale, p[0])), x_scale);
    let y_range = range(points().map(|p| place(y_scale, p[1])), y_scale);
    let root = SVGBackend::with_string(out, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut plot = ChartBuilder::on(&root)
        .caption(&chart.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x_range, y_range)?;
    let x_label = |position: &f64| label(x_scale, *position);
    let y_label = |position: &f64| label(y_scale, *position);
    plot.configure_mesh()
        .x_desc(chart.x_label.as_str())
        .y_desc(chart.y_label.as_str())
        .x_labels(match x_scale {
            // One tick per whole power of two or nine (plotters puts ticks at
            // round steps; half steps come out blank).
            Scale::Log2 | Scale::Nines => 20,
            _ => 8,
        })
        .y_labels(8)
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.12))
        .draw()?;
    for (index, series) in chart.series.iter().enumerate() {
        let colour = PALETTE[index % PALETTE.len()];
        let placed: Vec<(f64, f64)> = series
            .points
            .iter()
            .map(|p| (place(x_scale, p[0]), place(y_scale, p[1])))
            .collect();
        plot.draw_series(LineSeries::new(
            placed.iter().copied(),
            colour.stroke_width(2),
        ))?
        .label(series.label.as_str())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        // Markers only where the points are few enough to tell apart.
        if placed.len() <= 16 {
            plot.draw_series(
                placed
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), 3, colour.filled())),
            )?;
        }
    }
    plot.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_labels_invert_each_other() {
        for (scale, value) in [
            (Scale::Linear, 42.0),
            (Scale::Log, 64.0),
            (Scale::Log2, 64.0),
            (Scale::Nines, 99.0),
            (Scale::Nines, 50.0),
        ] {
            let back = unplace(scale, place(scale, value));
            assert!((back - value).abs() < 1e-9, "{scale:?} {value} -> {back}");
        }
        assert_eq!(label(Scale::Nines, place(Scale::Nines, 99.9)), "p99.9");
        assert_eq!(label(Scale::Nines, place(Scale::Nines, 90.0)), "p90");
        assert_eq!(label(Scale::Log, place(Scale::Log, 64.0)), "64");
        assert_eq!(label(Scale::Log2, place(Scale::Log2, 64.0)), "64");
        assert_eq!(
            label(Scale::Log2, 2.5),
            "",
            "between powers of two: no label"
        );
        assert_eq!(label(Scale::Nines, 1.5), "", "between nines: no label");
        assert_eq!(label(Scale::Linear, 25_000.0), "25k");
    }

    #[test]
    fn a_range_is_never_empty_and_covers_its_points() {
        let single = range([5.0].into_iter(), Scale::Linear);
        assert!(single.start <= 5.0 && single.end > 5.0);
        let none = range(std::iter::empty(), Scale::Log);
        assert!(none.start < none.end);
        let log = range([0.0, 2.0].into_iter(), Scale::Log);
        assert!(log.start < 0.0 && log.end > 2.0);
    }
}
