// The fleet dashboard: plain browser JavaScript over the admin JSON API, charts by
// Chart.js (served by Central itself, so the page works without internet access).

const TOKEN_KEY = 'dbupdate.adminToken';
const SUCCESS = new Set(['served', 'unchanged', 'held']);
const STATUS_COLORS = {
  served: '#2e8b57',
  unchanged: '#7fb77e',
  held: '#5dade2',
  invalid_input: '#e0a526',
  unauthenticated: '#d35400',
  unknown_device: '#b9770e',
  disabled: '#95a5a6',
  rate_limited: '#8e44ad',
  overloaded: '#6c3483',
  error: '#c0392b',
  aborted: '#7f8c8d',
  started: '#aab7c4',
};
const TABLE_COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

const $ = (selector) => document.querySelector(selector);
const charts = {};

class Unauthorized extends Error {}

async function api(path, method = 'GET') {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) throw new Unauthorized('no token');
  const headers = { authorization: `Bearer ${token}`, 'dbupdate-actor': 'dashboard' };
  const res = await fetch(path, { method, headers });
  const body = await res.json().catch(() => ({}));
  if (res.status === 401) throw new Unauthorized(body.error?.message ?? 'admin token refused');
  if (!res.ok) throw new Error(`${body.error?.code ?? res.status}: ${body.error?.message ?? res.statusText}`);
  return body;
}

const fmtTime = (iso) => (iso ? new Date(iso).toISOString().replace('T', ' ').slice(0, 16) + 'Z' : '—');
const fmtHour = (iso) => iso.slice(5, 13).replace('T', ' ') + 'h';
const pct = (part, whole) => (whole === 0 ? '–' : `${((100 * part) / whole).toFixed(1)} %`);
const sum = (record) => Object.values(record).reduce((a, b) => a + b, 0);

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text ?? '—';
  if (className) td.className = className;
  return td;
}

function fillTable(selector, rows, toCells, onClick) {
  const body = $(`${selector} tbody`);
  body.replaceChildren(
    ...rows.map((row) => {
      const tr = document.createElement('tr');
      tr.append(...toCells(row));
      if (onClick) {
        tr.className = 'clickable';
        tr.addEventListener('click', () => onClick(row));
      }
      return tr;
    }),
  );
  if (rows.length === 0) {
    const tr = document.createElement('tr');
    const td = cell('none');
    td.colSpan = 8;
    tr.append(td);
    body.append(tr);
  }
}

function draw(id, config) {
  charts[id]?.destroy();
  charts[id] = new Chart($(`#${id}`), {
    ...config,
    options: { animation: false, responsive: true, maintainAspectRatio: false, ...config.options },
  });
}

/** The hours worth drawing: from the first that holds anything (a fresh install is not one bar of 48), at least 6. */
function drawnBuckets(buckets) {
  const first = buckets.findIndex((b) => sum(b.requests) + sum(b.acks) > 0);
  return buckets.slice(first < 0 ? 0 : Math.max(0, Math.min(first, buckets.length - 6)));
}

function drawOverview(hourly) {
  hourly = { ...hourly, buckets: drawnBuckets(hourly.buckets) };
  document.body.dataset.hoursDrawn = String(hourly.buckets.length);
  const labels = hourly.buckets.map((b) => fmtHour(b.hour));
  const statuses = [...new Set(hourly.buckets.flatMap((b) => Object.keys(b.requests)))].sort();
  draw('requests-chart', {
    type: 'bar',
    data: {
      labels,
      datasets: statuses.map((status) => ({
        label: status,
        data: hourly.buckets.map((b) => b.requests[status] ?? 0),
        backgroundColor: STATUS_COLORS[status] ?? '#34495e',
      })),
    },
    options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
  });
  const rate = (record, ok) => {
    const total = sum(record);
    return total === 0 ? null : (100 * ok(record)) / total;
  };
  draw('rates-chart', {
    type: 'line',
    data: {
      labels,
      datasets: [
        {
          label: 'requests answered (served or unchanged) %',
          data: hourly.buckets.map((b) =>
            rate(b.requests, (r) => Object.entries(r).reduce((n, [s, c]) => n + (SUCCESS.has(s) ? c : 0), 0)),
          ),
          borderColor: '#2e8b57',
          spanGaps: true,
        },
        {
          label: 'acks Success %',
          data: hourly.buckets.map((b) => rate(b.acks, (a) => a.Success ?? 0)),
          borderColor: '#1f77b4',
          spanGaps: true,
        },
      ],
    },
    options: { scales: { y: { min: 0, max: 100 } } },
  });
  const requests = hourly.buckets.reduce((n, b) => n + sum(b.requests), 0);
  const ok = hourly.buckets.reduce(
    (n, b) => n + Object.entries(b.requests).reduce((m, [s, c]) => m + (SUCCESS.has(s) ? c : 0), 0),
    0,
  );
  const acks = hourly.buckets.reduce((n, b) => n + sum(b.acks), 0);
  const acksOk = hourly.buckets.reduce((n, b) => n + (b.acks.Success ?? 0), 0);
  $('#card-requests').textContent = requests.toLocaleString('en');
  $('#card-success').textContent = pct(ok, requests);
  $('#card-acks').textContent = pct(acksOk, acks);
}

function drawStale(stale) {
  $('#stale-label').textContent = String(stale.hours);
  $('#card-stale').textContent = stale.total.toLocaleString('en');
  // The table shows the first page; the total counts them all.
  $('#stale-more').hidden = stale.total <= stale.devices.length;
  $('#stale-more').textContent =
    `Showing the first ${stale.devices.length} of ${stale.total.toLocaleString('en')}, by MAC; ` +
    '`dbupdate central devices list --stale-hours N` or /api/admin/devices?staleHours=N pages through all.';
  fillTable(
    '#stale-table',
    stale.devices,
    (d) => [
      cell(d.mac),
      cell(d.name),
      cell(d.location),
      cell(d.company),
      cell(d.lastSuccessAt ? fmtTime(d.lastSuccessAt) : 'never'),
      cell(d.lastRequestAt ? `${fmtTime(d.lastRequestAt)} (${d.lastRequestStatus})` : 'never'),
    ],
    (d) => showDevice(d.mac),
  );
}

function drawVersions(view) {
  $('#served-versions').textContent = view.served.join(' and ');
  const served = new Set(view.served);
  fillTable('#versions-table', view.versions, (v) => [
    cell(
      v.schemaVersion === null ? 'not reported' : String(v.schemaVersion),
      v.schemaVersion !== null && !served.has(v.schemaVersion) ? 'down' : undefined,
    ),
    cell(v.softwareVersion ?? 'not reported'),
    cell(v.devices.toLocaleString('en')),
    cell(String(v.refused), v.refused > 0 ? 'down' : undefined),
  ]);
}

/** Errors are shown on the page, above everything, until the next refresh succeeds. */
function showError(message) {
  $('#page-error').textContent = message;
  $('#page-error').hidden = !message;
}

// The fleet, a page at a time (by MAC); the search filters the pages loaded so far.
let fleet = [];
let fleetNext = null;

async function loadFleet(more = false) {
  const after = more && fleetNext ? `&after=${encodeURIComponent(fleetNext)}` : '';
  const page = await api(`/api/admin/devices?limit=200${after}`);
  fleet = more ? [...fleet, ...page.devices] : page.devices;
  fleetNext = page.next;
  $('#fleet-total').textContent =
    `(${page.total}${fleet.length < page.total ? `, ${fleet.length} loaded` : ''})`;
  $('#fleet-more').hidden = fleetNext === null;
  drawFleet();
}

function drawFleet() {
  const words = $('#fleet-search').value.trim().toLowerCase().split(/\s+/).filter(Boolean);
  const text = (d) => `${d.mac} ${d.name} ${d.location} ${d.company} ${d.state}`.toLowerCase();
  const shown = fleet.filter((d) => words.every((w) => text(d).includes(w)));
  fillTable(
    '#fleet-table',
    shown,
    (d) => [
      cell(d.mac),
      cell(d.name),
      cell(d.location),
      cell(d.state, d.state === 'synced' ? 'up' : d.state === 'never synced' ? null : 'down'),
      cell(fmtTime(d.lastSuccessAt)),
      cell(d.softwareVersion ? `${d.softwareVersion} (v${d.schemaVersion ?? '?'})` : null),
    ],
    (d) =>
      showDevice(d.mac).then(
        () => showError(''),
        (err) => showError(err.message),
      ),
  );
}

const ACTIONS = {
  disable: 'Central refuses it data until it is enabled again; its credential stays.',
  enable: 'Central serves it again.',
  revoke:
    'Its credential stops working at once, on every Central; `dbupdate central enroll` gives it a new one.',
};

/** Asks on the page (a browser dialog would block a wall screen); true when confirmed. */
function confirmed(title, text) {
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  $('#confirm').returnValue = '';
  $('#confirm').showModal();
  return new Promise((resolve) =>
    $('#confirm').addEventListener('close', () => resolve($('#confirm').returnValue === 'ok'), {
      once: true,
    }),
  );
}

async function act(action) {
  const mac = document.body.dataset.device;
  if (!mac || !(await confirmed(`${action[0].toUpperCase()}${action.slice(1)} ${mac}?`, ACTIONS[action])))
    return;
  await api(`/api/admin/devices/${encodeURIComponent(mac)}/${action}`, 'POST');
  await loadFleet();
  await showDevice(mac);
  document.body.dataset.acted = `${action} ${mac}`;
}

const RELEASE_ACTIONS = {
  pause:
    'Every device that holds data keeps it until you resume; a device that holds nothing still gets its first sync.',
  resume: 'Devices take what changed in Central at their next sync.',
  approve: 'The change the guard holds goes to the whole fleet at its next syncs.',
  reject: 'Every device keeps its data until Central’s data changes again.',
};

/** The freeze and the guard (docs/releases.md), with the actions that apply now. */
function drawRelease(r) {
  const tripped = r.guard === 'tripped';
  const state = r.paused ? 'paused' : tripped ? 'guard tripped' : 'running';
  document.body.dataset.release = state;
  $('#release').classList.toggle('alert', r.paused || tripped);
  $('#release-state').textContent = r.paused
    ? `Paused ${fmtTime(r.pausedAt)} by ${r.pausedBy}${r.pauseReason ? `: ${r.pauseReason}` : ''}. ${r.heldDevices} devices held in the last 15 minutes.`
    : tripped
      ? `The mass-change guard holds every change since ${fmtTime(r.guardAt)}. ${r.heldDevices} devices held in the last 15 minutes.`
      : `Running: changes reach devices at their next sync (guard: ${r.guard}).`;
  const d = r.guardDetail;
  const ro = r.rollout;
  const rolling = Boolean(ro.startedAt && !ro.endedAt);
  $('#release-detail').hidden = !(tripped && d) && !rolling;
  if (tripped && d)
    $('#release-detail').textContent =
      `${d.device} would lose ${d.removed} of its ${d.held} ${d.table} rows (limit ${d.limit?.percent} %, at least ${d.limit?.minRows}).`;
  else if (rolling)
    $('#release-detail').textContent = ro.canariesOkAt
      ? `Rollout since ${fmtTime(ro.startedAt)}: canaries acked ${fmtTime(ro.canariesOkAt)}; wave ${ro.wavesOpen ?? '?'} of ${ro.waves ?? '?'} open; ${ro.updatedDevices} devices took it.`
      : `Rollout since ${fmtTime(ro.startedAt)}: waiting for the canaries to ack; ${ro.updatedDevices} devices took it.`;
  document.body.dataset.rollout = rolling ? (ro.canariesOkAt ? `wave ${ro.wavesOpen}` : 'canaries') : 'none';
  const shown = { pause: !r.paused, resume: r.paused, approve: tripped, reject: tripped };
  for (const button of document.querySelectorAll('[data-release-action]'))
    button.hidden = !shown[button.dataset.releaseAction];
}

async function releaseAct(action) {
  const title = `${action[0].toUpperCase()}${action.slice(1)} ${action === 'pause' || action === 'resume' ? 'releases' : 'the held change'}?`;
  if (!(await confirmed(title, RELEASE_ACTIONS[action]))) return;
  await api(`/api/admin/release/${action}`, 'POST');
  drawRelease(await api('/api/admin/release'));
}

async function showDevice(mac) {
  $('#device-mac').value = mac;
  const path = encodeURIComponent(mac);
  const [activity, deltas] = await Promise.all([
    api(`/api/admin/devices/${path}`),
    api(`/api/admin/devices/${path}/row-deltas?limit=30`),
  ]);
  $('#device-detail').hidden = false;
  const known = fleet.find((d) => d.mac === activity.mac);
  $('#device-summary').textContent = known
    ? `${known.name} · ${known.location} · ${known.state} · credential ${known.credential}`
    : '';
  const tableNames = deltas.manifests[0]?.tables.map((t) => t.name) ?? [];
  draw('deltas-chart', {
    type: 'line',
    data: {
      labels: deltas.manifests.map((m) => fmtTime(m.generatedAt)),
      datasets: tableNames.map((name, i) => ({
        label: name,
        data: deltas.manifests.map((m) => m.tables[i]?.rowCount ?? null),
        borderColor: TABLE_COLORS[i % TABLE_COLORS.length],
      })),
    },
    options: { scales: { y: { beginAtZero: true } } },
  });
  const head = document.createElement('tr');
  head.append(
    ...['Manifest', 'Generated', ...tableNames].map((t) =>
      Object.assign(document.createElement('th'), { textContent: t }),
    ),
  );
  $('#deltas-table thead').replaceChildren(head);
  // Most manifests of a quiet device change nothing; by default only those that did are listed.
  // A table whose content changed with its count the same (an edit) shows as ~0.
  const changed = (m) => m.tables.some((t) => t.delta !== 0 || t.changed);
  const listed = [...deltas.manifests].reverse().filter((m) => !$('#changed-only').checked || changed(m));
  fillTable('#deltas-table', listed, (m) => [
    cell(m.manifestId),
    cell(fmtTime(m.generatedAt)),
    ...m.tables.map((t) =>
      t.delta === null
        ? cell(`${t.rowCount}`)
        : t.delta === 0
          ? cell(t.changed ? '~0' : '0', t.changed ? 'edited' : null)
          : cell(`${t.delta > 0 ? '+' : ''}${t.delta}`, t.delta > 0 ? 'up' : 'down'),
    ),
  ]);
  const acked = new Map(activity.acks.map((a) => [a.manifestId, a.result]));
  fillTable('#requests-table', activity.requests, (r) => [
    cell(fmtTime(r.requestedAt)),
    cell(r.status, SUCCESS.has(r.status) ? 'up' : 'down'),
    cell(r.manifestId),
    cell(r.durationMs === null ? null : String(r.durationMs)),
  ]);
  fillTable('#manifests-table', activity.manifests, (m) => [
    cell(fmtTime(m.generatedAt)),
    cell(m.manifestId),
    cell(m.rows.toLocaleString('en')),
    cell(acked.get(m.manifestId) ?? 'no ack', acked.get(m.manifestId) === 'Success' ? 'up' : 'down'),
  ]);
  fillTable('#errors-table', activity.errors, (e) => [
    cell(fmtTime(e.at)),
    cell(e.source),
    cell(e.code, 'down'),
    cell(e.message, 'msg'),
  ]);
  document.body.dataset.device = activity.mac;
}

async function refresh() {
  document.body.dataset.state = 'loading';
  const hours = $('#hours').value;
  const staleHours = $('#stale-hours').value || '24';
  try {
    const [hourly, stale, versions, failures, release] = await Promise.all([
      api(`/api/admin/requests/hourly?hours=${hours}`),
      api(`/api/admin/devices/stale?hours=${encodeURIComponent(staleHours)}`),
      api('/api/admin/devices/versions'),
      api(`/api/admin/requests/failures?hours=${hours}`),
      api('/api/admin/release'),
    ]);
    drawRelease(release);
    drawOverview(hourly);
    drawStale(stale);
    drawVersions(versions);
    fillTable('#failures-table', failures.failures, (f) => [
      cell(f.code, 'down'),
      cell(f.source === 'device' ? 'the device' : 'Central'),
      cell(String(f.failures)),
      cell(String(f.devices)),
    ]);
    await loadFleet();
    showError('');
    if ($('#device-mac').value) await showDevice($('#device-mac').value);
    document.body.dataset.state = 'ready';
  } catch (err) {
    document.body.dataset.state = 'error';
    if (err instanceof Unauthorized) return askToken(err.message === 'no token' ? '' : err.message);
    showError(err.message);
  }
}

function askToken(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  $('#login-error').hidden = !message;
  $('#login-error').textContent = message;
  if (!$('#login').open) $('#login').showModal();
}

$('#login-form').addEventListener('submit', () => {
  sessionStorage.setItem(TOKEN_KEY, $('#token').value);
  $('#token').value = '';
  void refresh();
});
$('#controls').addEventListener('submit', (event) => {
  event.preventDefault();
  void refresh();
});
$('#sign-out').addEventListener('click', () => askToken(''));
$('#device-form').addEventListener('submit', (event) => {
  event.preventDefault();
  showDevice($('#device-mac').value.trim()).then(
    () => showError(''),
    (err) => showError(err.message),
  );
});

$('#fleet-search').addEventListener('input', drawFleet);
$('#fleet-form').addEventListener('submit', (event) => event.preventDefault());
$('#fleet-more').addEventListener('click', () => loadFleet(true).catch((err) => showError(err.message)));
for (const button of document.querySelectorAll('[data-release-action]'))
  button.addEventListener('click', () =>
    releaseAct(button.dataset.releaseAction).catch((err) => showError(err.message)),
  );
for (const button of document.querySelectorAll('#device-detail [data-action]'))
  button.addEventListener('click', () => act(button.dataset.action).catch((err) => showError(err.message)));

$('#changed-only').addEventListener('change', () => {
  if ($('#device-mac').value)
    showDevice($('#device-mac').value.trim()).catch((err) => showError(err.message));
});
// Every minute while the tab is visible, so the page can stay open on a wall screen.
setInterval(() => {
  if (document.visibilityState === 'visible' && document.body.dataset.state === 'ready') void refresh();
}, 60_000);

// Chart.js loads with `defer`; module scripts run after it, so Chart is defined here.
void refresh();
