// Microphone capture: downsample the context rate to 16 kHz and post 512-sample PCM16 frames.
class Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.ratio = sampleRate / 16000;
    this.pos = 0;            // fractional read position in the input stream
    this.carry = new Float32Array(0);
    this.frame = new Int16Array(512);
    this.fill = 0;
    this.level = 0;
  }
  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input) return true;
    // Join the carried tail with this block, then take every ratio-th sample (with a simple
    // 2-tap average as anti-alias: speech energy above 8 kHz is small).
    const buf = new Float32Array(this.carry.length + input.length);
    buf.set(this.carry); buf.set(input, this.carry.length);
    let p = this.pos;
    let peak = 0;
    while (p + 1 < buf.length) {
      const i = Math.floor(p), f = p - i;
      const s = buf[i] * (1 - f) + buf[i + 1] * f;
      peak = Math.max(peak, Math.abs(s));
      this.frame[this.fill++] = Math.max(-32768, Math.min(32767, Math.round(s * 32767)));
      if (this.fill === this.frame.length) {
        this.port.postMessage(this.frame.buffer.slice(0));
        this.fill = 0;
      }
      p += this.ratio;
    }
    const keep = Math.floor(p);
    this.carry = buf.slice(keep);
    this.pos = p - keep;
    this.level = Math.max(peak, this.level * 0.9);
    this.port.postMessage({ level: this.level });
    return true;
  }
}
registerProcessor('capture', Capture);
