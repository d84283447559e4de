# One Dockerfile, two images: `--target central` (central-db-update-api) and
# `--target edge` (dbupdate-service). Node 24 runs the TypeScript sources directly,
# exactly as in development and CI, so what the tests prove is what ships.
#
#   docker build --target central -t dbupdate/central .
#   docker buildx build --target edge --platform linux/amd64,linux/arm64 -t REGISTRY/dbupdate/edge --push .
#
# Plain Dockerfile syntax (no `# syntax=` frontend to fetch), so BuildKit and the legacy builder
# both build it with no image registry but the one holding NODE_IMAGE. Build arguments:
#   NODE_IMAGE      the Node 24 base (default the official one; deploy/local-images/ makes a stand-in)
#   EXTRA_CA_CERTS  PEM text of CA certificates npm should trust while it fetches the dependencies,
#                   for networks whose egress re-signs TLS: --build-arg EXTRA_CA_CERTS="$(cat ca.pem)"
#                   (only the deps stage sees it; no image that ships carries it)

ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
ARG EXTRA_CA_CERTS=""
# Production dependencies only; none of them needs an install script.
RUN if [ -n "$EXTRA_CA_CERTS" ]; then \
      printf '%s\n' "$EXTRA_CA_CERTS" > /tmp/extra-ca.pem && export NODE_EXTRA_CA_CERTS=/tmp/extra-ca.pem; \
    fi \
 && npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force && rm -f /tmp/extra-ca.pem

FROM ${NODE_IMAGE} AS runtime
# Memory (docs/scaling.md): two malloc arenas instead of one per thread, so V8's helper
# threads do not each keep their own; and a compile cache filled at build time, so the
# services start without TypeScript type stripping (about 14 MB less, a third sooner).
ENV NODE_ENV=production \
    LOG_FORMAT=json \
    MALLOC_ARENA_MAX=2 \
    NODE_COMPILE_CACHE=/app/.compile-cache \
    NODE_OPTIONS="--disable-warning=ExperimentalWarning"
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
# src/ carries the SQL migrations next to the code that applies them.
COPY src ./src
COPY scripts/warm-compile-cache.ts ./scripts/
# Filled under the entry point's flags, which V8 requires of a code cache.
RUN node scripts/warm-compile-cache.ts
# The image's own unprivileged user; nothing in /app is writable by it.
USER node
STOPSIGNAL SIGTERM
# The script itself is the entry point, so the V8 flag of its shebang applies (no
# allocation-site pretenuring, which otherwise at times judges the streaming's short-lived
# objects long-lived and allocates them old: Central then peaks near 290 MB, not 170 MB).
ENTRYPOINT ["/app/bin/dbupdate.ts"]

FROM runtime AS central
# Each service's young generation (docs/scaling.md, Memory, measures both): Central answers
# many small requests, and 8 MB semi-spaces cut its garbage collection from 23 % to 7 % of
# its CPU; heap sizes do not enter V8's code-cache check, so the compile cache still serves.
ENV PORT=8080 \
    NODE_OPTIONS="--disable-warning=ExperimentalWarning --max-semi-space-size=8"
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+process.env.PORT+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["central", "serve"]

FROM runtime AS edge
# The edge streams one large snapshot on a small board: 2 MB semi-spaces free the Buffer
# garbage of streaming before it piles up (130 MB peak at 1,000,000 users, 231 MB at 8 MB).
ENV PORT=8081 \
    NODE_OPTIONS="--disable-warning=ExperimentalWarning --max-semi-space-size=2"
EXPOSE 8081
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+process.env.PORT+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["edge", "serve"]
