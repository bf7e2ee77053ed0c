#!/usr/bin/env bash
# The Debian packages the tests need: espeak-ng and sox make speech, chromium is the
# browser of the web-page tests, PulseAudio the virtual microphone, cmake builds
# llama.cpp, the asterisk-core-sounds packages are the recorded human speech of the
# evaluation (duplex/eval/human_speech.py; no root: `duplex eval fetch-human-speech`). Installs the missing ones with apt-get when run as root; otherwise prints
# the exact command and exits 1, before any test runs.
set -euo pipefail
PACKAGES=(espeak-ng sox cmake pulseaudio pulseaudio-utils libportaudio2 libasound2-plugins libsndfile1 chromium
  asterisk-core-sounds-en-wav asterisk-core-sounds-fr-wav asterisk-core-sounds-it-wav)
need=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "duplex: the tests need these Debian packages: ${need[*]}" >&2
  echo "install them, then run make test again:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "duplex: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
