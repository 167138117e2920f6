#!/usr/bin/env bash
# Builds the lbspeaker container image without Docker (run as root on Debian 12):
#   mmdebstrap a Debian bookworm rootfs (Python 3.11, ca-certificates, iproute2) from this machine's
#   own apt sources, install the lbspeaker wheel with extra [bgp] and its dependencies (not
#   editable), and pack it with lbspeaker/lab/mkimage.py as a docker-archive (`ctr images import`).
#
#   bash scripts/build-image.sh                  # -> /var/cache/lbspeaker/images/lbspeaker-VERSION.tar
#   OUT=/tmp/x.tar bash scripts/build-image.sh   # another output file
#   REFRESH=1 bash scripts/build-image.sh        # re-resolve the Python dependencies from the index
#   FROM_GIT=1 bash scripts/build-image.sh       # lbspeaker from the last commit, not the working tree
#
# Reproducible given the same inputs: SOURCE_DATE_EPOCH is the last commit's time, downloaded .debs
# and wheels are kept in $CACHE and reused (Python dependencies resolve offline from that cache),
# logs/caches/machine-id are removed, bytecode is compiled with unchecked-hash invalidation and
# mkimage.py writes sorted, root-owned entries with one mtime. What can still change the image ID is
# the Debian archive itself: a point release or security update changes the package lists and
# therefore the packages installed; the same day's archive gives the same image.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 LC_ALL=C.UTF-8 TZ=UTC
umask 022

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$HERE/pyproject.toml" | head -n1)
REF=${REF:-lbspeaker:$VERSION}
CACHE=${CACHE:-/var/cache/lbspeaker/images}
OUT=${OUT:-$CACHE/lbspeaker-$VERSION.tar}
PY=${PYTHON:-python3}            # the host Python that runs pip and mkimage.py (any 3.11+)
SUITE=bookworm
PYVER=3.11
PACKAGES=python3,ca-certificates,iproute2
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$HERE" log -1 --format=%ct 2>/dev/null || echo 0)}
export SOURCE_DATE_EPOCH

[ "$(id -u)" = 0 ] || { echo "build-image: needs root (mmdebstrap, chroot)" >&2; exit 1; }
start=$(date +%s)
step() { echo "build-image: [$(( $(date +%s) - start ))s] $*" >&2; }

if ! command -v mmdebstrap >/dev/null 2>&1; then
  echo "build-image: apt-get install mmdebstrap" >&2
  apt-cache show mmdebstrap >/dev/null 2>&1 || apt-get update -qq
  apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
fi

# The Debian archive this machine uses: "deb URI SUITE COMPONENTS" lines for every bookworm* suite
# of /etc/apt/sources.list and /etc/apt/sources.list.d/*.{list,sources} (comment lines dropped, not
# blanked: a blank line ends a deb822 stanza).
apt_sources() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk -v s="$SUITE" '$1 == "deb" && index($3, s) == 1 { print }'
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    sed -e '/^[[:space:]]*#/d' "$f" | awk -v s="$SUITE" '
      function flush(  i, j, nu, ns, u, su) {
        if (types ~ /(^| )deb( |$)/ && enabled != "no") {
          nu = split(uris, u, " "); ns = split(suites, su, " ")
          for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++)
            if (index(su[j], s) == 1) print "deb", u[i], su[j], comps
        }
        types = uris = suites = comps = enabled = ""
      }
      /^[ \t]*$/ { flush(); next }
      { key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, "")
        if (key == "types") types = $0; else if (key == "uris") uris = $0
        else if (key == "suites") suites = $0; else if (key == "components") comps = $0
        else if (key == "enabled") enabled = tolower($0) }
      END { flush() }'
  done
}

mkdir -p "$CACHE/debs" "$CACHE/wheels" "$(dirname "$OUT")"
WORK=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ROOT=$WORK/rootfs
apt_sources | sort -u >"$WORK/sources.list"
[ -s "$WORK/sources.list" ] || { echo "build-image: no '$SUITE' deb source in this machine's apt sources" >&2; exit 1; }

# 1. Debian rootfs. The .debs are synced in and out of $CACHE/debs (the mmdebstrap manual's recipe).
step "rootfs ($SUITE + $PACKAGES) from $(awk '{print $2}' "$WORK/sources.list" | sort -u | tr '\n' ' ')" >&2
mmdebstrap --quiet --mode=root --format=directory --variant=essential --include="$PACKAGES" \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --dpkgopt=force-unsafe-io --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --skip=download/empty --skip=essential/unlink \
  --setup-hook='mkdir -p "$1"/var/cache/apt/archives' \
  --setup-hook="sync-in $CACHE/debs /var/cache/apt/archives" \
  --customize-hook="sync-out /var/cache/apt/archives $CACHE/debs" \
  "$SUITE" "$ROOT" "$WORK/sources.list" >"$WORK/mmdebstrap.log" 2>&1 \
  || { tail -n 40 "$WORK/mmdebstrap.log" >&2; echo "build-image: mmdebstrap failed" >&2; exit 1; }

# 2. lbspeaker as a wheel, built from a copy (the checkout stays untouched: no build/, no egg-info).
step "lbspeaker wheel"
SRC=$WORK/src
mkdir -p "$SRC" "$WORK/wheel"
TREE=(pyproject.toml README.md config lbspeaker controller)
if [ "${FROM_GIT:-0}" = 1 ]; then   # the last commit only (release builds); default: the working tree
  git -C "$HERE" archive --format=tar HEAD "${TREE[@]}" | tar -xf - -C "$SRC"
else
  (cd "$HERE" && tar --exclude=__pycache__ --exclude='*.pyc' -cf - "${TREE[@]}") | tar -xf - -C "$SRC"
fi
"$PY" -m pip wheel -q --no-deps --no-cache-dir -w "$WORK/wheel" "$SRC" >&2
rm -f "$CACHE"/wheels/lbspeaker-*.whl

# 3. lbspeaker[bgp] + dependencies as wheels for the image's Python, into /usr/local (Debian's
#    site.py puts /usr/local/lib/python3.11/dist-packages on sys.path). Dependencies resolve from
#    $CACHE/wheels only, so a rebuild installs the same files; missing ones are downloaded once.
step "Python packages"
SITE=$ROOT/usr/local/lib/python$PYVER/dist-packages
target=(--python-version "$PYVER" --implementation cp --abi "cp${PYVER/./}" --only-binary=:all: --no-cache-dir
        --find-links "$WORK/wheel" --platform manylinux2014_x86_64)
for v in $(seq 17 36); do target+=(--platform "manylinux_2_${v}_x86_64"); done  # bookworm has glibc 2.36
install() {
  # --root-user-action is an install option only (pip download refuses it)
  "$PY" -m pip install -q --no-index --root-user-action=ignore --find-links "$CACHE/wheels" "${target[@]}" \
    --no-compile --no-warn-conflicts \
    --target "$SITE" "lbspeaker[bgp]==$VERSION" >&2
}
if [ "${REFRESH:-0}" = 1 ] || ! install 2>/dev/null; then
  echo "build-image: downloading Python dependencies into $CACHE/wheels" >&2
  "$PY" -m pip download -q "${target[@]}" -d "$CACHE/wheels" "lbspeaker[bgp]==$VERSION" >&2
  rm -f "$CACHE"/wheels/lbspeaker-*.whl
  rm -rf "$SITE"
  install
fi
# pip --target writes scripts with the host's interpreter and a direct_url.json naming $WORK
rm -rf "$SITE/bin"
find "$SITE" -name direct_url.json -path '*.dist-info/*' -delete

# 4. Console scripts of every installed distribution, for the image's /usr/bin/python3.
"$PY" - "$SITE" "$ROOT/usr/local/bin" <<'EOF'
import configparser, pathlib, sys
site, bindir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
bindir.mkdir(parents=True, exist_ok=True)
for ep in sorted(site.glob("*.dist-info/entry_points.txt")):
    cp = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    cp.optionxform = str
    cp.read(ep)
    for name, value in (cp["console_scripts"].items() if cp.has_section("console_scripts") else []):
        module, _, attr = value.strip().partition(":")
        attr = attr.split("[")[0].strip()
        script = bindir / name
        script.write_text(
            "#!/usr/bin/python3\nimport sys\n"
            f"from {module.strip()} import {attr.split('.')[0]}\n"
            f"if __name__ == \"__main__\":\n    sys.exit({attr}())\n")
        script.chmod(0o755)
EOF
# the speaker starts exabgp from its own interpreter's folder (sys.executable is /usr/bin/python3)
ln -sfn ../local/bin/exabgp "$ROOT/usr/bin/exabgp"

# 5. Bytecode for everything, hash-based and unchecked: valid whatever the mtimes, never rewritten
#    (the pods run with readOnlyRootFilesystem; PYTHONDONTWRITEBYTECODE=1 is set too).
step "bytecode"
find "$ROOT/usr" -name __pycache__ -type d -prune -exec rm -rf {} +
chroot "$ROOT" /usr/bin/python3 -m compileall -q -f -j 0 --invalidation-mode unchecked-hash \
  /usr/lib/python3 /usr/lib/python$PYVER /usr/local/lib/python$PYVER/dist-packages >/dev/null

# 6. What must not be in an image (or would differ between two builds).
rm -rf "$ROOT"/var/cache/apt/* "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/ldconfig/aux-cache \
  "$ROOT"/var/cache/debconf/*-old "$ROOT"/var/lib/dpkg/*-old "$ROOT"/var/log/* \
  "$ROOT"/dev/* "$ROOT"/tmp/* "$ROOT"/var/tmp/* "$ROOT"/run/* "$ROOT"/root/.cache \
  "$ROOT"/etc/machine-id "$ROOT"/var/lib/dbus/machine-id "$ROOT"/etc/hostname "$ROOT"/etc/resolv.conf
mkdir -p "$ROOT"/var/lib/apt/lists/partial
: >"$ROOT"/etc/resolv.conf   # the kubelet mounts the real one

# 7. Pack.
step "pack"
"$PY" "$HERE/lbspeaker/lab/mkimage.py" "$ROOT" "$REF" "$OUT" --cmd lbspeaker-speaker,--help \
  --env PYTHONDONTWRITEBYTECODE=1 --env PYTHONUNBUFFERED=1 --workdir / >"$WORK/packed"
read -r _ image_id size <"$WORK/packed"
step "done: $REF"
echo "$OUT"
echo "size $size bytes ($(( size / 1048576 )) MiB)"
echo "image $image_id"
