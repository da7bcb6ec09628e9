#!/bin/sh
# Run scripts/nightly.lua twice on real files (/usr/share/doc and /etc,
# only read) into a repository under build/demo, and time both runs. The
# second run finds almost everything already stored, so its deduplicated
# size is tiny.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
demo="$top/build/demo"
rm -rf "$demo"
mkdir -p "$demo"

# A repository of its own: no cache, key or variable of the user's.
unset BORG_REPO BORG_PASSCOMMAND BORG_PASSPHRASE_FD BORG_RSH BORG_KEYS_DIR \
      BORG_CACHE_DIR BORG_CONFIG_DIR BORG_SECURITY_DIR
export BORG_BASE_DIR="$demo/base"
export BORG_PASSPHRASE=borglua-demo

for run in 1 2; do
  echo "== run $run: borglua scripts/nightly.lua build/demo/repo /usr/share/doc /etc"
  start=$(date +%s.%N)
  status=0
  "$top/build/borglua" "$top/scripts/nightly.lua" "$demo/repo" /usr/share/doc /etc \
    || status=$?
  end=$(date +%s.%N)
  case $status in
    0) ;;
    1) echo "(borg warned about some files, for example ones this user may not read)" ;;
    *) echo "run $run failed with exit status $status" >&2; exit "$status" ;;
  esac
  awk -v run="$run" -v start="$start" -v end="$end" \
    'BEGIN { printf "run %d took %.1f s\n", run, end - start }'
done
