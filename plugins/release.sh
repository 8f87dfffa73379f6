#!/usr/bin/env bash
# Prints plugins/skewguard.yaml with each platform's sha256 filled from the archives in DIR
# (kubectl-skewguard_<version>_<os>_<arch>.tar.gz, as `make krew-archives` names them).
# Fails, printing nothing, when an archive the manifest names is missing.
#   bash plugins/release.sh dist > dist/skewguard.yaml
set -euo pipefail
dir="${1:?usage: release.sh ARCHIVE_DIR}"
manifest="$(dirname "$0")/skewguard.yaml"
out="$(cat "$manifest")"
for file in $(grep -o '@sha256:[^@]*@' "$manifest" | sed 's/^@sha256:\(.*\)@$/\1/'); do
  if [ ! -f "$dir/$file" ]; then
    echo "release.sh: $dir/$file is missing" >&2
    exit 1
  fi
  sum="$(sha256sum "$dir/$file" | cut -d' ' -f1)"
  out="${out//@sha256:$file@/$sum}"
done
printf '%s\n' "$out"
