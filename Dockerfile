# syntax=docker/dockerfile:1
# Build: docker build -t actionkit-graphql .   (or buildah bud, see README.md)
# Run:   docker run -p 8000:8000 -e ACTIONKIT_URL=... -e ACTIONKIT_USERNAME=... \
#          -e ACTIONKIT_PASSWORD=... -e GATEWAY_API_KEYS=... actionkit-graphql
#        docker run -p 8000:8000 actionkit-graphql serve --sandbox   (demo data)

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so that source edits do not rebuild them.
COPY Cargo.toml Cargo.lock build.rs ./
COPY .cargo ./.cargo
COPY link ./link
RUN mkdir src && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src target/release/deps/actionkit_graphql* target/release/deps/libactionkit_graphql* \
       target/release/actionkit-graphql*
COPY src ./src
COPY assets ./assets
RUN cargo build --release --locked && strip target/release/actionkit-graphql

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin gateway \
    && mkdir -p /var/lib/actionkit-graphql \
    && chown 10001:10001 /var/lib/actionkit-graphql
COPY --from=build /src/target/release/actionkit-graphql /usr/local/bin/actionkit-graphql
USER 10001:10001
# The submission store (SQLite): mount a volume here to keep queued submissions
# across containers (`-v actionkit-graphql-data:/var/lib/actionkit-graphql`).
ENV GATEWAY_LISTEN=0.0.0.0:8000 \
    GATEWAY_HEALTH_URL=http://127.0.0.1:8000/healthz \
    GATEWAY_DATA_DIR=/var/lib/actionkit-graphql
VOLUME ["/var/lib/actionkit-graphql"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["actionkit-graphql", "healthcheck"]
ENTRYPOINT ["actionkit-graphql"]
CMD ["serve"]
