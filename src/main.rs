use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    jhf_warp::cli::run(jhf_warp::cli::Cli::parse())
}
