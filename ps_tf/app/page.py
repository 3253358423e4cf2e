"""The web app's one page: plain HTML, CSS and JavaScript served as is (no build step)."""

PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>ps_tf person search</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; background: #1e1f22; color: #ddd; }
  header { padding: 8px 16px; background: #2b2d31; display: flex; gap: 16px; align-items: center; }
  header h1 { font-size: 16px; margin: 0; }
  #progress { width: 240px; height: 10px; background: #444; }
  #progress div { height: 100%; width: 0; background: #4caf50; }
  main { display: grid; grid-template-columns: 220px 1fr 420px; height: calc(100vh - 44px); }
  #files { overflow-y: auto; border-right: 1px solid #333; }
  .file { padding: 4px 8px; cursor: pointer; font-size: 13px; }
  .file:hover, .file.selected { background: #3a3d44; }
  #view { overflow: auto; padding: 8px; }
  #frame { position: relative; display: inline-block; }
  #frame img { display: block; max-width: 100%; }
  .det { position: absolute; border: 2px solid #ffeb3b; cursor: pointer; box-sizing: border-box; }
  .det:hover { background: rgba(255, 235, 59, 0.25); }
  .det.query { border-color: #03a9f4; }
  .det.hit { border-color: #4caf50; }
  #side { overflow-y: auto; border-left: 1px solid #333; padding: 8px; }
  #hits { display: grid; grid-template-columns: repeat(3, 1fr); gap: 6px; }
  .hit { background: #2b2d31; padding: 4px; cursor: pointer; font-size: 11px; }
  .hit img { width: 100%; height: 150px; object-fit: contain; background: #000; }
  .group { grid-column: 1 / -1; font-weight: bold; margin-top: 6px; }
  #message { color: #ff8a80; }
  label { font-size: 12px; }
  #timeline button.selected { background: #4caf50; }
  input[type=number] { width: 60px; }
</style>
</head>
<body>
<header>
  <h1>ps_tf person search</h1>
  <div id="progress"><div></div></div><span id="status">starting</span>
  <button id="rescan">Rescan galleries</button>
  <span id="message"></span>
</header>
<main>
  <div id="files"></div>
  <div id="view"><p id="hint">Pick a file, then click a person to search for them.</p>
    <div id="frame"></div><p id="caption"></p><div id="timeline"></div></div>
  <div id="side">
    <label>top-k <input id="topk" type="number" value="20" min="1" max="1000"></label>
    <label>min similarity <input id="minsim" type="number" value="-1" step="0.05" min="-1" max="1"></label>
    <label><input id="group" type="checkbox"> group by file</label>
    <p id="query"></p>
    <div id="hits"></div>
  </div>
</main>
<script>
const token = new URLSearchParams(location.search).get('token');
const withToken = (url) => token ? url + (url.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token) : url;
const $ = (id) => document.getElementById(id);
let lastQuery = null;

async function api(url, options) {
  const response = await fetch(withToken(url), options);
  const body = await response.json();
  if (!response.ok) { $('message').textContent = body.detail || response.statusText; throw new Error(body.detail); }
  $('message').textContent = '';
  return body;
}

function formatTime(t) { return t === null ? '' : ' @ ' + t.toFixed(1) + ' s'; }

async function pollStatus() {
  const s = await api('/api/status');
  const fraction = s.total ? s.done / s.total : (s.state === 'ready' ? 1 : 0);
  $('progress').firstElementChild.style.width = (100 * fraction) + '%';
  $('status').textContent = s.state === 'indexing'
      ? `indexing ${s.done}/${s.total} files` : s.state === 'error' ? 'indexing failed: ' + s.error
      : `${s.files} files, ${s.detections} detections`;
  $('status').dataset.state = s.state;
  if (s.state === 'ready' && !$('files').dataset.loaded) await loadFiles();
  if (s.state !== 'ready' && s.state !== 'error') setTimeout(pollStatus, 500);
}

async function loadFiles() {
  const files = await api('/api/files');
  $('files').dataset.loaded = '1';
  $('files').innerHTML = '';
  for (const f of files) {
    const div = document.createElement('div');
    div.className = 'file'; div.dataset.id = f.id;
    div.textContent = (f.video ? '[video] ' : '') + f.name + ' (' + f.detections + ')';
    div.onclick = () => showFile(f.id, null, null);
    $('files').appendChild(div);
  }
}

async function showFile(fileId, time, highlight) {
  document.querySelectorAll('.file').forEach(e => e.classList.toggle('selected', e.dataset.id == fileId));
  const all = await api(`/api/files/${fileId}/detections`);
  const times = [...new Set(all.filter(d => d.time !== null).map(d => d.time))].sort((a, b) => a - b);
  if (time === null && times.length) time = times[0];   // a video opens at its first sighting
  const detections = all.filter(d => d.time === null || Math.abs(d.time - time) < 1e-3);
  $('timeline').innerHTML = '';
  for (const t of times) {   // a video's timeline: one button per frame with people
    const button = document.createElement('button');
    button.textContent = t.toFixed(1) + ' s'; button.className = 'time' + (t === time ? ' selected' : '');
    button.onclick = () => showFile(fileId, t, highlight);
    $('timeline').appendChild(button);
  }
  const img = new Image();
  img.src = withToken(`/api/files/${fileId}/frame` + (time === null ? '' : `?time=${time}`));
  await img.decode();
  const frame = $('frame');
  frame.innerHTML = ''; frame.appendChild(img); frame.dataset.fileId = fileId;
  const scale = img.clientWidth / img.naturalWidth;
  const area = (d) => (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]);
  for (const d of [...detections].sort((a, b) => area(b) - area(a))) {   // small boxes on top
    const box = document.createElement('div');
    box.className = 'det' + (d.detection === highlight ? ' hit' : '') + (d.detection === lastQuery ? ' query' : '');
    box.dataset.detection = d.detection;
    const [x1, y1, x2, y2] = d.box;
    Object.assign(box.style, {left: x1 * scale + 'px', top: y1 * scale + 'px',
                              width: (x2 - x1) * scale + 'px', height: (y2 - y1) * scale + 'px'});
    box.title = 'score ' + d.score + formatTime(d.time) + ': click to search for this person';
    box.onclick = () => search(d.detection);
    frame.appendChild(box);
  }
  $('caption').textContent = document.querySelector(`.file[data-id="${fileId}"]`).textContent + formatTime(time);
}

async function search(detection) {
  lastQuery = detection;
  const started = performance.now();
  const result = await api(`/api/search?detection=${detection}&top_k=${$('topk').value}&min_similarity=${$('minsim').value}`);
  const seconds = ((performance.now() - started) / 1000).toFixed(3);
  $('query').innerHTML = `<img src="${withToken('/api/detections/' + detection + '/crop')}" height="80"> query; ${result.hits.length} hits in ${seconds} s`;
  const hits = $('hits'); hits.innerHTML = '';
  let list = result.hits;
  if ($('group').checked) list = [...list].sort((a, b) => a.file_id - b.file_id || (a.frame_time || 0) - (b.frame_time || 0));
  let group = null;
  for (const h of list) {
    if ($('group').checked && h.file_id !== group) {
      group = h.file_id;
      const g = document.createElement('div'); g.className = 'group'; g.textContent = h.name; hits.appendChild(g);
    }
    const div = document.createElement('div');
    div.className = 'hit'; div.dataset.detection = h.detection; div.dataset.fileId = h.file_id;
    div.innerHTML = `<img src="${withToken('/api/detections/' + h.detection + '/crop')}">` +
        `<div>#${h.rank} sim ${h.similarity.toFixed(3)} · det ${h.score.toFixed(2)}</div>` +
        `<div class="name">${h.name}${formatTime(h.frame_time)}</div>`;
    div.onclick = () => showFile(h.file_id, h.frame_time, h.detection);
    hits.appendChild(div);
  }
}

$('rescan').onclick = async () => { await api('/api/rescan', {method: 'POST'}); delete $('files').dataset.loaded; pollStatus(); };
for (const id of ['topk', 'minsim', 'group']) $(id).onchange = () => lastQuery !== null && search(lastQuery);
pollStatus();
</script>
</body>
</html>
"""
