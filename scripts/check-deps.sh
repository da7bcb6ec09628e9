#!/bin/sh
# Check that the Debian packages named as arguments are installed. As
# root, install the missing ones with apt-get, and update the package
# lists first when they are missing or the install fails. As another
# user, print the command to run and fail.
set -u

missing=""
for package in "$@"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)
  case "$status" in
    *" installed") ;;
    *) missing="$missing $package" ;;
  esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "borglua needs these Debian packages:$missing" >&2
  echo "Install them with: sudo apt-get install -y$missing" >&2
  exit 1
fi

echo "Installing Debian packages:$missing"
export DEBIAN_FRONTEND=noninteractive
if ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then
  apt-get update -q || exit 1
fi
# shellcheck disable=SC2086  # the package names are separate words
if ! apt-get install -y -q --no-install-recommends $missing; then
  apt-get update -q || exit 1
  apt-get install -y -q --no-install-recommends $missing || exit 1
fi
