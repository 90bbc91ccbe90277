# The image the Helm chart runs: the `cairn` binary (node, gateway and admin client; it links
# only glibc and libgcc) on a distroless base, as a non-root user.
#   docker build -t cairn:0.1.0 .

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p cairn-gateway --bin cairn \
    && strip target/release/cairn \
    && cp target/release/cairn /cairn

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /cairn /usr/local/bin/cairn
# 7000: node RPC; 9000: S3; 9001: admin API and health.
EXPOSE 7000 9000 9001
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/cairn"]
