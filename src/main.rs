// mimalloc: the sender allocates and frees a few kilobytes per message on several threads;
// glibc's allocator took about 12 % of its CPU, mimalloc half of that (BENCHMARKS.md, "Sending").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = optbridge::cli::parse();
    match optbridge::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
