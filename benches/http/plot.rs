//! The bench's picture: requests per second of each server, grouped by route and connection
//! count, as an SVG (plotters' SVG backend; no fonts needed, the text stays text).

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One server's bars, one per group (`None` where it failed).
pub struct Series {
    pub label: String,
    pub values: Vec<Option<f64>>,
}

/// Draws grouped bars of `series` over `groups` into an SVG at `path`.
pub fn grouped_bars(
    path: &Path,
    title: &str,
    groups: &[String],
    series: &[Series],
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1000, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let top = series.iter().flat_map(|s| s.values.iter().flatten()).copied().fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(36)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..groups.len() as f64, 0.0..top * 1.25)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(TRANSPARENT)
        .x_labels(0)
        .y_desc("requests per second")
        .y_label_formatter(&|v| format!("{:.0}k", v / 1000.0))
        .draw()?;
    // Each group is one unit wide: bars side by side in its middle 80%.
    let width = 0.8 / series.len().max(1) as f64;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let bars = s.values.iter().enumerate().filter_map(|(g, v)| {
            let x = g as f64 + 0.1 + i as f64 * width;
            v.map(|v| Rectangle::new([(x, 0.0), (x + width * 0.9, v)], color.filled()))
        });
        chart
            .draw_series(bars)?
            .label(s.label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    // Group names under the axis, centred on each group.
    for (g, name) in groups.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(g as f64 + 0.5, 0.0));
        let style = TextStyle::from(("sans-serif", 15)).pos(Pos::new(HPos::Center, VPos::Top));
        root.draw(&Text::new(name.as_str(), (x, y + 10), style))?;
    }
    root.present()?;
    Ok(())
}
