fn main() {
    std::process::exit(nprt::cli::main());
}
