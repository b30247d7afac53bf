#!/bin/sh
# Regenerate the images' lock files from pyproject.toml: exact versions with hashes, for the
# images' platform (Linux x86_64, CPython 3.11). Run after changing a dependency in pyproject.toml;
# `--upgrade` (passed through) moves every pin to the newest allowed version.
#   requirements/compile.sh [--upgrade]
# Needs uv (pip install uv); the Dockerfile installs these with `pip install --require-hashes`.
set -eu
cd "$(dirname "$0")/.."
for extra in bot worker; do
    uv pip compile pyproject.toml --extra "$extra" --generate-hashes \
        --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
        --constraint requirements/constraints.txt \
        --custom-compile-command "requirements/compile.sh" \
        --output-file "requirements/$extra.txt" --quiet "$@"
done
uv pip compile requirements/build.in --generate-hashes \
    --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    --custom-compile-command "requirements/compile.sh" \
    --output-file requirements/build.txt --quiet "$@"
