//! `gptbuild plot`: loss curves of one or more runs (their `metrics.csv`) in one PNG — validation
//! loss solid, training loss dashed, one colour per run — optionally beside the course's reference
//! curves (`course/reference-losses.csv`, built in). The vertical axis is the loss per token, or
//! the validation split's bits per character: the one to compare runs with different tokenizers by.

use std::f64::consts::LN_2;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::artifacts::metrics::read_rows;
use crate::error::{Error, Result};

/// The course's curves for tasks 1–7: `task,iteration,train_loss,val_loss`.
const REFERENCE: &str = include_str!("../../course/reference-losses.csv");

/// Fonts tried when `$GPTBUILD_FONT` is not set (plotters draws text with a TrueType font).
const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/Library/Fonts/Arial.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// What the horizontal axis counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum XAxis {
    /// Training iterations.
    #[default]
    Iteration,
    /// Wall-clock minutes since the run started (`elapsed_seconds` of metrics.csv).
    Minutes,
}

impl XAxis {
    fn description(self) -> &'static str {
        match self {
            XAxis::Iteration => "iteration",
            XAxis::Minutes => "wall-clock minutes",
        }
    }
}

/// What the vertical axis measures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum YAxis {
    /// Cross-entropy per token (nats), training and validation.
    #[default]
    Loss,
    /// The validation loss in bits per character of text (`val_bits_per_character` of
    /// metrics.csv), comparable across tokenizers; there is no training curve in these units.
    BitsPerCharacter,
}

impl YAxis {
    fn description(self) -> &'static str {
        match self {
            YAxis::Loss => "cross-entropy (nats per token)",
            YAxis::BitsPerCharacter => "validation bits per character",
        }
    }
}

/// How to draw.
#[derive(Debug, Clone, Default)]
pub struct PlotStyle {
    pub x_axis: XAxis,
    pub y_axis: YAxis,
    /// Leave out the training curves.
    pub val_only: bool,
    /// The caption; a default names the line styles.
    pub title: Option<String>,
    /// Cut the vertical axis here, so that late differences are not flattened by the first losses.
    pub y_max: Option<f64>,
}

/// One run's (or the course's) losses by iteration (or by minute).
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub label: String,
    pub train: Vec<(f64, f64)>,
    pub val: Vec<(f64, f64)>,
}

impl Curve {
    /// The curve of the run in `dir`: its `metrics.csv`, or, for a directory of runs such as
    /// `runs/task06`, that of the latest run in it. In bits per character it has no training
    /// points, and a file written before that column existed is an error naming it.
    pub fn of_run(dir: &Path, x_axis: XAxis, y_axis: YAxis) -> Result<Curve> {
        let run = if dir.join("metrics.csv").is_file() {
            dir.to_path_buf()
        } else {
            latest_run(dir)?
        };
        let path = run.join("metrics.csv");
        let rows = read_rows(&path)?
            .iter()
            .map(|row| {
                let x = match x_axis {
                    XAxis::Iteration => row.iteration as f64,
                    XAxis::Minutes => row.elapsed_seconds / 60.0,
                };
                match y_axis {
                    YAxis::Loss => Ok([x, row.train_loss, row.val_loss]),
                    YAxis::BitsPerCharacter => row
                        .val_bits_per_character
                        .map(|bits| [x, f64::NAN, bits])
                        .ok_or_else(|| {
                            Error::Usage(format!(
                                "{} has no val_bits_per_character (written before they were \
                                 recorded); plot it with --y loss",
                                path.display()
                            ))
                        }),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let label = run
            .components()
            .rev()
            .take(2)
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("/");
        Ok(curve(label, rows))
    }

    /// The course's curve for `task` (`task01` … `task07`). Its models are character-level, so in
    /// bits per character its validation loss is divided by ln 2.
    pub fn reference(task: &str, y_axis: YAxis) -> Result<Curve> {
        let rows: Vec<[f64; 3]> = csv::Reader::from_reader(REFERENCE.as_bytes())
            .deserialize::<ReferenceRow>()
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Usage(format!("malformed reference row: {e}")))?
            .into_iter()
            .filter(|row| row.task == task)
            .map(|row| {
                let x = row.iteration as f64;
                match y_axis {
                    YAxis::Loss => [x, row.train_loss, row.val_loss],
                    YAxis::BitsPerCharacter => [x, f64::NAN, row.val_loss / LN_2],
                }
            })
            .collect();
        if rows.is_empty() {
            return Err(Error::Usage(format!(
                "no reference curve for {task:?}; the course has task01 … task07"
            )));
        }
        Ok(curve(format!("course {task}"), rows))
    }
}

/// Draws `curves` into a PNG at `out` (`width` × `height` pixels).
pub fn draw(
    curves: &[Curve],
    out: &Path,
    (width, height): (u32, u32),
    style: &PlotStyle,
) -> Result<()> {
    register_font()?;
    let failed =
        |e: &dyn std::fmt::Display| Error::Usage(format!("drawing {}: {e}", out.display()));
    let val_only = style.val_only || style.y_axis == YAxis::BitsPerCharacter;
    let points = curves.iter().flat_map(|c| {
        let train: &[(f64, f64)] = if val_only { &[] } else { &c.train };
        train.iter().chain(&c.val)
    });
    let (mut x_max, mut y_min, mut y_max) = (1.0f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in points.filter(|(_, y)| y.is_finite()) {
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    if !y_min.is_finite() {
        return Err(Error::Usage(
            "nothing to plot: the runs have no evaluations".into(),
        ));
    }
    if let Some(limit) = style.y_max.filter(|limit| *limit > y_min) {
        y_max = y_max.min(limit);
    }
    let pad = ((y_max - y_min) * 0.05).max(0.01);

    let root = BitMapBackend::new(out, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let caption = style.title.clone().unwrap_or_else(|| {
        if style.y_axis == YAxis::BitsPerCharacter {
            "validation bits per character".to_string()
        } else if val_only {
            "validation loss".to_string()
        } else {
            "loss (solid: validation, dashed: training)".to_string()
        }
    });
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, (y_min - pad)..(y_max + pad))
        .map_err(|e| failed(&e))?;
    chart
        .configure_mesh()
        .x_desc(style.x_axis.description())
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc(style.y_axis.description())
        .draw()
        .map_err(|e| failed(&e))?;
    for (i, curve) in curves.iter().enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(curve.val.clone(), colour.stroke_width(2)))
            .map_err(|e| failed(&e))?
            .label(curve.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(2))
            });
        if val_only {
            continue;
        }
        chart
            .draw_series(DashedLineSeries::new(
                curve.train.clone(),
                6,
                4,
                colour.stroke_width(1),
            ))
            .map_err(|e| failed(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| failed(&e))?;
    root.present().map_err(|e| failed(&e))
}

/// A curve from `[x, train, val]` rows; a training loss that is not a number (none, in bits per
/// character) is left out.
fn curve(label: String, rows: Vec<[f64; 3]>) -> Curve {
    Curve {
        label,
        train: rows
            .iter()
            .filter(|r| r[1].is_finite())
            .map(|r| (r[0], r[1]))
            .collect(),
        val: rows.iter().map(|r| (r[0], r[2])).collect(),
    }
}

/// A row of the course's reference curves.
#[derive(Debug, serde::Deserialize)]
struct ReferenceRow {
    task: String,
    iteration: i64,
    train_loss: f64,
    val_loss: f64,
}

/// The latest run directory (by name: run ids are UTC timestamps) with a `metrics.csv` in `dir`.
fn latest_run(dir: &Path) -> Result<PathBuf> {
    let entries =
        std::fs::read_dir(dir).map_err(Error::io(format!("reading {}", dir.display())))?;
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("metrics.csv").is_file())
        .max()
        .ok_or_else(|| {
            Error::Usage(format!(
                "{} holds no metrics.csv, nor runs that do",
                dir.display()
            ))
        })
}

/// Gives plotters a TrueType font for its text, once.
fn register_font() -> Result<()> {
    static REGISTERED: std::sync::OnceLock<std::result::Result<(), String>> =
        std::sync::OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let path = std::env::var_os("GPTBUILD_FONT")
                .map(PathBuf::from)
                .or_else(|| {
                    FONT_CANDIDATES
                        .iter()
                        .map(PathBuf::from)
                        .find(|p| p.is_file())
                })
                .ok_or("no TrueType font found for the plot's text; set GPTBUILD_FONT=/path/to/font.ttf")?;
            let bytes = crate::files::read_bytes(&path).map_err(|e| format!("font {}: {e}", path.display()))?;
            // plotters keeps fonts for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| format!("font {} is not a usable TrueType font", path.display()))
        })
        .clone()
        .map_err(Error::Usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_course_reference_has_every_task() {
        for task in ["task01", "task06", "task07"] {
            let curve = Curve::reference(task, YAxis::Loss).unwrap();
            assert_eq!(curve.val.first().map(|p| p.0), Some(0.0));
            assert!(curve.val.len() >= 10, "{task}");
        }
        assert_eq!(
            Curve::reference("task06", YAxis::Loss).unwrap().val[9],
            (4500.0, 2.0686)
        );
        let bits = Curve::reference("task06", YAxis::BitsPerCharacter).unwrap();
        assert_eq!(bits.val[9], (4500.0, 2.0686 / LN_2));
        assert!(bits.train.is_empty());
        assert!(Curve::reference("task10", YAxis::Loss).is_err());
        assert!(
            Curve::reference("task0", YAxis::Loss).is_err(),
            "a prefix is not a task"
        );
    }

    #[test]
    fn run_curves_come_from_metrics_csv_in_iterations_or_minutes() {
        let dir = tempfile::tempdir().unwrap();
        let csv =
            "iteration,train_loss,val_loss,elapsed_seconds\n0,4.2,4.3,0.0\n500,2.5,2.6,120.0\n";
        std::fs::write(dir.path().join("metrics.csv"), csv).unwrap();
        let curve = Curve::of_run(dir.path(), XAxis::Iteration, YAxis::Loss).unwrap();
        assert_eq!(curve.val, [(0.0, 4.3), (500.0, 2.6)]);
        assert_eq!(curve.train, [(0.0, 4.2), (500.0, 2.5)]);
        let curve = Curve::of_run(dir.path(), XAxis::Minutes, YAxis::Loss).unwrap();
        assert_eq!(curve.val, [(0.0, 4.3), (2.0, 2.6)]);
        let error = Curve::of_run(dir.path(), XAxis::Iteration, YAxis::BitsPerCharacter)
            .unwrap_err()
            .to_string();
        assert!(error.contains("has no val_bits_per_character"), "{error}");

        std::fs::write(
            dir.path().join("metrics.csv"),
            "iteration,train_loss,val_loss,val_bits_per_character,elapsed_seconds\n\
             0,4.2,4.3,2.5,0.0\n500,2.5,2.6,1.5,120.0\n",
        )
        .unwrap();
        let bits = Curve::of_run(dir.path(), XAxis::Iteration, YAxis::BitsPerCharacter).unwrap();
        assert_eq!(bits.val, [(0.0, 2.5), (500.0, 1.5)]);
        assert!(
            bits.train.is_empty(),
            "no training curve in bits per character"
        );
        std::fs::write(
            dir.path().join("metrics.csv"),
            "iteration,train_loss,val_loss,elapsed_seconds\n1,x,2,3\n",
        )
        .unwrap();
        let error = Curve::of_run(dir.path(), XAxis::Iteration, YAxis::Loss)
            .unwrap_err()
            .to_string();
        assert!(error.contains("metrics.csv: malformed row"), "{error}");
    }
}
