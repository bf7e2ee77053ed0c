// Playback with a small jitter buffer: plays queued agent audio, silence when empty,
// and drops everything queued on "flush" (an interruption: no stale audio ever plays).
class Player extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = [];        // Float32Array chunks at the context rate
    this.head = 0;
    this.buffered = 0;      // samples queued
    this.started = false;
    this.prebuffer = Math.round(sampleRate * 0.06);   // 60 ms of jitter buffer before starting
    this.played = 0;
    this.port.onmessage = (e) => {
      if (e.data === 'flush') { this.queue = []; this.head = 0; this.buffered = 0; this.started = false; return; }
      this.queue.push(e.data); this.buffered += e.data.length;
    };
    this.tick = 0;
  }
  process(_inputs, outputs) {
    const out = outputs[0][0];
    let i = 0, peak = 0;
    if (!this.started && this.buffered >= this.prebuffer) this.started = true;
    while (this.started && i < out.length && this.queue.length) {
      const chunk = this.queue[0];
      const n = Math.min(out.length - i, chunk.length - this.head);
      for (let k = 0; k < n; k++) { const s = chunk[this.head + k]; out[i + k] = s; peak = Math.max(peak, Math.abs(s)); }
      i += n; this.head += n; this.buffered -= n; this.played += n;
      if (this.head >= chunk.length) { this.queue.shift(); this.head = 0; }
    }
    if (!this.queue.length) this.started = false;   // underrun: prebuffer again
    for (; i < out.length; i++) out[i] = 0;
    if (++this.tick % 8 === 0) this.port.postMessage({ buffered: this.buffered, played: this.played, level: peak });
    return true;
  }
}
registerProcessor('player', Player);
