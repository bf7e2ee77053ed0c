#!/usr/bin/env bash
# Talk to the embedded default through the microphone; the conversation is saved to out/talk.
# Laptop speakers work: the runtime cancels its own echo. List devices with --list-devices.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/duplex talk --save out/talk "$@"
