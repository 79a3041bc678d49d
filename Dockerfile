# kitbridge in a container: `docker build -t kitbridge .`, then
#   docker run --env-file .env -p 8080:8080 -v kitbridge-data:/var/lib/kitbridge kitbridge run telegram
# The build runs the README's commands (npm ci, npm run build); CI runs the same commands on every
# change (.ci/run), but builds no image (no docker daemon there).
ARG NODE_VERSION=24

FROM node:${NODE_VERSION}-slim AS build
# better-sqlite3 compiles from source when no prebuilt binary can be fetched.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
ENV TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1
RUN npm ci --no-audit --no-fund && npm run build

FROM node:${NODE_VERSION}-slim
ENV NODE_ENV=production \
    KITBRIDGE_STORE=sqlite:/var/lib/kitbridge/kitbridge.db \
    KITBRIDGE_PORT=8080
WORKDIR /app
COPY --from=build --chown=root:root /app /app
# The image's unprivileged user; the store is the only place it writes.
RUN mkdir -p /var/lib/kitbridge && chown node:node /var/lib/kitbridge
USER node
VOLUME /var/lib/kitbridge
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.KITBRIDGE_PORT}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node itself is PID 1 (no npm or npx in between): SIGTERM from `docker stop` reaches kitbridge,
# which drains and exits 0. Give it a stop timeout above KITBRIDGE_DRAIN + 15 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "packages/cli/bin/kitbridge.js"]
CMD ["run", "telegram"]
