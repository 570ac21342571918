#!/usr/bin/env bash
# Build the lab's base image when it is missing; reuse it when its recipe is unchanged.
#
# The tag is a hash of this directory's recipe files, so editing the recipe builds a new image
# and a warm run costs one `docker image inspect`. Prints the image reference on stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
suite=${LAB_DEBIAN_SUITE:-trixie}
mirror=${LAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
repo=${LAB_IMAGE_REPO:-rabbitmq-lab/debian}

hash=$(cat "$here/build.sh" "$here/Dockerfile" "$here/packages.txt" "$here/masked-units.txt" \
       <(printf '%s %s\n' "$suite" "$mirror") | sha256sum | cut -c1-12)
image="$repo:$suite-$hash"

log() { printf '[image] %s\n' "$*" >&2; }

if docker image inspect "$image" >/dev/null 2>&1; then
  log "reusing $image"
  echo "$image"
  exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  log "installing debootstrap on the controller"
  if [ "$(id -u)" -ne 0 ]; then
    log "debootstrap is missing and this is not root: run 'sudo apt-get install debootstrap'"
    exit 1
  fi
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/lab-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"

include=$(grep -Ev '^\s*(#|$)' "$here/packages.txt" | paste -sd, -)
log "debootstrap $suite ($include)"
start=$(date +%s)
debootstrap --variant=minbase --include="$include" "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  exit 1
}

log "masking container-hostile units"
grep -Ev '^\s*(#|$)' "$here/masked-units.txt" | while read -r unit; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done

# A fresh machine-id per container (systemd writes one at first boot into an empty file).
: >"$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id"
printf 'deb %s %s main\ndeb %s %s-updates main\ndeb http://security.debian.org/debian-security %s-security main\n' \
  "$mirror" "$suite" "$mirror" "$suite" "$suite" >"$rootfs/etc/apt/sources.list"
# Hosts are lean: no recommends unless a role asks for them.
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$rootfs/etc/apt/apt.conf.d/90lab-norecommends"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
# An empty package list must look stale, or `apt: cache_valid_time` skips the first update.
touch -d @0 "$rootfs/var/lib/apt/lists"

tar -C "$rootfs" -cf "$work/rootfs.tar" .
cp "$here/Dockerfile" "$work/Dockerfile"
log "docker build $image"
DOCKER_BUILDKIT=0 docker build -q --label "lab.recipe=$hash" -t "$image" "$work" >&2
log "built $image in $(( $(date +%s) - start )) s"
echo "$image"
