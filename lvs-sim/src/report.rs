//! SVG charts (plotters, SVG backend only): a run's time series, and a sweep's p99 against
//! offered load.

use plotters::prelude::*;

use crate::experiments::SweepPoint;
use crate::results::Summary;

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("drawing the SVG: {e}")
}

fn top(v: impl Iterator<Item = f64>) -> f64 {
    let m = v.filter(|x| x.is_finite()).fold(0.0, f64::max);
    if m <= 0.0 {
        1.0
    } else {
        m * 1.1
    }
}

/// The charts of a run (its first replication): response-time percentiles of the first
/// service over time, utilisation per real server, the director's active connections per
/// real server; failures, repairs, health decisions and failovers are marked as vertical
/// lines. Returns the SVG text.
pub fn run_svg(s: &Summary) -> Result<String, String> {
    let mut buf = String::new();
    let run = &s.runs[0];
    let rows = &run.series;
    let tmax = rows.last().map_or(1.0, |r| r.t).max(1e-9);
    {
        let root = SVGBackend::with_string(&mut buf, (1000, 1050)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (title, rest) = root.split_vertically(40);
        title
            .draw_text(
                &format!(
                    "{} [{}]: replication 0; marks: {} events",
                    s.scenario,
                    s.label,
                    run.log.len()
                ),
                &("sans-serif", 20).into_font().color(&BLACK),
                (10, 10),
            )
            .map_err(err)?;
        let areas = rest.split_evenly((3, 1));
        let marks: Vec<f64> = run.log.iter().map(|e| e.t).collect();

        // 1. latency percentiles.
        let ymax = top(rows.iter().flat_map(|r| r.services.first().map(|x| x.p99)));
        let mut c = ChartBuilder::on(&areas[0])
            .caption(
                "response time percentiles (ms), first service",
                ("sans-serif", 16),
            )
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..tmax, 0f64..ymax)
            .map_err(err)?;
        c.configure_mesh().x_desc("time (s)").draw().map_err(err)?;
        for &m in &marks {
            c.draw_series(LineSeries::new(vec![(m, 0.0), (m, ymax)], BLACK.mix(0.3)))
                .map_err(err)?;
        }
        let names = ["p50", "p95", "p99"];
        for (k, name) in names.iter().enumerate() {
            let col = COLORS[k];
            c.draw_series(LineSeries::new(
                rows.iter()
                    .filter_map(|r| r.services.first().map(|x| (r.t, [x.p50, x.p95, x.p99][k]))),
                col,
            ))
            .map_err(err)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col));
        }
        c.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;

        // 2. utilisation, 3. active connections.
        for (panel, (caption, f)) in [
            (
                "utilisation per real server",
                (&|x: &crate::results::SrvSample| x.utilisation) as &dyn Fn(_) -> f64,
            ),
            (
                "active connections per real server (the director's count)",
                &|x: &crate::results::SrvSample| x.active as f64,
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let ymax = if panel == 0 {
                1.05
            } else {
                top(rows.iter().flat_map(|r| r.servers.iter().map(f)))
            };
            let mut c = ChartBuilder::on(&areas[panel + 1])
                .caption(caption, ("sans-serif", 16))
                .margin(8)
                .x_label_area_size(28)
                .y_label_area_size(60)
                .build_cartesian_2d(0f64..tmax, 0f64..ymax)
                .map_err(err)?;
            c.configure_mesh().x_desc("time (s)").draw().map_err(err)?;
            for &m in &marks {
                c.draw_series(LineSeries::new(vec![(m, 0.0), (m, ymax)], BLACK.mix(0.3)))
                    .map_err(err)?;
            }
            for (i, srv) in s.servers.iter().enumerate() {
                let col = COLORS[i % COLORS.len()];
                c.draw_series(LineSeries::new(
                    rows.iter().map(|r| (r.t, f(&r.servers[i]))),
                    col,
                ))
                .map_err(err)?
                .label(srv.server.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col));
            }
            c.configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(buf)
}

/// p99 against offered load, one line per scheduler. Returns the SVG text.
pub fn sweep_svg(title: &str, pts: &[SweepPoint]) -> Result<String, String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (900, 600)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let xmax = top(pts.iter().map(|p| p.offered_load));
        let ymax = top(pts.iter().map(|p| p.p99.mean + p.p99.ci95));
        let mut c = ChartBuilder::on(&root)
            .caption(
                format!("{title}: p99 response time (ms) against offered load"),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..xmax, 0f64..ymax)
            .map_err(err)?;
        c.configure_mesh()
            .x_desc("offered load (work / capacity)")
            .y_desc("p99 (ms)")
            .draw()
            .map_err(err)?;
        let mut scheds: Vec<&str> = Vec::new();
        for p in pts {
            if !scheds.contains(&p.scheduler.as_str()) {
                scheds.push(&p.scheduler);
            }
        }
        for (i, s) in scheds.iter().enumerate() {
            let col = COLORS[i % COLORS.len()];
            let line: Vec<(f64, f64)> = pts
                .iter()
                .filter(|p| p.scheduler == *s && p.p99.mean.is_finite())
                .map(|p| (p.offered_load, p.p99.mean))
                .collect();
            c.draw_series(LineSeries::new(line.clone(), col))
                .map_err(err)?
                .label(*s)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col));
            c.draw_series(
                line.iter()
                    .map(|&(x, y)| Circle::new((x, y), 3, col.filled())),
            )
            .map_err(err)?;
        }
        c.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(buf)
}
