//! Ctrl-C and SIGTERM as a request to stop, not a kill: long loops (generating forever, training)
//! poll [`requested`] and finish cleanly — the current token written, output flushed, the terminal
//! left on a fresh line. A second signal while the first is being honoured exits at once, for a
//! loop that is stuck.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The conventional exit code of a program ended by Ctrl-C (128 + SIGINT).
pub const EXIT_INTERRUPTED: u8 = 130;

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Routes Ctrl-C and SIGTERM to [`requested`]. Safe to call more than once.
pub fn install() -> Result<()> {
    static INSTALLED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            ctrlc::set_handler(|| {
                if REQUESTED.swap(true, Ordering::SeqCst) {
                    std::process::exit(EXIT_INTERRUPTED.into());
                }
            })
            .map_err(|error| error.to_string())
        })
        .clone()
        .map_err(|message| Error::Usage(format!("cannot handle Ctrl-C: {message}")))
}

/// Whether Ctrl-C or SIGTERM has arrived since [`install`].
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
