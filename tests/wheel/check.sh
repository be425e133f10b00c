#!/usr/bin/env bash
# check.sh PYTHON WHEEL — checks a built wheel the way a user meets it: a fresh venv of PYTHON with
# only numpy and the wheel, tests/wheel/smoke.py run from a folder outside the checkout with a
# clean environment (no LD_LIBRARY_PATH, no build tree on sys.path); then the same in a private
# mount namespace where every host copy of a library the wheel carries (oneDNN, protobuf, ONNX,
# gRPC and its absl/re2/c-ares, simdjson, OpenSSL, libgomp, ...) is covered by /dev/null, as on
# a host that never had mserve's Debian packages.
set -euo pipefail
py=$1
whl=$(realpath "$2")
repo=$(cd "$(dirname "$0")/../.." && pwd)
tag=$(basename "$whl" | cut -d- -f3)
venv=$repo/build/wheel-venv-$tag
rm -rf "$venv"
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q numpy "$whl"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$repo/tests/wheel/smoke.py" "$work/"
cd "$work"
clean=(env -i PATH=/usr/bin:/bin HOME="$work" LANG=C.UTF-8)
"${clean[@]}" "$venv/bin/python" smoke.py

# The host's copies of the bundled libraries: mserve.libs/libdnnl-<hash>.so.2.6 stands for every
# libdnnl.so* file the dynamic loader could find on this machine.
libs=$("$venv/bin/python" - <<'PY'
import glob, os, re, site
bundled = glob.glob(os.path.join(site.getsitepackages()[0], "mserve.libs", "*.so*"))
stems = {re.sub(r"-[0-9a-f]{8}\.so.*$", "", os.path.basename(b)) for b in bundled}
found = set()
for stem in stems:
    for d in ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib", "/usr/local/lib"):
        for f in glob.glob(os.path.join(d, stem + ".so*")):
            found.add(f)
print(" ".join(sorted(found)))
PY
)
[ -n "$libs" ] || { echo "check.sh: found no host copies of the bundled libraries to hide"; exit 1; }
# A private mount namespace needs CAP_SYS_ADMIN (root, outside a locked-down container); say so
# plainly where it is refused rather than fail the wheel for it.
if ! why=$(unshare -m --propagation private true 2>&1); then
  echo "check.sh: foreign-host check NOT RUN: unshare -m is refused here ($why)"
  exit 0
fi
unshare -m --propagation private bash -c '
  set -e
  for f in '"$libs"'; do mount --bind /dev/null "$(realpath "$f")"; done
  exec "$@"' hide "${clean[@]}" "$venv/bin/python" smoke.py --hidden $libs
