//! Charts as inline SVG, drawn on the server by `plotters` (its SVG backend): no script, no
//! network, readable in any browser; each chart also comes with its numbers as a table.

use plotters::prelude::*;

/// A month's cumulative counted records, day by day, against the monthly cap (if any).
/// `days`: records counted on each day of the month so far (index 0 = the 1st).
pub fn usage_against_cap(days: &[u64], days_in_month: u32, cap: Option<u64>) -> String {
    let mut cumulative = Vec::with_capacity(days.len());
    let mut total = 0u64;
    for (index, counted) in days.iter().enumerate() {
        total += counted;
        cumulative.push((index as u32 + 1, total));
    }
    let top = cap.unwrap_or(0).max(total).max(10);
    let top = top + top / 10;
    let mut svg = String::new();
    let drawn = draw(&mut svg, &cumulative, days_in_month.max(2), top, cap);
    if let Err(error) = drawn {
        tracing::warn!(%error, "could not draw the usage chart");
        return String::new();
    }
    svg
}

fn draw(
    svg: &mut String,
    cumulative: &[(u32, u64)],
    days_in_month: u32,
    top: u64,
    cap: Option<u64>,
) -> Result<(), String> {
    let e = |error: &dyn std::fmt::Display| error.to_string();
    let root = SVGBackend::with_string(svg, (760, 300)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(72)
        .build_cartesian_2d(1u32..days_in_month, 0u64..top)
        .map_err(|x| e(&x))?;
    let text = RGBColor(0x1a, 0x1a, 0x1a);
    chart
        .configure_mesh()
        .x_desc("Day of the month (UTC)")
        .y_desc("Records counted")
        .axis_desc_style(("sans-serif", 14).into_font().color(&text))
        .label_style(("sans-serif", 12).into_font().color(&text))
        .light_line_style(RGBColor(0xee, 0xee, 0xee))
        .draw()
        .map_err(|x| e(&x))?;
    let used = RGBColor(0x1f, 0x4e, 0x99);
    chart.draw_series(LineSeries::new(cumulative.iter().copied(), used.stroke_width(3))).map_err(|x| e(&x))?;
    chart.draw_series(cumulative.iter().map(|&(x, y)| Circle::new((x, y), 3, used.filled()))).map_err(|x| e(&x))?;
    if let Some(cap) = cap {
        let capped = RGBColor(0xb0, 0x1c, 0x1c);
        chart
            .draw_series(LineSeries::new([(1, cap), (days_in_month, cap)], capped.stroke_width(2)))
            .map_err(|x| e(&x))?;
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}
