#!/bin/sh
# First step before `docker compose up`: write `.env` (from `.env.example` when missing) with
# fresh random API_TOKEN, WEBHOOK_TOKEN and FLOWER_BASIC_AUTH (`ops:<random>`) unless they
# are already set, and `instances.yaml`
# (from `instances.example.yaml`) when missing. Safe to run again: it never replaces a value.
# Usage: scripts/compose-env.sh [DIRECTORY]   (default: the repository root)
set -eu
cd "${1:-$(dirname "$0")/..}"

[ -f .env ] || cp .env.example .env
[ -f instances.yaml ] || cp instances.example.yaml instances.yaml

random_token() {
    od -An -tx1 -N32 /dev/urandom | tr -d ' \n'
}

for name in API_TOKEN WEBHOOK_TOKEN FLOWER_BASIC_AUTH; do
    if grep -Eq "^${name}=.+" .env; then
        echo "${name}: already set in .env"
        continue
    fi
    grep -Ev "^#? ?${name}=" .env > .env.tmp || true
    value="$(random_token)"
    [ "${name}" = FLOWER_BASIC_AUTH ] && value="ops:${value}"
    printf '%s=%s\n' "${name}" "${value}" >> .env.tmp
    mv .env.tmp .env
    echo "${name}: generated into .env"
done
chmod 600 .env
