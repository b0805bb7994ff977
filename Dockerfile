# One image with the four commands. The submitter and watcher also need the site's SLURM
# client tools and munge socket, mounted or installed by the site (see compose.yaml).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/ ./services/planner ./services/submitter ./services/watcher ./services/collector ./services/dashboard

FROM debian:bookworm-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends slurm-client munge ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /usr/local/bin/
WORKDIR /work
