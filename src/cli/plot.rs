//! `gptbuild plot`: loss curves of runs (and the course's) in one PNG.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::workflow::plot::{self, Curve, PlotStyle, XAxis, YAxis};

/// `gptbuild plot`'s arguments.
#[derive(Debug, clap::Args)]
pub struct PlotArgs {
    /// Run directories (holding metrics.csv), or directories of runs.
    #[arg(required_unless_present = "reference")]
    pub runs: Vec<PathBuf>,
    /// Also draw the course's curve for this task (task01 … task07); repeatable.
    #[arg(long, value_name = "TASK")]
    pub reference: Vec<String>,
    /// The PNG to write.
    #[arg(long, default_value = "loss.png")]
    pub out: PathBuf,
    /// Image width in pixels (200 to 8000).
    #[arg(long, default_value_t = 1000)]
    pub width: u32,
    /// Image height in pixels (150 to 8000).
    #[arg(long, default_value_t = 640)]
    pub height: u32,
    /// The horizontal axis: iterations, or wall-clock minutes.
    #[arg(long, value_enum, default_value = "iteration")]
    pub x: XAxis,
    /// The vertical axis: the loss per token, or the validation bits per character (to compare
    /// runs whose tokenizers differ; validation curves only).
    #[arg(long, value_enum, default_value = "loss")]
    pub y: YAxis,
    /// Draw validation curves only.
    #[arg(long)]
    pub val_only: bool,
    /// Legend labels for the runs, in order (default: the run directories).
    #[arg(long)]
    pub label: Vec<String>,
    /// The caption.
    #[arg(long)]
    pub title: Option<String>,
    /// Upper end of the loss axis (zooms in on the late part of the curves).
    #[arg(long)]
    pub y_max: Option<f64>,
}

/// Reads every curve, then draws them.
pub fn execute(args: PlotArgs) -> Result<()> {
    if args.label.len() > args.runs.len() {
        return Err(Error::Usage(format!(
            "{} labels for {} runs",
            args.label.len(),
            args.runs.len()
        )));
    }
    if args.x == XAxis::Minutes && !args.reference.is_empty() {
        return Err(Error::Usage(
            "the course's reference curves have no wall-clock times; use --x iteration".into(),
        ));
    }
    let mut curves = args
        .runs
        .iter()
        .map(|dir| Curve::of_run(dir, args.x, args.y))
        .collect::<Result<Vec<_>>>()?;
    for (curve, name) in curves.iter_mut().zip(args.label) {
        curve.label = name;
    }
    for task in &args.reference {
        curves.push(Curve::reference(task, args.y)?);
    }
    let style = PlotStyle {
        x_axis: args.x,
        y_axis: args.y,
        val_only: args.val_only,
        title: args.title,
        y_max: args.y_max,
    };
    let size = (args.width.clamp(200, 8000), args.height.clamp(150, 8000));
    plot::draw(&curves, &args.out, size, &style)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
