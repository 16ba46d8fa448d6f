#!/usr/bin/env bash
# Check terraform/ offline with OpenTofu and the real google + kubernetes providers, all built from
# their Go module sources (no Terraform registry, no GitHub releases: only the Go module proxy).
#
#   tools/tf-check.sh            build what is missing, then `tofu fmt -check`, `tofu init`, `tofu validate`
#                                and `tofu test` (terraform/tests: the deployment against mocked providers)
#   tools/tf-check.sh tofu       only build (or reuse) tools/bin/tofu
#   tools/tf-check.sh providers  only build (or reuse) the providers in tools/providers/
#   tools/tf-check.sh fmt        only `tofu fmt -check -recursive` (needs no provider)
#
# Binaries are cached (tools/bin/, tools/providers/, both git-ignored): a second run builds nothing.
# Builds run under `nice` because the machine's cores are shared.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TF_DIR="$ROOT/terraform"
BIN_DIR="$ROOT/tools/bin"
MIRROR="$ROOT/tools/providers"
WORK="${EDML_TF_WORK:-$ROOT/.edml/tf-build}"

# OpenTofu: a release tag. Its go.mod has a `replace` (hcl/v2 => opentofu/hcl), so
# `go install ...@version` refuses it: we build inside a writable copy of the downloaded module.
TOFU_VERSION="v1.12.6"

# The providers' repositories tag v2+ releases without a /vN module path, so the Go proxy serves
# them only as pseudo-versions of their main branch. These are the commits built, and the release
# each one is labelled with in the mirror (the newest release its CHANGELOG names).
GOOGLE_MODULE="github.com/hashicorp/terraform-provider-google"
GOOGLE_MODULE_VERSION="v1.20.1-0.20260828184646-f3721fb45fa3" # main, after 8.0.0 (2026-08-26)
GOOGLE_VERSION="8.0.0"
KUBERNETES_MODULE="github.com/hashicorp/terraform-provider-kubernetes"
KUBERNETES_MODULE_VERSION="v1.13.4-0.20260821094251-3a33fb6cc605" # main, after 3.2.1 (2026-06-30)
KUBERNETES_VERSION="3.2.1"

PLATFORM="$(go env GOOS)_$(go env GOARCH)"
NICE=(nice -n 10)
export GOFLAGS="-mod=mod -buildvcs=false"

log() { printf 'tf-check: %s\n' "$*" >&2; }

# Download a module into the module cache and copy it somewhere writable (cache dirs are read-only).
# Prints the writable source directory.
fetch_module() {
  local module="$1" version="$2" dest="$WORK/src/${1##*/}@$2"
  if [[ ! -f "$dest/go.mod" ]]; then
    log "downloading $module@$version from the Go module proxy"
    local dir
    dir="$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    [[ -n "$dir" && -d "$dir" ]] || { log "go mod download gave no directory for $module@$version"; exit 1; }
    rm -rf "$dest.tmp" && mkdir -p "$(dirname "$dest")"
    cp -r "$dir" "$dest.tmp" && chmod -R u+w "$dest.tmp" && mv "$dest.tmp" "$dest"
  fi
  printf '%s\n' "$dest"
}

build_tofu() {
  local out="$BIN_DIR/tofu"
  if [[ -x "$out" ]] && "$out" version 2>/dev/null | grep -q "OpenTofu v${TOFU_VERSION#v}"; then
    return
  fi
  local src
  src="$(fetch_module github.com/opentofu/opentofu "$TOFU_VERSION")"
  log "building OpenTofu $TOFU_VERSION (go build ./cmd/tofu inside the module, under nice)"
  mkdir -p "$BIN_DIR"
  (cd "$src" && CGO_ENABLED=0 "${NICE[@]}" go build -trimpath \
    -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no" -o "$out.tmp" ./cmd/tofu)
  mv "$out.tmp" "$out"
  "$out" version | head -1 >&2
}

# build_provider NAME MODULE MODULE_VERSION RELEASE LDFLAGS
build_provider() {
  local name="$1" module="$2" module_version="$3" release="$4" ldflags="$5"
  local dir="$MIRROR/registry.opentofu.org/hashicorp/$name/$release/$PLATFORM"
  local out="$dir/terraform-provider-${name}_v$release"
  [[ -x "$out" ]] && return
  local src
  src="$(fetch_module "$module" "$module_version")"
  log "building the $name provider ($module@$module_version, labelled $release) under nice; this is slow"
  mkdir -p "$dir"
  (cd "$src" && CGO_ENABLED=0 "${NICE[@]}" go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" .)
  mv "$out.tmp" "$out"
  log "built $out ($(du -h "$out" | cut -f1))"
}

build_providers() {
  build_provider kubernetes "$KUBERNETES_MODULE" "$KUBERNETES_MODULE_VERSION" "$KUBERNETES_VERSION" ""
  build_provider google "$GOOGLE_MODULE" "$GOOGLE_MODULE_VERSION" "$GOOGLE_VERSION" \
    "-X $GOOGLE_MODULE/version.ProviderVersion=$GOOGLE_VERSION"
}

# Every tofu call reads this CLI config and nothing else (not ~/.terraformrc or a TF_CLI_CONFIG_FILE
# from the environment): providers come only from the filesystem mirror, nothing from a registry.
write_cli_config() {
  mkdir -p "$WORK"
  cat >"$WORK/tofurc" <<EOF
provider_installation {
  filesystem_mirror {
    path    = "$MIRROR"
    include = ["registry.opentofu.org/hashicorp/*"]
  }
}
EOF
  export TF_CLI_CONFIG_FILE="$WORK/tofurc" TF_IN_AUTOMATION=1
}

tofu_fmt() {
  log "tofu fmt -check -recursive terraform/"
  "$BIN_DIR/tofu" fmt -check -recursive -diff "$TF_DIR"
}

# init + validate (+ test) the root module (and any examples/), offline. It runs in a copy of terraform/
# so the checkout gets no .terraform/ and no lock file: a lock file of these source-built providers
# would carry hashes that differ from the registry's releases and break a user's `init`.
tofu_validate() {
  local tree="$WORK/tree"
  rm -rf "$tree" && cp -r "$TF_DIR" "$tree"
  local root
  for root in "$tree" "$tree/examples/"*/; do
    root="${root%/}"
    ls "$root"/*.tf >/dev/null 2>&1 || continue
    log "tofu init -backend=false && tofu validate in terraform${root#"$tree"}"
    (cd "$root" && "$BIN_DIR/tofu" init -backend=false -input=false -no-color >"$WORK/init.log" 2>&1) \
      || { cat "$WORK/init.log" >&2; exit 1; }
    grep -E "^- (Installed|Using)" "$WORK/init.log" >&2 || true
    (cd "$root" && "$BIN_DIR/tofu" validate -no-color)
    if ls "$root"/tests/*.tftest.hcl >/dev/null 2>&1; then
      log "tofu test in terraform${root#"$tree"} (mocked providers: plan and apply without a cloud)"
      (cd "$root" && "$BIN_DIR/tofu" test -no-color)
    fi
  done
}

# The whole run is one function, parsed before it starts: editing this file while a long build
# runs cannot change what the running script does next.
main() {
  write_cli_config
  case "${1:-all}" in
    tofu) build_tofu ;;
    providers) build_providers ;;
    # one step per line: `set -e` does not apply inside functions called from an && list
    fmt)
      build_tofu
      tofu_fmt
      ;;
    all)
      build_tofu
      tofu_fmt
      build_providers
      tofu_validate
      ;;
    *) log "unknown step '$1' (tofu | providers | fmt | all)"; exit 2 ;;
  esac
}

main "$@"; exit
