use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = optbridge::cli::Cli::parse();
    match optbridge::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
