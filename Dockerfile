# nsexporter container image: one statically linked binary on an empty (scratch) base.
#
# No base image can be pulled where this project is built, so there is no build stage:
# build the static binary on the host first, then the image. tests/docker/build-image.sh
# does both (and checks that the binary really is static):
#
#   RUSTFLAGS='-C target-feature=+crt-static' \
#     cargo build --release --target x86_64-unknown-linux-gnu
#   docker build -t nsexporter .
#
# Run it the way the Helm chart does: host /proc read-only at /host/proc, every
# capability dropped but CAP_SYS_PTRACE, read-only root filesystem, no host network:
#
#   docker run --read-only --cap-drop ALL --cap-add SYS_PTRACE \
#     -v /proc:/host/proc:ro -p 127.0.0.1:9816:9816 nsexporter
FROM scratch

# Path of the static binary inside the build context (build-image.sh stages it as
# ./nsexporter; from the repository root the default below applies).
ARG BINARY=target/x86_64-unknown-linux-gnu/release/nsexporter
COPY ${BINARY} /nsexporter

# Root (UID 0 in the host user namespace) on purpose: reading another process's
# /proc/<pid>/ns links needs ptrace read access, and neither Docker nor Kubernetes gives
# added capabilities to a non-root user (no ambient capabilities), so a non-root user
# would lose CAP_SYS_PTRACE. Everything else is taken away at run time: all other
# capabilities dropped, read-only root filesystem, no privilege escalation.
USER 0:0

EXPOSE 9816
# The binary is PID 1 here: it handles SIGTERM/SIGINT itself and spawns no children,
# so there is nothing to reap.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/nsexporter"]
CMD ["--path.procfs=/host/proc"]

LABEL org.opencontainers.image.title="nsexporter" \
      org.opencontainers.image.description="Prometheus exporter for Linux namespaces: host-namespace sharing, host-root containers and namespace capacity, per node" \
      org.opencontainers.image.licenses="Apache-2.0"
