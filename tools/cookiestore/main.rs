//! The `cookiestore` command-line tool (placeholder until the CLI lands).
fn main() {
    eprintln!("cookiestore: not implemented yet");
    std::process::exit(2);
}
