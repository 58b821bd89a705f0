#!/usr/bin/env bash
# Install visdom 0.2.4 into the active venv so that its server starts offline.
#
# Why this script exists:
#  * PyPI has only an sdist of visdom 0.2.4 and its setup.py imports
#    pkg_resources, which setuptools>=81 no longer ships; so we pin
#    setuptools<81 and build without isolation (an isolated build would pull
#    the newest setuptools again).
#  * tornado 6.6 answers 403 for visdom's index page (index.html asks for
#    static_url("../user/style.css"), outside the static root); the API still
#    works but the browser UI does not, so we keep tornado<6.6.
#  * `python -m visdom.server` first runs visdom.server.build.download_scripts,
#    which fetches JS/CSS/fonts from unpkg, cdn.plot.ly, d3js.org and cdnjs and
#    crashes without internet (the MathJax step uses requests.get unguarded).
#    It skips every file that already exists once static/version.built holds
#    the installed version, so we fill visdom's static/ folder from the npm
#    registry (same libraries, pinned to the versions build.py asks for).
#
# Idempotent: existing files are kept, tarballs are fetched only when needed.
# Without npm we still install the client and exit 0; the server tests skip.
set -euo pipefail

VISDOM_VERSION=0.2.4

python -m pip install --quiet 'setuptools<81'
python -m pip install --quiet --no-build-isolation "visdom==${VISDOM_VERSION}" 'tornado<6.6'

if ! command -v npm >/dev/null 2>&1; then
    echo "install_visdom.sh: npm not found; visdom client installed, but its" \
         "server cannot start offline (visdom server tests will be skipped)." >&2
    exit 0
fi

# The static folder visdom's server serves from (same as get_visdom_path()).
STATIC="$(python -c 'import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec("visdom").origin), "static"))')"

# npm package@version | file inside its tarball | name download_scripts expects.
# Names and versions mirror ext_files / mathjax_path in visdom/server/build.py.
# plotly: cdn.plot.ly/plotly-2.11.1.min.js == plotly.js-dist-min@2.11.1.
# d3: d3js.org/d3.v3.min.js is the last v3 release, 3.5.17.
# classnames: unpkg serves the package main (index.js) for the bare URL.
FILES="
jquery@3.1.1              dist/jquery.min.js                      js/jquery.min.js
bootstrap@3.3.7           dist/js/bootstrap.min.js                js/bootstrap.min.js
react@16.2.0              umd/react.production.min.js             js/react-react.min.js
react-dom@16.2.0          umd/react-dom.production.min.js         js/react-dom.min.js
react-modal@3.1.10        dist/react-modal.min.js                 js/react-modal.min.js
plotly.js-dist-min@2.11.1 plotly.min.js                           js/plotly-plotly.min.js
sjcl@1.0.7                sjcl.js                                 js/sjcl.js
layout-bin-packer@1.4.0   dist/layout-bin-packer.js.map           js/layout-bin-packer.js.map
layout-bin-packer@1.4.0   dist/layout-bin-packer.js               js/layout_bin_packer.js
d3@3.5.17                 d3.min.js                               js/d3.v3.min.js
d3-selection-multi@1.0.1  build/d3-selection-multi.js             js/d3-selection-multi.v1.js
save-svg-as-png@1.4.17    lib/saveSvgAsPng.js                     js/saveSvgAsPng.js
react-resizable@1.4.6     css/styles.css                          css/react-resizable-styles.css
react-grid-layout@0.16.3  css/styles.css                          css/react-grid-layout-styles.css
bootstrap@3.3.7           dist/css/bootstrap.min.css              css/bootstrap.min.css
classnames@2.2.5          index.js                                fonts/classnames
bootstrap@3.3.7           dist/fonts/glyphicons-halflings-regular.eot   fonts/glyphicons-halflings-regular.eot
bootstrap@3.3.7           dist/fonts/glyphicons-halflings-regular.woff2 fonts/glyphicons-halflings-regular.woff2
bootstrap@3.3.7           dist/fonts/glyphicons-halflings-regular.woff  fonts/glyphicons-halflings-regular.woff
bootstrap@3.3.7           dist/fonts/glyphicons-halflings-regular.ttf   fonts/glyphicons-halflings-regular.ttf
bootstrap@3.3.7           dist/fonts/glyphicons-halflings-regular.svg   fonts/glyphicons-halflings-regular.svg#glyphicons_halflingsregular
mathjax@2.7.5             MathJax.js                              js/mathjax/2.7.5/MathJax.js
mathjax@2.7.5             config/Safe.js                          js/mathjax/2.7.5/config/Safe.js
mathjax@2.7.5             config/TeX-AMS-MML_HTMLorMML.js         js/mathjax/2.7.5/config/TeX-AMS-MML_HTMLorMML.js
mathjax@2.7.5             extensions/Safe.js                      js/mathjax/2.7.5/extensions/Safe.js
mathjax@2.7.5             jax/output/SVG/config.js                js/mathjax/2.7.5/jax/output/SVG/config.js
mathjax@2.7.5             jax/output/SVG/jax.js                   js/mathjax/2.7.5/jax/output/SVG/jax.js
mathjax@2.7.5             jax/output/SVG/fonts/TeX/fontdata.js    js/mathjax/2.7.5/jax/output/SVG/fonts/TeX/fontdata.js
mathjax@2.7.5             jax/output/SVG/fonts/TeX/Size1/Regular/Main.js js/mathjax/2.7.5/jax/output/SVG/fonts/TeX/Size1/Regular/Main.js
"

PACKS="$(mktemp -d)"
trap 'rm -rf "$PACKS"' EXIT

# Print the path of the npm tarball for $1 (pkg@ver), packing it on first use.
tarball_for() {
    local tgz="$PACKS/${1%@*}-${1##*@}.tgz"
    [ -f "$tgz" ] || (cd "$PACKS" && npm pack --silent "$1" >/dev/null)
    echo "$tgz"
}

# Copy one member out of a tarball. Python's tarfile is used because GNU tar
# floods stderr with warnings about old npm pax headers and bsdtar differs.
extract_member() {
    python - "$1" "package/$2" "$3" <<'PY'
import shutil, sys, tarfile
tgz, member, dest = sys.argv[1:]
with tarfile.open(tgz) as tar, open(dest + ".part", "wb") as out:
    shutil.copyfileobj(tar.extractfile(member), out)
shutil.move(dest + ".part", dest)  # no half-written file survives a failure
PY
}

while read -r spec member dest; do
    [ -n "$spec" ] || continue
    target="$STATIC/$dest"
    [ -s "$target" ] && continue
    mkdir -p "$(dirname "$target")"
    extract_member "$(tarball_for "$spec")" "$member" "$target"
done <<< "$FILES"

# Written last: download_scripts re-downloads everything unless it finds this.
python -c 'import visdom, sys; sys.stdout.write(visdom.__version__)' > "$STATIC/version.built"
echo "install_visdom.sh: visdom ${VISDOM_VERSION} ready, static files in $STATIC"
