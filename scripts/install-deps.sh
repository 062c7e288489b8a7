#!/usr/bin/env bash
# Installs the Debian packages the test lab needs (tgt, libiscsi, QEMU, btrfs/xfs tools, socat,
# PostgreSQL 15, iproute2, util-linux, coreutils). Idempotent: when everything is present it only
# checks for binaries/dpkg status and exits in well under a second. `apt-get update` runs only when
# something is missing.
set -euo pipefail

# package -> a file whose presence proves the package is installed ("" = ask dpkg).
declare -A PROBE=(
  [tgt]=/usr/sbin/tgtd
  [libiscsi-bin]=/usr/bin/iscsi-readcapacity16
  [qemu-system-x86]=/usr/bin/qemu-system-x86_64
  [qemu-utils]=/usr/bin/qemu-img
  [qemu-block-extra]=""
  [btrfs-progs]=/usr/bin/btrfs
  [xfsprogs]=/usr/sbin/mkfs.xfs
  [socat]=/usr/bin/socat
  [postgresql-15]=/usr/lib/postgresql/15/bin/initdb
  [iproute2]=/usr/bin/ip
  [util-linux]=/usr/bin/losetup
  [coreutils]=/usr/bin/truncate
  [openssl]=/usr/bin/openssl
)
ORDER=(tgt libiscsi-bin qemu-system-x86 qemu-utils qemu-block-extra btrfs-progs xfsprogs socat
  postgresql-15 iproute2 util-linux coreutils openssl)

is_installed() {
  local pkg="$1" probe="${PROBE[$1]}"
  # Debian 12 is merged-/usr: /sbin and /usr/sbin are the same, but accept either spelling.
  if [[ -n "$probe" ]] && { [[ -x "$probe" ]] || [[ -x "${probe#/usr}" ]]; }; then
    return 0
  fi
  [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" == "install ok installed" ]]
}

missing=()
for pkg in "${ORDER[@]}"; do
  is_installed "$pkg" || missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

echo "install-deps: installing missing packages: ${missing[*]}" >&2
SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
  else
    echo "install-deps: not root and no sudo; install these packages by hand: ${missing[*]}" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -o DPkg::Lock::Timeout=600)
"${SUDO[@]}" "${APT[@]}" update -q
"${SUDO[@]}" "${APT[@]}" install -y -q --no-install-recommends "${missing[@]}"

still=()
for pkg in "${missing[@]}"; do
  is_installed "$pkg" || still+=("$pkg")
done
if [[ ${#still[@]} -ne 0 ]]; then
  echo "install-deps: still missing after apt-get install: ${still[*]}" >&2
  exit 1
fi
echo "install-deps: done" >&2
