//! The HTTP ceiling of the intake benchmark: bare axum on tokio's multi-threaded runtime,
//! answering every request (any method, any path) with an empty 200 and doing nothing else.
//! Whatever an intake does per webhook (read the form, check the signature, queue a job) costs
//! throughput against this.
//!
//! Usage: `axum-hello [ADDR]` (default `127.0.0.1:8003`).

use axum::Router;
use axum::http::StatusCode;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8003".to_owned());
    let app = Router::new().fallback(|| async { StatusCode::OK });
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
