//! The fake API server as its own process, so a harness can measure the operator alone.
//! Prints its address on the first line of stdout, then serves until killed.

use std::io::Write;

#[tokio::main]
async fn main() {
    let server = e2e::fake_api::FakeApiServer::start().await;
    println!("{}", server.address());
    std::io::stdout().flush().expect("stdout");
    std::future::pending::<()>().await;
}
