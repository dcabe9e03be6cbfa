//! The `medallion` binary: parse arguments, build the runtime, run the command, and turn an
//! error into a message and an exit code:
//!
//! - 0: done;
//! - 1: failed (the message says what and where);
//! - 2: bad usage (arguments, options, paths);
//! - 3: lost a race: another job committed to the same table first and nothing of this run was
//!   committed to it, so running it again is safe.
//!
//! A panic is a bug: it is reported as one `error: internal error: ...` line (exit 1), never as
//! Rust's panic text. Libraries may also panic on purpose and catch it (object_store's
//! `BufWriter::abort` after a failed upload, which deltalake catches): those print nothing,
//! since the job goes on and reports the real error.

use std::io::Write;
use std::panic::{AssertUnwindSafe, PanicHookInfo};
use std::process::ExitCode;
use std::sync::Mutex;

use clap::Parser;

/// Two malloc arenas instead of glibc's eight per core, unless `MALLOC_ARENA_MAX` says
/// otherwise. Every runtime thread gets an arena of its own, and the short peaks of deltalake's
/// log replays (a checkpoint, a compaction's open) left freed memory in each: x100's bronze
/// peaked at 439 MiB with the default and 330 MiB with two, in 13.6 and 12.4 s (issue 17
/// note). Called before any thread starts.
fn few_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt takes two integers and changes only the allocator's own settings;
        // no other thread exists yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// The process's panics so far, as (message, `file:line`).
static PANICS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(remember_panic));
    few_malloc_arenas();
    let cli = medallion::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}"), 1),
    };
    let outcome =
        std::panic::catch_unwind(AssertUnwindSafe(|| runtime.block_on(medallion::run(cli))));
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => fail(&e.chain(), e.exit_code()),
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            let panics = PANICS.lock().unwrap_or_else(|e| e.into_inner());
            let at = panics
                .iter()
                .find(|(m, _)| *m == message)
                .map(|(_, at)| format!(" (at {at})"))
                .unwrap_or_default();
            fail(&format!("internal error: {message}{at}"), 1)
        }
    }
}

/// Print `error: <message>` on stderr (a closed stderr is not worth a panic) and exit with
/// `code`.
fn fail(message: &str, code: i32) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "error: {message}");
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// The panic hook: note where each panic happened, for `main`; print nothing. A panic that
/// reaches `main` is reported there; one on a worker thread ends its task with an error the
/// job reports; one a library catches is not the user's business.
fn remember_panic(info: &PanicHookInfo<'_>) {
    let at = info
        .location()
        .map(|l| format!("{}:{}", l.file(), l.line()))
        .unwrap_or_default();
    let mut panics = PANICS.lock().unwrap_or_else(|e| e.into_inner());
    panics.push((panic_message(info.payload()), at));
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}
