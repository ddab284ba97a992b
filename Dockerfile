# chatd container image.
#
#   docker build -t chatd .
#   docker run --rm -p 8080:8080 -e REDIS_URL=redis://redis:6379/0 chatd
#
# Without REDIS_URL the image runs chatd's in-process, memory-only store
# (there is no redis-server in it), so history does not survive a restart;
# use compose.yaml for the full stack.

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, so a code change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/chatd ./cmd/chatd

# alpine rather than distroless: HEALTHCHECK needs a shell and wget.
FROM alpine:3.20
RUN addgroup -S -g 10001 chatd \
 && adduser -S -D -H -u 10001 -G chatd -h /data chatd \
 && mkdir -p /data \
 && chown chatd:chatd /data
COPY --from=build /out/chatd /usr/local/bin/chatd
# Numeric, so runtimes that require a non-root user can verify it.
USER 10001:10001
WORKDIR /data
ENV CHAT_ADDR=:8080 \
    CHAT_DATA_DIR=/data
EXPOSE 8080
# /healthz answers 200 while the process runs; readiness (/readyz) is for
# load balancers, not for restarting the container. The URL assumes the
# default CHAT_ADDR.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD wget -qO- http://127.0.0.1:8080/healthz >/dev/null || exit 1
# chatd drains on SIGTERM within CHAT_SHUTDOWN_GRACE (10s by default);
# give "docker stop" a longer timeout if you raise it.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/chatd"]
