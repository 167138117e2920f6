#!/usr/bin/env bash
# Build the real API servers the contract suite runs against, once, and cache them.
#
#   kube-apiserver 1.20.2  from Debian bookworm's `kubernetes` source package (the last one that
#                          still ships vendor/), built with bookworm's golang-1.19; in the same `make`
#                          kubelet, kube-proxy, kube-controller-manager and kube-scheduler (the real
#                          cluster lab, `lbctl lab up --cluster real`)
#   etcd                   from bookworm's etcd-server binary package
#   node runtime           containerd, runc, CNI plugins, iptables (nft), conntrack, busybox-static
#                          from bookworm, unpacked with dpkg -x (never installed)
#   images                 pause (Go, static) and busybox as docker-archives (lbspeaker/lab/mkimage.py)
#   apiextensions-apiserver (1.36 level) from Debian sid's golang-k8s-*-dev source packages,
#                          built in GOPATH mode with sid's newest golang-1.NN-go
#
# Only Debian's archive is used (through a PRIVATE apt configuration: the machine's own apt state,
# sources and installed packages are untouched), no Go module proxy (GOPROXY=off), no other
# downloads. Idempotent: with the binaries present in the cache it exits at once.
#
# Usage: bash scripts/build-real-apiservers.sh [kube|apiext|all]     (default: all; kube = cluster too)
# Env:   LBS_REAL_APISERVER_CACHE   cache dir (default /var/cache/lbspeaker/real-apiservers)
#        LBS_KEEP_BUILD_TREES=1     keep the intermediate build trees (default: deleted)
# Outputs: $CACHE/kube-apiserver-1.20/kube-apiserver, $CACHE/etcd/etcd, $CACHE/kube-1.20/<binaries>,
#          $CACHE/node-runtime/ (dpkg -x root), $CACHE/images/{pause,busybox}.tar,
#          $CACHE/apiextensions-1.36/apiextensions-apiserver, $CACHE/build.log, $CACHE/BUILD-INFO
# These are TEST TOOLS for loopback only (old CVEs in 1.20): never ship them.
set -Eeuo pipefail

CACHE=${LBS_REAL_APISERVER_CACHE:-/var/cache/lbspeaker/real-apiservers}
WHAT=${1:-all}
K8S_VERSION=1.20.5+really1.20.2-1.1+deb12u1
# The Debian mirror is the machine's own (its apt sources); no host name is kept in this file.
apt_sources() { cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list 2>/dev/null | grep -v '^[[:space:]]*#' || true; }
MIRROR=${LBS_DEBIAN_MIRROR:-$(apt_sources | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n1 | tr -d ' ')}
SECURITY_MIRROR=${LBS_DEBIAN_SECURITY_MIRROR:-$(apt_sources | grep -oE 'https?://[^ ]+/debian-security/?( |$)' | head -n1 | tr -d ' ')}
MIRROR=${MIRROR%/}; SECURITY_MIRROR=${SECURITY_MIRROR%/}
[ -n "$SECURITY_MIRROR" ] || SECURITY_MIRROR=${MIRROR}-security
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

KUBE_BIN=$CACHE/kube-apiserver-1.20/kube-apiserver
NODE_BINS="kubelet kube-proxy kube-controller-manager kube-scheduler"
KDIR=$CACHE/kube-1.20
RTDIR=$CACHE/node-runtime
IMGDIR=$CACHE/images
HERE=$(cd "$(dirname "$0")" && pwd)
ETCD_BIN=$CACHE/etcd/etcd
APIEXT_BIN=$CACHE/apiextensions-1.36/apiextensions-apiserver

mkdir -p "$CACHE"
LOG=$CACHE/build.log
exec > >(tee -a "$LOG") 2>&1

say() { printf '[build-real-apiservers %(%H:%M:%S)T] %s\n' -1 "$*"; }
die() { say "FAILED: $*"; exit 1; }
trap 'rc=$?; say "FAILED at line $LINENO (exit $rc): $BASH_COMMAND; log: $LOG"; exit $rc' ERR

case $WHAT in kube|apiext|all) ;; *) die "usage: $0 [kube|apiext|all]" ;; esac
[ "$(id -u)" = 0 ] || say "warning: not root; writing $CACHE must be possible"
for tool in apt-get dpkg tar; do
    command -v "$tool" >/dev/null || die "needs $tool on PATH"
done
[ -r "$KEYRING" ] || die "needs $KEYRING (package debian-archive-keyring)"
[ -n "$MIRROR" ] || die "cannot find a Debian mirror in this machine's apt sources (set LBS_DEBIAN_MIRROR)"

want_kube() { [ "$WHAT" = kube ] || [ "$WHAT" = all ]; }
want_apiext() { [ "$WHAT" = apiext ] || [ "$WHAT" = all ]; }

# ---- private apt ------------------------------------------------------------------------------
# $1 = apt root dir, $2.. = suites. Writes $1/apt.conf; use with APT_CONFIG=$1/apt.conf.
make_apt_root() {
    local root=$1; shift
    mkdir -p "$root/state/lists/partial" "$root/cache/archives/partial" "$root/etc/sources.list.d" \
        "$root/etc/preferences.d"
    : > "$root/state/status"
    : > "$root/etc/sources.list"
    local suite
    for suite in "$@"; do
        if [ "$suite" = bookworm-security ]; then
            printf 'deb [signed-by=%s] %s %s main\ndeb-src [signed-by=%s] %s %s main\n' \
                "$KEYRING" "$SECURITY_MIRROR" "$suite" "$KEYRING" "$SECURITY_MIRROR" "$suite" \
                >> "$root/etc/sources.list"
        else
            printf 'deb [signed-by=%s] %s %s main\ndeb-src [signed-by=%s] %s %s main\n' \
                "$KEYRING" "$MIRROR" "$suite" "$KEYRING" "$MIRROR" "$suite" >> "$root/etc/sources.list"
        fi
    done
    cat > "$root/apt.conf" <<EOF
Dir::State "$root/state";
Dir::State::status "$root/state/status";
Dir::Cache "$root/cache";
Dir::Etc::SourceList "$root/etc/sources.list";
Dir::Etc::SourceParts "$root/etc/sources.list.d";
Dir::Etc::Preferences "$root/etc/preferences";
Dir::Etc::PreferencesParts "$root/etc/preferences.d";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
Acquire::Languages "none";
Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled "false";
Acquire::Retries "3";
APT::Sandbox::User "root";
EOF
    APT_CONFIG=$root/apt.conf apt-get -q update
}

# apt-get download into $1 then dpkg -x every deb into $2; rest = package names
download_extract() {
    local aptroot=$1 debs=$2 root=$3; shift 3
    mkdir -p "$debs" "$root"
    (cd "$debs" && APT_CONFIG=$aptroot/apt.conf apt-get -q download "$@")
    local d
    for d in "$debs"/*.deb; do dpkg -x "$d" "$root"; done
}

du_h() { du -sh "$1" 2>/dev/null | cut -f1; }

# ---- kube-apiserver 1.20 + etcd ---------------------------------------------------------------
build_kube() {
    local have=1 b
    for b in $NODE_BINS; do [ -x "$KDIR/$b" ] || have=0; done
    [ -x "$KUBE_BIN" ] && [ -x "$ETCD_BIN" ] || have=0
    if [ $have = 1 ]; then
        say "kube-apiserver 1.20, etcd and node binaries already cached: $KUBE_BIN $ETCD_BIN $KDIR"; return 0
    fi
    local t0=$SECONDS W=$CACHE/work-kube
    rm -rf "$W"; mkdir -p "$W"
    say "kube: private apt (bookworm deb + deb-src) in $W/apt"
    make_apt_root "$W/apt" bookworm bookworm-updates bookworm-security
    say "kube: apt-get source --download-only kubernetes=$K8S_VERSION"
    mkdir -p "$W/src"
    (cd "$W/src" && APT_CONFIG=$W/apt/apt.conf apt-get -q source --download-only "kubernetes=$K8S_VERSION")
    # build tools this machine lacks come from Debian too, into the same private root
    local extra=() R=$W/root K=$W/src/k8s
    command -v make >/dev/null || extra+=(make)
    command -v patch >/dev/null || extra+=(patch)
    command -v xz >/dev/null || extra+=(xz-utils liblzma5)
    command -v dpkg-source >/dev/null || extra+=(dpkg-dev libdpkg-perl)
    command -v rsync >/dev/null || extra+=(rsync libpopt0)
    say "kube: toolchain (golang-1.19, reflect2 1.0.2, etcd-server${extra[*]:+, ${extra[*]}}) into a private root"
    download_extract "$W/apt" "$W/debs" "$R" golang-1.19-go golang-1.19-src \
        golang-github-modern-go-reflect2-dev etcd-server "${extra[@]}"
    export PATH=$PATH:$R/usr/bin:$R/bin PERL5LIB=$R/usr/share/perl5${PERL5LIB:+:$PERL5LIB}
    export LD_LIBRARY_PATH=$R/usr/lib/x86_64-linux-gnu:$R/lib/x86_64-linux-gnu
    (cd "$W/src" && dpkg-source -x --no-check ./*.dsc k8s >/dev/null)
    [ -d "$R/usr/share/gocode/src/github.com/modern-go/reflect2" ] || die "reflect2 source missing"
    say "kube: replacing vendored modern-go/reflect2 with Debian's (vendored 1.0.1 panics on Go>=1.18)"
    rm -rf "$K/vendor/github.com/modern-go/reflect2"
    cp -a "$R/usr/share/gocode/src/github.com/modern-go/reflect2" "$K/vendor/github.com/modern-go/reflect2"
    local goroot=$R/usr/lib/go-1.19
    [ -x "$goroot/bin/go" ] || die "go binary missing at $goroot/bin/go"
    local what="cmd/kube-apiserver" b
    for b in $NODE_BINS; do what="$what cmd/$b"; done
    say "kube: make WHAT=\"$what\" (GOPROXY=off CGO_ENABLED=0; several minutes)"
    (
        cd "$K"
        export GOROOT=$goroot PATH=$goroot/bin:$PATH
        export GOPROXY=off GOFLAGS=-mod=vendor GONOSUMDB='*' GOSUMDB=off CGO_ENABLED=0 GOTOOLCHAIN=local
        export GOCACHE=$W/gocache GOPATH=$W/gopath HOME=$W/home KUBE_GIT_VERSION=v1.20.2
        export KUBE_GIT_TREE_STATE=clean KUBE_VERBOSE=1
        mkdir -p "$HOME"
        make WHAT="$what"
    )
    local built
    built=$(find "$K/_output" -type f -name kube-apiserver -perm -u+x -print -quit)
    [ -n "$built" ] || die "kube-apiserver binary not produced"
    "$built" --version
    [ -x "$R/usr/bin/etcd" ] || die "etcd missing in etcd-server package"
    local disk; disk=$(du_h "$W")
    mkdir -p "$(dirname "$KUBE_BIN")" "$(dirname "$ETCD_BIN")"
    install -m 0755 "$built" "$KUBE_BIN.tmp" && mv "$KUBE_BIN.tmp" "$KUBE_BIN"
    install -m 0755 "$R/usr/bin/etcd" "$ETCD_BIN.tmp" && mv "$ETCD_BIN.tmp" "$ETCD_BIN"
    mkdir -p "$KDIR"
    for b in $NODE_BINS; do
        built=$(find "$K/_output" -type f -name "$b" -perm -u+x -print -quit)
        [ -n "$built" ] || die "$b binary not produced"
        install -m 0755 "$built" "$KDIR/$b.tmp" && mv "$KDIR/$b.tmp" "$KDIR/$b"
    done
    ln -sf "$KUBE_BIN" "$KDIR/kube-apiserver"; ln -sf "$ETCD_BIN" "$KDIR/etcd"
    build_pause "$goroot" "$W"
    "$ETCD_BIN" --version | sed -n 1p
    unset LD_LIBRARY_PATH PERL5LIB
    [ "${LBS_KEEP_BUILD_TREES:-0}" = 1 ] || rm -rf "$W"
    local secs=$((SECONDS - t0))
    say "kube: done in ${secs}s; build tree peak $disk; binaries $(du_h "$CACHE/kube-apiserver-1.20") + $(du_h "$CACHE/etcd")"
    echo "kube-apiserver-1.20 build_seconds=$secs build_tree=$disk source=kubernetes=$K8S_VERSION date=$(date -u +%FT%TZ)" >> "$CACHE/BUILD-INFO"
}

# ---- the pause image (sandbox container): a static Go program, packed without Docker ----------
build_pause() {  # $1 = GOROOT, $2 = work dir
    [ -f "$IMGDIR/pause.tar" ] && return 0
    local root=$2/pause-root; rm -rf "$root"; mkdir -p "$root" "$IMGDIR"
    (export GOROOT=$1 GO111MODULE=off CGO_ENABLED=0 GOCACHE=$2/gocache HOME=$2/home GOPROXY=off GOTOOLCHAIN=local
     "$1/bin/go" build -trimpath -ldflags=-s -o "$root/pause" "$HERE/../lbspeaker/lab/realk8s/pause.go")
    python3 "$HERE/../lbspeaker/lab/mkimage.py" "$root" lbspeaker.local/pause:1 "$IMGDIR/pause.tar" --cmd /pause
}

# ---- node runtime (containerd, runc, CNI, iptables, conntrack, busybox) + busybox image --------
build_runtime() {
    if [ -x "$RTDIR/usr/bin/containerd" ] && [ -f "$IMGDIR/busybox.tar" ]; then
        say "node runtime already cached: $RTDIR"; return 0
    fi
    local t0=$SECONDS W=$CACHE/work-runtime
    rm -rf "$W" "$RTDIR"; mkdir -p "$W"
    make_apt_root "$W/apt" bookworm bookworm-updates bookworm-security
    say "runtime: containerd runc CNI iptables conntrack busybox-static -> $RTDIR (dpkg -x, not installed)"
    download_extract "$W/apt" "$W/debs" "$RTDIR.tmp" containerd runc containernetworking-plugins \
        iptables libip6tc2 libip4tc2 libxtables12 libnftnl11 libnetfilter-conntrack3 libnfnetlink0 \
        libmnl0 conntrack busybox-static libseccomp2
    mv "$RTDIR.tmp" "$RTDIR"
    local bb=$W/busybox-root; rm -rf "$bb"; mkdir -p "$bb/bin" "$bb/etc" "$bb/tmp" "$bb/www" "$IMGDIR"
    cp "$RTDIR/bin/busybox" "$bb/bin/busybox"
    local c; for c in $("$bb/bin/busybox" --list); do [ "$c" = busybox ] || ln -sf busybox "$bb/bin/$c"; done
    echo 'root:x:0:0:root:/:/bin/sh' > "$bb/etc/passwd"; echo 'root:x:0:' > "$bb/etc/group"
    echo 'nobody:x:65534:65534:nobody:/:/bin/sh' >> "$bb/etc/passwd"
    python3 "$HERE/../lbspeaker/lab/mkimage.py" "$bb" lbspeaker.local/busybox:1 "$IMGDIR/busybox.tar" --cmd /bin/sh
    [ "${LBS_KEEP_BUILD_TREES:-0}" = 1 ] || rm -rf "$W"
    say "runtime: done in $((SECONDS - t0))s; $(du_h "$RTDIR")"
    echo "node-runtime build_seconds=$((SECONDS - t0)) date=$(date -u +%FT%TZ)" >> "$CACHE/BUILD-INFO"
}

# ---- apiextensions-apiserver (1.36 level, Debian sid) -----------------------------------------
build_apiext() {
    if [ -x "$APIEXT_BIN" ]; then say "apiextensions-apiserver already cached: $APIEXT_BIN"; return 0; fi
    local t0=$SECONDS W=$CACHE/work-apiext
    rm -rf "$W"; mkdir -p "$W"
    say "apiext: private apt (sid) in $W/apt"
    make_apt_root "$W/apt" sid
    export APT_CONFIG=$W/apt/apt.conf
    local gover
    gover=$(apt-cache pkgnames golang-1. | sed -n 's/^golang-\(1\.[0-9]*\)-go$/\1/p' | sort -t. -k2 -n | tail -n1)
    [ -n "$gover" ] || die "no golang-1.NN-go in sid"
    local top=golang-k8s-apiextensions-apiserver-dev
    apt-cache show "$top" >/dev/null 2>&1 || die "$top not in sid"
    say "apiext: $top $(apt-cache show "$top" | sed -n 's/^Version: //p' | sed -n 1p), go $gover"
    # dependency closure; keep only Go source packages (-dev, Architecture all mostly)
    apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
        --no-replaces --no-enhances "$top" | sed -n 's/^\([a-z0-9][a-z0-9.+-]*\)$/\1/p' | sort -u \
        | grep -E '^golang-.*-dev$' > "$W/closure.txt"
    say "apiext: closure has $(wc -l < "$W/closure.txt") -dev packages"
    # shellcheck disable=SC2046
    download_extract "$W/apt" "$W/debs" "$W/root" $(cat "$W/closure.txt") \
        "golang-$gover-go" "golang-$gover-src"
    unset APT_CONFIG
    local R=$W/root goroot=$W/root/usr/lib/go-$gover
    [ -x "$goroot/bin/go" ] || die "go binary missing at $goroot/bin/go"
    [ -f "$R/usr/share/gocode/src/k8s.io/apiextensions-apiserver/main.go" ] || die "no main.go in $top"
    say "apiext: go build k8s.io/apiextensions-apiserver (GOPATH mode, GOPROXY=off)"
    mkdir -p "$(dirname "$APIEXT_BIN")"
    (
        export GOROOT=$goroot PATH=$goroot/bin:$PATH GOPATH=$R/usr/share/gocode GO111MODULE=off
        export GOPROXY=off GOSUMDB=off CGO_ENABLED=0 GOTOOLCHAIN=local GOCACHE=$W/gocache HOME=$W/home
        export GOFLAGS=-buildvcs=false
        mkdir -p "$HOME"
        cd "$GOPATH/src/k8s.io/apiextensions-apiserver"
        go build -trimpath -o "$APIEXT_BIN.tmp" .
    )
    mv "$APIEXT_BIN.tmp" "$APIEXT_BIN"
    local disk; disk=$(du_h "$W")
    [ "${LBS_KEEP_BUILD_TREES:-0}" = 1 ] || rm -rf "$W"
    local secs=$((SECONDS - t0))
    say "apiext: done in ${secs}s; build tree peak $disk; binary $(du_h "$APIEXT_BIN")"
    echo "apiextensions-1.36 build_seconds=$secs build_tree=$disk go=$gover date=$(date -u +%FT%TZ)" >> "$CACHE/BUILD-INFO"
}

say "cache: $CACHE (what=$WHAT)"
want_kube && build_runtime
want_kube && build_kube
want_apiext && build_apiext
say "all requested servers present in $CACHE"
