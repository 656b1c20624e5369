//! The usage chart: counted records per day (bars), the month to date (line) and the monthly
//! cap (line), as an SVG string drawn by `plotters`.

use plotters::prelude::*;

use crate::DayUsage;

const WIDTH: u32 = 760;
const HEIGHT: u32 = 300;

/// The chart of `days` as an SVG document (without the XML namespace attribute, so it can be
/// inlined in HTML; a standalone file needs `xmlns="http://www.w3.org/2000/svg"` added). An empty
/// string when there are no days.
pub fn usage_chart_svg(days: &[DayUsage]) -> String {
    if days.is_empty() {
        return String::new();
    }
    let mut svg = String::new();
    if draw(days, &mut svg).is_err() {
        return String::new();
    }
    svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1)
}

fn draw<'a>(days: &'a [DayUsage], svg: &'a mut String) -> Result<(), Box<dyn std::error::Error + 'a>> {
    let n = days.len() as i32;
    let top = days.iter().map(|d| d.month_to_date.max(d.counted).max(d.cap.unwrap_or(0))).max().unwrap_or(0);
    let top = (top + top / 10).max(10);
    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(64)
        .build_cartesian_2d(0..n, 0u64..top)?;
    let label = |i: &i32| days.get(*i as usize).map(|d| d.day[5..].to_owned()).unwrap_or_default();
    chart.configure_mesh().disable_x_mesh().x_labels(8).x_label_formatter(&label).y_desc("records").draw()?;
    let bars = RGBColor(70, 110, 180);
    chart
        .draw_series(days.iter().enumerate().map(|(i, d)| {
            let i = i as i32;
            Rectangle::new([(i, 0), (i + 1, d.counted)], bars.mix(0.7).filled())
        }))?
        .label("counted per day")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], bars.mix(0.7).filled()));
    let line = RGBColor(200, 120, 20);
    // The month to date restarts with each month: one line per month.
    let mut start = 0;
    let mut first = true;
    while start < days.len() {
        let month = &days[start].day[..7];
        let end = days[start..].iter().position(|d| &d.day[..7] != month).map_or(days.len(), |p| start + p);
        let points: Vec<(i32, u64)> = (start..end)
            .map(|i| (i as i32, days[i].month_to_date))
            .chain([(end as i32, days[end - 1].month_to_date)])
            .collect();
        let series = chart.draw_series(LineSeries::new(points, line.stroke_width(2)))?;
        if first {
            series
                .label("month to date")
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 12, y)], line.stroke_width(2)));
        }
        if let Some(cap) = days[start].cap {
            let cap_series =
                chart.draw_series(LineSeries::new([(start as i32, cap), (end as i32, cap)], RED.stroke_width(2)))?;
            if first {
                cap_series
                    .label("monthly cap")
                    .legend(|(x, y)| PathElement::new([(x, y), (x + 12, y)], RED.stroke_width(2)));
            }
        }
        first = false;
        start = end;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}
