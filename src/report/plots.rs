//! The report's SVG plots, drawn with plotters' SVG backend: histograms, bars and line charts
//! over a logarithmic x axis.

use anyhow::{anyhow, ensure, Result};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use std::path::Path;

const SIZE: (u32, u32) = (900, 520);

/// Colours of successive series (plotters' palette, readable on white).
fn colour(i: usize) -> RGBColor {
    const P: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(23, 190, 207),
    ];
    P[i % P.len()]
}

fn draw_err<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> anyhow::Error + '_ {
    move |e| anyhow!("drawing {}: {e}", path.display())
}

/// The bins of a histogram of `values` in `bins` equal widths: (lower edge, width, counts).
pub(crate) fn bin(values: &[u64], bins: usize) -> Option<(u64, u64, Vec<u32>)> {
    let lo = *values.iter().min()?;
    let hi = *values.iter().max()?;
    let bins = bins.max(1) as u64;
    let width = ((hi - lo) / bins + 1).max(1);
    let mut counts = vec![0u32; ((hi - lo) / width + 1) as usize];
    for v in values {
        counts[((v - lo) / width) as usize] += 1;
    }
    Some((lo, width, counts))
}

/// A histogram of `values` (e.g. the gas of every step) in about `bins` bins.
pub(crate) fn histogram(
    path: &Path,
    title: &str,
    x_desc: &str,
    values: &[u64],
    bins: usize,
) -> Result<()> {
    let (lo, width, counts) = bin(values, bins).ok_or_else(|| anyhow!("{title}: no values"))?;
    let err = draw_err(path);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let top = counts.iter().copied().max().unwrap_or(1);
    let n = counts.len() as u32;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((0u32..n).into_segmented(), 0u32..top + top / 10 + 1)
        .map_err(&err)?;
    let edge = |v: &SegmentValue<u32>| match v {
        SegmentValue::Exact(i) | SegmentValue::CenterOf(i) => {
            format!("{}", lo + u64::from(*i) * width)
        }
        SegmentValue::Last => String::new(),
    };
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("steps")
        .x_label_formatter(&edge)
        .x_labels(10)
        .draw()
        .map_err(&err)?;
    chart
        .draw_series(
            Histogram::vertical(&chart)
                .style(colour(0).filled())
                .margin(1)
                .data(counts.iter().enumerate().map(|(i, c)| (i as u32, *c))),
        )
        .map_err(&err)?;
    root.present().map_err(&err)?;
    Ok(())
}

/// One bar per label.
pub(crate) fn bars(path: &Path, title: &str, y_desc: &str, bars: &[(String, f64)]) -> Result<()> {
    ensure!(!bars.is_empty(), "{title}: no bars");
    let err = draw_err(path);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let top = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-9) * 1.1;
    let n = bars.len() as u32;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d((0u32..n).into_segmented(), 0f64..top)
        .map_err(&err)?;
    let label = |v: &SegmentValue<u32>| match v {
        SegmentValue::CenterOf(i) => bars
            .get(*i as usize)
            .map(|b| b.0.clone())
            .unwrap_or_default(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .y_desc(y_desc)
        .x_label_formatter(&label)
        .disable_x_mesh()
        .draw()
        .map_err(&err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let i = i as u32;
            Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), b.1),
                ],
                colour(i as usize).filled(),
            )
        }))
        .map_err(&err)?;
    root.present().map_err(&err)?;
    Ok(())
}

/// Named series of (x, y) points over a logarithmic x axis (sizes), a linear y axis.
pub(crate) fn lines(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<()> {
    let points = || series.iter().flat_map(|s| s.1.iter());
    let x_lo = points().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let x_hi = points().map(|p| p.0).fold(0.0, f64::max);
    let y_hi = points().map(|p| p.1).fold(0.0, f64::max);
    ensure!(
        x_lo.is_finite() && x_lo > 0.0 && x_hi >= x_lo,
        "{title}: no points with positive sizes"
    );
    let err = draw_err(path);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (x_lo..x_hi * 1.0001).log_scale(),
            0f64..(y_hi * 1.1).max(1e-9),
        )
        .map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|x| format!("{x:.0e}"))
        .draw()
        .map_err(&err)?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let c = colour(i);
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
            .map_err(&err)?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(&err)?;
    root.present().map_err(&err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::bin;

    #[test]
    fn bins_cover_every_value_once() {
        let cases: [(&[u64], usize, Option<(u64, u64, Vec<u32>)>); 4] = [
            (&[], 10, None),
            (&[5], 10, Some((5, 1, vec![1]))),
            (&[0, 9, 10, 19], 2, Some((0, 10, vec![2, 2]))),
            (&[100, 100, 101], 40, Some((100, 1, vec![2, 1]))),
        ];
        for (values, bins, want) in cases {
            let got = bin(values, bins);
            assert_eq!(got, want, "{values:?} in {bins}");
            if let Some((_, _, counts)) = got {
                assert_eq!(counts.iter().sum::<u32>() as usize, values.len());
            }
        }
    }
}
