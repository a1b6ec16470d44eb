//! Ctrl-C and SIGTERM as a request to stop, not a kill: long loops (generating forever, training)
//! poll [`requested`] and finish cleanly — the current token written, output flushed, the terminal
//! left on a fresh line. A second signal while the first is being honoured exits at once, for a
//! loop that is stuck — but only a second *request*: `timeout -s INT` signals the process and then
//! its whole process group, so one request often arrives twice within microseconds, and treating
//! that as "stuck" used to skip the checkpoint of an interrupted run.

use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(feature = "cli")]
use std::sync::OnceLock;
#[cfg(feature = "cli")]
use std::time::{Duration, Instant};

#[cfg(feature = "cli")]
use crate::error::{Error, Result};

/// The conventional exit code of a program ended by Ctrl-C (128 + SIGINT).
pub const EXIT_INTERRUPTED: u8 = 130;

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Signals this soon after the first are the same request delivered twice.
#[cfg(feature = "cli")]
const SAME_REQUEST: Duration = Duration::from_millis(500);

/// Routes Ctrl-C and SIGTERM to [`requested`]. Safe to call more than once. (A program built on
/// the library without the `cli` feature routes its own signals, or anything else, to
/// [`request`].)
#[cfg(feature = "cli")]
pub fn install() -> Result<()> {
    static INSTALLED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            static FIRST: OnceLock<Instant> = OnceLock::new();
            ctrlc::set_handler(|| {
                let first = *FIRST.get_or_init(Instant::now);
                if REQUESTED.swap(true, Ordering::SeqCst) && first.elapsed() >= SAME_REQUEST {
                    // `_exit`, not `std::process::exit`: this is the handler's thread, and exit's
                    // C++ static destructors (libtorch's) would run while the main thread is
                    // still inside libtorch — a segmentation fault, seen under `timeout`.
                    // SAFETY: `_exit` takes no pointers and does not return.
                    unsafe { libc::_exit(EXIT_INTERRUPTED.into()) }
                }
            })
            .map_err(|error| error.to_string())
        })
        .clone()
        .map_err(|message| Error::Usage(format!("cannot handle Ctrl-C: {message}")))
}

/// Asks the loops polling [`requested`] (training, endless sampling) to stop after their current
/// step, as Ctrl-C does.
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Whether Ctrl-C or SIGTERM has arrived since [`install`], or [`request`] was called.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
