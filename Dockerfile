# The tenantry binary on a slim Debian. Build: docker build -t tenantry .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The generic x86-64 target: the image may run on CPUs without AVX2 (see .cargo/config.toml).
RUN RUSTFLAGS="-C target-cpu=x86-64" cargo build --release -p tenantry --bin tenantry

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/tenantry /usr/local/bin/tenantry
USER 10001
ENTRYPOINT ["tenantry"]
