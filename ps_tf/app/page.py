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
  #progress.indeterminate { background: repeating-linear-gradient(-45deg, #444 0 6px, #555 6px 12px);
                            background-size: 17px 100%; animation: crawl 1s linear infinite; }
  @keyframes crawl { to { background-position: 17px 0; } }
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
  #hits .hit { background: #2b2d31; padding: 4px; cursor: pointer; font-size: 11px; }
  #hits .hit img { width: 100%; height: 150px; object-fit: contain; background: #000; }
  .group { grid-column: 1 / -1; font-weight: bold; margin-top: 6px; }
  .group .timeline { position: relative; height: 14px; margin: 4px 0 2px; background: #2b2d31; }
  .timeline .tick { position: absolute; top: 0; width: 3px; height: 100%; margin-left: -1px; background: #666; }
  .timeline .tick.sighting { background: #4caf50; cursor: pointer; z-index: 1; }
  .timeline .tick.sighting:hover { background: #a5d6a7; }
  .group .ends { display: flex; justify-content: space-between; font-size: 10px; font-weight: normal; color: #999; }
  #message { color: #ff8a80; }
  label { font-size: 12px; }
  #timeline button.selected { background: #4caf50; }
  input[type=number] { width: 60px; }
  #frame.drawing { cursor: crosshair; user-select: none; touch-action: none; }
  .drawn { position: absolute; border: 2px dashed #03a9f4; pointer-events: none; box-sizing: border-box; }
  .controls { margin-bottom: 6px; }
  #actions { margin-bottom: 6px; font-size: 12px; }
  #actions a { color: #90caf9; margin-left: 6px; }
  #hits .hit.confirmed { outline: 3px solid #4caf50; }
  #hits .hit.rejected { opacity: 0.35; }
  .marking button { padding: 0 6px; }
  #hits .hit.confirmed .confirm { background: #4caf50; }
  #hits .hit.rejected .reject { background: #e57373; }
  .marking a { color: #90caf9; margin-left: 4px; }
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
  <div id="view"><p id="hint">Pick a file, then click a person to search for them; or upload a picture of them and draw a box around them.</p>
    <div id="frame"></div><p id="caption"></p><div id="timeline"></div>
    <div id="draw-tools" hidden><button id="search-box" disabled>Search this box</button> <span id="box-text"></span></div></div>
  <div id="side">
    <div class="controls">
      <label>top-k <input id="topk" type="number" value="20" min="1" max="1000"></label>
      <label>min similarity <input id="minsim" type="number" value="-1" step="0.05" min="-1" max="1"></label>
      <label><input id="group" type="checkbox"> group by file</label>
    </div>
    <div class="controls"><label>upload query <input id="upload" type="file" accept="image/jpeg,image/png,image/bmp"></label></div>
    <p id="query"></p>
    <div id="actions" hidden>
      <span id="marks"></span>
      <button id="rerank" title="search again with the query and the confirmed hits, without the rejected ones">Re-rank</button>
      <button id="clear-marks">Clear marks</button>
      export <a id="export-json" download="hits.json">hits.json</a><a id="export-sheet" download="contact_sheet.png">contact sheet</a>
    </div>
    <div id="hits"></div>
  </div>
</main>
<script>
const token = new URLSearchParams(location.search).get('token');
const withToken = (url) => token ? url + (url.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token) : url;
const $ = (id) => document.getElementById(id);
const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
let lastQuery = null;    // {detection: row}, or {upload: name, box: 'x1,y1,x2,y2'}
let maxUploadBytes = 20 * 1024 * 1024;

async function api(url, options) {
  const response = await fetch(withToken(url), options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = body.detail ? (typeof body.detail === 'string' ? body.detail : JSON.stringify(body.detail)) : response.statusText;
    $('message').textContent = detail; throw new Error(detail);
  }
  $('message').textContent = '';
  return body;
}

const queryParams = (q) => q.upload ? `upload=${encodeURIComponent(q.upload)}&box=${q.box}` : `detection=${q.detection}`;
const rankingParams = () => `top_k=${$('topk').value}&min_similarity=${$('minsim').value}`;

function formatTime(t) { return t === null ? '' : ' @ ' + t.toFixed(1) + ' s'; }
const count = (n) => n.toLocaleString('en-US');

function progressFraction(s) {   // files done, plus the part of the video being indexed
  const v = s.video, within = v && v.total ? Math.min(v.done / v.total, 1) : 0;
  return s.total ? Math.min((s.done + within) / s.total, 1) : (s.state === 'ready' ? 1 : 0);
}

function indexingText(s) {   // a long video is one file but many frames: count those too
  const v = s.video;
  const frames = !v ? '' : ` · ${v.name}: frame ${count(v.done)} of ` +
      (v.total === null ? '?' : count(Math.max(v.total, v.done))) + ' sampled';
  return `indexing ${s.done}/${s.total} files${frames}`;
}

async function pollStatus() {
  const s = await api('/api/status');
  $('progress').firstElementChild.style.width = (100 * progressFraction(s)) + '%';
  $('progress').classList.toggle('indeterminate', Boolean(s.video && s.video.total === null));
  $('status').textContent = s.state === 'indexing' ? indexingText(s)
      : s.state === 'error' ? 'indexing failed: ' + s.error
      : `${s.files} files, ${s.detections} detections`;
  $('status').dataset.state = s.state;
  maxUploadBytes = s.max_upload_bytes;
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

function clearFrame() {   // leaves the upload view, if shown
  const frame = $('frame');
  frame.innerHTML = ''; frame.className = '';
  frame.onpointerdown = frame.onpointermove = frame.onpointerup = null;
  delete frame.dataset.upload; delete frame.dataset.fileId;
  $('draw-tools').hidden = true;
  return frame;
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
  const frame = clearFrame();
  frame.appendChild(img); frame.dataset.fileId = fileId;
  const scale = img.clientWidth / img.naturalWidth;
  const area = (d) => (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]);
  for (const d of [...detections].sort((a, b) => area(b) - area(a))) {   // small boxes on top
    const box = document.createElement('div');
    box.className = 'det' + (d.detection === highlight ? ' hit' : '') + (lastQuery && d.detection === lastQuery.detection ? ' query' : '');
    box.dataset.detection = d.detection;
    const [x1, y1, x2, y2] = d.box;
    Object.assign(box.style, {left: x1 * scale + 'px', top: y1 * scale + 'px',
                              width: (x2 - x1) * scale + 'px', height: (y2 - y1) * scale + 'px'});
    box.title = 'score ' + d.score + formatTime(d.time) + ': click to search for this person';
    box.onclick = () => search({detection: d.detection});
    frame.appendChild(box);
  }
  $('caption').textContent = document.querySelector(`.file[data-id="${fileId}"]`).textContent + formatTime(time);
}

async function uploadQuery() {
  const file = $('upload').files[0];
  $('upload').value = '';   // so that choosing the same file again uploads it again
  if (!file) return;
  if (file.size > maxUploadBytes) {   // the server refuses it too; this saves sending it
    $('message').textContent = `${file.name} is ${(file.size / 2 ** 20).toFixed(1)} MB; the limit is ${(maxUploadBytes / 2 ** 20).toFixed(0)} MB`;
    return;
  }
  const upload = await api('/api/uploads', {method: 'POST', body: file,
                                            headers: {'Content-Type': file.type || 'application/octet-stream'}});
  await showUpload(upload, file.name);
}

async function showUpload(upload, fileName) {
  document.querySelectorAll('.file').forEach(e => e.classList.remove('selected'));
  $('timeline').innerHTML = '';
  const img = new Image();
  img.src = withToken(`/api/uploads/${upload.upload}`); img.draggable = false;
  await img.decode();
  const frame = clearFrame();
  frame.appendChild(img); frame.dataset.upload = upload.upload; frame.className = 'drawing';
  $('caption').textContent = `uploaded ${fileName} (${upload.width} x ${upload.height}): drag a box around the person, then search`;
  $('draw-tools').hidden = false; $('search-box').disabled = true; $('box-text').textContent = '';
  let start = null, box = null;
  const drawn = document.createElement('div');
  drawn.className = 'drawn'; drawn.hidden = true; frame.appendChild(drawn);
  const point = (e) => {   // image pixels under the pointer, clamped to the image
    const r = img.getBoundingClientRect(), scale = img.naturalWidth / r.width;
    return [Math.min(Math.max(e.clientX - r.left, 0), r.width) * scale,
            Math.min(Math.max(e.clientY - r.top, 0), r.height) * scale];
  };
  const update = (end) => {
    box = [Math.min(start[0], end[0]), Math.min(start[1], end[1]), Math.max(start[0], end[0]), Math.max(start[1], end[1])].map(Math.round);
    const scale = img.clientWidth / img.naturalWidth;
    Object.assign(drawn.style, {left: box[0] * scale + 'px', top: box[1] * scale + 'px',
                                width: (box[2] - box[0]) * scale + 'px', height: (box[3] - box[1]) * scale + 'px'});
    drawn.hidden = false;
    $('box-text').textContent = 'box ' + box.join(', ');
    $('search-box').disabled = box[2] - box[0] < 2 || box[3] - box[1] < 2;
  };
  frame.onpointerdown = (e) => { e.preventDefault(); frame.setPointerCapture(e.pointerId); start = point(e); update(start); };
  frame.onpointermove = (e) => { if (start) update(point(e)); };
  frame.onpointerup = (e) => { if (start) { update(point(e)); start = null; } };
  $('search-box').onclick = () => search({upload: upload.upload, box: box.join(',')});
}

function showMarks(counts) {
  $('marks').textContent = `${counts.confirmed} confirmed, ${counts.rejected} rejected`;
}

async function search(query) {
  lastQuery = query;
  const started = performance.now();
  const result = await api(`/api/search?${queryParams(query)}&${rankingParams()}`);
  const seconds = ((performance.now() - started) / 1000).toFixed(3);
  const thumbnail = query.upload ? `/api/uploads/${query.upload}?box=${query.box}` : `/api/detections/${query.detection}/crop`;
  $('query').innerHTML = `<img src="${withToken(thumbnail)}" height="80"> query; ${result.hits.length} hits in ${seconds} s`;
  showMarks(result.marks);
  $('export-json').href = withToken(`/api/export/hits.json?${queryParams(query)}&${rankingParams()}`);
  $('export-sheet').href = withToken(`/api/export/contact_sheet.png?${queryParams(query)}&${rankingParams()}`);
  $('actions').hidden = false;
  const hits = $('hits'); hits.innerHTML = '';
  let list = result.hits;
  if ($('group').checked) list = [...list].sort((a, b) => a.file_id - b.file_id || (a.frame_time || 0) - (b.frame_time || 0));
  let group = null;
  for (const h of list) {
    if ($('group').checked && h.file_id !== group) {
      group = h.file_id;
      hits.appendChild(groupHeader(h, list.filter(other => other.file_id === h.file_id)));
    }
    hits.appendChild(hitCard(h));
  }
}

function groupHeader(first, hits) {   // a file's name; for a video, a timeline of its hits
  const g = document.createElement('div');
  g.className = 'group'; g.dataset.fileId = first.file_id;
  g.textContent = `${first.name} · ${hits.length} hit${hits.length === 1 ? '' : 's'}`;
  if (first.frame_time !== null) fillTimeline(g, first.file_id, hits);   // not awaited: the cards show at once
  return g;
}

async function fillTimeline(g, fileId, hits) {
  // Ticks from 0 s to the video's last frame with people: grey where anyone is, green where a hit
  // is (click: open the frame).
  const times = [...new Set((await api(`/api/files/${fileId}/detections`)).map(d => d.time))];
  const end = Math.max(...times, ...hits.map(h => h.frame_time)) || 1;
  const line = document.createElement('div'); line.className = 'timeline';
  const tick = (t, className) => {
    const div = document.createElement('div');
    div.className = 'tick ' + className; div.style.left = (100 * t / end) + '%';
    line.appendChild(div);
    return div;
  };
  for (const t of times) tick(t, 'people').title = t.toFixed(1) + ' s: people';
  const perFrame = new Map();   // frame time -> its hits, best-ranked first: one tick each
  for (const h of [...hits].sort((a, b) => a.rank - b.rank)) perFrame.set(h.frame_time, [...(perFrame.get(h.frame_time) || []), h]);
  for (const [t, [h, ...others]] of perFrame) {
    const div = tick(t, 'sighting'), more = others.length;
    div.title = `#${h.rank} at ${t.toFixed(1)} s, sim ${h.similarity.toFixed(3)}` +
        (more ? ` (and ${more} more hit${more === 1 ? '' : 's'} in this frame)` : '') + ': click to open';
    div.dataset.detection = h.detection;
    div.onclick = () => showFile(h.file_id, h.frame_time, h.detection);
  }
  const ends = document.createElement('div'); ends.className = 'ends';
  ends.innerHTML = `<span>0 s</span><span>${end.toFixed(1)} s</span>`;
  g.append(line, ends);
}

function hitCard(h) {
  const div = document.createElement('div');
  div.className = 'hit' + (h.mark ? ' ' + h.mark : ''); div.dataset.detection = h.detection; div.dataset.fileId = h.file_id;
  const strip = h.frame_time === null ? '' :
      `<a class="strip" target="_blank" title="this frame and its neighbours" href="${withToken('/api/detections/' + h.detection + '/strip.png')}">frames</a>`;
  div.innerHTML = `<img src="${withToken('/api/detections/' + h.detection + '/crop')}">` +
      `<div>#${h.rank} sim ${h.similarity.toFixed(3)} · det ${h.score.toFixed(2)}</div>` +
      `<div class="name">${escapeHtml(h.name)}${formatTime(h.frame_time)}</div>` +
      `<div class="marking"><button class="confirm" title="confirm: the same person">✓</button>` +
      `<button class="reject" title="reject: someone else">✗</button>${strip}</div>`;
  div.onclick = () => showFile(h.file_id, h.frame_time, h.detection);
  div.querySelector('.confirm').onclick = (e) => { e.stopPropagation(); markHit(div, 'confirmed'); };
  div.querySelector('.reject').onclick = (e) => { e.stopPropagation(); markHit(div, 'rejected'); };
  const link = div.querySelector('.strip');
  if (link) link.onclick = (e) => e.stopPropagation();
  return div;
}

async function markHit(div, mark) {   // a second click on the same mark takes it back
  const wanted = div.classList.contains(mark) ? null : mark;
  const counts = await api('/api/marks', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                          body: JSON.stringify({...lastQuery, hit: Number(div.dataset.detection), mark: wanted})});
  div.classList.remove('confirmed', 'rejected');
  if (wanted) div.classList.add(wanted);
  showMarks(counts);
}

$('rescan').onclick = async () => { await api('/api/rescan', {method: 'POST'}); delete $('files').dataset.loaded; pollStatus(); };
for (const id of ['topk', 'minsim', 'group']) $(id).onchange = () => lastQuery !== null && search(lastQuery);
$('upload').onchange = uploadQuery;
$('rerank').onclick = () => search(lastQuery);
$('clear-marks').onclick = async () => { await api(`/api/marks?${queryParams(lastQuery)}`, {method: 'DELETE'}); search(lastQuery); };
pollStatus();
</script>
</body>
</html>
"""
