// @ts-check
/**
 * The orders console: the read model's orders, live; an order's events and
 * its state at each version; creating orders and requesting processing; the
 * lag between the event store and the read model. Plain ES modules rendered
 * with lit-html, which escapes every value it puts in the page.
 *
 * Live by polling: every second, while the tab is visible, the page asks the
 * API for the page of orders it shows (and for the open order's row and
 * events). Every server instance answers from the one database that every
 * instance's projector writes, so a change projected by any of them shows
 * within a second or two, whichever instance the page reaches. Events pushed
 * from a server (SSE) would need a feed across instances, since each one's
 * projector sees only its share of the Kafka partitions. A page of 25 is one
 * keyset query on the read model's primary key: cheap enough for a console.
 */
import * as api from "./api.js"
import { repeat } from "./vendor/lit-html/directives/repeat.js"
import { html, nothing, render } from "./vendor/lit-html/lit-html.js"

/** @typedef {import("./api.js").Order} Order */
/** @typedef {import("./api.js").OrderEvent} OrderEvent */
/** @typedef {import("./api.js").LagFigures} LagFigures */
/** @typedef {{ kind: "done", text: string } | { kind: "problem", problem: api.Problem } | { kind: "pending" }} Outcome */
/** @typedef {{ at: number, figures: LagFigures }} LagLook */

const PageSize = 25
const RefreshMs = 1000
/** The projection lag shown is the mean over the events projected in this window. */
const LagWindowMs = 10_000

const state = {
  token: api.storedToken(),
  /** @type {string | undefined} */
  tokenNote: undefined,
  /** @type {Array<Order> | undefined} undefined until the first page arrives */
  orders: undefined,
  /** @type {api.Problem | undefined} */
  listProblem: undefined,
  /** @type {Array<string>} the `after` cursor of each page before the one shown */
  cursors: [],
  /** @type {string | undefined} */
  openId: undefined,
  /** @type {Order | null | undefined} the open order's row; null when the read model does not have it (yet) */
  row: undefined,
  /** @type {Array<OrderEvent> | undefined} */
  events: undefined,
  /** @type {api.Problem | undefined} */
  detailProblem: undefined,
  /** @type {number | undefined} the version time travel shows; undefined follows the latest */
  travelVersion: undefined,
  /** @type {Map<string, Order>} the open order's states at past versions, by `id@version`: they never change */
  pastStates: new Map(),
  /** @type {api.Problem | undefined} why the state at the version shown could not be read */
  pastProblem: undefined,
  /** @type {Outcome | undefined} */
  createOutcome: undefined,
  /** @type {Outcome | undefined} */
  processOutcome: undefined,
  /** @type {Array<LagLook>} the looks at the lag figures in the window, oldest first, all from one server */
  lagLooks: [],
  /** @type {api.Problem | undefined} */
  lagProblem: undefined
}

/** @typedef {typeof state} State */

const root = /** @type {HTMLElement} */ (document.getElementById("console"))

/** @param {Partial<State>} patch */
const update = (patch) => {
  Object.assign(state, patch)
  render(view(state), root)
}

/** @param {unknown} error */
const asProblem = (error) =>
  error instanceof api.Problem
    ? error
    : new api.Problem(0, "Console error", error instanceof Error ? error.message : String(error))

/** @param {unknown} value */
const asText = (value) => typeof value === "string" ? value : JSON.stringify(value)

/** @param {number} seconds */
const formatSeconds = (seconds) => seconds < 1 ? `${Math.round(seconds * 1000)} ms` : `${seconds.toFixed(1)} s`

/** @param {string} id */
const orderHash = (id) => `#order/${encodeURIComponent(id)}`

const openIdFromHash = () => {
  const match = /^#order\/(.+)$/.exec(location.hash)
  return match === null ? undefined : decodeURIComponent(match[1] ?? "")
}

// ---- Refreshing ----

const refreshList = async () => {
  const after = state.cursors.at(-1)
  try {
    const orders = await api.listOrders(PageSize, after)
    if (state.cursors.at(-1) === after) update({ orders, listProblem: undefined })
  } catch (error) {
    if (state.cursors.at(-1) === after) update({ listProblem: asProblem(error) })
  }
}

/** @param {string} id */
const readModelRow = (id) =>
  api.getOrder(id).catch((error) => {
    if (error instanceof api.Problem && error.status === 404) return null
    throw error
  })

const refreshOpenOrder = async () => {
  const id = state.openId
  if (id === undefined) return
  try {
    const [row, events] = await Promise.all([readModelRow(id), api.orderEvents(id)])
    if (state.openId === id) update({ row, events, detailProblem: undefined })
    await loadPastState()
  } catch (error) {
    if (state.openId === id) update({ detailProblem: asProblem(error) })
  }
}

const refreshLag = async () => {
  try {
    const figures = await api.lagFigures()
    const now = performance.now()
    const sameServer = state.lagLooks.at(-1)?.figures.instance === figures.instance
    const looks = [...(sameServer ? state.lagLooks : []), { at: now, figures }].filter((look) =>
      now - look.at <= LagWindowMs
    )
    update({ lagLooks: looks, lagProblem: undefined })
  } catch (error) {
    update({ lagProblem: asProblem(error) })
  }
}

const refresh = () => Promise.all([refreshList(), refreshOpenOrder(), refreshLag()])

/** Refreshes every `RefreshMs` while the tab is visible; a failure of one look does not end the looking. */
const poll = async () => {
  try {
    if (!document.hidden) await refresh()
  } finally {
    setTimeout(poll, RefreshMs)
  }
}

// ---- Time travel ----

/** The version the time travel shows: the chosen one, else the event store's latest. */
const shownVersion = () => state.travelVersion ?? state.events?.at(-1)?.version

/** Loads the open order's state at the version shown from `GET /:id?at=`, once: the past does not change. */
const loadPastState = async () => {
  const id = state.openId
  const version = shownVersion()
  if (id === undefined || version === undefined) return
  const key = `${id}@${version}`
  if (state.pastStates.has(key)) return
  try {
    state.pastStates.set(key, await api.getOrder(id, version))
    update({ pastProblem: undefined })
  } catch (error) {
    update({ pastProblem: asProblem(error) })
  }
}

/** @param {number | undefined} version */
const travelTo = (version) => {
  update({ travelVersion: version })
  void loadPastState()
}

// ---- Actions ----

/**
 * @param {string} id
 * @param {{ focus: boolean }} options
 */
const openOrder = (id, { focus }) => {
  if (id !== state.openId) {
    update({
      openId: id,
      row: undefined,
      events: undefined,
      detailProblem: undefined,
      travelVersion: undefined,
      pastProblem: undefined,
      processOutcome: undefined
    })
    void refreshOpenOrder()
  }
  if (focus) document.getElementById("order-heading")?.focus()
}

/**
 * A plain click (or Enter) on an order's link opens it and moves the focus to
 * it, also when it is open already (the hash would not change); a click that
 * asks for another tab or window is the browser's.
 * @param {string} id
 */
const followOrderLink = (id) => (/** @type {MouseEvent} */ event) => {
  if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return
  event.preventDefault()
  if (location.hash !== orderHash(id)) history.pushState(null, "", orderHash(id))
  openOrder(id, { focus: true })
}

/** @param {SubmitEvent} event */
const create = async (event) => {
  event.preventDefault()
  const form = /** @type {HTMLFormElement} */ (event.currentTarget)
  const data = new FormData(form)
  update({ createOutcome: { kind: "pending" } })
  try {
    const order = await api.createOrder(String(data.get("id")), String(data.get("name")))
    update({ createOutcome: { kind: "done", text: `Created order ${order.id} (version ${order.version}).` } })
    form.reset()
    history.pushState(null, "", orderHash(order.id))
    openOrder(order.id, { focus: false })
    void refreshList()
  } catch (error) {
    update({ createOutcome: { kind: "problem", problem: asProblem(error) } })
  }
}

/** @param {string} id */
const requestProcessing = async (id) => {
  update({ processOutcome: { kind: "pending" } })
  try {
    const order = await api.requestProcessing(id)
    update({
      processOutcome: { kind: "done", text: `Processing requested: ${order.status}, version ${order.version}.` }
    })
    void refresh()
  } catch (error) {
    update({ processOutcome: { kind: "problem", problem: asProblem(error) } })
  }
}

/** @param {Array<string>} cursors the `after` of each page before the one to show */
const showPage = (cursors) => {
  update({ cursors, orders: undefined })
  void refreshList()
}

const previousPage = () => showPage(state.cursors.slice(0, -1))

/** The page after the one shown starts after its last order (keyset pagination). */
const nextPage = () => showPage([...state.cursors, state.orders?.at(-1)?.id ?? ""])

/** @param {SubmitEvent} event */
const saveToken = (event) => {
  event.preventDefault()
  const token = String(new FormData(/** @type {HTMLFormElement} */ (event.currentTarget)).get("token")).trim()
  api.storeToken(token)
  update({ token, tokenNote: token === "" ? "No token: calls go without one." : "Token kept for this tab only." })
  void refresh()
}

const forgetToken = () => {
  api.storeToken("")
  update({ token: "", tokenNote: "Token forgotten." })
  void refresh()
}

// ---- Views ----

/** @param {Outcome | undefined} outcome */
const outcomeView = (outcome) => {
  if (outcome === undefined) return nothing
  if (outcome.kind === "pending") return html`<p class="outcome" role="status">Sending…</p>`
  if (outcome.kind === "done") return html`<p class="outcome done" role="status">${outcome.text}</p>`
  return problemView(outcome.problem)
}

/** @param {api.Problem} problem */
const problemView = (problem) =>
  html`<div class="outcome problem" role="alert">
    <p><strong class="problem-title">${problem.title}</strong>${
    problem.status === 0 ? nothing : html` (HTTP ${problem.status})`
  }</p>
    <p class="problem-detail">${problem.detail}</p>
    ${
    problem.issues.length === 0 ? nothing : html`<ul>
      ${
      problem.issues.map((issue) =>
        html`<li><code>${issue.path.join(".") || "(request)"}</code>: ${issue.message}</li>`
      )
    }
    </ul>`
  }
  </div>`

/** @param {string} status */
const statusBadge = (status) => html`<span class="status status-${status}">${status}</span>`

/** @param {State} s */
const tokenView = (s) =>
  html`<form class="token" @submit=${saveToken}>
    <label for="token">API token</label>
    <input id="token" name="token" type="password" autocomplete="off" spellcheck="false"
      placeholder="if the server sets API_TOKENS" .value=${s.token}>
    <button type="submit">Use token</button>
    ${s.token === "" ? nothing : html`<button type="button" @click=${forgetToken}>Forget</button>`}
    <span class="note" role="status">${s.tokenNote ?? (s.token === "" ? "" : "Token set for this tab.")}</span>
  </form>`

/** @param {State} s */
const createView = (s) =>
  html`<section class="panel" aria-labelledby="create-heading">
    <h2 id="create-heading">New order</h2>
    <form class="create" novalidate @submit=${create}>
      <label for="new-id">Id</label>
      <input id="new-id" name="id" required autocomplete="off" spellcheck="false" placeholder="e.g. order-42">
      <label for="new-name">Name</label>
      <input id="new-name" name="name" required autocomplete="off" placeholder="e.g. Blue bicycle">
      <button type="submit" ?disabled=${s.createOutcome?.kind === "pending"}>Create order</button>
    </form>
    ${outcomeView(s.createOutcome)}
  </section>`

/** @param {State} s */
const ordersView = (s) => {
  const orders = s.orders ?? []
  return html`<section class="panel" aria-labelledby="orders-heading">
    <h2 id="orders-heading">Orders</h2>
    <p class="hint">The read model, sorted by id, ${PageSize} a page, refreshed every second.</p>
    ${s.listProblem === undefined ? nothing : problemView(s.listProblem)}
    <table class="orders">
      <thead><tr><th scope="col">Id</th><th scope="col">Name</th><th scope="col">Status</th><th scope="col">Version</th></tr></thead>
      <tbody>
        ${
    repeat(orders, (order) => order.id, (order) =>
      html`<tr class=${order.id === s.openId ? "open" : ""}>
              <td><a href=${orderHash(order.id)} @click=${followOrderLink(order.id)} aria-current=${
        order.id === s.openId ? "true" : "false"
      }>${order.id}</a></td>
              <td>${order.name}</td>
              <td>${statusBadge(order.status)}</td>
              <td class="number">${order.version}</td>
            </tr>`)
  }
      </tbody>
    </table>
    ${
    s.orders === undefined
      ? html`<p class="hint">Loading…</p>`
      : orders.length === 0
      ? html`<p class="hint">No orders on this page.</p>`
      : nothing
  }
    <nav class="pages" aria-label="Pages of orders">
      <button type="button" ?disabled=${s.cursors.length === 0} @click=${previousPage}>Previous page</button>
      <button type="button" ?disabled=${orders.length < PageSize} @click=${nextPage}>Next page</button>
    </nav>
  </section>`
}

/** @param {State} s */
const lagView = (s) => {
  const newest = s.lagLooks.at(-1)?.figures
  const oldest = s.lagLooks[0]?.figures
  const projection = newest?.projection
  const recentEvents = (projection?.events ?? 0) - (oldest?.projection?.events ?? 0)
  const recentSeconds = (projection?.totalSeconds ?? 0) - (oldest?.projection?.totalSeconds ?? 0)
  return html`<section class="panel" aria-labelledby="lag-heading">
    <h2 id="lag-heading">Read model lag</h2>
    ${s.lagProblem === undefined ? nothing : problemView(s.lagProblem)}
    <dl class="figures">
      <dt>Projection: append → read-model write</dt>
      <dd id="lag-projection">${
    projection === null || projection === undefined
      ? "no event projected by this server yet"
      : html`${
        recentEvents > 0
          ? `mean ${formatSeconds(recentSeconds / recentEvents)} over ${recentEvents} event(s) in the last ${
            LagWindowMs / 1000
          } s`
          : `no event projected in the last ${LagWindowMs / 1000} s`
      }; at most ${formatSeconds(projection.maxSeconds)} since the server started`
  }
        <small>as measured by the projector of the server that answered</small></dd>
      <dt>Outbox: appended, not yet published</dt>
      <dd>${
    newest?.outbox == null
      ? "not measured by this event store"
      : `${newest.outbox.entries} append(s), the oldest ${formatSeconds(newest.outbox.oldestAgeSeconds)} old`
  }
        <small>whole event store, measured every 15 s</small></dd>
      <dt>Projector's Kafka lag</dt>
      <dd>${
    newest?.consumer == null
      ? "no Kafka consumer on this server"
      : `${newest.consumer.messages} message(s) on ${newest.consumer.partitions} partition(s)`
  }
        <small>the partitions of the server that answered, measured every 10 s</small></dd>
    </dl>
  </section>`
}

/**
 * The order's fields; any beyond the four every order has (a failed order's
 * reason) as they come, whatever their name and shape.
 * @param {Order} order
 */
const orderFields = (order) => {
  const { id: _id, name, status, version, ...more } = order
  return html`<dl class="state">
    <dt>Status</dt><dd class="state-status">${statusBadge(status)}</dd>
    <dt>Name</dt><dd>${name}</dd>
    <dt>Version</dt><dd class="state-version">${version}</dd>
    ${Object.entries(more).map(([field, value]) => html`<dt>${field}</dt><dd>${asText(value)}</dd>`)}
  </dl>`
}

/**
 * How far the read model's row of the open order is behind its events in the
 * event store (fetched together: the row may be the newer of the two).
 * @param {Order | null | undefined} row
 * @param {number | undefined} latest
 */
const syncView = (row, latest) => {
  if (row === undefined || latest === undefined) return "Loading…"
  const behind = latest - (row?.version ?? 0)
  return html`Read model: ${
    row === null ? "not there yet" : html`${statusBadge(row.status)} version ${row.version}`
  } · event store: version ${latest} · ${behind <= 0 ? "caught up" : `${behind} version(s) behind`}`
}

/**
 * @param {State} s
 * @param {string} id
 */
const detailView = (s, id) => {
  const latest = s.events?.at(-1)?.version
  const shown = shownVersion()
  const past = shown === undefined ? undefined : s.pastStates.get(`${id}@${shown}`)
  const heading = html`<h2 id="order-heading" tabindex="-1">Order <span class="id">${id}</span></h2>
    ${s.detailProblem === undefined ? nothing : problemView(s.detailProblem)}`
  // An order that cannot be read (unknown, or refused) shows why, and nothing else.
  if (s.events === undefined && s.detailProblem !== undefined) {
    return html`<section class="panel detail" aria-labelledby="order-heading">${heading}</section>`
  }
  return html`<section class="panel detail" aria-labelledby="order-heading">
    ${heading}
    <p class="sync">${syncView(s.row, latest)}</p>
    <div class="actions">
      <button type="button" ?disabled=${s.processOutcome?.kind === "pending"} @click=${() =>
    requestProcessing(id)}>Request processing</button>
    </div>
    ${outcomeView(s.processOutcome)}
    <h3 id="travel-heading">State at version ${shown ?? "…"}</h3>
    <div class="travel" role="group" aria-labelledby="travel-heading">
      <button type="button" ?disabled=${shown === undefined || shown <= 1} @click=${() =>
    travelTo((shown ?? 2) - 1)}>Earlier version</button>
      <button type="button" ?disabled=${shown === undefined || latest === undefined || shown >= latest} @click=${() =>
    travelTo((shown ?? 0) + 1)}>Later version</button>
      <button type="button" ?disabled=${s.travelVersion === undefined} @click=${() =>
    travelTo(undefined)}>Latest</button>
    </div>
    ${
    past !== undefined
      ? orderFields(past)
      : s.pastProblem !== undefined
      ? problemView(s.pastProblem)
      : html`<p class="hint">Loading…</p>`
  }
    <h3>Events <small>from the event store</small></h3>
    <ol class="timeline">
      ${
    repeat(s.events ?? [], (event) =>
      event.eventId, (event) =>
      html`<li class=${shown !== undefined && event.version > shown ? "later" : ""}>
          <div class="event-head">
            <button type="button" class="event-version" aria-pressed=${event.version === shown ? "true" : "false"}
              aria-label=${`Show the state at version ${event.version}`} @click=${() =>
        travelTo(event.version)}>v${event.version}</button>
            <strong class="event-type">${event.type}</strong>
            <time datetime=${event.occurredAt}>${event.occurredAt.replace("T", " ")}</time>
          </div>
          <dl class="ids">
            <dt>Correlation</dt><dd>${event.metadata.correlationId}</dd>
            <dt>Causation</dt><dd>${event.metadata.causationId}</dd>
          </dl>
          <pre class="data">${JSON.stringify(event.data, null, 2)}</pre>
        </li>`)
  }
    </ol>
    ${
    s.events !== undefined && s.events.length >= api.EventPageSize
      ? html`<p class="hint">The first ${api.EventPageSize} events.</p>`
      : nothing
  }
  </section>`
}

/** @param {State} s */
const view = (s) =>
  html`<header class="bar">
    <h1>Orders console</h1>
    ${tokenView(s)}
  </header>
  <main class="layout">
    <div class="column">
      ${createView(s)}
      ${ordersView(s)}
      ${lagView(s)}
    </div>
    <div class="column">
      ${
    s.openId === undefined
      ? html`<section class="panel"><h2>No order open</h2><p class="hint">Open an order from the list to see its events.</p></section>`
      : detailView(s, s.openId)
  }
    </div>
  </main>`

addEventListener("hashchange", () => {
  const id = openIdFromHash()
  if (id === undefined) update({ openId: undefined })
  else openOrder(id, { focus: true })
})

const initial = openIdFromHash()
if (initial === undefined) update({})
else openOrder(initial, { focus: false })
void poll()
