#!/usr/bin/env bash
# Build, once per machine, the Kubernetes control-plane binaries the
# Kubernetes tests and `make kube-demo` run: kube-apiserver (from the
# k8s.io/kubernetes module, with its staging modules pinned to the same
# release) and kwok (fake nodes that go Ready and run pods without a
# kubelet). etcd comes from Debian's etcd-server. The binaries are cached in
# $RIPOSTE_KUBE_CACHE (default /var/cache/riposte/kube-<version>); a cold
# build takes ~9 minutes on 2 cores, a cached one nothing.
#
# Prints the cache directory on stdout; progress goes to stderr.
set -euo pipefail
KUBE_VERSION=${KUBE_VERSION:-v1.34.4}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
cache=${RIPOSTE_KUBE_CACHE:-/var/cache/riposte/kube-$KUBE_VERSION}
mkdir -p "$cache"

if ! command -v etcd >/dev/null 2>&1; then
	echo "installing etcd-server" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq --no-install-recommends etcd-server >/dev/null 2>&1 || {
		apt-get update -qq && apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
	}
	# Debian's package starts a system etcd on the default ports; the tests
	# run their own.
	systemctl disable --now etcd >/dev/null 2>&1 || true
	pkill -x etcd >/dev/null 2>&1 || true
fi
ln -sf "$(command -v etcd)" "$cache/etcd"

# build_kube BIN: builds k8s.io/kubernetes/cmd/BIN at $KUBE_VERSION into the
# cache, from a temp module that pins every staging module to the release.
build_kube() {
	local bin=$1 tmp minor staging modfile ld
	tmp=$(mktemp -d)
	minor=${KUBE_VERSION#v}; minor=${minor#*.}; minor=${minor%%.*}
	staging="v0.${KUBE_VERSION#v1.}"
	(
		cd "$tmp"
		go mod init riposte.local/kubebuild >/dev/null 2>&1
		modfile=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
		{
			echo "require k8s.io/kubernetes $KUBE_VERSION"
			grep -E '=> \./staging/src/' "$modfile" | awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}'
		} >>go.mod
		GOFLAGS=-mod=mod go get "k8s.io/kubernetes/cmd/$bin@$KUBE_VERSION" >&2
		ld="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
		CGO_ENABLED=0 GOFLAGS=-mod=mod go build -ldflags "$ld" -o "$cache/$bin.tmp" "k8s.io/kubernetes/cmd/$bin"
		mv "$cache/$bin.tmp" "$cache/$bin"
	)
	rm -rf "$tmp"
}

if [ ! -x "$cache/kube-apiserver" ]; then
	echo "building kube-apiserver $KUBE_VERSION (cold: ~9 min)" >&2
	build_kube kube-apiserver
fi

# kubectl applies the deployment manifests in the tests: the one on PATH, or
# one built at the API server's version.
if [ ! -x "$cache/kubectl" ]; then
	if command -v kubectl >/dev/null 2>&1; then
		ln -sf "$(command -v kubectl)" "$cache/kubectl"
	else
		echo "building kubectl $KUBE_VERSION (~3 min once kube-apiserver is built)" >&2
		build_kube kubectl
	fi
fi

if [ ! -x "$cache/kwok" ]; then
	echo "building kwok $KWOK_VERSION (cold: ~4 min)" >&2
	GOBIN="$cache" CGO_ENABLED=0 go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
fi
if [ ! -d "$cache/kwok-stage" ]; then
	dir=$(cd "$(mktemp -d)" && go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
	mkdir -p "$cache/kwok-stage.tmp"
	cp -r "$dir/kustomize/stage/." "$cache/kwok-stage.tmp/"
	chmod -R u+w "$cache/kwok-stage.tmp"
	mv "$cache/kwok-stage.tmp" "$cache/kwok-stage"
fi
echo "$cache"
