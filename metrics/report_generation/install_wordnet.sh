#!/usr/bin/env bash
# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
#
# Provision WordNet 3.0 for NLTK (the synonym stage of METEOR) from Debian's packages, without root:
#   bash metrics/report_generation/install_wordnet.sh <NLTK data folder>      e.g. .venv/nltk_data
# `apt-get download` fetches wordnet-base and wordnet-sense-index, `dpkg-deb -x` unpacks them, and their
# usr/share/wordnet/* goes to <NLTK data folder>/corpora/wordnet/ together with the `lexnames` table shipped
# next to this script (NLTK's reader needs it; Debian leaves it out) and WordNet's licence. NLTK searches
# <sys.prefix>/nltk_data by default, so `.venv/nltk_data` needs no environment variable.
# If the package lists are missing, `apt-get update` runs first (which needs root).
set -euo pipefail

nltk_data="${1:?usage: install_wordnet.sh NLTK_DATA_FOLDER}"
mkdir -p "$nltk_data"
nltk_data="$(cd "$nltk_data" && pwd)"  # absolute: the work below happens in a temporary folder
target="$nltk_data/corpora/wordnet"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$work"
if ! apt-get download wordnet-base wordnet-sense-index >/dev/null 2>&1; then
    apt-get update
    apt-get download wordnet-base wordnet-sense-index
fi
for deb in ./*.deb; do
    dpkg-deb -x "$deb" unpacked
done
mkdir -p "$target"
cp unpacked/usr/share/wordnet/* "$target/"
cp unpacked/usr/share/doc/wordnet-base/copyright "$target/LICENSE"
cp "$here/wordnet/lexnames" "$target/lexnames"
echo "WordNet 3.0 for NLTK in $target"
