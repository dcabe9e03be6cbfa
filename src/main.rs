//! The `medallion` binary: parse arguments, build the runtime, run the command, and turn an
//! error into a message and an exit code (2 for usage errors, 1 for failures).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = medallion::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(medallion::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.chain());
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
