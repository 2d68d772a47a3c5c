#!/usr/bin/env bash
# Builds the images compose.yaml names, on this machine, from what it can
# reach without an image registry (the Go module proxy, Debian's mirror):
#
#   steward:dev        `make image`: bin/steward on scratch (the Dockerfile's
#                      prebuilt target)
#   nats:2.15-alpine   nats-server from its Go module (the version Steward is
#                      tested with) and busybox's wget, on scratch
#   postgres:15        Debian bookworm's postgresql-15 on a base made with
#                      debootstrap and `docker import`
#
# With a registry, compose pulls the official nats and postgres images
# instead; these keep their interface (see each Dockerfile). An image that
# is already there is kept (FORCE=1 rebuilds them); steward:dev is always
# rebuilt. Needs root (debootstrap), docker, Go.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
work="$root/bin/images"
mkdir -p "$work"

NATS_IMAGE=nats:2.15-alpine
POSTGRES_IMAGE=postgres:15
BASE_IMAGE=steward-local/debian:bookworm
# The mirror this machine's apt uses (deb822 or one-line sources).
MIRROR=${DEBIAN_MIRROR:-$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
	sed -n 's/^URIs: *\([^ ]*\).*/\1/p; s/^deb \(\[[^]]*\] \)\{0,1\}\(http[^ ]*debian\) .*/\2/p' |
	grep -v security | head -n 1 || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

log() { printf '[images %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
have() { [ "${FORCE:-}" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }
timed() { # timed <what> <command...>: run it and say how long it took
	local what=$1 start=$SECONDS
	shift
	"$@"
	log "$what: $((SECONDS - start))s"
}

steward_image() { make -C "$root" image; }

nats_image() {
	local ctx="$work/nats" version
	mkdir -p "$ctx"
	version=$(cd "$root" && go list -m -f '{{.Version}}' github.com/nats-io/nats-server/v2)
	(cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$ctx/nats-server" github.com/nats-io/nats-server/v2)
	if [ ! -x "$ctx/busybox" ]; then
		local tmp
		tmp=$(mktemp -d)
		(cd "$tmp" && apt-get -o APT::Sandbox::User=root download busybox-static >/dev/null && dpkg-deb -x busybox-static_*.deb x)
		cp "$tmp/x/bin/busybox" "$ctx/busybox"
		rm -rf "$tmp"
	fi
	cp "$here/nats/Dockerfile" "$ctx/"
	docker build -q --build-arg NATS_VERSION="$version" -t "$NATS_IMAGE" "$ctx"
	docker run --rm "$NATS_IMAGE" nats-server --version
}

base_image() {
	local rootfs="$work/debian-rootfs"
	rm -rf "$rootfs"
	debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 ||
		{ tail -n 20 "$work/debootstrap.log"; return 1; }
	cat >"$rootfs/etc/apt/sources.list" <<-SOURCES
		deb $MIRROR bookworm main
		deb $MIRROR bookworm-updates main
		deb ${MIRROR%/debian}/debian-security bookworm-security main
	SOURCES
	rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
	tar -C "$rootfs" -c . | docker import - "$BASE_IMAGE" >/dev/null
	rm -rf "$rootfs"
}

postgres_image() {
	docker build -q --build-arg BASE="$BASE_IMAGE" -t "$POSTGRES_IMAGE" "$here/postgres"
	docker run --rm --entrypoint postgres "$POSTGRES_IMAGE" --version
}

timed "steward:dev" steward_image
if have "$NATS_IMAGE"; then log "$NATS_IMAGE: present"; else timed "$NATS_IMAGE" nats_image; fi
if have "$POSTGRES_IMAGE"; then
	log "$POSTGRES_IMAGE: present"
else
	if have "$BASE_IMAGE"; then log "$BASE_IMAGE: present"; else timed "$BASE_IMAGE (debootstrap)" base_image; fi
	timed "$POSTGRES_IMAGE" postgres_image
fi
