//! The `yujing` binary: everything is in the library (`yujing::cli`).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    yujing::cli::main()
}
