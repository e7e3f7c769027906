#!/usr/bin/env bash
# Container engine bootstrap for scoreloop, idempotent: podman + runc + debootstrap + haproxy from
# Debian, the containers.conf next to this script, and a local Debian base image built with
# debootstrap from this machine's own apt mirror (no image registry is reachable here).
#
#   sudo deploy/container/setup.sh            # or: make image (which also builds the serving image)
#
# Environment:
#   SCORELOOP_BASE_IMAGE   name of the base image (default localhost/scoreloop-base:bookworm)
#   SCORELOOP_APT_MIRROR   Debian mirror for debootstrap (default: read from /etc/apt/sources.list*)
#   SCORELOOP_SUITE        Debian suite (default bookworm, whose python3 is 3.11)
# Re-running changes nothing when everything is present; it prints what it found.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$HERE/containers.conf}"
BASE_IMAGE="${SCORELOOP_BASE_IMAGE:-localhost/scoreloop-base:bookworm}"
SUITE="${SCORELOOP_SUITE:-bookworm}"
# netavark + iptables: the network backend containers.conf names (Debian defaults to CNI without
# its plugins); catatonit: the init `--init` and containers.conf `init = true` run as PID 1.
PACKAGES=(podman runc debootstrap haproxy netavark aardvark-dns iptables catatonit)
COMMANDS=(podman runc debootstrap haproxy /usr/libexec/podman/catatonit)

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

missing=()
for cmd in "${COMMANDS[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
if ((${#missing[@]})); then
    [[ $(id -u) -eq 0 ]] || die "missing ${missing[*]} and not root: run this script as root \
(it apt-installs ${PACKAGES[*]}), or install them yourself"
    log "installing ${PACKAGES[*]} (missing: ${missing[*]})"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${PACKAGES[@]}" ca-certificates >/dev/null
else
    log "podman, runc, debootstrap, haproxy present"
fi

[[ -f $CONTAINERS_CONF ]] || die "CONTAINERS_CONF=$CONTAINERS_CONF does not exist"
log "CONTAINERS_CONF=$CONTAINERS_CONF"

mirror() {
    if [[ -n ${SCORELOOP_APT_MIRROR:-} ]]; then
        printf '%s\n' "$SCORELOOP_APT_MIRROR"
        return
    fi
    # deb822 (.sources: "URIs:" + "Suites:") and one-line ("deb URL SUITE main") formats; the
    # first entry serving the suite's main archive (not -security / -updates) wins.
    local files=() candidate
    for candidate in /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        /etc/apt/sources.list.d/*.sources; do
        [[ -f $candidate ]] && files+=("$candidate")
    done
    ((${#files[@]})) || return 0
    awk -v suite="$SUITE" '
        /^[[:space:]]*#/ { next }
        $1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) break;
                      if ($(i + 1) == suite) { print $i; exit } }
        $1 == "URIs:" { uri = $2 }
        $1 == "Suites:" { for (i = 2; i <= NF; i++) if ($i == suite && uri != "") { print uri; exit } }
        /^[[:space:]]*$/ { uri = "" }
    ' "${files[@]}" | head -n 1
}

if podman image exists "$BASE_IMAGE"; then
    log "base image $BASE_IMAGE present"
else
    [[ $(id -u) -eq 0 ]] || die "base image $BASE_IMAGE missing; debootstrap needs root: re-run as root"
    url="$(mirror)"
    [[ -n $url ]] || die "no apt source for suite $SUITE in /etc/apt/sources.list*: set SCORELOOP_APT_MIRROR"
    root="$(mktemp -d /var/tmp/scoreloop-base.XXXXXX)"
    trap 'rm -rf "$root"' EXIT
    log "debootstrap --variant=minbase $SUITE from $url (about 30 s)"
    debootstrap --variant=minbase "$SUITE" "$root" "$url" >"$root.log" 2>&1 \
        || { tail -n 20 "$root.log" >&2; die "debootstrap failed (log above, full log $root.log)"; }
    rm -f "$root.log"
    # The image's apt must reach the same mirror the build host uses.
    printf 'deb %s %s main\n' "$url" "$SUITE" >"$root/etc/apt/sources.list"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | podman import --quiet - "$BASE_IMAGE" >/dev/null
    log "imported $BASE_IMAGE ($(podman image inspect --format '{{.Size}}' "$BASE_IMAGE") bytes)"
fi
printf '%s\n' "$BASE_IMAGE"
