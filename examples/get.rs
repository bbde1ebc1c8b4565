//! A tiny curl: fetch a URL and print the status, headers and body.
//!
//! `cargo run --example get -- http://127.0.0.1:8888/`

use std::io::Write;

fn main() {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: get URL");
        std::process::exit(2);
    };
    let result = untangle::block_on(async {
        let response = untangle::http::get(url.as_str()).await?;
        println!("{:?} {}", response.version(), response.status());
        for (name, value) in response.headers() {
            println!("{name}: {}", String::from_utf8_lossy(value.as_bytes()));
        }
        println!();
        let body = response.into_body().bytes().await?;
        std::io::stdout().write_all(&body).ok();
        Ok::<_, untangle::http::Error>(())
    });
    if let Err(err) = result {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}
