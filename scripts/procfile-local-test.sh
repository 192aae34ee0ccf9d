#!/usr/bin/env bash
# Runs README.md's "Run the Procfile locally" block as a reader pastes it,
# in a fresh copy of the repository (its tracked and new files, none of its
# build output), on free ports, then checks that the add-on was rotated:
# the batch succeeded, the old credential was revoked, and the fake
# Heroku's config no longer holds the provisioning credential.
#
#   scripts/procfile-local-test.sh            # needs go, redis-server, curl
#   PROCFILE_LOCAL_WORKDIR=/tmp/x scripts/procfile-local-test.sh
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
work=${PROCFILE_LOCAL_WORKDIR:-$(mktemp -d)}
mkdir -p "$work/clone"
rm -rf "${work:?}/clone" && mkdir "$work/clone"
git -C "$repo" ls-files -z --cached --others --exclude-standard | sort -zu |
	(cd "$repo" && xargs -0 cp --parents -t "$work/clone")

# free_port prints a TCP port nothing on this machine listens on, below
# the kernel's ephemeral range (32768 and up on Linux), where the local end
# of an outgoing connection (other tests, the go tool) could take it between
# this check and the bind.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
}

block=$(awk '/<!-- procfile-local:begin/{f=1; next} /<!-- procfile-local:end/{f=0} f' "$repo/README.md" | sed '/^```/d')
ports_line='export PORT=5000 FAKEHEROKU_PORT=5001 ISSUER_PORT=5002 REDIS_PORT=6390'
if ! grep -qxF "$ports_line" <<<"$block"; then
	echo "procfile-local: the README block no longer starts with: $ports_line" >&2
	exit 1
fi
ports="export PORT=$(free_port) FAKEHEROKU_PORT=$(free_port) ISSUER_PORT=$(free_port) REDIS_PORT=$(free_port)"

{
	echo "trap 'kill \$(jobs -p) 2>/dev/null; wait' EXIT; trap 'exit 1' TERM INT"
	echo "set -e"
	sed "s|^$ports_line\$|$ports|" <<<"$block"
	cat <<'CHECK'
# The checks: not part of the README.
final=$(api /batches/$BATCH)
config=$(curl -sf http://127.0.0.1:$FAKEHEROKU_PORT/_fake/addons/$ADDON/config)
case "$final" in *'"succeeded":1'*'"revoked":1'*) ;; *) echo "procfile-local: FAIL batch: $final" >&2; exit 1 ;; esac
case "$config" in *provisioned-1*|'') echo "procfile-local: FAIL config not rotated: $config" >&2; exit 1 ;; esac
case "$config" in *MYADDON_URL*) ;; *) echo "procfile-local: FAIL config: $config" >&2; exit 1 ;; esac
grep -q demo_issuer_listening demo-issuer.log
echo "procfile-local: OK: $ADDON rotated and its old credential revoked (batch $BATCH)"
CHECK
} >"$work/runner.sh"

cd "$work/clone"
exec timeout "${PROCFILE_LOCAL_TIMEOUT:-600}" bash "$work/runner.sh"
