# syntax=docker/dockerfile:1
#
# nprt as small static images:
#   docker build -t nprt .                      # the default: a static binary on distroless/static
#   docker build --target deploy -t nprt-deploy .   # for `nprt serve`/`canary`: adds git, which
#                                               # the deploy driver runs to read manifests
#
# The binary is linked statically against musl (no C libraries in the default build; the
# optional libpcap engine is left out). The images run as a non-root user (65532); the bundled
# scenarios and recording are in /nprt, so `docker run --rm nprt run /nprt/scenarios/demo.toml`
# works as is. The bundled scenarios write their reports to `../target/nprt-reports/NAME`
# relative to their folder, /nprt/target/nprt-reports/NAME here: /nprt/target is the one folder
# that user owns (the rest of /nprt stays read-only to it), and the place to mount a volume to
# keep the reports:
#   docker run --rm -v nprt-reports:/nprt/target nprt run /nprt/scenarios/demo.toml

FROM rust:1-bookworm AS builder
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target x86_64-unknown-linux-musl --bin nprt \
 && cp target/x86_64-unknown-linux-musl/release/nprt /usr/local/bin/nprt \
 && mkdir -p /out/nprt /out/writable/target \
 && cp -r scenarios replay /out/nprt/

# The deploy API and the deploy commands: the same binary beside git.
FROM alpine:3.20 AS deploy
RUN apk add --no-cache git ca-certificates \
 && adduser -D -u 65532 -g nprt nprt
COPY --from=builder /usr/local/bin/nprt /usr/local/bin/nprt
COPY --from=builder /out/nprt /nprt
# /nprt/target owned by the user the image runs as: copied (not made by WORKDIR or mkdir, which
# would leave it root's, and the distroless stage has no shell to chown it).
COPY --from=builder --chown=65532:65532 /out/writable/ /nprt/
USER 65532:65532
ENV NPRT_CACHE_DIR=/tmp/nprt-cache
ENTRYPOINT ["/usr/local/bin/nprt"]
CMD ["--help"]

# The default: replay, compare, run, shadow, mirror, testbed — nothing but the binary.
FROM gcr.io/distroless/static-debian12:nonroot AS nprt
COPY --from=builder /usr/local/bin/nprt /usr/local/bin/nprt
COPY --from=builder /out/nprt /nprt
# /nprt/target owned by the user the image runs as: copied (not made by WORKDIR or mkdir, which
# would leave it root's, and the distroless stage has no shell to chown it).
COPY --from=builder --chown=65532:65532 /out/writable/ /nprt/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/nprt"]
CMD ["--help"]
