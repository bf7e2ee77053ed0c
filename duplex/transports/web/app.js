// duplex web client: microphone → /ws (native protocol, PCM16 16 kHz), agent audio ← /ws,
// live transcripts, conversation state and response latency. No build step.
'use strict';

const $ = (id) => document.getElementById(id);
const stats = { events: [], playedSamples: 0, audioBytes: 0, latencies: [], userFinals: [], agentTexts: [], state: 'idle', errors: [] };
window.duplexStats = stats;   // read by the end-to-end browser test

let ctx, ws, micStream, capture, player, outRate;
let agentLine = null, userPartial = null;

function setState(s) {
  stats.state = s;
  const el = $('state');
  el.textContent = s; el.className = 'state ' + s;
}

function line(cls, who, text) {
  const div = document.createElement('div');
  div.className = 'turn ' + cls;
  const w = document.createElement('span'); w.className = 'who'; w.textContent = who;
  const t = document.createElement('span'); t.className = 'text'; t.textContent = text;
  div.append(w, t);
  $('transcript').append(div);
  $('transcript').scrollTop = $('transcript').scrollHeight;
  return div;
}

function note(text) {
  const div = document.createElement('div'); div.className = 'note'; div.textContent = text;
  $('transcript').append(div);
}

function onEvent(e) {
  stats.events.push(e.type);
  switch (e.type) {
    case 'session.created':
      $('status').textContent = `connected: session ${e.session_id}, ${e.input_sample_rate} Hz in, ${e.output_sample_rate} Hz out`;
      setState('listening');
      break;
    case 'state': setState(e.state); break;
    case 'user.transcript.partial':
      if (!userPartial) { userPartial = line('user', 'you', ''); userPartial.classList.add('partial'); }
      userPartial.querySelector('.text').textContent = e.text;
      break;
    case 'user.transcript.final':
      if (!e.text) break;
      if (userPartial) userPartial.remove();
      userPartial = null;
      stats.userFinals.push(e.text);
      line('user', 'you', e.text);
      break;
    case 'user.backchannel': note(`(you: “${e.text}” — not a turn)`); break;
    case 'agent.backchannel': note(`(agent: “${e.text}” — listening)`); break;
    case 'agent.text.delta':
      if (!agentLine || agentLine.dataset.id !== e.response_id) { agentLine = line('agent', 'agent', ''); agentLine.dataset.id = e.response_id; }
      agentLine.querySelector('.text').textContent += (agentLine.querySelector('.text').textContent ? ' ' : '') + e.text;
      break;
    case 'agent.audio.started': {
      stats.latencies.push(e.latency_ms);
      $('latency').textContent = `${Math.round(e.latency_ms)} ms`;
      const sorted = [...stats.latencies].sort((a, b) => a - b);
      $('latency-median').textContent = `${Math.round(sorted[Math.floor(sorted.length / 2)])} ms`;
      break;
    }
    case 'agent.audio.done':
      stats.agentTexts.push(e.text);
      if (e.interrupted && agentLine && agentLine.dataset.id === e.response_id) {
        agentLine.querySelector('.text').textContent = e.text;
        const cut = document.createElement('span'); cut.className = 'cut'; cut.textContent = `[interrupted at ${(e.audio_end_ms / 1000).toFixed(1)} s]`;
        agentLine.append(cut);
      }
      break;
    case 'output.flush': player && player.port.postMessage('flush'); break;
    case 'error': stats.errors.push(e.message); note('error: ' + e.message); break;
  }
}

function onAudio(buf) {
  // PCM16 at outRate → Float32 at the context rate (the server resamples when it can).
  const pcm = new Int16Array(buf);
  stats.audioBytes += buf.byteLength;
  let f = new Float32Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) f[i] = pcm[i] / 32768;
  if (outRate !== ctx.sampleRate) {
    const ratio = outRate / ctx.sampleRate, n = Math.floor(f.length / ratio), g = new Float32Array(n);
    for (let i = 0; i < n; i++) { const p = i * ratio, k = Math.floor(p), fr = p - k; g[i] = f[k] * (1 - fr) + (f[Math.min(k + 1, f.length - 1)]) * fr; }
    f = g;
  }
  player.port.postMessage(f, [f.buffer]);
}

// The server's token, when it asks for one: from the page's URL (?token=...), else asked
// once and kept for this tab only.
async function accessToken() {
  const fromUrl = new URLSearchParams(location.search).get('token');
  if (fromUrl) return fromUrl;
  const health = await fetch('healthz').then((r) => r.json()).catch(() => ({}));
  if (!health.auth) return '';
  let token = sessionStorage.getItem('duplex-token');
  if (!token) {
    token = window.prompt('This server needs an access token:') || '';
    if (token) sessionStorage.setItem('duplex-token', token);
  }
  return token;
}

async function start() {
  $('start').disabled = true;
  ctx = new AudioContext({ latencyHint: 'interactive' });
  await ctx.audioWorklet.addModule('capture-worklet.js');
  await ctx.audioWorklet.addModule('player-worklet.js');
  // The browser's own echo canceller helps on laptop speakers; ?processing=off turns its
  // processing off (the server cancels echo too).
  const processing = new URLSearchParams(location.search).get('processing') !== 'off';
  micStream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: processing, noiseSuppression: processing, autoGainControl: processing, channelCount: 1 } });
  const src = ctx.createMediaStreamSource(micStream);
  capture = new AudioWorkletNode(ctx, 'capture');
  player = new AudioWorkletNode(ctx, 'player', { outputChannelCount: [1] });
  player.connect(ctx.destination);
  src.connect(capture);
  const rates = [8000, 16000, 22050, 24000, 32000, 44100, 48000];
  outRate = rates.includes(ctx.sampleRate) ? ctx.sampleRate : 24000;
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const token = await accessToken();
  const auth = token ? `&token=${encodeURIComponent(token)}` : '';
  ws = new WebSocket(`${proto}://${location.host}/ws?input_sample_rate=16000&output_sample_rate=${outRate}${auth}`);
  ws.binaryType = 'arraybuffer';
  ws.onmessage = (m) => (typeof m.data === 'string' ? onEvent(JSON.parse(m.data)) : onAudio(m.data));
  ws.onclose = () => { setState('idle'); $('status').textContent = 'disconnected'; $('start').disabled = false; $('stop').disabled = true; };
  // Frames captured while the socket is still connecting are queued, not lost:
  // the user's first words count.
  const pending = [];
  ws.onopen = () => { while (pending.length) ws.send(pending.shift()); };
  capture.port.onmessage = (m) => {
    if (m.data instanceof ArrayBuffer) {
      if (ws.readyState === 1) ws.send(m.data);
      else if (ws.readyState === 0 && pending.length < 300) pending.push(m.data);
    } else $('mic-level').value = m.data.level;
  };
  player.port.onmessage = (m) => {
    stats.playedSamples = m.data.played;
    $('out-level').value = m.data.level;
    $('buffered').textContent = `${Math.round(1000 * m.data.buffered / ctx.sampleRate)} ms`;
  };
  $('stop').disabled = false;
}

function stop() {
  if (ws) ws.close();
  if (micStream) micStream.getTracks().forEach((t) => t.stop());
  if (ctx) ctx.close();
}

$('start').onclick = () => start().catch((err) => { $('status').textContent = 'could not start: ' + err; stats.errors.push(String(err)); $('start').disabled = false; });
$('stop').onclick = stop;
if (new URLSearchParams(location.search).has('autostart')) $('start').click();
