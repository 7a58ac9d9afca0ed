#!/usr/bin/env bash
# Copied from the project's shared tools (livejpp team); used by the live tests and by anyone without a sound card.
# A real capture device without a sound card: a PulseAudio null sink whose monitor is the default
# source. Usage: source fake-audio.sh start|stop   (needs pulseaudio, pulseaudio-utils,
# libasound2-plugins, libportaudio2). Play into it with `paplay FILE`; sounddevice's 'pulse' or
# 'default' input then records what was played.
export XDG_RUNTIME_DIR=${FAKE_AUDIO_DIR:-/tmp/fake-audio}
export PULSE_RUNTIME_PATH=$XDG_RUNTIME_DIR/pulse
case "${1:-}" in
start)
  mkdir -p "$XDG_RUNTIME_DIR"; chmod 700 "$XDG_RUNTIME_DIR"
  pulseaudio --daemonize=yes --exit-idle-time=-1 -n \
    --load="module-native-protocol-unix auth-anonymous=1" \
    --load="module-null-sink sink_name=vsink rate=48000 channels=2" \
    --log-target=file:"$XDG_RUNTIME_DIR/pulse.log" 2>/dev/null
  for _ in $(seq 50); do pactl info >/dev/null 2>&1 && break; sleep 0.1; done
  pactl set-default-sink vsink && pactl set-default-source vsink.monitor
  # a silent stream keeps the monitor clocked; without it capture starts 1.5-2 s late
  pacat --playback --raw --format=s16le --rate=48000 --channels=2 -d vsink --latency-msec=20 /dev/zero >/dev/null 2>&1 &
  echo $! > "$XDG_RUNTIME_DIR/keepalive.pid"
  for _ in $(seq 40); do [ "$(timeout 0.3 parecord --raw -d vsink.monitor 2>/dev/null | wc -c)" -gt 0 ] && break; done ;;
stop)
  [ -f "$XDG_RUNTIME_DIR/keepalive.pid" ] && kill "$(cat "$XDG_RUNTIME_DIR/keepalive.pid")" 2>/dev/null
  pactl exit 2>/dev/null ;;
*) echo "usage: source fake-audio.sh start|stop" >&2 ;;
esac
